//! `ctguard verify` end to end on an emulated AWS whose deployed functions run
//! (`scripts/moto_lambda.py`): PutEvents → the installed rule → the shipped `bootstrap` (the
//! very zip the installer deployed, run with the function's configuration, as its execution
//! role) → DynamoDB → SNS → the SQS observer queue verify creates.
//!
//! Each failure mode is set up with the AWS API in one region of an installation, and must make
//! verify fail in that target alone, naming the cause.
//!
//! What the emulator cannot do, said plainly (see scripts/moto_lambda.py):
//! - one execution environment per function, retry delays compressed to seconds, no IAM
//!   evaluation of the function's own calls;
//! - moto's `TestEventPattern` gives no usable answer; verify then checks the pattern locally.

use std::collections::HashMap;
use std::time::Duration;

use ctguard_tests::*;
use serde_json::Value;

const ACCT: &str = "123456789012";

/// Installs ctguard in the emulator's default account, in `regions`, with a logging trail.
async fn install(regions: &[&str]) -> Emulator {
    let emu = Emulator::start();
    logging_trail(&emu.config("us-east-1")).await;
    install_ctguard(&emu.endpoint, None, regions);
    emu
}

fn verify(emu: &Emulator, regions: &[&str], extra: &[&str]) -> (Option<i32>, HashMap<String, Value>, String) {
    let mut c = ctguard(Some(&emu.endpoint));
    c.args(["verify", "--timeout", "8", "--json", "--regions", &regions.join(",")]);
    c.args(extra);
    let out = c.output().expect("run verify");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let by_region = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .map(|o| (o["region"].as_str().unwrap_or_default().to_string(), o))
        .collect();
    (out.status.code(), by_region, String::from_utf8_lossy(&out.stderr).to_string())
}

