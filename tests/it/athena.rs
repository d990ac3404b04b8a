//! `ctguard scan --athena` against the emulator's Athena API: the real SDK client, the query
//! runner's polling, result paging and Ctrl-C cancellation, and the replay of the returned rows.
//!
//! What the emulator can and cannot do (moto 5.2.5): it runs no SQL, so the result rows are
//! queued through its test API (`/moto-api/static/athena/query-results`), as Athena would return
//! them (column labels as the first row); executions move QUEUED → RUNNING → SUCCEEDED one poll
//! at a time when its state manager is set to `manual`; `StopQueryExecution` marks an execution
//! CANCELLED. It returns every row in one page (no `NextToken`) and cannot make a query fail:
//! paging across pages and failed queries are tested against a fake service in
//! `forensics/src/athena/query.rs`. The meaning of the SQL is checked on DuckDB by
//! `scripts/athena_sql_check.py`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctguard_tests::*;
use serde_json::{json, Value};

/// The columns of `forensics/sql/scan.sql`'s result, in order.
const COLUMNS: [&str; 29] = [
    "kind",
    "path",
    "eventtime",
    "eventid",
    "eventname",
    "eventsource",
    "eventtype",
    "awsregion",
    "sourceipaddress",
    "useragent",
    "recipientaccountid",
    "vpcendpointid",
    "vpcendpointaccountid",
    "errorcode",
    "sessioncredentialfromconsole",
    "ui_type",
    "ui_arn",
    "ui_account",
    "ui_key",
    "ui_invoked_by",
    "ui_created",
    "ui_issuer_arn",
    "ui_ec2_delivery",
    "rp_role_arn",
    "rp_session_name",
    "rp_instance_id",
    "rp_instances",
    "re_key",
    "re_expiration",
];

const KEY: &str = "ASIAQNZGKIQY56JQ7WML";

/// One `use` row of `KEY` from `ip` at `time`, as Athena returns it (NULLs as absent values).
fn use_row(ip: &str, time: &str, id: &str) -> Value {
    let v = |c: &str| -> Option<String> {
        Some(match c {
            "kind" => "use".into(),
            "path" => "s3://trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/f.json.gz".into(),
            "eventtime" => time.into(),
            "eventid" => id.into(),
            "eventname" => "ListBuckets".into(),
            "eventsource" => "s3.amazonaws.com".into(),
            "eventtype" => "AwsApiCall".into(),
            "awsregion" => "us-east-1".into(),
            "sourceipaddress" => ip.into(),
            "useragent" => "aws-cli/2.15.0".into(),
            "recipientaccountid" | "ui_account" => "111122223333".into(),
            "ui_type" => "AssumedRole".into(),
            "ui_arn" => "arn:aws:sts::111122223333:assumed-role/web/app".into(),
            "ui_key" => KEY.into(),
            "ui_issuer_arn" => "arn:aws:iam::111122223333:role/web".into(),
            _ => return None,
        })
    };
    json!({"Data": COLUMNS.iter().map(|c| match v(c) {
        Some(s) => json!({"VarCharValue": s}),
        None => json!({}),
    }).collect::<Vec<_>>()})
}

/// Queues one query result in moto and makes executions advance one state per poll.
fn queue_result(moto: &Moto, rows: Vec<Value>, advance_after_polls: u32) {
    let header = json!({"Data": COLUMNS.iter().map(|c| json!({"VarCharValue": c})).collect::<Vec<_>>()});
    let info: Vec<Value> = COLUMNS.iter().map(|c| json!({"Name": c, "Label": c, "Type": "varchar"})).collect();
    let mut all = vec![header];
    all.extend(rows);
    let body = json!({"account_id": "123456789012", "region": "us-east-1",
        "results": [{"rows": all, "column_info": info}]});
    let (status, answer) = http(&moto.endpoint(), "POST", "/moto-api/static/athena/query-results", &body.to_string());
    assert_eq!(status, 201, "queue the query result: {answer}");
    let transition = json!({"model_name": "athena::execution",
        "transition": {"progression": "manual", "times": advance_after_polls}});
    let (status, answer) =
        http(&moto.endpoint(), "POST", "/moto-api/state-manager/set-transition", &transition.to_string());
    assert_eq!(status, 201, "set the execution's transitions: {answer}");
}

