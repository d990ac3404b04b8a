//! `ctguard scan --athena TABLE` and `ctguard trace --athena TABLE`: the same questions answered
//! by Amazon Athena over an Organization's trail bucket, for when the logs outgrow one machine.
//!
//! Athena runs the reduction in `forensics/sql/` (partition predicates from `--since/--until`,
//! `--accounts`, `--regions`); ctguard replays the returned rows through the same detector as a
//! local scan. `--plan` prints the SQL, the partitions and the estimated bytes and price, and
//! runs nothing. Ctrl-C stops the query in Athena.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ctguard_detector::Policy;
use ctguard_forensics::athena::query::{self, Backoff, Progress, QueryContext, Row};
use ctguard_forensics::athena::replay::RowFold;
use ctguard_forensics::athena::{aws::AwsAthena, price_usd, risk_of, Plan, Target};
use ctguard_forensics::scan::ScanReport;
use ctguard_forensics::sources::{self, Kind, TimeRange};

use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{emit, Table};
use indicatif::HumanBytes;

/// The `--athena` options shared by `scan` and `trace`.
#[derive(Debug, Args, Default, Clone)]
pub struct AthenaArgs {
    /// Run in Amazon Athena over this CloudTrail table (`database.table`) instead of reading files.
    #[arg(long, value_name = "TABLE")]
    pub athena: Option<String>,
    /// Athena workgroup (its result location and limits apply).
    #[arg(long, requires = "athena")]
    pub workgroup: Option<String>,
    /// Where Athena writes results (s3://…), when the workgroup does not set it.
    #[arg(long, requires = "athena", value_name = "S3_URI")]
    pub results: Option<String>,
    /// The trail's S3 prefix up to AWSLogs/ (organization trails: …/AWSLogs/o-…/): used by
    /// --create-table and to estimate the bytes --plan reads.
    #[arg(long, requires = "athena", value_name = "S3_URI")]
    pub location: Option<String>,
    /// First create the table (AWS's documented CloudTrail DDL with partition projection by
    /// account, region and day) over --location; needs --accounts and --since.
    #[arg(long, requires = "location")]
    pub create_table: bool,
    /// Only these accounts (comma-separated; partition predicate).
    #[arg(long, requires = "athena", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Only these Regions (comma-separated; partition predicate).
    #[arg(long, requires = "athena", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Print the SQL, the partitions and the estimated bytes scanned and price; run nothing.
    #[arg(long, requires = "athena")]
    pub plan: bool,
    /// Replay saved result rows (JSON lines, one object per row) instead of running the query.
    #[arg(long, requires = "athena", value_name = "FILE", hide = true)]
    pub replay_rows: Option<PathBuf>,
}

impl AthenaArgs {
    pub fn enabled(&self) -> bool {
        self.athena.is_some()
    }

    fn target(&self, range: TimeRange) -> Target {
        Target {
            table: self.athena.clone().unwrap_or_default(),
            accounts: self.accounts.clone(),
            regions: self.regions.clone(),
            range,
        }
    }

    fn context(&self) -> QueryContext {
        let table = self.athena.as_deref().unwrap_or_default();
        QueryContext {
            workgroup: self.workgroup.clone(),
            database: table.split_once('.').map(|(d, _)| d.to_string()),
            output_location: self.results.clone(),
        }
    }
}

/// Bytes under the partitions' prefixes, listed with the same date pruning as a local scan.
async fn estimate(a: &AthenaArgs, t: &Target, g: &GlobalArgs) -> anyhow::Result<Option<u64>> {
    let Some(loc) = &a.location else { return Ok(None) };
    let loc = ctguard_forensics::athena::sql::normalize_location(loc)?;
    let mut paths = Vec::new();
    if t.accounts.is_empty() {
        paths.push(loc.clone());
    }
    for acct in &t.accounts {
        if t.regions.is_empty() {
            paths.push(format!("{loc}{acct}/CloudTrail/"));
        }
        for r in &t.regions {
            paths.push(format!("{loc}{acct}/CloudTrail/{r}/"));
        }
    }
    let inputs = sources::resolve(&paths, Kind::Trail, &t.range, &g.aws()).await.map_err(anyhow::Error::msg)?;
    Ok(Some(inputs.listing.bytes))
}

