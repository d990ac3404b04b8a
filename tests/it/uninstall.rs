//! `ctguard uninstall` at the edges, end to end on the emulated Organization: a denied deletion
//! ends with a report (and a re-run finishes), a bucket of ctguard's fixed name that ctguard
//! cannot prove it owns is never emptied, and an uninstall from the management account without
//! `--org` removes the StackSets too.
//!
//! What the emulator cannot do, said plainly:
//! - moto checks a bucket policy's Deny on `s3:DeleteObject` for each key of a DeleteObjects
//!   request but knows no `s3:DeleteObjectVersion`; the test's policy denies both, as one would
//!   on AWS (where deleting a version needs the latter).
//! - moto ignores `ExpectedBucketOwner`; the header on every S3 call is checked by a unit test
//!   of `ctguard-deploy` (`every_s3_call_names_the_expected_bucket_owner`).
//! - moto's service-managed StackSets ignore `AccountFilterType` and auto-deployment (see
//!   `install.rs`); a first `install --org` in direct mode creates the StackSets without
//!   instances, which is what this test removes. Removal of instances is covered against
//!   `FakeOrg` in `deploy/src/autodeploy/tests.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::install::{
    account_config, add_trail, ctguard_resources, json_lines, organization, run, text, Org, HOME, MGMT,
};

