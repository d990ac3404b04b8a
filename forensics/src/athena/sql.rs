//! The SQL ctguard sends to Athena, and the predicates that keep it to the partitions it needs.
//!
//! The query texts live in `forensics/sql/*.sql` so they read as SQL; this module only fills in
//! `{{table}}`, `{{where}}` and (for `trace`) `{{key}}`, from validated values, never from free
//! text, so nothing a user types can change the query's shape.

use ctguard_detector::time::{format_rfc3339, Millis};
use serde::Serialize;

use crate::sources::TimeRange;

/// The `scan` reduction (see the file's header).
pub const SCAN_SQL: &str = include_str!("../../sql/scan.sql");
/// The `trace` reduction for one key.
pub const TRACE_SQL: &str = include_str!("../../sql/trace.sql");
/// The documented CloudTrail table with partition projection by account, region and day.
pub const TABLE_DDL: &str = include_str!("../../sql/cloudtrail_table.sql");

/// A bad `--athena` option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqlError {
    #[error("table name `{0}`: use letters, digits and `_`, optionally `database.table`")]
    Table(String),
    #[error("account `{0}` is not a 12-digit AWS account id")]
    Account(String),
    #[error("region `{0}` is not an AWS Region name")]
    Region(String),
    #[error("access key `{0}`: expected 16 to 128 letters and digits (AKIA…/ASIA…)")]
    Key(String),
    #[error("trail location `{0}`: expected s3://bucket/prefix/AWSLogs/ (with o-… for an organization trail)")]
    Location(String),
    #[error("--create-table needs --since (the first day of the projection) and --accounts")]
    Projection,
}

/// What one query reads: a table, narrowed by accounts, regions and a time range.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Target {
    /// `database.table` or `table`.
    pub table: String,
    /// Empty means every account the table projects.
    pub accounts: Vec<String>,
    /// Empty means every Region the table projects.
    pub regions: Vec<String>,
    #[serde(skip)]
    pub range: TimeRange,
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `yyyy/MM/dd` partition value of a time.
pub fn day_of(ms: Millis) -> String {
    format_rfc3339(ms).get(..10).unwrap_or_default().replace('-', "/")
}

impl Target {
    /// Checks every value that ends up in SQL.
    pub fn validate(&self) -> Result<(), SqlError> {
        let parts: Vec<&str> = self.table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|p| is_ident(p)) {
            return Err(SqlError::Table(self.table.clone()));
        }
        if let Some(a) = self.accounts.iter().find(|a| !ctguard_aws::is_account_id(a)) {
            return Err(SqlError::Account(a.clone()));
        }
        if let Some(r) = self.regions.iter().find(|r| !ctguard_aws::is_region_name(r)) {
            return Err(SqlError::Region(r.clone()));
        }
        Ok(())
    }

    /// The partition predicates (account, region, day), each a separate string.
    ///
    /// CloudTrail files land in the folder of their delivery day, up to about 15 minutes after
    /// the call, so the day range reaches one day past `--until`.
    pub fn partition_predicates(&self) -> Vec<String> {
        let list = |v: &[String]| v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let mut p = Vec::new();
        if !self.accounts.is_empty() {
            p.push(format!("account IN ({})", list(&self.accounts)));
        }
        if !self.regions.is_empty() {
            p.push(format!("region IN ({})", list(&self.regions)));
        }
        if let Some(s) = self.range.since {
            p.push(format!("day >= '{}'", day_of(s)));
        }
        if let Some(u) = self.range.until {
            p.push(format!("day <= '{}'", day_of(u.saturating_add(86_400_000))));
        }
        p
    }

    /// Every predicate: the partitions, then the exact event-time range.
    pub fn predicates(&self) -> Vec<String> {
        let mut p = self.partition_predicates();
        let ts = "try(from_iso8601_timestamp(eventtime))";
        if let Some(s) = self.range.since {
            p.push(format!("{ts} >= from_iso8601_timestamp('{}')", format_rfc3339(s)));
        }
        if let Some(u) = self.range.until {
            p.push(format!("{ts} <= from_iso8601_timestamp('{}')", format_rfc3339(u)));
        }
        p
    }

    fn where_clause(&self) -> String {
        let p = self.predicates();
        if p.is_empty() {
            "TRUE".into()
        } else {
            p.join("\n    AND ")
        }
    }

    /// The `scan` query.
    pub fn scan_sql(&self) -> Result<String, SqlError> {
        self.validate()?;
        Ok(SCAN_SQL.replace("{{table}}", &self.table).replace("{{where}}", &self.where_clause()))
    }

    /// The `trace` query for `key`.
    pub fn trace_sql(&self, key: &str) -> Result<String, SqlError> {
        self.validate()?;
        if !(16..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SqlError::Key(key.to_string()));
        }
        Ok(TRACE_SQL
            .replace("{{table}}", &self.table)
            .replace("{{where}}", &self.where_clause())
            .replace("{{key}}", key))
    }

    /// `CREATE EXTERNAL TABLE` over `location` (`s3://bucket/prefix/AWSLogs/` or `…/AWSLogs/o-…/`).
    pub fn create_table_sql(&self, location: &str) -> Result<String, SqlError> {
        self.validate()?;
        let location = normalize_location(location)?;
        let since = self.range.since.ok_or(SqlError::Projection)?;
        if self.accounts.is_empty() {
            return Err(SqlError::Projection);
        }
        let regions: Vec<String> = if self.regions.is_empty() {
            // Every commercial Region CloudTrail delivers from.
            ctguard_aws::KNOWN_REGIONS
                .iter()
                .filter(|r| ctguard_aws::is_commercial_region(r))
                .map(|r| r.to_string())
                .collect()
        } else {
            self.regions.clone()
        };
        Ok(TABLE_DDL
            .replace("{{table}}", &self.table)
            .replace("{{location}}", &location)
            .replace("{{accounts}}", &self.accounts.join(","))
            .replace("{{regions}}", &regions.join(","))
            .replace("{{first_day}}", &day_of(since)))
    }
}

