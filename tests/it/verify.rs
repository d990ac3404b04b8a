//! `ctguard verify` end to end: a real install in moto, the shipped bootstrap under
//! cargo-lambda's runtime emulator, and the synthetic credential reuse sent with the Lambda
//! Invoke API (`--via invoke`).
//!
//! What the emulator cannot do, said plainly:
//! - moto cannot run Lambda code, and its EventBridge answers `PutEvents` with HTTP 500 when a
//!   matching rule targets a Lambda — so the EventBridge → Lambda hop is not exercised here
//!   (`--via invoke` replaces it; a test below checks that `--via eventbridge` reports that
//!   failure instead of passing). Every other hop is real: Invoke → the shipped bootstrap →
//!   DynamoDB (moto) → SNS (moto) → the SQS observer queue verify creates.
//! - moto's CloudFormation does not apply `TimeToLiveSpecification`; the tests enable TTL on
//!   the state table with `UpdateTimeToLive`, as CloudFormation does on AWS.
//! - moto's `TestEventPattern` gives no usable answer; verify then checks the pattern locally.

use std::collections::HashMap;

use ctguard_tests::*;
use serde_json::Value;

const ACCT: &str = "123456789012";

struct Installed {
    moto: Moto,
    env: HashMap<String, String>,
}

/// Installs ctguard in the emulator's default account, us-east-1, with a logging trail.
async fn install() -> Installed {
    let moto = Moto::start();
    let cfg = moto.config("us-east-1");
    let s3 = aws_sdk_s3::Client::new(&cfg);
    s3.create_bucket().bucket("trail-logs").send().await.expect("trail bucket");
    let ct = aws_sdk_cloudtrail::Client::new(&cfg);
    ct.create_trail()
        .name("audit")
        .s3_bucket_name("trail-logs")
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("trail");
    ct.put_event_selectors()
        .trail_name("audit")
        .event_selectors(
            aws_sdk_cloudtrail::types::EventSelector::builder()
                .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::All)
                .include_management_events(true)
                .build(),
        )
        .send()
        .await
        .expect("selectors");
    ct.start_logging().name("audit").send().await.expect("start logging");
    let out = ctguard(Some(&moto.endpoint()))
        .args(["install", "--regions", "us-east-1", "--no-auto-deploy"])
        .output()
        .expect("run install");
    assert!(
        out.status.success(),
        "install failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Emulator gap: CloudFormation's TimeToLiveSpecification is not applied by moto.
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    ddb.update_time_to_live()
        .table_name("ctguard-state")
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .expect("ttl spec"),
        )
        .send()
        .await
        .expect("enable TTL");
    // The deployed function's configuration, which the function process below runs with.
    let f = aws_sdk_lambda::Client::new(&cfg)
        .get_function_configuration()
        .function_name(FUNCTION_NAME)
        .send()
        .await
        .expect("the installed function");
    let env = f.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    assert!(env.contains_key("CTGUARD_TABLE") && env.contains_key("CTGUARD_TOPIC_ARN"), "{env:?}");
    Installed { moto, env }
}

fn start_function(i: &Installed, emu: &LambdaEmulator, overrides: &[(&str, &str)]) -> Proc {
    let mut env: Vec<(String, String)> = i.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in overrides {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_function(emu, &i.moto.endpoint(), ("testing", "testing", None), &pairs)
}

fn verify(i: &Installed, emu: Option<&LambdaEmulator>, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let mut c = ctguard(Some(&i.moto.endpoint()));
    c.args(["verify", "--regions", "us-east-1", "--timeout", "8", "--json"]);
    if let Some(e) = emu {
        c.args(["--via", "invoke", "--invoke-endpoint", &e.endpoint()]);
    }
    c.args(extra);
    let out = c.output().expect("run verify");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).to_string())
}

