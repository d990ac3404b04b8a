//! `ctguard status` reads CloudWatch in every deployed target: the last 24 h's invocations,
//! errors, throttles and DLQ depth, and the three alarms (`ctguard-detector-dlq`,
//! `ctguard-detector-side-effects`,
//! `ctguard-detector-errors`); `--cost` prices the last 30 days.
//!
//! What the emulator cannot do, said plainly: moto publishes no metrics for Lambda, SQS,
//! DynamoDB, SNS or CloudWatch Logs, so the test puts the data points those services would
//! publish with `PutMetricData` in their `AWS/…` namespaces (AWS itself refuses `PutMetricData`
//! into an `AWS/` namespace; moto accepts it, which is what lets the test stand in for the
//! services). The alarms are deleted first and then put by the test as the regional stack
//! defines them, so the test holds whether or not the installed template creates them, and
//! their states are set with `SetAlarmState` (moto does not evaluate alarms).

use std::process::Output;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic};
use ctguard_tests::*;
use serde_json::Value;

const ACCT: &str = "210987654321";
const DLQ_ALARM: &str = "ctguard-detector-dlq";
const ERRORS_ALARM: &str = "ctguard-detector-errors";
const SIDE_EFFECTS_ALARM: &str = "ctguard-detector-side-effects";

fn ago(secs: u64) -> DateTime {
    DateTime::from(SystemTime::now() - Duration::from_secs(secs))
}

/// One data point of `namespace`/`name` for the resource `dim`, `secs` ago.
async fn put(cw: &aws_sdk_cloudwatch::Client, namespace: &str, name: &str, dim: (&str, &str), value: f64, secs: u64) {
    cw.put_metric_data()
        .namespace(namespace)
        .metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(Dimension::builder().name(dim.0).value(dim.1).build())
                .value(value)
                .timestamp(ago(secs))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {namespace} {name}: {e:?}"));
}

/// The three alarms as the regional stack defines them (threshold: anything above zero).
async fn put_alarms(cw: &aws_sdk_cloudwatch::Client) {
    for (name, namespace, metric, dim, stat) in [
        (
            DLQ_ALARM,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            ("QueueName", "ctguard-detector-dlq"),
            Statistic::Maximum,
        ),
        (ERRORS_ALARM, "AWS/Lambda", "Errors", ("FunctionName", FUNCTION_NAME), Statistic::Sum),
        (SIDE_EFFECTS_ALARM, "ctguard", "AlertSideEffectFailures", ("FunctionName", FUNCTION_NAME), Statistic::Sum),
    ] {
        cw.put_metric_alarm()
            .alarm_name(name)
            .namespace(namespace)
            .metric_name(metric)
            .dimensions(Dimension::builder().name(dim.0).value(dim.1).build())
            .statistic(stat)
            .period(300)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("put alarm");
    }
}