/// `s3://bucket/prefix/AWSLogs/[o-…/]` with a trailing slash; anything else is refused.
pub fn normalize_location(location: &str) -> Result<String, SqlError> {
    let bad = || SqlError::Location(location.to_string());
    let rest = location.strip_prefix("s3://").ok_or_else(bad)?;
    let ok = rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    let trimmed = rest.trim_end_matches('/');
    let last_is_logs = trimmed.ends_with("/AWSLogs")
        || trimmed.rsplit_once('/').is_some_and(|(a, o)| a.ends_with("/AWSLogs") && o.starts_with("o-"));
    if !ok || !last_is_logs || trimmed.contains("//") {
        return Err(bad());
    }
    Ok(format!("s3://{trimmed}/"))
}

/// What `--plan` prints before anything runs.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub sql: String,
    /// The partition predicates, as they appear in the SQL.
    pub partition_predicates: Vec<String>,
    /// `account/region/day` prefixes read, when accounts and regions are given (else `None`:
    /// every projected one within the day range).
    pub partitions: Option<u64>,
    pub days: Option<u64>,
    /// Bytes under the partitions' S3 prefixes (what Athena reads), when they could be listed.
    pub estimated_bytes: Option<u64>,
    pub estimated_usd: Option<f64>,
    pub price: &'static str,
}

impl Plan {
    /// The plan of `sql` over `target`, with `bytes` listed under its prefixes, if known.
    pub fn new(target: &Target, sql: String, bytes: Option<u64>) -> Plan {
        let days = match (target.range.since, target.range.until) {
            (Some(s), Some(u)) if u >= s => Some(((u - s) / 86_400_000 + 2) as u64),
            _ => None,
        };
        let partitions = (!target.accounts.is_empty() && !target.regions.is_empty())
            .then(|| days.map(|d| d * (target.accounts.len() * target.regions.len()) as u64))
            .flatten();
        Plan {
            sql,
            partition_predicates: target.partition_predicates(),
            partitions,
            days,
            estimated_bytes: bytes,
            estimated_usd: bytes.map(super::price_usd),
            price: super::PRICE_SOURCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            table: "trails.cloudtrail".into(),
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            range: TimeRange { since: Some(1_714_521_600_000), until: Some(1_714_607_999_999) },
        }
    }

    #[test]
    fn predicates_name_every_partition_and_the_exact_range() {
        let sql = target().scan_sql().expect("sql");
        for p in [
            "account IN ('111122223333')",
            "region IN ('us-east-1', 'eu-west-1')",
            "day >= '2024/05/01'",
            "day <= '2024/05/02'",
            ">= from_iso8601_timestamp('2024-05-01T00:00:00Z')",
        ] {
            assert!(sql.contains(p), "{p} missing from\n{sql}");
        }
        assert!(!sql.contains("{{"), "unfilled placeholder");
    }

    #[test]
    fn values_that_could_change_the_query_are_refused() {
        let mut t = target();
        t.accounts = vec!["1111' OR '1'='1".into()];
        assert!(matches!(t.scan_sql(), Err(SqlError::Account(_))));
        let mut t = target();
        t.table = "x; DROP TABLE y".into();
        assert!(matches!(t.scan_sql(), Err(SqlError::Table(_))));
        let mut t = target();
        t.regions = vec!["us-east-1')--".into()];
        assert!(matches!(t.scan_sql(), Err(SqlError::Region(_))));
        assert!(matches!(target().trace_sql("ASIA' OR 1=1 --xxxxxx"), Err(SqlError::Key(_))));
    }

    #[test]
    fn tables_cover_org_trails_and_refuse_odd_locations() {
        let ddl = target().create_table_sql("s3://trail-bucket/org/AWSLogs/o-abc123def4").expect("ddl");
        assert!(ddl.contains("LOCATION 's3://trail-bucket/org/AWSLogs/o-abc123def4/'"), "{ddl}");
        assert!(ddl.contains("'s3://trail-bucket/org/AWSLogs/o-abc123def4/${account}/CloudTrail/${region}/${day}'"));
        assert!(ddl.contains("'projection.day.range' = '2024/05/01,NOW'"));
        assert!(target().create_table_sql("s3://b/AWSLogs/").is_ok());
        for bad in ["https://b/AWSLogs/", "s3://b/logs/", "s3://b/AWSLogs/x'y/", "s3://b//AWSLogs/"] {
            assert!(target().create_table_sql(bad).is_err(), "{bad}");
        }
        let mut t = target();
        t.accounts.clear();
        assert_eq!(t.create_table_sql("s3://b/AWSLogs/"), Err(SqlError::Projection));
    }

    #[test]
    fn plans_count_partitions_and_price() {
        let p = Plan::new(&target(), String::new(), Some(2_000_000_000_000));
        assert_eq!(p.days, Some(2));
        assert_eq!(p.partitions, Some(4));
        assert_eq!(p.estimated_usd, Some(10.0));
        assert!((super::super::price_usd(1) - 0.00005).abs() < 1e-12, "10 MB minimum");
    }
}
