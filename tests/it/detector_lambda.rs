//! The shipped Lambda, end to end: the `bootstrap` inside the zip that `ctguard package` writes,
//! run under cargo-lambda's Runtime API emulator, invoked with the standard Lambda Invoke API,
//! talking to DynamoDB and SNS in moto server; the alert is read from an SQS queue subscribed
//! to the topic.

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use ctguard_tests::*;
use serde_json::{json, Value};

const KEY: &str = "ASIAQWERTYQWERTYQWER";
const ACCT: &str = "123456789012";

struct Pipeline {
    moto: Moto,
    emu: LambdaEmulator,
    _fun: Proc,
    queue_url: String,
    /// What an HTTPS subscriber (AWS Chatbot's form) received.
    https: Collector,
}

/// A loopback HTTP endpoint that keeps every request body, answering 200. moto delivers HTTPS
/// subscriptions with a plain POST to the endpoint and does not insist on TLS, so an `https`
/// subscription can point at it; real SNS would need a TLS endpoint and a confirmed
/// subscription. Email cannot be delivered by moto at all: the email form is checked through
/// the published structure in the detector's unit tests.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Collector {
    fn start() -> (Collector, String) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let c = Collector::default();
        let bodies = c.0.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut r = BufReader::new(&stream);
                let mut len = 0usize;
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    line.clear();
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_ok() {
                    if let Ok(mut b) = bodies.lock() {
                        b.push(String::from_utf8_lossy(&body).into_owned());
                    }
                }
                let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        (c, url)
    }

    fn bodies(&self) -> Vec<String> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

async fn pipeline(table_for_function: &str, with_subscription: bool) -> Pipeline {
    pipeline_on(Moto::start(), table_for_function, with_subscription).await
}

async fn pipeline_on(moto: Moto, table_for_function: &str, with_subscription: bool) -> Pipeline {
    let cfg = moto.config("us-east-1");
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    use aws_sdk_dynamodb::types::*;
    ddb.create_table()
        .table_name("ctguard-state")
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().expect("key"))
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .send()
        .await
        .expect("create table");
    let sns = aws_sdk_sns::Client::new(&cfg);
    let topic = sns.create_topic().name("ctguard-alerts").send().await.expect("topic").topic_arn.expect("arn");
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let queue_url =
        sqs.create_queue().queue_name("alerts-observer").send().await.expect("queue").queue_url.expect("url");
    if with_subscription {
        let qarn = format!("arn:aws:sqs:us-east-1:{ACCT}:alerts-observer");
        sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(qarn).send().await.expect("subscribe");
    }
    let (https, url) = Collector::start();
    if with_subscription {
        sns.subscribe().topic_arn(&topic).protocol("https").endpoint(url).send().await.expect("subscribe https");
    }
    let emu = LambdaEmulator::start();
    let fun = run_function(
        &emu,
        &moto.endpoint(),
        ("testing", "testing", None),
        &[("CTGUARD_TABLE", table_for_function), ("CTGUARD_TOPIC_ARN", &topic), ("CTGUARD_VERSION", "e2e")],
    );
    Pipeline { moto, emu, _fun: fun, queue_url, https }
}

fn envelope(ip: &str, time: &str, id: &str) -> Value {
    json!({
        "version": "0", "id": format!("env-{id}"), "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts", "account": ACCT, "time": time, "region": "eu-west-1", "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventID": id, "eventTime": time, "eventType": "AwsApiCall",
            "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity", "awsRegion": "eu-west-1",
            "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0", "recipientAccountId": ACCT, "readOnly": true,
            "userIdentity": { "type": "AssumedRole", "accessKeyId": KEY, "accountId": ACCT,
                "arn": format!("arn:aws:sts::{ACCT}:assumed-role/app/worker"),
                "sessionContext": { "sessionIssuer": { "type": "Role", "arn": format!("arn:aws:iam::{ACCT}:role/app") },
                    "attributes": { "creationDate": "2024-05-01T09:00:00Z" } } }
        }
    })
}