const BUCKET: &str = "ctguard-artifacts-123456789012-us-east-1";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// ctguard installed in the management account's home region, and S3 as that account.
async fn installed() -> (Org, aws_sdk_s3::Client) {
    let org = organization().await;
    let ep = org.endpoint();
    add_trail(&ep, MGMT).await;
    let out = run(&org, &["install", "--regions", HOME, "--no-auto-deploy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s3 = aws_sdk_s3::Client::new(&account_config(&ep, MGMT, HOME).await);
    (org, s3)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_deletion_stops_with_a_report_and_a_rerun_finishes() {
    let (org, s3) = installed().await;
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"KeepCode","Effect":"Deny","Principal":"*","Action":["s3:DeleteObject","s3:DeleteObjectVersion"],"Resource":"arn:aws:s3:::{BUCKET}/ctguard/*"}}]}}"#
    );
    s3.put_bucket_policy().bucket(BUCKET).policy(deny).send().await.expect("deny policy");

    let started = Instant::now();
    let out = run(&org, &["uninstall", "--regions", HOME, "--yes", "--retry-denied", "3"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(6), "something is left: exit 6 (LEFT_BEHIND)\n{}", text(&out));
    assert!(took < Duration::from_secs(90), "bounded retry, took {took:?}");
    let err = stderr(&out);
    assert!(err.contains("could not be deleted (retried for 3 s)"), "{}", text(&out));
    assert!(err.contains("AccessDenied"), "S3's reason is shown:\n{}", text(&out));
    let left = err.lines().find(|l| l.contains(&format!("left in {MGMT}/{HOME}"))).unwrap_or_default();
    assert!(left.contains(&format!("s3 bucket {BUCKET}")), "names the bucket: {left}");
    assert!(left.contains("stack ctguard-artifacts"), "names its stack: {left}");
    assert!(left.contains("why:") && left.contains("could not be deleted"), "says why: {left}");
    let found = ctguard_resources(&org, MGMT).await;
    assert!(found.iter().any(|r| r.starts_with(&format!("object {BUCKET}/ctguard/"))), "{found:?}");
    assert!(!found.iter().any(|r| r.contains("stack ctguard-region")), "the rest is gone: {found:?}");

    // The denial lifted: a re-run removes what is left.
    s3.delete_bucket_policy().bucket(BUCKET).send().await.expect("lift the denial");
    let out = run(&org, &["uninstall", "--regions", HOME, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stderr(&out).contains("left: nothing"), "{}", text(&out));
    assert_eq!(ctguard_resources(&org, MGMT).await, BTreeSet::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_ctguard_cannot_prove_it_owns_is_never_emptied() {
    let (org, s3) = installed().await;
    // Someone re-tagged the bucket and keeps their data in it: its name and its stack are not
    // proof enough.
    let tags = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("team").value("data").build().expect("tag"))
        .build()
        .expect("tagging");
    s3.put_bucket_tagging().bucket(BUCKET).tagging(tags).send().await.expect("retag");
    s3.put_object()
        .bucket(BUCKET)
        .key("their/data.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"a,b\n"))
        .send()
        .await
        .expect("their object");

    let out = run(&org, &["uninstall", "--regions", HOME, "--plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let steps: Vec<serde_json::Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l["type"] == "plan")
        .flat_map(|p| p["steps"].as_array().cloned().unwrap_or_default())
        .collect();
    let bucket_step = steps.iter().find(|s| s["what"] == format!("s3://{BUCKET}")).expect("a step for the bucket");
    assert_eq!(bucket_step["action"], "leave_bucket", "{bucket_step}");
    assert!(bucket_step["reason"].as_str().unwrap_or_default().contains("ctguard:owner"), "{bucket_step}");

    let out = run(&org, &["uninstall", "--regions", HOME, "--yes"]);
    assert_eq!(out.status.code(), Some(6), "the bucket is left: exit 6\n{}", text(&out));
    let versions = s3.list_object_versions().bucket(BUCKET).send().await.expect("the bucket is still there");
    let keys: BTreeSet<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    assert!(keys.contains("their/data.csv"), "never emptied: {keys:?}\n{}", text(&out));
    assert!(keys.iter().any(|k| k.starts_with("ctguard/")), "not even ctguard's own key: {keys:?}");
    // The closing lines name what is left and why; the rest is gone.
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with(&format!("left in {MGMT}/{HOME}"))).unwrap_or_default();
    assert!(line.contains(&format!("s3 bucket {BUCKET}")), "{}", text(&out));
    assert!(line.contains("left alone (not provably ctguard's: no ctguard:owner=ctguard tag)"), "{}", text(&out));
    let found = ctguard_resources(&org, MGMT).await;
    assert!(found.iter().all(|r| r.contains(BUCKET)), "only the bucket is left: {found:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_from_the_management_account_removes_the_stacksets_too() {
    let org = organization().await;
    let ep = org.endpoint();
    for a in std::iter::once(MGMT.to_string()).chain(org.members.iter().cloned()) {
        add_trail(&ep, &a).await;
    }
    // Direct mode: moto's StackSets would deploy instances into the management account (see
    // the module doc), so the members get direct stacks and the StackSets none yet.
    let out = run(&org, &["install", "--org", "--regions", HOME, "--deploy-with", "direct"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let cfn = aws_sdk_cloudformation::Client::new(&account_config(&ep, MGMT, HOME).await);
    let sets = || async {
        let l = cfn
            .list_stack_sets()
            .status(aws_sdk_cloudformation::types::StackSetStatus::Active)
            .send()
            .await
            .expect("list stack sets");
        // moto ignores the Status filter and lists deleted sets too: filter here.
        l.summaries()
            .iter()
            .filter(|s| s.status() == Some(&aws_sdk_cloudformation::types::StackSetStatus::Active))
            .filter_map(|s| s.stack_set_name().map(str::to_string))
            .collect::<BTreeSet<_>>()
    };
    let before = sets().await;
    let want: BTreeSet<String> =
        ["ctguard-account-auto", "ctguard-region-auto", "ctguard-state-auto"].iter().map(|s| s.to_string()).collect();
    assert_eq!(before, want, "an --org install made the auto-deploy StackSets");

    // --plan (and the confirmation) name every StackSet and stack it will delete.
    let out = run(&org, &["uninstall", "--regions", HOME, "--plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    for n in want.iter().map(String::as_str).chain(["ctguard-region", "ctguard-artifacts", BUCKET]) {
        assert!(plan.contains(n), "--plan names {n}:\n{}", text(&out));
    }
    assert_eq!(sets().await, want, "--plan removes nothing");

    // No --org: the current (management) account, whose buckets the StackSets read from.
    let out = run(&org, &["uninstall", "--regions", HOME, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sets().await, BTreeSet::new(), "the StackSets are gone:\n{}", text(&out));
    assert!(
        ctguard_resources(&org, MGMT).await.iter().all(|r| !r.contains(HOME)),
        "nothing of ctguard's left in the management account's region"
    );
}