/// `ctguard scan --athena` against `moto`, stdout and stderr piped.
fn scan_athena(moto: &Moto) -> Command {
    let mut c = ctguard(Some(&moto.endpoint()));
    c.args(["--json", "scan", "--athena", "ct.cloudtrail", "--results", "s3://athena-results/ctguard/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits for `child` at most `limit`; kills it and panics (with `what`) past that.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every line `child` writes on stderr, as it writes them.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The execution `id` as Athena (the emulator) reports it.
async fn execution(moto: &Moto, id: &str) -> aws_sdk_athena::types::QueryExecution {
    aws_sdk_athena::Client::new(&moto.config("us-east-1"))
        .get_query_execution()
        .query_execution_id(id)
        .send()
        .await
        .expect("GetQueryExecution")
        .query_execution
        .expect("an execution")
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_athena_polls_reads_and_replays_the_rows_through_the_detector() {
    let moto = Moto::start();
    queue_result(
        &moto,
        vec![
            use_row("198.51.100.1", "2024-05-01T10:00:00Z", "e-1"),
            use_row("203.0.113.9", "2024-05-01T10:05:00Z", "e-2"),
        ],
        1,
    );
    let mut child = scan_athena(&moto).spawn().expect("run ctguard");
    let err = stderr_lines(&mut child);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let code = wait_bounded(&mut child, Duration::from_secs(120), "scan --athena");
    let out = reader.join().expect("stdout reader");
    let err: Vec<String> = err.try_iter().collect();
    let err = err.join("\n");
    assert_eq!(code, 1, "one alert is exit 1\nstdout: {out}\nstderr: {err}\nmoto: {}", moto.log());
    // The runner followed the execution through its states, one poll at a time.
    let id = err
        .lines()
        .find_map(|l| l.strip_prefix("athena: query execution id "))
        .unwrap_or_else(|| panic!("no execution id printed: {err}"))
        .trim()
        .to_string();
    for state in ["athena: Running", "athena: Succeeded"] {
        assert!(err.contains(state), "{state} not reported: {err}");
    }
    let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let alerts: Vec<&Value> = lines.iter().filter(|v| v.get("access_key_id").is_some()).collect();
    assert_eq!(alerts.len(), 1, "{out}");
    assert_eq!(alerts[0]["access_key_id"], KEY);
    assert_eq!(alerts[0]["seen_identity"], "ip:203.0.113.9");
    assert_eq!(alerts[0]["offending"]["event_id"], "e-2");
    // The execution Athena ran is ctguard's scan query, in the database named by the table.
    let exec = execution(&moto, &id).await;
    let sql = exec.query.unwrap_or_default();
    assert!(sql.contains("FROM ct.cloudtrail") && sql.contains("row_number() OVER"), "{sql}");
    assert_eq!(exec.query_execution_context.and_then(|c| c.database), Some("ct".to_string()));
    // Athena reports where this execution's result file went: under the location given.
    let out = exec.result_configuration.and_then(|r| r.output_location).unwrap_or_default();
    assert!(out.starts_with("s3://athena-results/ctguard/"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_query_in_athena() {
    let moto = Moto::start();
    // The execution stays queued for far longer than the test: only a stop can end it.
    queue_result(&moto, vec![use_row("198.51.100.1", "2024-05-01T10:00:00Z", "e-1")], 100_000);
    let mut child = scan_athena(&moto).spawn().expect("run ctguard");
    let err = stderr_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let id = loop {
        let line = err
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no execution id within 60 s: {seen:?}"));
        if let Some(id) = line.strip_prefix("athena: query execution id ") {
            break id.trim().to_string();
        }
        seen.push(line);
    };
    // Press Ctrl-C once the runner reported the query's first state (it is polling).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = err
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no state reported within 60 s: {seen:?}"));
        let polled = line.starts_with("athena: Queued");
        seen.push(line);
        if polled {
            break;
        }
    }
    let sigint = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    assert!(sigint.success());
    let code = wait_bounded(&mut child, Duration::from_secs(60), "scan --athena after Ctrl-C");
    let rest: Vec<String> = err.iter().collect();
    let rest = rest.join("\n");
    assert_eq!(code, 2, "a cancelled query is an error exit, not death by signal or a clean run: {rest}");
    assert!(rest.contains("was cancelled: stopped by the user"), "the user is told: {rest}");
    let state = execution(&moto, &id).await.status.and_then(|s| s.state);
    assert_eq!(state, Some(aws_sdk_athena::types::QueryExecutionState::Cancelled), "the query was stopped in Athena");
}
