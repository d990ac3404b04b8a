//! Result rows of [`super::SCAN_SQL`] → CloudTrail records → the local fold and ordered replay.
//!
//! Each row is rebuilt as the CloudTrail record it came from, reduced to the fields the engine
//! reads, and folded exactly as a record read from a file; `use` rows carry no request/response
//! (so they raise no signal twice) and `signal` rows carry no access key (so they are no use).

use ctguard_detector::{Policy, Record};
use serde_json::{json, Map, Value};

use super::query::Row;
use crate::scan::{self, Fold, ScanError, ScanOptions, ScanReport};

/// The CloudTrail record a result row stands for.
pub fn record_of(row: &Row) -> Value {
    let s = |c: &str| row.get(c).map(|v| Value::String(v.clone()));
    let mut obj = Map::new();
    let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    for (field, col) in [
        ("eventTime", "eventtime"),
        ("eventID", "eventid"),
        ("eventName", "eventname"),
        ("eventSource", "eventsource"),
        ("eventType", "eventtype"),
        ("awsRegion", "awsregion"),
        ("sourceIPAddress", "sourceipaddress"),
        ("userAgent", "useragent"),
        ("recipientAccountId", "recipientaccountid"),
        ("vpcEndpointId", "vpcendpointid"),
        ("vpcEndpointAccountId", "vpcendpointaccountid"),
        ("errorCode", "errorcode"),
        ("sessionCredentialFromConsole", "sessioncredentialfromconsole"),
    ] {
        put(&mut obj, field, s(col));
    }
    let mut ctx = Map::new();
    if let Some(c) = s("ui_created") {
        ctx.insert("attributes".into(), json!({ "creationDate": c }));
    }
    if let Some(a) = s("ui_issuer_arn") {
        ctx.insert("sessionIssuer".into(), json!({ "arn": a }));
    }
    put(&mut ctx, "ec2RoleDelivery", s("ui_ec2_delivery"));
    let mut ui = Map::new();
    for (field, col) in [
        ("type", "ui_type"),
        ("arn", "ui_arn"),
        ("accountId", "ui_account"),
        ("accessKeyId", "ui_key"),
        ("invokedBy", "ui_invoked_by"),
    ] {
        put(&mut ui, field, s(col));
    }
    if !ctx.is_empty() {
        ui.insert("sessionContext".into(), Value::Object(ctx));
    }
    if !ui.is_empty() {
        obj.insert("userIdentity".into(), Value::Object(ui));
    }
    let mut req = Map::new();
    for (field, col) in
        [("roleArn", "rp_role_arn"), ("roleSessionName", "rp_session_name"), ("instanceId", "rp_instance_id")]
    {
        put(&mut req, field, s(col));
    }
    if let Some(set) = row.get("rp_instances").and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        req.insert("instancesSet".into(), set);
    }
    if !req.is_empty() {
        obj.insert("requestParameters".into(), Value::Object(req));
    }
    let mut creds = Map::new();
    put(&mut creds, "accessKeyId", s("re_key"));
    put(&mut creds, "expiration", s("re_expiration"));
    if !creds.is_empty() {
        obj.insert("responseElements".into(), json!({ "credentials": creds }));
    }
    Value::Object(obj)
}

/// Folds result rows as they stream in; [`RowFold::finish`] replays them.
pub struct RowFold {
    fold: Fold,
    opts: ScanOptions,
    rows: u64,
    malformed: u64,
}

impl RowFold {
    pub fn new(policy: Policy) -> RowFold {
        // The time range is already in the SQL; folding again with it would change nothing.
        RowFold { fold: Fold::default(), opts: ScanOptions { policy, ..ScanOptions::default() }, rows: 0, malformed: 0 }
    }

    /// Folds one row. Rows come in (time, file, event id) order, which sets ties in the replay.
    pub fn add(&mut self, row: &Row) {
        let text = record_of(row).to_string();
        match Record::parse(&text) {
            Ok(r) => self.fold.add(&r, None, self.rows, &self.opts),
            Err(_) => self.malformed += 1,
        }
        self.rows += 1;
    }