fn print_plan(p: &Plan, fmt: Output) -> anyhow::Result<()> {
    if fmt == Output::Json {
        println!("{}", serde_json::to_string_pretty(p)?);
        return Ok(());
    }
    println!("-- ctguard: the query Athena will run\n{}", p.sql.trim_end());
    println!(
        "-- partition predicates: {}",
        if p.partition_predicates.is_empty() {
            "none (reads the whole table)".into()
        } else {
            p.partition_predicates.join(" AND ")
        }
    );
    match p.partitions {
        Some(n) => println!("-- partitions read: {n} (account × region × day)"),
        None => println!(
            "-- partitions read: every projected account/region over {} day(s)",
            p.days.map_or("all".into(), |d| d.to_string())
        ),
    }
    match (p.estimated_bytes, p.estimated_usd) {
        (Some(b), Some(usd)) => println!("-- estimated bytes scanned: {} (≈ USD {usd:.4})", HumanBytes(b)),
        _ => println!("-- estimated bytes scanned: unknown (give --location s3://…/AWSLogs/ to list them)"),
    }
    println!("-- price: {}", p.price);
    Ok(())
}

/// Runs one query with progress on stderr and Ctrl-C stopping it.
async fn execute(
    conf: &aws_config::SdkConfig,
    sql: &str,
    ctx: &QueryContext,
    on_row: impl FnMut(Row),
) -> anyhow::Result<query::Finished> {
    let athena = AwsAthena::new(conf);
    // The handler is installed now, before the query starts: a Ctrl-C at any point from here
    // on stops the query in Athena instead of killing the process with it still running.
    let cancel = interrupted()?;
    let progress = |p: Progress| match p {
        Progress::Started(id) => eprintln!("athena: query execution id {id}"),
        Progress::State(s) => eprintln!("athena: {s:?}"),
        Progress::Page { rows } => tracing::debug!(rows, "athena: page"),
    };
    Ok(query::run(&athena, sql, ctx, Backoff::default(), cancel, progress, on_row).await?)
}

/// Completes on the first Ctrl-C (SIGINT) after this call.
#[cfg(unix)]
fn interrupted() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut sig =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    Ok(async move {
        let _ = sig.recv().await;
    })
}

/// Completes on the first Ctrl-C after its first poll (Windows has no earlier hook).
#[cfg(not(unix))]
fn interrupted() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn read_rows(path: &PathBuf, mut f: impl FnMut(Row)) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))?;
        f(obj
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some((k, s)),
                other => Some((k, other.to_string())),
            })
            .collect());
        n += 1;
    }
    Ok(n)
}

async fn prepare(
    a: &AthenaArgs,
    t: &Target,
    sql: &str,
    g: &GlobalArgs,
) -> anyhow::Result<Option<aws_config::SdkConfig>> {
    if a.plan {
        let bytes = estimate(a, t, g).await?;
        print_plan(&Plan::new(t, sql.to_string(), bytes), g.output())?;
        return Ok(None);
    }
    let conf = ctguard_aws::load(&g.aws()).await;
    if a.create_table {
        let loc = a.location.as_deref().unwrap_or_default();
        let ddl = t.create_table_sql(loc)?;
        eprintln!("athena: creating table {} over {loc}", t.table);
        execute(&conf, &ddl, &a.context(), |_| {}).await.context("creating the CloudTrail table")?;
    }
    Ok(Some(conf))
}