/// Invokes the function; returns (function error, response body). Real Lambda answers a failed
/// invocation with HTTP 200 and `X-Amz-Function-Error`; cargo-lambda's emulator answers HTTP 500
/// with the same `{errorType, errorMessage}` body. Both are read as a function error here.
async fn invoke(p: &Pipeline, payload: &Value) -> (Option<String>, Value) {
    let lambda_cfg = sdk_config(&p.emu.endpoint(), "us-east-1", "testing", "testing", None);
    let res = aws_sdk_lambda::Client::new(&lambda_cfg)
        .invoke()
        .function_name(FUNCTION_NAME)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await;
    let out = match res {
        Ok(out) => out,
        Err(e) => {
            let raw = e.raw_response().map(|r| (r.status().as_u16(), r.body().bytes().map(<[u8]>::to_vec)));
            match raw {
                Some((500, Some(body))) => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    return (Some("Unhandled (emulator: HTTP 500)".into()), v);
                }
                _ => panic!("Invoke API call failed: {e:?}"),
            }
        }
    };
    let body: Value =
        out.payload.as_ref().map(|b| serde_json::from_slice(b.as_ref()).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    (out.function_error, body)
}

async fn alerts(p: &Pipeline, wait: Duration) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&p.moto.config("us-east-1"));
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&p.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            got.push(serde_json::from_str::<Value>(m.body().unwrap_or("null")).expect("SNS envelope JSON"));
        }
        if Instant::now() > deadline {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_bootstrap_raises_one_alert_on_reuse_and_none_otherwise() {
    let p = pipeline("ctguard-state", true).await;
    // First use, then the same key from another address, then a batch mixing redeliveries,
    // a malformed event and an event of another type: exactly one alert must come out.
    let (err, body) = invoke(&p, &envelope("203.0.113.10", "2024-05-01T10:00:00Z", "e1")).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["events"], 1);
    let (err, body) = invoke(&p, &envelope("198.51.100.66", "2024-05-01T10:03:00Z", "e2")).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["alerts"], 1, "{body}");
    let batch = json!([
        envelope("198.51.100.66", "2024-05-01T10:03:00Z", "e2"),
        envelope("203.0.113.10", "2024-05-01T10:04:00Z", "e3"),
        {"not": "an event"},
        {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}},
    ]);
    let (err, body) = invoke(&p, &batch).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["events"], 4);
    assert_eq!(body["alerts"], 0, "redelivery must not alert again: {body}");
    assert_eq!(body["skipped"], 2, "{body}");

    let msgs = alerts(&p, Duration::from_secs(3)).await;
    assert_eq!(msgs.len(), 1, "exactly one alert: {msgs:#?}");
    let env = &msgs[0];
    let subject = env["Subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("[ctguard] ") && subject.contains(KEY) && subject.contains("198.51.100.66"),
        "{subject}"
    );
    assert_eq!(env["MessageAttributes"]["severity"]["Value"], "HIGH");
    assert_eq!(env["MessageAttributes"]["synthetic"]["Value"], "false");
    let id = ctguard_detector::alert_id(KEY, "ip:198.51.100.66");
    assert_eq!(env["MessageAttributes"]["alert_id"]["Value"], id.as_str(), "the stable id, for subscribers' dedup");
    let alert: Value = serde_json::from_str(env["Message"].as_str().expect("message")).expect("alert JSON");
    assert_eq!(alert["schema"], "ctguard.alert/v1");
    assert_eq!(alert["id"], id.as_str());
    assert_eq!(alert["access_key_id"], KEY);
    assert_eq!(alert["seen_identity"], "ip:198.51.100.66");
    assert_eq!(alert["expected"][0]["identity"], "ip:203.0.113.10");
    assert_eq!(alert["offending"]["event_id"], "e2");
    assert_eq!(alert["account"], ACCT);
    assert_eq!(alert["detector_version"], "e2e");
    assert!(!env["Message"].as_str().unwrap_or("").to_lowercase().contains("sessiontoken"));

    // The HTTPS subscriber (AWS Chatbot) got the custom-notification form of the same alert.
    let posted = p.https.bodies();
    assert_eq!(posted.len(), 1, "one HTTPS delivery: {posted:?}");
    let outer: Value = serde_json::from_str(&posted[0]).expect("SNS HTTP envelope");
    let chat: Value = serde_json::from_str(outer["Message"].as_str().expect("message")).expect("Chatbot JSON");
    assert_eq!((chat["version"].as_str(), chat["source"].as_str()), (Some("1.0"), Some("custom")), "{chat}");
    assert_eq!(chat["metadata"]["threadId"], id.as_str());
    assert!(chat["content"]["title"].as_str().unwrap_or("").contains(KEY), "{chat}");
    let steps = chat["content"]["nextSteps"].to_string();
    assert!(
        steps.contains(&format!("ctguard contain --access-key {KEY} --account {ACCT} --role app --session worker")),
        "{steps}"
    );

    // The state: first identity recorded with a TTL (the credential's life), alert claim sent.
    let ddb = aws_sdk_dynamodb::Client::new(&p.moto.config("us-east-1"));
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = ddb
        .get_item()
        .table_name("ctguard-state")
        .key("pk", AttributeValue::S(format!("K#{KEY}")))
        .send()
        .await
        .expect("get")
        .item
        .expect("the key's state item exists");
    assert_eq!(item.get("anchor").and_then(|v| v.as_s().ok()).map(String::as_str), Some("ip:203.0.113.10"));
    let keys = item.get("anchor_keys").and_then(|v| v.as_ss().ok()).expect("anchor keys");
    assert_eq!(keys, &vec![KEY.to_string()]);
    let ttl: i64 = item.get("ttl").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).expect("ttl");
    // creationDate 09:00Z + 12 h = 2024-05-01T21:00:00Z.
    assert_eq!(ttl, 1_714_597_200 + 1);
    let claim = ddb
        .get_item()
        .table_name("ctguard-state")
        .key("pk", AttributeValue::S(format!("A#{KEY}#ip:198.51.100.66")))
        .send()
        .await
        .expect("get")
        .item
        .expect("alert claim");
    assert_eq!(claim.get("sent").and_then(|v| v.as_bool().ok()), Some(&true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_failure_fails_the_invocation_so_lambda_keeps_the_event() {
    let p = pipeline("no-such-table", true).await;
    let (err, body) = invoke(&p, &envelope("203.0.113.10", "2024-05-01T10:00:00Z", "e1")).await;
    assert!(err.is_some(), "the invocation must fail, not acknowledge: {body}");
    assert_eq!(body["errorType"], "StateStoreRejected", "{body}");
    assert!(body["errorMessage"].as_str().unwrap_or("").contains("ResourceNotFound"), "{body}");
    assert!(alerts(&p, Duration::from_secs(1)).await.is_empty());
}

#[test]
fn shipped_bootstrap_needs_at_most_glibc_2_34() {
    let bin = shipped_bootstrap();
    let out = std::process::Command::new("readelf").arg("-V").arg(&bin).output().expect("readelf (binutils)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<(u32, u32)> = text
        .split("GLIBC_")
        .skip(1)
        .filter_map(|s| {
            let v: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut it = v.split('.').map(|x| x.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect();
    versions.sort();
    let max = versions.last().copied().expect("the bootstrap links glibc symbols");
    assert!(max <= (2, 34), "bootstrap needs GLIBC_{}.{}; provided.al2023 has 2.34", max.0, max.1);
}

#[test]
fn package_writes_a_zip_with_bootstrap_at_its_root() {
    let dir = std::env::temp_dir().join(format!("ctguard-pkg-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let zip = dir.join("out.zip");
    let out = ctguard(None).args(["package", "--out"]).arg(&zip).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list =
        std::process::Command::new(venv_tool("python")).args(["-m", "zipfile", "-l"]).arg(&zip).output().expect("list");
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(names.lines().any(|l| l.split_whitespace().next() == Some("bootstrap")), "{names}");
    let size = std::fs::metadata(&zip).expect("zip").len();
    assert!(size > 1_000_000, "suspiciously small zip: {size} bytes");
    // A destination that is not a regular file is written through, never replaced (renaming
    // over it would, as root, replace a device such as /dev/null): a directory is refused and
    // stays a directory.
    let out = ctguard(None).args(["package", "--out"]).arg(&dir).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(dir.is_dir());
    // Bad input: an unwritable destination is a clear error, exit 2.
    let out = ctguard(None).args(["package", "--out", "/nonexistent-dir/x.zip"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_uses_through_dynamodb_store_one_identity_and_raise_one_alert() {
    // Two function processes (two Lambda execution environments with cold caches) take
    // invocations from the same emulator; 24 simultaneous first uses of one key, half from each
    // of two addresses. The conditional write must let exactly one identity win, and the alert
    // claim must let exactly one alert out. (moto's conditional writes are atomic only when it
    // serves one request at a time — see `Moto::start_serialized`.)
    let p = pipeline_on(Moto::start_serialized(), "ctguard-state", true).await;
    let topic = format!("arn:aws:sns:us-east-1:{ACCT}:ctguard-alerts");
    let _second = run_function(
        &p.emu,
        &p.moto.endpoint(),
        ("testing", "testing", None),
        &[("CTGUARD_TABLE", "ctguard-state"), ("CTGUARD_TOPIC_ARN", &topic), ("CTGUARD_VERSION", "e2e")],
    );
    let p = std::sync::Arc::new(p);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let p = std::sync::Arc::clone(&p);
        let ip = if i % 2 == 0 { "203.0.113.10" } else { "198.51.100.66" };
        let ev = envelope(ip, "2024-05-01T10:00:00Z", &format!("c{i}"));
        tasks.push(tokio::spawn(async move { invoke(&p, &ev).await }));
    }
    for t in tasks {
        let (err, body) = t.await.expect("join");
        assert_eq!(err, None, "{body}");
    }
    let ddb = aws_sdk_dynamodb::Client::new(&p.moto.config("us-east-1"));
    let item = ddb
        .get_item()
        .table_name("ctguard-state")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("K#{KEY}")))
        .send()
        .await
        .expect("get")
        .item
        .expect("state item");
    // Both addresses were first used in the same second: the tie goes to the smaller identity,
    // whichever conditional write won the race, so every environment agrees on one anchor.
    let anchor = item.get("anchor").and_then(|v| v.as_s().ok()).cloned().expect("anchor");
    assert_eq!(anchor, "ip:198.51.100.66", "{item:?}");
    let msgs = alerts(&p, Duration::from_secs(3)).await;
    let seen: Vec<String> = msgs
        .iter()
        .map(|m| serde_json::from_str::<Value>(m["Message"].as_str().unwrap_or("{}")).unwrap_or(Value::Null))
        .map(|a| a["seen_identity"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(msgs.len(), 1, "exactly one alert, got alerts for {seen:?}");
    let alert: Value = serde_json::from_str(msgs[0]["Message"].as_str().unwrap_or("{}")).expect("alert");
    assert_eq!(alert["seen_identity"], "ip:203.0.113.10", "the alert names the other address");
}

// ---------------------------------------------------------------------------------------------
// Integrity end to end (issue 8): forged signals, and alerts whose first publish failed.

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ctguard-alerts";
const INSTANCE: &str = "i-0123456789abcdef0";

/// An EventBridge envelope of `detail` from `source`.
fn wrap(source: &str, detail: Value) -> Value {
    json!({"version": "0", "id": format!("env-{}", detail["eventID"].as_str().unwrap_or("x")),
           "detail-type": "AWS API Call via CloudTrail", "source": source, "account": ACCT,
           "time": detail["eventTime"].clone(), "region": "us-east-1", "resources": [], "detail": detail})
}

/// A call by the instance's role session (the instance scope).
fn instance_use(ip: &str, time: &str, id: &str) -> Value {
    let mut e = envelope(ip, time, id);
    e["detail"]["userIdentity"]["arn"] = json!(format!("arn:aws:sts::{ACCT}:assumed-role/app/{INSTANCE}"));
    e["detail"]["userIdentity"]["sessionContext"]["ec2RoleDelivery"] = json!("2.0");
    e["detail"]["awsRegion"] = json!("us-east-1");
    e
}

/// Every record kind that carries a signal for the instance, as CloudTrail writes it.
fn signals(time: &str) -> Vec<(&'static str, Value)> {
    let base = |name: &str, source: &str, request: Value, response: Value| {
        json!({"eventVersion": "1.08", "eventID": format!("sig-{name}"), "eventTime": time, "eventType": "AwsApiCall",
               "eventSource": source, "eventName": name, "awsRegion": "us-east-1", "recipientAccountId": ACCT,
               "sourceIPAddress": "ec2.amazonaws.com", "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
               "requestParameters": request, "responseElements": response})
    };
    vec![
        (
            "rotation",
            base(
                "AssumeRole",
                "sts.amazonaws.com",
                json!({"roleArn": format!("arn:aws:iam::{ACCT}:role/app"), "roleSessionName": INSTANCE}),
                json!({"credentials": {"accessKeyId": "ASIAQWERTYQWERTYQWE2", "expiration": "May 1, 2024 6:00:00 PM"}}),
            ),
        ),
        (
            "AssociateAddress",
            base("AssociateAddress", "ec2.amazonaws.com", json!({"instanceId": INSTANCE}), json!({"return": true})),
        ),
        (
            "AttachNetworkInterface",
            base(
                "AttachNetworkInterface",
                "ec2.amazonaws.com",
                json!({"instanceId": INSTANCE, "networkInterfaceId": "eni-1"}),
                json!({"return": true}),
            ),
        ),
        (
            "StartInstances",
            base(
                "StartInstances",
                "ec2.amazonaws.com",
                json!({"instancesSet": {"items": [{"instanceId": INSTANCE}]}}),
                json!({"return": true}),
            ),
        ),
    ]
}

async fn state_item(
    p: &Pipeline,
    pk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&p.moto.config("us-east-1"))
        .get_item()
        .table_name("ctguard-state")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

/// Makes the alert topic unavailable: SNS answers the function's publish with NotFound.
async fn topic_down(p: &Pipeline) {
    aws_sdk_sns::Client::new(&p.moto.config("us-east-1"))
        .delete_topic()
        .topic_arn(TOPIC)
        .send()
        .await
        .expect("delete topic");
}

/// Restores the topic (same name, same ARN) and its subscription to the observer queue.
async fn topic_up(p: &Pipeline) {
    let sns = aws_sdk_sns::Client::new(&p.moto.config("us-east-1"));
    let arn = sns.create_topic().name("ctguard-alerts").send().await.expect("topic").topic_arn.expect("arn");
    assert_eq!(arn, TOPIC);
    let subs = sns.list_subscriptions_by_topic().topic_arn(TOPIC).send().await.expect("list subscriptions");
    if subs.subscriptions().is_empty() {
        let qarn = format!("arn:aws:sqs:us-east-1:{ACCT}:alerts-observer");
        sns.subscribe().topic_arn(TOPIC).protocol("sqs").endpoint(qarn).send().await.expect("subscribe");
    }
}

fn alert_body(env: &Value) -> Value {
    serde_json::from_str(env["Message"].as_str().expect("message")).expect("alert JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_signals_through_the_shipped_bootstrap_change_no_real_state() {
    let p = pipeline("ctguard-state", true).await;
    let scope = format!("I#{ACCT}#{INSTANCE}");
    let (err, body) = invoke(&p, &instance_use("203.0.113.10", "2024-05-01T10:00:00Z", "e1")).await;
    assert_eq!(err, None, "{body}");
    let before = state_item(&p, &scope).await.expect("the instance's scope is anchored");
    // Every signal kind, under sources anyone allowed PutEvents can use (and verify's).
    let mut forged = 0;
    for (kind, detail) in signals("2024-05-01T10:09:00Z") {
        for source in ["custom.app", "ctguard.verify"] {
            let (err, body) = invoke(&p, &wrap(source, detail.clone())).await;
            assert_eq!(err, None, "{kind} from {source}: {body}");
            forged += 1;
            assert_eq!(body["totals"]["untrusted_signals"], forged, "{kind} from {source}: {body}");
        }
    }
    assert_eq!(state_item(&p, &scope).await.as_ref(), Some(&before), "forged signals changed the instance's state");
    let rotated = state_item(&p, "K#ASIAQWERTYQWERTYQWE2").await;
    assert!(rotated.is_none(), "a forged rotation created state: {rotated:?}");
    // The thief's call 60 s after the forged moves is still caught.
    let (err, body) = invoke(&p, &instance_use("198.51.100.66", "2024-05-01T10:10:00Z", "thief")).await;
    assert_eq!(err, None, "{body}");
    assert_eq!(body["alerts"], 1, "{body}");
    // Control: a genuine move (aws.ec2) does change the state, so the check above can fail.
    let (_, genuine) = signals("2024-05-01T10:20:00Z").into_iter().nth(1).expect("AssociateAddress");
    let (err, body) = invoke(&p, &wrap("aws.ec2", genuine)).await;
    assert_eq!(err, None, "{body}");
    let after = state_item(&p, &scope).await.expect("state");
    assert!(after.keys().any(|k| k.starts_with("arm#")), "a genuine move arms the instance: {after:?}");
    let msgs = alerts(&p, Duration::from_secs(2)).await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(alert_body(&msgs[0])["seen_identity"], "ip:198.51.100.66");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reuse_whose_publish_failed_is_delivered_once_by_the_retry() {
    let p = pipeline("ctguard-state", true).await;
    let (err, body) = invoke(&p, &envelope("203.0.113.10", "2024-05-01T10:00:00Z", "e1")).await;
    assert_eq!(err, None, "{body}");
    topic_down(&p).await;
    let reuse = envelope("198.51.100.66", "2024-05-01T10:03:00Z", "e2");
    let (err, body) = invoke(&p, &reuse).await;
    assert!(err.is_some(), "the invocation must fail while the topic is gone: {body}");
    assert_eq!(body["errorType"], "AlertSinkRejected", "{body}");
    topic_up(&p).await;
    // Lambda's retry of the same event, then a redelivery of it (EventBridge is at least once).
    for attempt in ["retry", "redelivery"] {
        let (err, body) = invoke(&p, &reuse).await;
        assert_eq!(err, None, "{attempt}: {body}");
    }
    let msgs = alerts(&p, Duration::from_secs(3)).await;
    assert_eq!(msgs.len(), 1, "exactly one alert: {msgs:#?}");
    assert_eq!(
        msgs[0]["MessageAttributes"]["alert_id"]["Value"],
        ctguard_detector::alert_id(KEY, "ip:198.51.100.66").as_str()
    );
    let claim = state_item(&p, &format!("A#{KEY}#ip:198.51.100.66")).await.expect("alert claim");
    assert_eq!(claim.get("sent").and_then(|v| v.as_bool().ok()), Some(&true));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_order_reuse_whose_publish_failed_is_delivered_once_by_the_retry() {
    let p = pipeline("ctguard-state", true).await;
    // The thief's call (10:05) arrives first and is taken for the first use...
    let (err, body) = invoke(&p, &envelope("198.51.100.66", "2024-05-01T10:05:00Z", "thief")).await;
    assert_eq!(err, None, "{body}");
    // ...then the legitimate first use (10:00) arrives while the topic is unavailable.
    topic_down(&p).await;
    let legit = envelope("203.0.113.10", "2024-05-01T10:00:00Z", "legit");
    let (err, body) = invoke(&p, &legit).await;
    assert!(err.is_some(), "the invocation must fail while the topic is gone: {body}");
    // Nothing that would let the retry skip the alert was written: the thief is still the anchor.
    let item = state_item(&p, &format!("K#{KEY}")).await.expect("state");
    assert_eq!(item.get("anchor").and_then(|v| v.as_s().ok()).map(String::as_str), Some("ip:198.51.100.66"));
    topic_up(&p).await;
    let (err, body) = invoke(&p, &legit).await;
    assert_eq!(err, None, "retry: {body}");
    // Redeliveries of both events change nothing.
    for e in [&legit, &envelope("198.51.100.66", "2024-05-01T10:05:00Z", "thief")] {
        let (err, body) = invoke(&p, e).await;
        assert_eq!(err, None, "{body}");
        assert_eq!(body["alerts"], 0, "{body}");
    }
    let msgs = alerts(&p, Duration::from_secs(3)).await;
    assert_eq!(msgs.len(), 1, "exactly one alert: {msgs:#?}");
    let a = alert_body(&msgs[0]);
    assert_eq!(a["seen_identity"], "ip:198.51.100.66");
    assert_eq!(a["out_of_order"], true);
    assert_eq!(a["expected"][0]["identity"], "ip:203.0.113.10");
    let item = state_item(&p, &format!("K#{KEY}")).await.expect("state");
    assert_eq!(item.get("anchor").and_then(|v| v.as_s().ok()).map(String::as_str), Some("ip:203.0.113.10"));
}
