//! `ctguard contain` / `release` against IAM in moto: the deny policy lands on the role with
//! the session's conditions, nothing changes without consent, and release removes it.
//!
//! moto has no IAM policy simulator (`SimulatePrincipalPolicy` with context keys), so what the
//! policy *decides* is covered by the structural tests of its conditions in
//! `deploy/src/contain.rs`; here the document IAM stores is checked.

use std::process::Output;

use ctguard_tests::*;
use serde_json::{json, Value};

const ACCT: &str = "123456789012";
const KEY: &str = "ASIAQWERTYQWERTYQWER";

fn alert() -> Value {
    json!({
        "schema": "ctguard.alert/v1", "id": ctguard_detector::alert_id(KEY, "ip:198.51.100.66"),
        "kind": "credential-reuse", "severity": "HIGH", "synthetic": false, "title": "t",
        "account": ACCT, "regions": ["us-east-1"], "access_key_id": KEY,
        "principal_arn": format!("arn:aws:sts::{ACCT}:assumed-role/app/i-0123456789abcdef0"),
        "role_arn": format!("arn:aws:iam::{ACCT}:role/app"), "instance_id": "i-0123456789abcdef0",
        "scope": "instance",
        "expected": [
            {"identity": "ip:203.0.113.10", "first_seen": {"event_time": "2024-05-01T10:00:00Z"}},
            {"identity": "vpce:vpce-0abc123@111122223333", "first_seen": {"event_time": "2024-05-01T10:01:00Z"}}
        ],
        "seen_identity": "ip:198.51.100.66",
        "offending": {"event_time": "2024-05-01T10:03:00Z", "event_name": "ListBuckets"},
        "out_of_order": false, "reason": "r", "detector_version": "e2e"
    })
}

