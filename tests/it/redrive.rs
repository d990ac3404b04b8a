//! `ctguard redrive` end to end: a dead-letter queue holding both shapes it can hold (raw
//! EventBridge events, as the rule's DLQ keeps them, and Lambda on-failure records, as the
//! function's on-failure destination writes them) plus a message that is neither, replayed
//! through the deployed function (the shipped bootstrap, run by the project's emulator).

use std::time::Duration;

use ctguard_tests::*;
use serde_json::{json, Value};

const FLAWS: &str = "653711331788";

/// flaws2's records as the events CloudTrail puts on the bus (`aws.<service>` sources).
fn flaws2_events() -> Vec<Value> {
    let dir = shared_data().join("flaws2-cloudtrail");
    let mut records = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".json.gz") {
                let f = std::fs::File::open(&p).expect("open");
                let v: Value = serde_json::from_reader(flate2::read::GzDecoder::new(f)).expect("gzip JSON");
                records.extend(v["Records"].as_array().cloned().unwrap_or_default());
            }
        }
    }
    records.sort_by(|a, b| a["eventTime"].as_str().cmp(&b["eventTime"].as_str()));
    records
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            let service = r["eventSource"].as_str().unwrap_or("").trim_end_matches(".amazonaws.com").to_string();
            json!({"version": "0", "id": format!("00000000-0000-0000-0000-{n:012}"),
                "detail-type": "AWS API Call via CloudTrail", "source": format!("aws.{service}"),
                "account": FLAWS, "time": r["eventTime"], "region": "us-east-1", "resources": [], "detail": r})
        })
        .collect()
}

/// What the function's on-failure destination writes after Lambda's retries.
fn on_failure_record(event: &Value) -> Value {
    json!({"version": "1.0", "timestamp": "2026-12-01T10:00:00.000Z",
        "requestContext": {"requestId": "2c1e5c4e-0000-4000-8000-000000000000",
            "functionArn": format!("arn:aws:lambda:us-east-1:{FLAWS}:function:{FUNCTION_NAME}:$LATEST"),
            "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "StoreUnavailable", "errorMessage": "DynamoDB was unreachable"}})
}

async fn queue_depths(cfg: &aws_config::SdkConfig, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = aws_sdk_sqs::Client::new(cfg)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let get = |k: &A| out.attributes().and_then(|a| a.get(k)).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (get(&A::ApproximateNumberOfMessages), get(&A::ApproximateNumberOfMessagesNotVisible))
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_replays_both_dead_letter_shapes_and_leaves_only_what_it_cannot_replay() {
    let emu = Emulator::start();
    let creds = account_credentials(&emu.endpoint, FLAWS).await;
    let cfg = sdk_config(&emu.endpoint, "us-east-1", &creds.0, &creds.1, Some(&creds.2));
    logging_trail(&cfg).await;
    install_ctguard(&emu.endpoint, Some(&creds), &["us-east-1"]);
    let alerts = subscribe_queue(&cfg, &format!("arn:aws:sns:us-east-1:{FLAWS}:ctguard-alerts"), "soc").await;
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let dlq = sqs.get_queue_url().queue_name("ctguard-detector-dlq").send().await.expect("the DLQ").queue_url;
    let dlq = dlq.expect("DLQ URL");
    // Every event failed once: the even ones were dead-lettered by EventBridge, the odd ones
    // by Lambda after its retries. One more message is not ctguard's at all. (In AWS the queue
    // policy denies SendMessage to anyone but the rule and the detector's role; moto does not
    // evaluate queue policies, so the test writes as EventBridge and Lambda would.)
    let events = flaws2_events();
    assert_eq!(events.len(), 37);
    for (n, e) in events.iter().enumerate() {
        let body = if n % 2 == 0 { e.to_string() } else { on_failure_record(e).to_string() };
        sqs.send_message().queue_url(&dlq).message_body(body).send().await.expect("send to the DLQ");
    }
    sqs.send_message().queue_url(&dlq).message_body("{\"hello\": \"not an event\"}").send().await.expect("send");
    assert_eq!(queue_depths(&cfg, &dlq).await, (38, 0));

    let run = |plan: bool| {
        let mut c = ctguard(Some(&emu.endpoint));
        c.env("AWS_ACCESS_KEY_ID", &creds.0)
            .env("AWS_SECRET_ACCESS_KEY", &creds.1)
            .env("AWS_SESSION_TOKEN", &creds.2)
            .args(["--json", "redrive", "--regions", "us-east-1"]);
        if plan {
            c.arg("--plan");
        }
        let out = c.output().expect("run redrive");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let reports: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        // One target's report is printed as one object.
        let reports = if reports.is_array() { reports } else { json!([reports]) };
        (out.status.code(), reports, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    // --plan counts and touches nothing.
    let (code, plan, err) = run(true);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!((plan[0]["depth"].as_u64(), plan[0]["in_flight"].as_u64()), (Some(38), Some(0)), "{plan}");
    assert_eq!(plan[0]["received"], 0);
    assert_eq!(queue_depths(&cfg, &dlq).await, (38, 0));

    let (code, done, err) = run(false);
    assert_eq!(code, Some(3), "one message could not be replayed: partial\n{done}\n{err}\n{}", emu.log());
    let r = &done[0];
    assert_eq!((r["received"].as_u64(), r["redriven"].as_u64()), (Some(38), Some(37)), "{r}");
    assert_eq!(r["failed"], json!([]), "{r}");
    assert_eq!(r["remaining"], 1, "{r}");
    let why = r["unrecognized"].as_array().cloned().unwrap_or_default();
    assert_eq!(why.len(), 1, "{r}");
    assert!(why[0].as_str().unwrap_or("").contains("neither an EventBridge event nor a Lambda on-failure record"));
    // Only the stranger is left, invisible for the receive's visibility timeout.
    assert_eq!(queue_depths(&cfg, &dlq).await, (0, 1));

    // The replay raised what the live path would have: flaws2's one alert, once.
    let got: Vec<Value> = receive_all(&cfg, &alerts, Duration::from_secs(3)).await.iter().map(alert_of).collect();
    assert_eq!(got.len(), 1, "{got:#?}\n{}", emu.log());
    assert_eq!(got[0]["access_key_id"], "ASIAZQNB3KHGIGYQXVVG");
    assert_eq!(got[0]["seen_identity"], "ip:104.102.221.250");

    // A second redrive has nothing to replay (the stranger is in flight), raises nothing, and
    // does not call the queue empty.
    let (code, again, err) = run(false);
    assert_eq!(code, Some(3), "{again}\n{err}");
    assert_eq!((again[0]["received"].as_u64(), again[0]["in_flight"].as_u64()), (Some(0), Some(1)), "{again}");
    assert_eq!(again[0]["remaining"], 1, "{again}");
    assert!(receive_all(&cfg, &alerts, Duration::from_secs(2)).await.is_empty());
}