fn check<'a>(o: &'a Value, name: &str) -> &'a Value {
    o["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

async fn leftovers(i: &Installed) -> (usize, usize, usize) {
    let cfg = i.moto.config("us-east-1");
    let queues = aws_sdk_sqs::Client::new(&cfg)
        .list_queues()
        .queue_name_prefix("ctguard-verify-")
        .send()
        .await
        .expect("list queues")
        .queue_urls()
        .len();
    let subs = aws_sdk_sns::Client::new(&cfg)
        .list_subscriptions()
        .send()
        .await
        .expect("list subscriptions")
        .subscriptions()
        .iter()
        .filter(|s| s.endpoint().is_some_and(|e| e.contains("ctguard-verify-")))
        .count();
    let items = aws_sdk_dynamodb::Client::new(&cfg)
        .scan()
        .table_name("ctguard-state")
        .send()
        .await
        .expect("scan")
        .items()
        .iter()
        .filter(|it| it.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.contains("ASIA0CTGV")))
        .count();
    (queues, subs, items)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_on_a_healthy_install_and_cleans_up() {
    let i = install().await;
    let emu = LambdaEmulator::start();
    let _f = start_function(&i, &emu, &[]);
    let (code, out, err) = verify(&i, Some(&emu), &[]);
    assert_eq!(code, Some(0), "verify must pass: {out:#?}\n{err}");
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(o["pass"], true, "{o:#}");
    assert_eq!((o["account"].as_str(), o["region"].as_str()), (Some(ACCT), Some("us-east-1")));
    assert!(o["latency_ms"].as_u64().is_some(), "latency measured: {o:#}");
    for name in
        ["rule state", "event pattern", "function", "state table TTL", "trail", "send", "alert", "control", "state"]
    {
        assert_eq!(check(o, name)["ok"], true, "{name}: {o:#}");
    }
    assert_eq!(leftovers(&i).await, (0, 0, 0), "verify removes its queue, subscription and state records");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_when_the_function_is_broken() {
    let i = install().await;
    let emu = LambdaEmulator::start();
    let _f = start_function(&i, &emu, &[("CTGUARD_TABLE", "no-such-table")]);
    let (code, out, err) = verify(&i, Some(&emu), &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let o = &out[0];
    assert_eq!(o["pass"], false);
    let reason = o["reason"].as_str().unwrap_or("");
    assert!(reason.contains("StateStoreRejected") && reason.contains("ResourceNotFound"), "{reason}");
    assert_eq!(leftovers(&i).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_when_the_topic_cannot_deliver() {
    let i = install().await;
    let topic = i.env["CTGUARD_TOPIC_ARN"].clone();
    aws_sdk_sns::Client::new(&i.moto.config("us-east-1"))
        .delete_topic()
        .topic_arn(&topic)
        .send()
        .await
        .expect("delete topic");
    let emu = LambdaEmulator::start();
    let _f = start_function(&i, &emu, &[]);
    let (code, out, err) = verify(&i, Some(&emu), &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("alert") && reason.contains(&topic), "{reason}");
    assert_eq!(check(&out[0], "alert")["ok"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_when_the_rule_is_plain_enabled() {
    let i = install().await;
    let events = aws_sdk_eventbridge::Client::new(&i.moto.config("us-east-1"));
    let rule = events.describe_rule().name("ctguard-detector").send().await.expect("rule");
    events
        .put_rule()
        .name("ctguard-detector")
        .event_pattern(rule.event_pattern().unwrap_or("{}"))
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .send()
        .await
        .expect("downgrade the rule");
    let emu = LambdaEmulator::start();
    let _f = start_function(&i, &emu, &[]);
    let (code, out, err) = verify(&i, Some(&emu), &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let rs = check(&out[0], "rule state");
    assert_eq!(rs["ok"], false);
    assert!(rs["detail"].as_str().unwrap_or("").contains("read-only"), "{rs}");
    // The rest of the pipeline still works: the failure is pinned on the rule alone.
    assert_eq!(check(&out[0], "alert")["ok"], true, "{:#}", out[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_via_eventbridge_reports_the_emulator_gap_instead_of_passing() {
    let i = install().await;
    let (code, out, err) = verify(&i, None, &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let reason = out[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("PutEvents") && reason.contains("HTTP 500"), "{reason}");
    assert_eq!(leftovers(&i).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_on_an_account_without_ctguard_fails_clearly() {
    let moto = Moto::start();
    let out = ctguard(Some(&moto.endpoint()))
        .args(["verify", "--regions", "us-east-1", "--json", "--timeout", "2"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("not installed"), "{stdout}");
}