fn check<'a>(o: &'a Value, name: &str) -> &'a Value {
    o["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

fn stat(emu: &Emulator, region: &str, what: &str) -> u64 {
    let arn = format!("arn:aws:lambda:{region}:{ACCT}:function:{FUNCTION_NAME}");
    emu.stats()["functions"][&arn][what].as_u64().unwrap_or(0)
}

async fn leftovers(emu: &Emulator) -> (usize, usize, usize) {
    let cfg = emu.config("us-east-1");
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
async fn verify_passes_through_eventbridge_in_every_region_and_cleans_up() {
    let regions = ["us-east-1", "eu-west-1"];
    let emu = install(&regions).await;
    let (code, out, err) = verify(&emu, &regions, &[]);
    assert_eq!(code, Some(0), "verify must pass: {out:#?}\n{err}\n{}", emu.log());
    assert_eq!(out.len(), 2, "{out:#?}");
    for region in regions {
        let o = &out[region];
        assert_eq!(o["pass"], true, "{o:#}");
        assert_eq!(o["account"], ACCT);
        assert!(o["latency_ms"].as_u64().is_some(), "latency measured: {o:#}");
        for name in [
            "rule state",
            "event pattern",
            "function",
            "invoke permission",
            "state table TTL",
            "trail",
            "send",
            "alert",
            "control",
            "state",
        ] {
            assert_eq!(check(o, name)["ok"], true, "{region} {name}: {o:#}");
        }
        // The three events came through the rule, not through Invoke.
        assert_eq!(stat(&emu, region, "eventbridge_deliveries"), 3, "{region}: {}", emu.stats());
    }
    assert!(err.contains("2 of 2 target(s) passed; PutEvents → alert latency: median "), "{err}");
    assert_eq!(leftovers(&emu).await, (0, 0, 0), "verify removes its queue, subscription and state records");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_hop_fails_verify_in_its_own_target_naming_the_cause() {
    let healthy = "us-east-1";
    let disabled = "us-west-2";
    let downgraded = "eu-west-1";
    let unmatched = "eu-central-1";
    let no_permission = "ap-southeast-2";
    let no_table = "sa-east-1";
    let regions = [healthy, disabled, downgraded, unmatched, no_permission, no_table];
    let emu = install(&regions).await;
    let events = |r: &str| aws_sdk_eventbridge::Client::new(&emu.config(r));
    let lambda = |r: &str| aws_sdk_lambda::Client::new(&emu.config(r));

    events(disabled).disable_rule().name("ctguard-detector").send().await.expect("disable the rule");
    put_detector_rule(&emu.config(downgraded), aws_sdk_eventbridge::types::RuleState::Enabled, str::to_string).await;
    put_detector_rule(
        &emu.config(unmatched),
        aws_sdk_eventbridge::types::RuleState::EnabledWithAllCloudtrailManagementEvents,
        |p| p.replace("\"ASIA\"", "\"AKIA\""),
    )
    .await;
    let policy: Value = serde_json::from_str(
        lambda(no_permission)
            .get_policy()
            .function_name(FUNCTION_NAME)
            .send()
            .await
            .expect("policy")
            .policy()
            .unwrap_or("{}"),
    )
    .expect("policy JSON");
    let sid = policy["Statement"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["Principal"]["Service"] == "events.amazonaws.com"))
        .and_then(|s| s["Sid"].as_str())
        .expect("the installed invoke permission")
        .to_string();
    lambda(no_permission)
        .remove_permission()
        .function_name(FUNCTION_NAME)
        .statement_id(sid)
        .send()
        .await
        .expect("remove the invoke permission");
    let f = lambda(no_table).get_function_configuration().function_name(FUNCTION_NAME).send().await.expect("function");
    let mut vars = f.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
    vars.insert("CTGUARD_TABLE".into(), "no-such-table".into());
    lambda(no_table)
        .update_function_configuration()
        .function_name(FUNCTION_NAME)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await
        .expect("point the function at a missing table");

    let (code, out, err) = verify(&emu, &regions, &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let reason = |r: &str| out[r]["reason"].as_str().unwrap_or_default().to_string();
    let failed = |r: &str, name: &str| check(&out[r], name)["ok"] == false;

    assert_eq!(out[healthy]["pass"], true, "the healthy target passes beside the broken ones: {:#}", out[healthy]);
    for r in [disabled, downgraded, unmatched, no_permission, no_table] {
        assert_eq!(out[r]["pass"], false, "{r}: {:#}", out[r]);
    }

    // Disabled: nothing delivered; the rule state is named, and the function works when invoked.
    assert!(reason(disabled).contains("rule state: DISABLED"), "{}", reason(disabled));
    assert!(failed(disabled, "alert") && failed(disabled, "delivery"), "{:#}", out[disabled]);
    assert_eq!(stat(&emu, disabled, "eventbridge_deliveries"), 0);

    // Plain ENABLED: verify's own events (a custom source) still arrive, as on AWS, but the rule
    // would never receive read-only management events: the state is the named cause.
    assert!(reason(downgraded).contains("rule state: ENABLED") && reason(downgraded).contains("read-only"));
    assert_eq!(check(&out[downgraded], "alert")["ok"], true, "{:#}", out[downgraded]);

    // A pattern that no longer matches temporary keys.
    assert!(failed(unmatched, "event pattern") && failed(unmatched, "alert"), "{:#}", out[unmatched]);
    assert!(reason(unmatched).contains("does not match"), "{}", reason(unmatched));
    assert_eq!(stat(&emu, unmatched, "eventbridge_deliveries"), 0);

    // No invoke permission: EventBridge cannot invoke; the events go to the rule's DLQ.
    assert!(failed(no_permission, "invoke permission") && failed(no_permission, "alert"), "{:#}", out[no_permission]);
    assert!(reason(no_permission).contains("events.amazonaws.com"), "{}", reason(no_permission));

    // A missing table: the function fails; the direct invocation names the error.
    assert!(failed(no_table, "alert") && failed(no_table, "direct invoke"), "{:#}", out[no_table]);
    assert!(
        reason(no_table).contains("StateStoreRejected") && reason(no_table).contains("ResourceNotFound"),
        "{}",
        reason(no_table)
    );
    assert!(err.contains("1 of 6 target(s) passed"), "{err}");
    assert!(!err.contains("could not remove"), "a missing table leaves nothing to remove: {err}");

    // Nothing was lost: both undeliverable and unprocessable events are in their region's DLQ.
    assert!(emu.drain(Duration::from_secs(60)), "asynchronous retries did not finish");
    let dlq = |r: &str| {
        let cfg = emu.config(r);
        async move {
            let sqs = aws_sdk_sqs::Client::new(&cfg);
            let url = sqs.get_queue_url().queue_name("ctguard-detector-dlq").send().await.expect("DLQ").queue_url;
            receive_all(&cfg, &url.expect("DLQ url"), Duration::from_secs(2)).await
        }
    };
    let dead = dlq(no_permission).await;
    assert_eq!(dead.len(), 3, "verify's three events, undeliverable: {dead:#?}");
    for m in &dead {
        let attrs = m.message_attributes().cloned().unwrap_or_default();
        assert_eq!(attrs.get("ERROR_CODE").and_then(|a| a.string_value()), Some("NO_PERMISSIONS"), "{m:#?}");
        let rule_arn = format!("arn:aws:events:{no_permission}:{ACCT}:rule/ctguard-detector");
        assert_eq!(attrs.get("RULE_ARN").and_then(|a| a.string_value()), Some(rule_arn.as_str()));
    }
    let failed_runs = dlq(no_table).await;
    assert_eq!(failed_runs.len(), 3, "verify's three events, after Lambda's retries: {failed_runs:#?}");
    for m in &failed_runs {
        let record: Value = serde_json::from_str(m.body().unwrap_or("null")).expect("invocation record");
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted", "{record:#}");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3, "1 try + MaximumRetryAttempts 2");
        assert_eq!(record["responsePayload"]["errorType"], "StateStoreRejected", "{record:#}");
        assert_eq!(record["requestPayload"]["source"], "ctguard.verify");
    }
    assert!(dlq(healthy).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_via_invoke_runs_the_deployed_function_through_the_lambda_api() {
    let emu = install(&["us-east-1"]).await;
    let (code, out, err) = verify(&emu, &["us-east-1"], &["--via", "invoke"]);
    assert_eq!(code, Some(0), "{out:#?}\n{err}\n{}", emu.log());
    assert_eq!(out["us-east-1"]["pass"], true);
    assert!(err.contains("Invoke → alert latency"), "{err}");
    assert_eq!(stat(&emu, "us-east-1", "eventbridge_deliveries"), 0);
    assert_eq!(stat(&emu, "us-east-1", "invocations"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fails_when_the_topic_cannot_deliver() {
    let emu = install(&["us-east-1"]).await;
    let topic = format!("arn:aws:sns:us-east-1:{ACCT}:ctguard-alerts");
    aws_sdk_sns::Client::new(&emu.config("us-east-1")).delete_topic().topic_arn(&topic).send().await.expect("delete");
    let (code, out, err) = verify(&emu, &["us-east-1"], &[]);
    assert_eq!(code, Some(1), "{out:#?}\n{err}");
    let reason = out["us-east-1"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("alert") && reason.contains(&topic), "{reason}");
    assert_eq!(check(&out["us-east-1"], "alert")["ok"], false);
    assert_eq!(leftovers(&emu).await, (0, 0, 0));
}

/// On moto without the executor, EventBridge answers PutEvents with HTTP 500 when a rule
/// targets a Lambda: verify must report that, never pass.
#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_an_eventbridge_failure_instead_of_passing() {
    let moto = Moto::start();
    logging_trail(&moto.config("us-east-1")).await;
    install_ctguard(&moto.endpoint(), None, &["us-east-1"]);
    let out = ctguard(Some(&moto.endpoint()))
        .args(["verify", "--regions", "us-east-1", "--timeout", "4", "--json"])
        .output()
        .expect("run verify");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PutEvents") && stdout.contains("HTTP 500"), "{stdout}");
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
