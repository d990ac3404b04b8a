//! The permissions around the detector, checked against the code that uses them (issue 8):
//! only the detector roles may publish to the alert topic, the detector role may call exactly
//! the DynamoDB actions the bootstrap calls, and the alert-claim lease outlives an invocation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ctguard_detector::policy::glob_match;
use ctguard_tests::workspace;
use serde_yaml_ng::Value as Y;

fn template(name: &str) -> Y {
    let text = std::fs::read_to_string(workspace().join("templates").join(name)).expect("template");
    serde_yaml_ng::from_str(&text).expect("YAML")
}

/// Every string inside a YAML value (tagged values such as `!Sub` included).
fn strings(v: &Y) -> Vec<String> {
    match v {
        Y::String(s) => vec![s.clone()],
        Y::Sequence(seq) => seq.iter().flat_map(strings).collect(),
        Y::Mapping(m) => m.iter().flat_map(|(k, x)| strings(k).into_iter().chain(strings(x))).collect(),
        Y::Tagged(t) => strings(&t.value),
        _ => Vec::new(),
    }
}

fn resources<'a>(doc: &'a Y, ty: &str) -> Vec<&'a Y> {
    let res = doc.get("Resources").and_then(Y::as_mapping).expect("Resources");
    res.values().filter(|r| r.get("Type").and_then(Y::as_str) == Some(ty)).collect()
}

/// The detector role's name in the region template, for a given region.
fn detector_role_arn(region: &str) -> String {
    let doc = template("ctguard-region.yaml");
    let roles = resources(&doc, "AWS::IAM::Role");
    assert_eq!(roles.len(), 1, "one role: the detector's");
    let name = strings(roles[0].get("Properties").and_then(|p| p.get("RoleName")).expect("RoleName"));
    assert_eq!(name.len(), 1);
    format!("arn:aws:iam::123456789012:role/{}", name[0].replace("${AWS::Region}", region))
}

/// `aws:PrincipalArn` of a `!Sub` pattern, made concrete for the test account.
fn concrete(pattern: &str) -> String {
    pattern.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
}

fn publishes(stmt: &Y) -> bool {
    strings(stmt.get("Action").expect("Action")).iter().any(|a| a == "sns:Publish" || a == "sns:*" || a == "*")
}

#[test]
fn alert_topic_lets_only_the_detector_roles_publish() {
    let doc = template("ctguard-account.yaml");
    let policies = resources(&doc, "AWS::SNS::TopicPolicy");
    assert_eq!(policies.len(), 1);
    let stmts = policies[0]
        .get("Properties")
        .and_then(|p| p.get("PolicyDocument"))
        .and_then(|d| d.get("Statement"))
        .and_then(Y::as_sequence)
        .expect("Statement");
    let (mut allows, mut denies) = (0, 0);
    for s in stmts.iter().filter(|s| publishes(s)) {
        let cond = s.get("Condition").expect("every publish statement is conditional");
        match s.get("Effect").and_then(Y::as_str) {
            Some("Allow") => {
                allows += 1;
                let arns = strings(cond.get("ArnLike").and_then(|c| c.get("aws:PrincipalArn")).expect("ArnLike"));
                assert_eq!(arns.len(), 1);
                let pat = concrete(&arns[0]);
                for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
                    assert!(glob_match(&pat, &detector_role_arn(region)), "{pat} must admit the {region} detector");
                }
                for other in [
                    "arn:aws:iam::123456789012:role/app",
                    "arn:aws:iam::123456789012:role/ctguard-verify",
                    "arn:aws:iam::123456789012:user/admin",
                    "arn:aws:iam::999988887777:role/ctguard-detector-us-east-1",
                ] {
                    assert!(!glob_match(&pat, other), "{pat} must not admit {other}");
                }
            }
            Some("Deny") => {
                denies += 1;
                assert_eq!(s.get("Principal").and_then(Y::as_str), Some("*"), "the deny covers everyone");
                let arns = strings(cond.get("ArnNotLike").and_then(|c| c.get("aws:PrincipalArn")).expect("ArnNotLike"));
                assert_eq!(arns.len(), 1);
                let pat = concrete(&arns[0]);
                assert!(glob_match(&pat, &detector_role_arn("us-east-1")), "the deny exempts the detector");
                assert!(!glob_match(&pat, "arn:aws:iam::123456789012:role/app"), "the deny covers other roles");
            }
            e => panic!("unexpected effect {e:?}"),
        }
    }
    assert_eq!((allows, denies), (1, 1), "one conditional allow for the detector roles, one deny for everyone else");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn nothing_but_the_detector_publishes_alerts() {
    // `ctguard verify` (and every other command) observes alerts; if it ever had to publish,
    // it would need a role matching the topic policy, and this test would say so.
    let bootstrap = workspace().join("detector/src/bin/bootstrap");
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    let publishers: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| !p.starts_with(&bootstrap) && !p.starts_with(workspace().join("tests")))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(".publish()")))
        .collect();
    assert!(publishers.is_empty(), "SNS publishers outside the detector: {publishers:?}");
    let sns = std::fs::read_to_string(bootstrap.join("sns.rs")).expect("sns.rs");
    assert!(sns.contains(".publish()"), "the check looks for the call the detector makes");
}