fn run(endpoint: &str, args: &[&str]) -> Output {
    ctguard(Some(endpoint)).args(args).output().expect("run ctguard")
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn policy(iam: &aws_sdk_iam::Client) -> Option<Value> {
    let names = iam.list_role_policies().role_name("app").send().await.expect("list").policy_names;
    if names.is_empty() {
        return None;
    }
    assert_eq!(names, ["ctguard-contain-i-0123456789abcdef0"]);
    let doc = iam.get_role_policy().role_name("app").policy_name(&names[0]).send().await.expect("get").policy_document;
    // IAM returns the document URL-encoded (RFC 3986), as moto does; a JSON document has no
    // percent escapes of its own, so decoding is harmless when it was not encoded.
    let doc = percent_encoding::percent_decode_str(&doc).decode_utf8().expect("UTF-8 policy").into_owned();
    Some(serde_json::from_str(&doc).expect("policy JSON"))
}

/// The workload's role `app`, trusted by EC2.
async fn app_role(iam: &aws_sdk_iam::Client) -> aws_sdk_iam::types::Role {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    iam.create_role()
        .role_name("app")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("role")
        .role
        .expect("role")
}

#[tokio::test(flavor = "multi_thread")]
async fn contain_attaches_the_deny_and_release_removes_it() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let iam = aws_sdk_iam::Client::new(&moto.config("us-east-1"));
    let role = app_role(&iam).await;
    let dir = std::env::temp_dir().join(format!("ctguard-contain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("alert.json");
    // The SNS envelope an SQS subscriber receives, around the alert.
    std::fs::write(&file, json!({"Type": "Notification", "Message": alert().to_string()}).to_string()).expect("write");
    let f = file.to_str().expect("path");

    // No terminal and no --yes: refused, nothing attached.
    let o = run(&endpoint, &["contain", "--alert-file", f]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("\"Effect\": \"Deny\""), "the policy is shown first: {}", text(&o));
    assert_eq!(policy(&iam).await, None);
    // --plan shows both sides and changes nothing.
    let o = run(&endpoint, &["contain", "--alert-file", f, "--plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("release: delete inline policy ctguard-contain-i-0123456789abcdef0"), "{out}");
    assert_eq!(policy(&iam).await, None);

    let o = run(&endpoint, &["contain", "--alert-file", f, "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = policy(&iam).await.expect("policy attached");
    let s = &doc["Statement"][0];
    assert_eq!(s["Effect"], "Deny");
    assert_eq!(s["Action"], "*");
    let c = &s["Condition"];
    assert_eq!(c["StringEquals"]["aws:userid"], format!("{}:i-0123456789abcdef0", role.role_id));
    assert_eq!(c["NotIpAddress"]["aws:SourceIp"], json!(["203.0.113.10/32"]));
    assert_eq!(c["StringNotEqualsIfExists"]["aws:SourceVpce"], json!(["vpce-0abc123"]));
    assert_eq!(c["BoolIfExists"]["aws:ViaAWSService"], "false");

    // Re-running with an extra trusted address replaces the one policy (no second one).
    let o = run(&endpoint, &["contain", "--alert-file", f, "--allow-ip", "192.0.2.0/24", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = policy(&iam).await.expect("policy");
    assert_eq!(
        doc["Statement"][0]["Condition"]["NotIpAddress"]["aws:SourceIp"],
        json!(["203.0.113.10/32", "192.0.2.0/24"])
    );

    let who = ["--account", ACCT, "--role", "app", "--session", "i-0123456789abcdef0"];
    let o = run(&endpoint, &[&["release", "--plan"][..], &who].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(policy(&iam).await.is_some(), "--plan removes nothing");
    let o = run(&endpoint, &[&["release", "--yes"][..], &who].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(policy(&iam).await, None);
    let o = run(&endpoint, &[&["release", "--yes"][..], &who].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing to remove"), "{}", text(&o));

    // Bad input: a clear error, nothing attached.
    for bad in [
        vec!["contain", "--account", ACCT, "--role", "app", "--session", "i-0123456789abcdef0", "--yes"],
        vec!["contain", "--account", "12", "--role", "app", "--session", "s1", "--allow-ip", "203.0.113.10", "--yes"],
        vec!["contain", "--alert-file", "/nonexistent/alert.json", "--yes"],
    ] {
        let o = run(&endpoint, &bad);
        assert_ne!(o.status.code(), Some(0), "{bad:?}: {}", text(&o));
        assert_eq!(policy(&iam).await, None, "{bad:?}");
    }
    // A role that does not exist: IAM's error, named.
    let o = run(
        &endpoint,
        &["contain", "--account", ACCT, "--role", "ghost", "--session", "s1", "--allow-ip", "203.0.113.10", "--yes"],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("NoSuchEntity"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `contain --alert ID --account A` reads the alert from the record the detector keeps in the
/// account's state table (`pk` = `ALERT#<id>`, `alert` = the alert's JSON as the detector
/// serialises it, `ttl`), then goes on exactly as `--alert-file`; `release --alert ID` finds the
/// same session. A missing record says why it may be missing and what to use instead.
#[tokio::test(flavor = "multi_thread")]
async fn contain_and_release_by_alert_id_read_the_state_table() {
    use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType};
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let cfg = moto.config("eu-west-1");
    let iam = aws_sdk_iam::Client::new(&cfg);
    let role = app_role(&iam).await;
    // The state table as the ctguard-state stack makes it, in a home region that is not the
    // default one (so --home-region is exercised).
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    ddb.create_table()
        .table_name("ctguard-state")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().expect("key"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("state table");
    let alert: ctguard_detector::Alert = serde_json::from_value(alert()).expect("a ctguard alert");
    let id = alert.id.clone();
    let ttl = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 12 * 3600;
    ddb.put_item()
        .table_name("ctguard-state")
        .item("pk", AttributeValue::S(format!("ALERT#{id}")))
        .item("alert", AttributeValue::S(serde_json::to_string(&alert).expect("alert JSON")))
        .item("ttl", AttributeValue::N(ttl.to_string()))
        .send()
        .await
        .expect("the detector's alert record");
    let by_id = ["--alert", id.as_str(), "--account", ACCT, "--home-region", "eu-west-1"];

    // --plan: the policy from the record, nothing attached.
    let o = run(&endpoint, &[&["contain"][..], &by_id, &["--plan"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o)
        .contains(&format!("alert {id}: read from the state table ctguard-state of account {ACCT} in eu-west-1")));
    assert!(text(&o).contains("ctguard-contain-i-0123456789abcdef0"), "{}", text(&o));
    assert_eq!(policy(&iam).await, None);

    let o = run(&endpoint, &[&["contain"][..], &by_id, &["--yes"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let doc = policy(&iam).await.expect("policy attached");
    let c = &doc["Statement"][0]["Condition"];
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    assert_eq!(c["StringEquals"]["aws:userid"], format!("{}:i-0123456789abcdef0", role.role_id));
    assert_eq!(c["NotIpAddress"]["aws:SourceIp"], json!(["203.0.113.10/32"]));
    assert_eq!(c["StringNotEqualsIfExists"]["aws:SourceVpce"], json!(["vpce-0abc123"]));
    assert_eq!(c["BoolIfExists"]["aws:ViaAWSService"], "false");

    let o = run(&endpoint, &[&["release"][..], &by_id, &["--yes"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("released"), "{}", text(&o));
    assert_eq!(policy(&iam).await, None);

    // No record (expired, or another account's alert): the reasons and the way around, nothing
    // attached. The default home region has no table at all: said too.
    let unknown = "ctguard-00000000000000000000000000000000";
    let o = run(&endpoint, &["contain", "--alert", unknown, "--account", ACCT, "--home-region", "eu-west-1", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    for needle in ["no record of alert", "may have expired", "another account", "--alert-file"] {
        assert!(text(&o).contains(needle), "{needle}: {}", text(&o));
    }
    let o = run(&endpoint, &["contain", "--alert", &id, "--account", ACCT, "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("there is no state table ctguard-state of account") && text(&o).contains("us-east-1"),
        "{}",
        text(&o)
    );
    assert_eq!(policy(&iam).await, None);

    // --alert names the session by itself: with --alert-file or --role it is refused, and it
    // needs the account whose table to read.
    for bad in [
        vec!["contain", "--alert", id.as_str(), "--account", ACCT, "--alert-file", "/tmp/x.json", "--yes"],
        vec!["contain", "--alert", id.as_str(), "--account", ACCT, "--role", "app", "--yes"],
        vec!["contain", "--alert", id.as_str(), "--yes"],
        vec!["release", "--alert", "ctguard-nothex", "--account", ACCT, "--yes"],
    ] {
        let o = run(&endpoint, &bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert_eq!(policy(&iam).await, None, "{bad:?}");
    }
}