async fn set_state(cw: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue) {
    cw.set_alarm_state().alarm_name(name).state_value(state).state_reason("test").send().await.expect("set state");
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reads_metrics_and_alarms_and_prices_the_last_30_days() {
    let emu = Emulator::start();
    let creds = account_credentials(&emu.endpoint, ACCT).await;
    let cfg = sdk_config(&emu.endpoint, "us-east-1", &creds.0, &creds.1, Some(&creds.2));
    logging_trail(&cfg).await;
    install_ctguard(&emu.endpoint, Some(&creds), &["us-east-1"]);
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    cw.delete_alarms()
        .alarm_names(DLQ_ALARM)
        .alarm_names(ERRORS_ALARM)
        .alarm_names(SIDE_EFFECTS_ALARM)
        .send()
        .await
        .expect("delete alarms");

    let run = |extra: &[&str]| -> (Option<i32>, Value, Value, Output) {
        let out = ctguard(Some(&emu.endpoint))
            .env("AWS_ACCESS_KEY_ID", &creds.0)
            .env("AWS_SECRET_ACCESS_KEY", &creds.1)
            .env("AWS_SESSION_TOKEN", &creds.2)
            .args([&["--json", "status", "--regions", "us-east-1"][..], extra].concat())
            .output()
            .expect("run status");
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", output_text(&out))))
            .collect();
        let target = lines.iter().find(|l| l["type"] == "target").cloned().unwrap_or_default();
        let summary = lines.iter().find(|l| l["type"] == "summary").cloned().unwrap_or_default();
        (out.status.code(), target, summary, out)
    };
    // A target's problems or warnings, one per line.
    let lines = |t: &Value, key: &str| {
        t[key].as_array().into_iter().flatten().map(|p| p.as_str().unwrap_or("")).collect::<Vec<_>>().join("\n")
    };
    let problems = |t: &Value| lines(t, "problems");
    let warnings = |t: &Value| lines(t, "warnings");

    // No alarm: a deployed target without them is unhealthy, each named, with the fix.
    let (code, t, _, out) = run(&[]);
    assert_eq!(code, Some(1), "{}", output_text(&out));
    let p = problems(&t);
    for a in [DLQ_ALARM, ERRORS_ALARM, SIDE_EFFECTS_ALARM] {
        assert!(p.contains(&format!("alarm {a} is missing")), "{p}");
    }
    assert_eq!(t["metrics"]["alarms"][DLQ_ALARM], "MISSING", "{t}");
    assert_eq!(t["metrics"]["invocations"], Value::Null, "no data point yet: {t}");

    // The alarms as the stack makes them, quiet; what the services would have published.
    put_alarms(&cw).await;
    set_state(&cw, DLQ_ALARM, StateValue::Ok).await;
    set_state(&cw, ERRORS_ALARM, StateValue::Ok).await;
    set_state(&cw, SIDE_EFFECTS_ALARM, StateValue::Ok).await;
    let lambda = ("FunctionName", FUNCTION_NAME);
    let hour = 3600;
    let day = 24 * hour;
    put(&cw, "AWS/Lambda", "Invocations", lambda, 400.0, hour).await;
    put(&cw, "AWS/Lambda", "Invocations", lambda, 600.0, 3 * day).await;
    put(&cw, "AWS/Lambda", "Duration", lambda, 4_000.0, hour).await;
    put(&cw, "AWS/Lambda", "Duration", lambda, 6_000.0, 3 * day).await;
    put(&cw, "AWS/Lambda", "Errors", lambda, 0.0, hour).await;
    put(&cw, "AWS/Lambda", "Throttles", lambda, 2.0, hour).await;
    put(&cw, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", "ctguard-detector-dlq"), 0.0, hour).await;
    put(&cw, "AWS/Logs", "IncomingBytes", ("LogGroupName", "/aws/lambda/ctguard-detector"), 1_048_576.0, 2 * day).await;
    put(&cw, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", ("TableName", "ctguard-state"), 120.0, 2 * day).await;
    put(&cw, "AWS/DynamoDB", "ConsumedReadCapacityUnits", ("TableName", "ctguard-state"), 40.0, 2 * day).await;
    put(&cw, "AWS/SNS", "NumberOfMessagesPublished", ("TopicName", "ctguard-alerts"), 2.0, 2 * day).await;
    // Older than 30 days: in neither window.
    put(&cw, "AWS/Lambda", "Invocations", lambda, 1e6, 40 * day).await;

    let (code, t, summary, out) = run(&[]);
    assert_eq!(code, Some(0), "{}", output_text(&out));
    let m = &t["metrics"];
    assert_eq!(
        (m["invocations"].as_u64(), m["errors"].as_u64(), m["throttles"].as_u64()),
        (Some(400), Some(0), Some(2)),
        "{t}"
    );
    assert_eq!(m["dlq_depth_max"], 0, "{t}");
    assert_eq!((m["alarms"][DLQ_ALARM].as_str(), m["alarms"][ERRORS_ALARM].as_str()), (Some("OK"), Some("OK")), "{t}");
    assert!(warnings(&t).contains("2 throttled invocations in the last 24 h"), "{t}");
    assert!(t.get("cost").is_none() && summary.get("cost").is_none(), "no cost without --cost: {summary}");

    // --cost: 30 days of the same data, priced. By hand: 1,000 requests × $0.20/1M; 10 s ×
    // 0.25 GB × $0.0000166667; 1 MiB of logs × $0.50/GB; 120 WRU × $0.625/1M; 40 RRU ×
    // $0.125/1M; 2 publishes × $0.50/1M.
    let (code, t, summary, out) = run(&["--cost"]);
    assert_eq!(code, Some(0), "{}", output_text(&out));
    let c = &t["cost"];
    let u = &c["usage"];
    assert_eq!((u["invocations"].as_f64(), u["duration_ms"].as_f64()), (Some(1000.0), Some(10_000.0)), "{c}");
    assert_eq!((u["dynamodb_write_units"].as_f64(), u["sns_publishes"].as_f64()), (Some(120.0), Some(2.0)), "{c}");
    let want = 1000.0 * 0.20 / 1e6
        + 10.0 * 0.25 * 0.000_016_666_7
        + 0.50 / 1024.0
        + 120.0 * 0.625 / 1e6
        + 40.0 * 0.125 / 1e6
        + 2.0 * 0.50 / 1e6;
    let total = c["total_usd"].as_f64().unwrap_or(0.0);
    assert!(close(total, want), "{total} vs {want}: {c}");
    // The target's own figure: its Lambda and logs per million of its events; the account-wide
    // items (table, topic) enter the total's.
    let own = 1000.0 * 0.20 / 1e6 + 10.0 * 0.25 * 0.000_016_666_7 + 0.50 / 1024.0;
    assert!(close(c["per_million_events_usd"].as_f64().unwrap_or(0.0), own * 1000.0), "{c}");
    assert!(close(summary["cost"]["per_million_events_usd"].as_f64().unwrap_or(0.0), want * 1000.0), "{summary}");
    let eb = c["lines"].as_array().cloned().unwrap_or_default();
    assert!(eb.iter().any(|l| l["item"].as_str().unwrap_or("").contains("free") && l["usd"] == 0.0), "{c}");
    let s = &summary["cost"];
    assert!(close(s["total_usd"].as_f64().unwrap_or(0.0), want), "{summary}");
    assert_eq!((s["prices"]["as_of"].as_str(), s["prices"]["region"].as_str()), (Some("2026-12"), Some("us-east-1")));
    assert_eq!((s["days"].as_u64(), s["memory_mb"].as_u64()), (Some(30), Some(256)));

    // The text form: the cost table and where its prices come from.
    let out = ctguard(Some(&emu.endpoint))
        .env("AWS_ACCESS_KEY_ID", &creds.0)
        .env("AWS_SECRET_ACCESS_KEY", &creds.1)
        .env("AWS_SESSION_TOKEN", &creds.2)
        .args(["status", "--regions", "us-east-1", "--cost"])
        .output()
        .expect("run status");
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    for needle in [
        "LAST 24H",
        "inv 400 err 0 thr 2",
        "dlq=OK errors=OK",
        "PER 1M EVENTS",
        "free",
        "read 2026-12",
        "$0.81",
        "<$0.0001",
    ] {
        assert!(all.contains(needle), "{needle} missing:\n{all}");
    }

    // CSV: one table, the cost in each target's row.
    let out = ctguard(Some(&emu.endpoint))
        .env("AWS_ACCESS_KEY_ID", &creds.0)
        .env("AWS_SECRET_ACCESS_KEY", &creds.1)
        .env("AWS_SESSION_TOKEN", &creds.2)
        .args(["--output", "csv", "status", "--regions", "us-east-1", "--cost"])
        .output()
        .expect("run status");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = csv.headers().expect("header").iter().map(str::to_string).collect();
    assert_eq!(header.last().map(String::as_str), Some("PER 1M EVENTS USD"), "{header:?}");
    let rows: Vec<csv::StringRecord> = csv.records().collect::<Result<_, _>>().expect("one table, every row its shape");
    assert_eq!(rows.len(), 2, "the target and the total: {rows:?}");
    let cell = |row: usize, name: &str| {
        header.iter().position(|h| h == name).and_then(|i| rows.get(row).and_then(|r| r.get(i))).unwrap_or("")
    };
    let num = |row: usize, name: &str| cell(row, name).parse::<f64>().unwrap_or(-1.0);
    assert_eq!(cell(0, "EVENTS 30D"), "1000");
    // Own items, account-wide items, and their sum in the total row (to the 6 decimals printed).
    assert!((num(0, "COST 30D USD") - own).abs() < 1e-6, "{rows:?}");
    assert!((num(0, "ACCOUNT-WIDE 30D USD") - (want - own)).abs() < 1e-6, "{rows:?}");
    assert!((num(0, "PER 1M EVENTS USD") - own * 1000.0).abs() < 1e-6, "{rows:?}");
    assert_eq!(cell(1, "TARGET"), "total");
    assert!((num(1, "COST 30D USD") - want).abs() < 1e-6, "{rows:?}");
    assert!((num(1, "PER 1M EVENTS USD") - want * 1000.0).abs() < 1e-6, "{rows:?}");

    // Errors and a DLQ that has since been emptied; then the errors alarm fires.
    put(&cw, "AWS/Lambda", "Errors", lambda, 3.0, 1800).await;
    put(&cw, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", "ctguard-detector-dlq"), 2.0, 1800).await;
    let (code, t, _, out) = run(&[]);
    assert_eq!(code, Some(0), "errors retried away leave the target healthy: {}", output_text(&out));
    let p = problems(&t);
    assert!(!p.contains("held up to"), "the queue is empty now: a warning, not a problem: {p}");
    assert!(!p.contains("function errors"), "errors retried away (empty DLQ) are a warning: {p}");
    let w = warnings(&t);
    assert!(w.contains("held up to 2 messages in the last 24 h and is empty now"), "{t}");
    assert!(
        w.contains("3 function errors in the last 24 h, all recovered") && w.contains("/aws/lambda/ctguard-detector"),
        "{w}"
    );
    set_state(&cw, ERRORS_ALARM, StateValue::Alarm).await;
    let (code, t, _, out) = run(&[]);
    assert_eq!(code, Some(1), "{}", output_text(&out));
    assert!(problems(&t).contains("alarm ctguard-detector-errors is in ALARM: the function is failing"), "{t}");
    assert_eq!(t["metrics"]["alarms"][ERRORS_ALARM], "ALARM");
}