/// `ctguard scan --athena`: returns the report and the bytes Athena scanned (unknown for
/// `--replay-rows`), or `None` after `--plan`.
pub async fn scan(
    a: &AthenaArgs,
    range: TimeRange,
    policy: Policy,
    g: &GlobalArgs,
) -> anyhow::Result<Option<(ScanReport, Option<u64>)>> {
    let t = a.target(range);
    let sql = t.scan_sql()?;
    let mut fold = RowFold::new(policy);
    let scanned = if let Some(path) = &a.replay_rows {
        read_rows(path, |r| fold.add(&r))?;
        None
    } else {
        let Some(conf) = prepare(a, &t, &sql, g).await? else { return Ok(None) };
        execute(&conf, &sql, &a.context(), |r| fold.add(&r)).await?.bytes_scanned
    };
    let rows = fold.rows();
    let rep = fold.finish().await?;
    let bytes = scanned.map_or("unknown".into(), |b| format!("{} (≈ USD {:.4})", HumanBytes(b), price_usd(b)));
    eprintln!(
        "ctguard scan --athena: {rows} rows replayed ({} distinct key × network identity, {} signals); scanned {bytes}; alerts: {}",
        rep.summary.distinct_uses, rep.summary.fold.signals, rep.summary.alerts
    );
    if scanned == Some(0) {
        eprintln!("ctguard scan --athena: Athena read 0 bytes: the table, or the accounts, regions and days selected, hold no logs");
    }
    Ok(Some((rep, scanned)))
}

/// The exit code of `scan --athena`. The rows are already reduced, so zero rows is a clean
/// result, not missing input; only a query that read nothing at all is "no records".
pub fn scan_exit_code(rep: &ScanReport, scanned: Option<u64>) -> u8 {
    if !rep.alerts.is_empty() {
        exit::FINDINGS
    } else if scanned == Some(0) {
        exit::NO_RECORDS
    } else if !rep.summary.complete() {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// `ctguard trace --athena`: the key's calls per origin and API, its high-risk operations and
/// the call that minted it. Returns the number of rows.
pub async fn trace(a: &AthenaArgs, key: &str, range: TimeRange, g: &GlobalArgs) -> anyhow::Result<Option<usize>> {
    let t = a.target(range);
    let sql = t.trace_sql(key)?;
    let mut rows = Vec::new();
    if let Some(path) = &a.replay_rows {
        read_rows(path, |r| rows.push(r))?;
    } else {
        let Some(conf) = prepare(a, &t, &sql, g).await? else { return Ok(None) };
        execute(&conf, &sql, &a.context(), |r| rows.push(r)).await?;
    }
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let (Some(o), Some(risk)) = (v.as_object_mut(), risk_of(r)) {
                o.insert("risk".into(), serde_json::Value::String(risk));
            }
            v
        })
        .collect();
    let mut table = Table::new(["KIND", "FROM", "API", "RESULT", "CALLS", "FIRST", "LAST", "RISK"]);
    let get = |r: &Row, c: &str| r.get(c).cloned().unwrap_or_else(|| "-".into());
    for r in &rows {
        table.row([
            get(r, "kind"),
            r.get("vpcendpointid").or(r.get("sourceipaddress")).cloned().unwrap_or_else(|| "-".into()),
            format!("{}:{}", get(r, "eventsource"), get(r, "eventname")),
            r.get("errorcode").cloned().unwrap_or_else(|| "ok".into()),
            get(r, "calls"),
            get(r, "first_time"),
            get(r, "last_time"),
            risk_of(r).unwrap_or_default(),
        ]);
    }
    emit(g.output(), &items, &table)?;
    if let Some(last) = rows
        .iter()
        .filter(|r| r.get("kind").map(String::as_str) == Some("use"))
        .max_by_key(|r| r.get("last_time").cloned())
    {
        eprintln!("ctguard trace --athena: last use {} from {}", get(last, "last_time"), get(last, "sourceipaddress"));
    }
    Ok(Some(rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctguard_forensics::scan::{replay, Fold};

    #[tokio::test]
    async fn zero_rows_is_clean_and_zero_bytes_is_no_records() {
        let empty = replay(Fold::default(), Policy::default()).await.expect("replay");
        assert_eq!(scan_exit_code(&empty, Some(1 << 20)), exit::OK, "rows are reduced: none means nothing to judge");
        assert_eq!(scan_exit_code(&empty, None), exit::OK, "--replay-rows: bytes unknown");
        assert_eq!(scan_exit_code(&empty, Some(0)), exit::NO_RECORDS, "a query that read nothing");
    }
}