/// DynamoDB operations of the SDK that take an item or table, and the IAM action of each.
const DYNAMODB_CALLS: &[(&str, &str)] = &[
    (".get_item()", "dynamodb:GetItem"),
    (".put_item()", "dynamodb:PutItem"),
    (".update_item()", "dynamodb:UpdateItem"),
    (".delete_item()", "dynamodb:DeleteItem"),
    (".query()", "dynamodb:Query"),
    (".scan()", "dynamodb:Scan"),
    (".batch_get_item()", "dynamodb:BatchGetItem"),
    (".batch_write_item()", "dynamodb:BatchWriteItem"),
    (".transact_get_items()", "dynamodb:GetItem"),
    (".transact_write_items()", "dynamodb:UpdateItem"),
    (".describe_table()", "dynamodb:DescribeTable"),
];

#[test]
fn detector_role_grants_exactly_the_dynamodb_actions_the_bootstrap_calls() {
    let mut files = Vec::new();
    rust_files(&workspace().join("detector/src/bin/bootstrap"), &mut files);
    let code: String = files.iter().map(|p| std::fs::read_to_string(p).expect("source")).collect();
    let called: BTreeSet<&str> =
        DYNAMODB_CALLS.iter().filter(|(call, _)| code.contains(call)).map(|(_, a)| *a).collect();
    assert!(called.contains("dynamodb:UpdateItem"), "the store writes with UpdateItem: {called:?}");
    let doc = template("ctguard-region.yaml");
    let role = resources(&doc, "AWS::IAM::Role")[0];
    let granted: BTreeSet<String> = strings(role.get("Properties").and_then(|p| p.get("Policies")).expect("Policies"))
        .into_iter()
        .filter(|a| a.starts_with("dynamodb:"))
        .collect();
    let granted: BTreeSet<&str> = granted.iter().map(String::as_str).collect();
    assert_eq!(granted, called, "the role grants exactly the DynamoDB actions the code calls");
}

#[test]
fn the_alert_lease_outlives_an_invocation_and_ends_before_lambdas_retry() {
    let doc = template("ctguard-region.yaml");
    let f = resources(&doc, "AWS::Lambda::Function");
    let timeout_s = f[0].get("Properties").and_then(|p| p.get("Timeout")).and_then(Y::as_i64).expect("Timeout");
    let lease = ctguard_detector::state::ALERT_LEASE_MS;
    assert!(lease > timeout_s * 1000, "lease {lease} ms must outlive the {timeout_s} s function timeout");
    // Lambda's first asynchronous retry comes about a minute after a failure.
    assert!(lease < 60_000, "lease {lease} ms must end before Lambda's first retry");
}
