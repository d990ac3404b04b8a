//! Real logs through the real path: CloudTrail records from real incidents, delivered as AWS
//! delivers them ("AWS API Call via CloudTrail" events from `aws.*` sources on the account's
//! default bus), through the installed rule, the shipped `bootstrap`, DynamoDB and SNS, to an
//! SQS subscriber of the alert topic, compared with what `ctguard scan` reports offline.
//!
//! Customers cannot put `aws.*` events on a bus (PutEvents refuses them, and so does the
//! emulator); the records enter through the emulator's test-only CloudTrail path
//! (`POST /_ctguard/cloudtrail`), which delivers them as CloudTrail would: only where a trail is
//! logging, with the record as `detail`, read-only management events only to rules in
//! ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS. Each account is the records' own account,
//! created in the emulator by assuming a role in it.

use std::io::Read;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ctguard_tests::*;
use serde_json::Value;

struct Account {
    emu: Emulator,
    cfg: aws_config::SdkConfig,
    alerts_queue: String,
}

/// ctguard installed in `account`, us-east-1, with a queue subscribed to its alert topic.
async fn installed(account: &str) -> Account {
    let emu = Emulator::start();
    let creds = account_credentials(&emu.endpoint, account).await;
    let cfg = sdk_config(&emu.endpoint, "us-east-1", &creds.0, &creds.1, Some(&creds.2));
    logging_trail(&cfg).await;
    install_ctguard(&emu.endpoint, Some(&creds), &["us-east-1"]);
    let topic = format!("arn:aws:sns:us-east-1:{account}:ctguard-alerts");
    let alerts_queue = subscribe_queue(&cfg, &topic, "soc-alerts").await;
    Account { emu, cfg, alerts_queue }
}

fn records_of(files: &[std::path::PathBuf]) -> Vec<Value> {
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let text = if f.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(bytes.as_slice()).read_to_string(&mut s).expect("gunzip");
            s
        } else {
            String::from_utf8(bytes).expect("UTF-8")
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        match v {
            Value::Array(a) => out.extend(a),
            v => out.extend(v["Records"].as_array().cloned().unwrap_or_default()),
        }
    }
    // CloudTrail delivers each call shortly after it happens: in event-time order.
    out.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
    out
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.to_string_lossy().ends_with(".json.gz") {
            out.push(p);
        }
    }
    out
}

fn scan(path: &Path) -> (Output, Vec<Value>) {
    let out = ctguard(None).args(["--json", "scan"]).arg(path).output().expect("run scan");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        // `scan --json` ends with its summary line; the rest are alerts.
        .filter(|v| v["kind"] != "summary")
        .collect();
    (out, alerts)
}

fn deliveries(a: &Account, account: &str) -> u64 {
    let arn = format!("arn:aws:lambda:us-east-1:{account}:function:{FUNCTION_NAME}");
    a.emu.stats()["functions"][&arn]["eventbridge_deliveries"].as_u64().unwrap_or(0)
}

const FLAWS: &str = "653711331788";

/// flaws2.cloud: the level1 Lambda's key, first used by the Lambda (34.234.236.212), is reused
/// by the player from 104.102.221.250 (ListObjects at 23:04:54Z, then ECR calls).
#[tokio::test(flavor = "multi_thread")]
async fn flaws2_replayed_through_eventbridge_raises_the_one_alert_scan_reports() {
    let data = shared_data().join("flaws2-cloudtrail");
    let records = records_of(&files_under(&data));
    assert_eq!(records.len(), 37);
    let a = installed(FLAWS).await;
    let sent = a.emu.deliver_cloudtrail(&records, None, None);
    assert_eq!(sent["delivered"], 37, "{sent}");
    assert!(a.emu.drain(Duration::from_secs(120)), "the function did not finish:\n{}", a.emu.log());
    // The rule passed what it must: the 10 calls made with the two ASIA keys, and the 3
    // AssumeRole calls that mint session keys — nothing else (27 anonymous S3 reads and
    // service events are filtered by the pattern, before any invocation).
    assert_eq!(deliveries(&a, FLAWS), 13, "{}", a.emu.stats());
    let live: Vec<Value> =
        receive_all(&a.cfg, &a.alerts_queue, Duration::from_secs(3)).await.iter().map(alert_of).collect();
    assert_eq!(live.len(), 1, "exactly one alert reaches the subscriber: {live:#?}\n{}", a.emu.log());
    let (out, offline) = scan(&data);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(offline.len(), 1, "{offline:#?}");
    assert_eq!(live[0], offline[0], "the live alert is the one scan reports offline");
    assert_eq!(live[0]["access_key_id"], "ASIAZQNB3KHGIGYQXVVG");
    assert_eq!(live[0]["seen_identity"], "ip:104.102.221.250");
    assert_eq!(live[0]["offending"]["event_name"], "ListObjects");
    assert_eq!(live[0]["synthetic"], false);
}