    /// Rows folded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The ordered replay through a fresh detector: the same alerts a local scan raises.
    pub async fn finish(self) -> Result<ScanReport, ScanError> {
        let mut rep = scan::replay(self.fold, self.opts.policy).await?;
        rep.summary.read.records += self.rows - self.malformed;
        rep.summary.read.lost.count(crate::loss::LossKind::Malformed, self.malformed);
        Ok(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const K: &str = "ASIAAAAAAAAAAAAAAAA2";

    fn use_row(ip: &str, time: &str) -> Row {
        row(&[
            ("kind", "use"),
            ("eventtime", time),
            ("eventname", "ListBuckets"),
            ("eventsource", "s3.amazonaws.com"),
            ("eventtype", "AwsApiCall"),
            ("sourceipaddress", ip),
            ("recipientaccountid", "111122223333"),
            ("ui_type", "AssumedRole"),
            ("ui_arn", "arn:aws:sts::111122223333:assumed-role/web/fn"),
            ("ui_key", K),
        ])
    }

    #[tokio::test]
    async fn rows_replay_through_the_detector() {
        let mut f = RowFold::new(Policy::default());
        f.add(&use_row("198.51.100.1", "2024-05-01T10:00:00Z"));
        f.add(&use_row("203.0.113.9", "2024-05-01T10:05:00Z"));
        assert_eq!(f.rows(), 2);
        let rep = f.finish().await.expect("replay");
        assert_eq!(rep.alerts.len(), 1);
        assert_eq!(rep.alerts[0].seen_identity, "ip:203.0.113.9");
    }

    #[tokio::test]
    async fn a_rotation_row_binds_the_key_to_its_instance() {
        // EC2 rotates the instance's key; the thief uses it first from elsewhere. Without the
        // rotation signal rebuilt from the row, per-key trust would accept the thief.
        let inst = "arn:aws:sts::111122223333:assumed-role/web/i-0123456789abcdef0";
        let mut f = RowFold::new(Policy::default());
        let mut home = use_row("198.51.100.1", "2024-05-01T09:00:00Z");
        home.insert("ui_arn".into(), inst.into());
        home.insert("ui_key".into(), "ASIAAAAAAAAAAAAAAAA3".into());
        f.add(&home);
        f.add(&row(&[
            ("kind", "signal"),
            ("eventtime", "2024-05-01T10:00:00Z"),
            ("eventname", "AssumeRole"),
            ("eventsource", "sts.amazonaws.com"),
            ("sourceipaddress", "ec2.amazonaws.com"),
            ("recipientaccountid", "111122223333"),
            ("rp_role_arn", "arn:aws:iam::111122223333:role/web"),
            ("rp_session_name", "i-0123456789abcdef0"),
            ("re_key", K),
            ("re_expiration", "May 1, 2024, 4:00:00 PM"),
        ]));
        let mut thief = use_row("203.0.113.9", "2024-05-01T10:01:00Z");
        thief.insert("ui_arn".into(), inst.into());
        f.add(&thief);
        let rep = f.finish().await.expect("replay");
        assert_eq!(rep.summary.rotations, 1);
        assert_eq!(rep.alerts.len(), 1, "{:?}", rep.alerts);
        assert_eq!(rep.alerts[0].access_key_id, K);
    }

    #[test]
    fn signal_rows_carry_no_key_and_use_rows_no_request() {
        let v = record_of(&use_row("198.51.100.1", "2024-05-01T10:00:00Z"));
        assert!(v.get("requestParameters").is_none() && v.get("responseElements").is_none());
        let v = record_of(&row(&[("rp_instances", "{\"items\":[{\"instanceId\":\"i-01234567\"}]}")]));
        assert_eq!(v["requestParameters"]["instancesSet"]["items"][0]["instanceId"], "i-01234567");
        assert!(v.get("userIdentity").is_none());
    }
}