/// The same logs with the rule downgraded to plain ENABLED: EventBridge withholds read-only
/// management events from it, so the thief's first call (ListObjects, `readOnly: true`) never
/// reaches the detector; the alert comes a minute late, on the next call the 2018 records do not
/// mark read-only (ECR ListImages). What `verify`'s rule-state check guards against.
#[tokio::test(flavor = "multi_thread")]
async fn flaws2_with_the_rule_in_plain_enabled_misses_the_thiefs_read_only_call() {
    let records = records_of(&files_under(&shared_data().join("flaws2-cloudtrail")));
    let a = installed(FLAWS).await;
    put_detector_rule(&a.cfg, aws_sdk_eventbridge::types::RuleState::Enabled, str::to_string).await;
    a.emu.deliver_cloudtrail(&records, None, None);
    assert!(a.emu.drain(Duration::from_secs(120)));
    assert_eq!(deliveries(&a, FLAWS), 12, "ListObjects withheld: {}", a.emu.stats());
    let live: Vec<Value> =
        receive_all(&a.cfg, &a.alerts_queue, Duration::from_secs(3)).await.iter().map(alert_of).collect();
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["offending"]["event_name"], "ListImages");
    assert_eq!(live[0]["offending"]["event_time"], "2018-11-28T23:05:53Z");
}

const STRATUS: &str = "017622104382";

/// Stratus Red Team `aws.credential-access.ec2-steal-instance-credentials`, detonated in a real
/// account. What the logs show: an IAM user (AKIA…, 18.236.253.47) runs SSM SendCommand to read
/// the instance's credentials, then the stolen instance key ASIAP5CT9NN8EYVU1FXV (session
/// `i-786a3A8B5C0d92eF4`) calls GetCallerIdentity and DescribeInstances — from the same
/// 18.236.253.47. The instance's own calls with that key are not in the logs, so the key has a
/// single network identity: trust on first use trusts it, and no alert is right (the README's
/// "TOFU blind spot": a key whose only uses are the thief's). The publisher pseudonymised the
/// region ("us-north-2r"): the records are delivered to the account's us-east-1 bus.
#[tokio::test(flavor = "multi_thread")]
async fn stratus_instance_credential_theft_replayed_raises_no_alert_as_scan_reports() {
    let file = shared_data()
        .join("stratus-red-team-detonation-logs/aws.credential-access.ec2-steal-instance-credentials.json");
    let records = records_of(std::slice::from_ref(&file));
    assert_eq!(records.len(), 45);
    let a = installed(STRATUS).await;
    let sent = a.emu.deliver_cloudtrail(&records, None, Some("us-east-1"));
    assert_eq!(sent["delivered"], 45, "{sent}");
    assert!(a.emu.drain(Duration::from_secs(120)), "{}", a.emu.log());
    assert_eq!(deliveries(&a, STRATUS), 2, "the two calls with the stolen key: {}", a.emu.stats());
    let live = receive_all(&a.cfg, &a.alerts_queue, Duration::from_secs(3)).await;
    assert!(live.is_empty(), "no alert: {:#?}", live.iter().map(alert_of).collect::<Vec<_>>());
    // The detector did see the key: its first (and only) network identity is its anchor.
    let items = aws_sdk_dynamodb::Client::new(&a.cfg).scan().table_name("ctguard-state").send().await.expect("scan");
    let trusted: Vec<String> =
        items.items().iter().filter_map(|it| it.get("anchor").and_then(|v| v.as_s().ok())).cloned().collect();
    assert_eq!(trusted, vec!["ip:18.236.253.47".to_string()], "{items:#?}");
    let (out, offline) = scan(&file);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(offline.is_empty(), "{offline:#?}");
}
