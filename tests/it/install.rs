//! `ctguard install`, `status` and `uninstall` end to end on moto, plus static checks of the
//! templates (cfn-lint, least privilege of the detector role).
//!
//! The scenario: an emulated Organization (management account + 4 members in 2 OUs), two
//! regions. Every resource is checked by listing it with the account's own (assumed-role)
//! credentials through the services' APIs, not through CloudFormation's view.
//!
//! What the emulator cannot do, said plainly (none of it is worked around in the product):
//! - Auto-deployment: moto's service-managed StackSets ignore `AccountFilterType` and
//!   `AutoDeployment` (they would deploy a second copy into every directly managed account),
//!   so every install here runs with `--no-auto-deploy`. The StackSets requests are covered by
//!   the lifecycle tests against `FakeOrg` in `deploy/src/autodeploy/tests.rs`.
//! - moto answers a CreateStack whose resource fails (here: an IAM role name already taken)
//!   with an error and leaves the stack in CREATE_IN_PROGRESS forever, where AWS would roll
//!   back to ROLLBACK_COMPLETE (which ctguard deletes and recreates on the next run, see the
//!   FakeStacks tests in `deploy/src/deploy.rs`); while stuck, every DescribeStacks in that
//!   region re-raises the original error as HTTP 500. The forced-failure test therefore does
//!   not list that region and deletes the stuck stack itself before the resuming run.
//! - moto skips AWS::S3::BucketPolicy, AWS::SNS::TopicPolicy, AWS::SNS::Subscription,
//!   AWS::SQS::QueuePolicy and AWS::Lambda::EventInvokeConfig and ignores the table's
//!   `TimeToLiveSpecification`: those are not asserted here (cfn-lint and
//!   `scripts/moto_check_templates.py` cover the templates' side).
//! - moto's GetEventSelectors returns nothing until PutEventSelectors is called (AWS defaults
//!   to all management events) and organization trails do not show in member accounts, so
//!   each account gets its own multi-region trail with explicit selectors.
//! - account:ListRegions is not emulated: every run passes `--regions` (the preflight warns
//!   that regions were checked against the published names only).
//! - `cloudformation:ActivateOrganizationsAccess` is not emulated: the test organization gets
//!   StackSets trusted access and the service-linked role through Organizations and IAM.

use std::collections::BTreeSet;
use std::process::Output;

use aws_config::SdkConfig;
use ctguard_tests::*;
use serde_json::Value;

pub(crate) const MGMT: &str = "123456789012";
pub(crate) const HOME: &str = "us-east-1";
const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];
const RULE_STATE: &str = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS";

/// The emulated organization.
pub(crate) struct Org {
    pub(crate) moto: Moto,
    /// Member accounts (the management account is [`MGMT`]).
    pub(crate) members: Vec<String>,
}

impl Org {
    pub(crate) fn endpoint(&self) -> String {
        self.moto.endpoint()
    }
    fn all_accounts(&self) -> Vec<String> {
        std::iter::once(MGMT.to_string()).chain(self.members.iter().cloned()).collect()
    }
}

/// Management account + 4 members, 2 per OU ("prod", "dev").
pub(crate) async fn organization() -> Org {
    use aws_sdk_organizations::types::OrganizationFeatureSet;
    let moto = Moto::start();
    let org = aws_sdk_organizations::Client::new(&moto.config(HOME));
    org.create_organization().feature_set(OrganizationFeatureSet::All).send().await.expect("organization");
    let roots = org.list_roots().send().await.expect("roots");
    let root = roots.roots()[0].id().expect("root id").to_string();
    let mut ous = Vec::new();
    for name in ["prod", "dev"] {
        let ou = org.create_organizational_unit().parent_id(&root).name(name).send().await.expect("ou");
        ous.push(ou.organizational_unit().and_then(|o| o.id()).expect("ou id").to_string());
    }
    let mut members = Vec::new();
    for i in 0..4 {
        let st = org
            .create_account()
            .email(format!("member{i}@example.com"))
            .account_name(format!("member{i}"))
            .send()
            .await
            .expect("create account");
        let id = st.create_account_status().and_then(|s| s.account_id()).expect("account id").to_string();
        org.move_account()
            .account_id(&id)
            .source_parent_id(&root)
            .destination_parent_id(&ous[i % 2])
            .send()
            .await
            .expect("move account");
        members.push(id);
    }
    stacksets_trusted_access(&moto.config(HOME)).await;
    Org { moto, members }
}

/// What `aws cloudformation activate-organizations-access` does, which moto does not emulate:
/// StackSets get trusted access, and the management account its service-linked role (install's
/// preflight checks both before auto-deployment).
pub(crate) async fn stacksets_trusted_access(cfg: &SdkConfig) {
    aws_sdk_organizations::Client::new(cfg)
        .enable_aws_service_access()
        .service_principal("member.org.stacksets.cloudformation.amazonaws.com")
        .send()
        .await
        .expect("trusted access");
    aws_sdk_iam::Client::new(cfg)
        .create_role()
        .role_name("AWSServiceRoleForCloudFormationStackSetsOrgAdmin")
        .path("/aws-service-role/stacksets.cloudformation.amazonaws.com/")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"stacksets.cloudformation.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("service-linked role");
}

/// Static credentials of `account` (assumed OrganizationAccountAccessRole for members).
async fn creds(endpoint: &str, account: &str) -> (String, String, Option<String>) {
    if account == MGMT {
        return ("testing".into(), "testing".into(), None);
    }
    let sts = aws_sdk_sts::Client::new(&sdk_config(endpoint, HOME, "testing", "testing", None));
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole"))
        .role_session_name("ctguard-tests")
        .send()
        .await
        .expect("assume role");
    let c = out.credentials().expect("credentials");
    (c.access_key_id().to_string(), c.secret_access_key().to_string(), Some(c.session_token().to_string()))
}

pub(crate) async fn account_config(endpoint: &str, account: &str, region: &str) -> SdkConfig {
    let (k, s, t) = creds(endpoint, account).await;
    let cfg = sdk_config(endpoint, region, &k, &s, t.as_deref());
    let who = aws_sdk_sts::Client::new(&cfg).get_caller_identity().send().await.expect("caller identity");
    assert_eq!(who.account(), Some(account), "credentials act in the account");
    cfg
}

/// A multi-region trail logging all management events (see the module doc for why each
/// account gets its own).
pub(crate) async fn add_trail(endpoint: &str, account: &str) {
    logging_trail(&account_config(endpoint, account, HOME).await).await;
}

pub(crate) fn run(org: &Org, args: &[&str]) -> Output {
    ctguard(Some(&org.endpoint())).args(args).output().expect("run ctguard")
}

pub(crate) fn text(o: &Output) -> String {
    output_text(o)
}

pub(crate) fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub(crate) fn summary(lines: &[Value]) -> &Value {
    lines.iter().find(|l| l["type"] == "summary").expect("a summary line")
}

/// Log groups with our prefix, through boto3 (the tests crate has no CloudWatch Logs SDK).
fn log_groups(endpoint: &str, key: &str, secret: &str, token: Option<&str>, region: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import boto3, json, os, sys
logs = boto3.client("logs", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                    aws_access_key_id=os.environ["K"], aws_secret_access_key=os.environ["S"],
                    aws_session_token=os.environ.get("T") or None)
groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/ctguard")["logGroups"]
print(json.dumps([g["logGroupName"] for g in groups]))
"#;
    let mut c = std::process::Command::new(venv_tool("python"));
    c.args(["-c", SCRIPT, endpoint, region]).env("K", key).env("S", secret).env_remove("T");
    if let Some(t) = token {
        c.env("T", t);
    }
    let out = c.output().expect("python");
    assert!(out.status.success(), "log group listing failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("log group JSON")
}

/// Every ctguard resource in `account`, listed through each service with the account's own
/// credentials: "<region> <kind> <name>" (global ones without a region).
pub(crate) async fn ctguard_resources(org: &Org, account: &str) -> BTreeSet<String> {
    ctguard_resources_in(org, account, &REGIONS).await
}

pub(crate) async fn ctguard_resources_in(org: &Org, account: &str, regions: &[&str]) -> BTreeSet<String> {
    let endpoint = &org.endpoint();
    let fail = |what: &str, e: &dyn std::fmt::Debug| -> ! {
        let log = org.moto.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("{account}: {what}: {e:?}\n--- moto log (tail)\n{}", tail.join("\n"))
    };
    let (k, s, t) = creds(endpoint, account).await;
    let mut found = BTreeSet::new();
    for &region in regions {
        let cfg = sdk_config(endpoint, region, &k, &s, t.as_deref());
        let cfn = aws_sdk_cloudformation::Client::new(&cfg);
        for st in cfn.describe_stacks().send().await.unwrap_or_else(|e| fail("describe stacks", &e)).stacks() {
            let name = st.stack_name().unwrap_or_default();
            if name.starts_with("ctguard-") {
                found.insert(format!("{region} stack {name}"));
            }
        }
        let lambda = aws_sdk_lambda::Client::new(&cfg);
        for f in lambda.list_functions().send().await.unwrap_or_else(|e| fail("list functions", &e)).functions() {
            let name = f.function_name().unwrap_or_default();
            if name.starts_with("ctguard") {
                found.insert(format!("{region} function {name}"));
            }
        }
        let events = aws_sdk_eventbridge::Client::new(&cfg);
        for r in
            events.list_rules().name_prefix("ctguard").send().await.unwrap_or_else(|e| fail("list rules", &e)).rules()
        {
            found.insert(format!("{region} rule {}", r.name().unwrap_or_default()));
        }
        let sqs = aws_sdk_sqs::Client::new(&cfg);
        for u in sqs
            .list_queues()
            .queue_name_prefix("ctguard")
            .send()
            .await
            .unwrap_or_else(|e| fail("list queues", &e))
            .queue_urls()
        {
            found.insert(format!("{region} queue {}", u.rsplit('/').next().unwrap_or_default()));
        }
        let ddb = aws_sdk_dynamodb::Client::new(&cfg);
        for n in ddb.list_tables().send().await.unwrap_or_else(|e| fail("list tables", &e)).table_names() {
            if n.starts_with("ctguard") {
                found.insert(format!("{region} table {n}"));
            }
        }
        let sns = aws_sdk_sns::Client::new(&cfg);
        for tp in sns.list_topics().send().await.unwrap_or_else(|e| fail("list topics", &e)).topics() {
            let arn = tp.topic_arn().unwrap_or_default();
            if arn.contains(":ctguard") {
                found.insert(format!("{region} topic {}", arn.rsplit(':').next().unwrap_or_default()));
            }
        }
        for g in log_groups(endpoint, &k, &s, t.as_deref(), region) {
            found.insert(format!("{region} log-group {g}"));
        }
    }
    let cfg = sdk_config(endpoint, HOME, &k, &s, t.as_deref());
    let iam = aws_sdk_iam::Client::new(&cfg);
    for r in iam.list_roles().send().await.unwrap_or_else(|e| fail("list roles", &e)).roles() {
        if r.role_name().starts_with("ctguard") {
            found.insert(format!("role {}", r.role_name()));
        }
    }
    let s3 = aws_sdk_s3::Client::new(&cfg);
    for b in s3.list_buckets().send().await.unwrap_or_else(|e| fail("list buckets", &e)).buckets() {
        let name = b.name().unwrap_or_default();
        if name.starts_with("ctguard") {
            found.insert(format!("bucket {name}"));
            let objects = s3.list_objects_v2().bucket(name).send().await.unwrap_or_else(|e| fail("list objects", &e));
            for o in objects.contents() {
                found.insert(format!("object {name}/{}", o.key().unwrap_or_default()));
            }
        }
    }
    found
}

/// What a complete install leaves in `account` (`skip_region`: a region whose regional stack
/// is expected to be missing).
fn expected(account: &str, code_key: &str, skip_region: Option<&str>) -> BTreeSet<String> {
    let mut e = BTreeSet::new();
    e.insert(format!("{HOME} stack ctguard-state"));
    e.insert(format!("{HOME} stack ctguard-account"));
    e.insert(format!("{HOME} table ctguard-state"));
    e.insert(format!("{HOME} topic ctguard-alerts"));
    for region in REGIONS {
        if account == MGMT {
            let bucket = format!("ctguard-artifacts-{MGMT}-{region}");
            e.insert(format!("{region} stack ctguard-artifacts"));
            e.insert(format!("bucket {bucket}"));
            e.insert(format!("object {bucket}/{code_key}"));
        }
        if skip_region == Some(region) {
            continue;
        }
        e.insert(format!("{region} stack ctguard-region"));
        e.insert(format!("{region} function ctguard-detector"));
        e.insert(format!("{region} rule ctguard-detector"));
        e.insert(format!("{region} rule ctguard-detector-health"));
        e.insert(format!("{region} queue ctguard-detector-dlq"));
        e.insert(format!("{region} log-group /aws/lambda/ctguard-detector"));
        e.insert(format!("role ctguard-detector-{region}"));
    }
    e
}

/// Settings that matter beyond existence: the rule sees read-only events and feeds the
/// function, which points at the account's own table and topic in the home region.
async fn check_wiring(endpoint: &str, account: &str, region: &str) {
    let cfg = account_config(endpoint, account, region).await;
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let rule = events.describe_rule().name("ctguard-detector").send().await.expect("rule");
    assert_eq!(rule.state().map(|s| s.as_str()), Some(RULE_STATE), "{account}/{region} rule state");
    let targets = events.list_targets_by_rule().rule("ctguard-detector").send().await.expect("targets");
    let fn_arn = format!("arn:aws:lambda:{region}:{account}:function:ctguard-detector");
    assert_eq!(targets.targets().iter().map(|t| t.arn()).collect::<Vec<_>>(), vec![fn_arn.as_str()]);
    let f =
        aws_sdk_lambda::Client::new(&cfg).get_function().function_name("ctguard-detector").send().await.expect("fn");
    let conf = f.configuration().expect("configuration");
    assert_eq!(conf.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    let env = conf.environment().and_then(|e| e.variables()).expect("environment");
    assert_eq!(env.get("CTGUARD_TABLE").map(String::as_str), Some("ctguard-state"));
    assert_eq!(env.get("CTGUARD_TABLE_REGION").map(String::as_str), Some(HOME));
    let topic = format!("arn:aws:sns:{HOME}:{account}:ctguard-alerts");
    assert_eq!(env.get("CTGUARD_TOPIC_ARN"), Some(&topic), "{account}/{region} topic");
    let role = conf.role().unwrap_or_default();
    assert_eq!(role, format!("arn:aws:iam::{account}:role/ctguard-detector-{region}"));
}

fn code_key() -> String {
    // The content hash of the zip the binary embeds: what `package` writes out.
    let dir = std::env::temp_dir().join(format!("ctguard-install-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let zip = dir.join("detector.zip");
    let out = ctguard(None).args(["package", "--out"]).arg(&zip).output().expect("package");
    assert!(out.status.success(), "package: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let sha = text.split("sha256 ").nth(1).and_then(|s| s.split(')').next()).expect("sha256 in package output");
    let _ = std::fs::remove_dir_all(&dir);
    format!("ctguard/{sha}.zip")
}

#[tokio::test(flavor = "multi_thread")]
async fn org_install_is_complete_idempotent_resumable_healthy_and_uninstalls_to_nothing() {
    let org = organization().await;
    let ep = org.endpoint();
    let regions = REGIONS.join(",");
    let key = code_key();
    let base = ["--org", "--regions", regions.as_str(), "--no-auto-deploy", "--json"];

    // Trails everywhere but in the last member: install must refuse and change nothing.
    let (last, others) = org.members.split_last().expect("members");
    add_trail(&ep, MGMT).await;
    for a in others {
        add_trail(&ep, a).await;
    }
    let out = run(&org, &[&["install"], &base[..]].concat());
    assert_eq!(out.status.code(), Some(2), "missing trail must stop the install:\n{}", text(&out));
    let lines = json_lines(&out);
    let stopped = summary(&lines)["stopped"].as_str().unwrap_or_default().to_string();
    assert!(stopped.contains("--allow-missing-trail"), "{stopped}");
    let blind: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(blind.len(), 2, "both regions of the member without a trail:\n{}", text(&out));
    assert!(blind.iter().all(|l| l["target"]["account"] == last.as_str()));
    assert!(blind[0]["reason"].as_str().unwrap_or_default().contains("no CloudTrail trail"), "{}", blind[0]);
    assert_eq!(ctguard_resources(&org, MGMT).await, BTreeSet::new(), "nothing created before the trail check passed");
    add_trail(&ep, last).await;

    // --plan: every stack to create, nothing created.
    let out = run(&org, &[&["install", "--plan"], &base[..]].concat());
    assert_eq!(out.status.code(), Some(4), "changes pending: exit 4\n{}", text(&out));
    let plans: Vec<Value> = json_lines(&out).into_iter().filter(|l| l["type"] == "plan").collect();
    // 2 artifacts plans + 5 accounts × 2 regions.
    assert_eq!(plans.len(), 2 + 5 * 2, "{}", text(&out));
    let creates = plans
        .iter()
        .flat_map(|p| p["steps"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["action"] == "create")
        .count();
    assert_eq!(creates, 2 + 5 * 4, "artifacts ×2, state+account+region at home and region elsewhere ×5");
    assert_eq!(ctguard_resources(&org, MGMT).await, BTreeSet::new(), "--plan changed nothing");

    // Forced failure in one target: the IAM role name the us-west-2 stack needs is taken.
    let victim = org.members[1].clone();
    let vcfg = account_config(&ep, &victim, HOME).await;
    let iam = aws_sdk_iam::Client::new(&vcfg);
    iam.create_role()
        .role_name("ctguard-detector-us-west-2")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .expect("squatting role");
    let out = run(&org, &[&["install"], &base[..]].concat());
    assert_eq!(out.status.code(), Some(3), "one failed target means exit 3 (PARTIAL):\n{}", text(&out));
    let lines = json_lines(&out);
    let failed: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(failed[0]["target"]["account"], victim.as_str());
    assert_eq!(failed[0]["target"]["region"], "us-west-2");
    assert!(failed[0]["reason"].as_str().unwrap_or_default().contains("ctguard-detector-us-west-2"), "{}", failed[0]);
    for a in org.all_accounts() {
        if a == victim {
            // Its home region is complete. Its us-west-2 is not listed: moto answers
            // DescribeStacks there with HTTP 500 while the failed stack is stuck (module doc).
            let found = ctguard_resources_in(&org, &a, &[HOME]).await;
            let want = expected(&a, &key, Some("us-west-2"));
            assert!(want.is_subset(&found), "{a}: missing {:?}", want.difference(&found).collect::<Vec<_>>());
        } else {
            let found = ctguard_resources(&org, &a).await;
            assert_eq!(found, expected(&a, &key, None), "{a}: the other targets are fully installed");
        }
    }

    // Resume: free the name; moto's stuck stack is removed (see the module doc), re-run.
    iam.delete_role().role_name("ctguard-detector-us-west-2").send().await.expect("delete squatter");
    let wcfg = account_config(&ep, &victim, "us-west-2").await;
    aws_sdk_cloudformation::Client::new(&wcfg)
        .delete_stack()
        .stack_name("ctguard-region")
        .send()
        .await
        .expect("moto gap");
    let out = run(&org, &[&["install"], &base[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = json_lines(&out);
    let changed: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "result")
        .filter(|l| l["steps"].as_array().is_some_and(|s| s.iter().any(|x| x["done"] == true)))
        .map(|l| {
            format!(
                "{}/{}",
                l["target"]["account"].as_str().unwrap_or(""),
                l["target"]["region"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(changed, vec![format!("{victim}/us-west-2")], "only the failed target changes on resume");

    // Complete everywhere, wired correctly.
    for a in org.all_accounts() {
        assert_eq!(ctguard_resources(&org, &a).await, expected(&a, &key, None), "{a}");
        for r in REGIONS {
            check_wiring(&ep, &a, r).await;
        }
    }

    // A second run with nothing new makes no change, with O(1) calls per target.
    let out = run(&org, &[&["install"], &base[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = json_lines(&out);
    let s = summary(&lines);
    assert_eq!(s["changes"], 0, "{}", text(&out));
    assert_eq!(s["failed"], 0);
    let per_target = s["calls_per_target"].as_f64().unwrap_or(f64::MAX);
    assert!(per_target <= 8.0, "no-op run should need a handful of calls per target, got {per_target}");
    for a in org.all_accounts() {
        let cfg = account_config(&ep, &a, HOME).await;
        let st = aws_sdk_cloudformation::Client::new(&cfg)
            .describe_stacks()
            .stack_name("ctguard-region")
            .send()
            .await
            .expect("stack");
        assert_eq!(st.stacks()[0].stack_status().map(|s| s.as_str()), Some("CREATE_COMPLETE"), "{a}: never updated");
    }

    // status: healthy, each target covered directly.
    let out = run(&org, &["status", "--org", "--regions", &regions, "--json"]);
    assert_eq!(out.status.code(), Some(0), "status must be healthy:\n{}", text(&out));
    let lines = json_lines(&out);
    let targets: Vec<&Value> = lines.iter().filter(|l| l["type"] == "target").collect();
    assert_eq!(targets.len(), 10);
    for t in &targets {
        assert_eq!(t["covered_by"], "direct", "{t}");
        assert_eq!(t["code_current"], true, "{t}");
        assert_eq!(t["health"]["rule_state"], RULE_STATE, "{t}");
        assert_eq!(t["problems"], Value::Array(vec![]), "{t}");
    }
    assert_eq!(summary(&lines)["new_accounts_covered"], false, "installed with --no-auto-deploy");

    // status notices breakage: a disabled rule makes that target unhealthy (exit 1).
    let m0 = account_config(&ep, &org.members[0], "us-west-2").await;
    let ev = aws_sdk_eventbridge::Client::new(&m0);
    ev.disable_rule().name("ctguard-detector").send().await.expect("disable rule");
    let out = run(&org, &["status", "--org", "--regions", &regions, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let bad: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l["type"] == "target" && l["problems"] != Value::Array(vec![]))
        .collect();
    assert_eq!(bad.len(), 1, "{}", text(&out));
    assert!(bad[0]["problems"][0].as_str().unwrap_or_default().contains("state DISABLED"), "{}", bad[0]);

    // uninstall refuses without --yes when nobody can confirm (stdin is not a terminal).
    let out = run(&org, &["uninstall", "--org", "--regions", &regions]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert!(!ctguard_resources(&org, MGMT).await.is_empty(), "nothing removed without --yes");

    // uninstall: nothing of ctguard's left anywhere; a second run is a no-op.
    let out = run(&org, &["uninstall", "--org", "--regions", &regions, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left: nothing"), "{}", text(&out));
    for a in org.all_accounts() {
        assert_eq!(ctguard_resources(&org, &a).await, BTreeSet::new(), "{a}: ctguard resources left");
    }
    let out = run(&org, &["uninstall", "--org", "--regions", &regions, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(summary(&json_lines(&out))["changes"], 0, "second uninstall changes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_keep_state_keeps_only_the_tables() {
    let org = organization().await;
    let ep = org.endpoint();
    let member = org.members[0].clone();
    add_trail(&ep, MGMT).await;
    add_trail(&ep, &member).await;
    let accounts = format!("{MGMT},{member}");
    let out = run(&org, &["install", "--accounts", &accounts, "--regions", "us-east-1,us-west-2", "--no-auto-deploy"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(
        &org,
        &[
            "uninstall",
            "--accounts",
            &accounts,
            "--regions",
            "us-east-1,us-west-2",
            "--keep-state",
            "--remove-artifacts",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for a in [MGMT, member.as_str()] {
        let want: BTreeSet<String> =
            [format!("{HOME} stack ctguard-state"), format!("{HOME} table ctguard-state")].into_iter().collect();
        assert_eq!(ctguard_resources(&org, a).await, want, "{a}: only the state is kept");
    }
}

#[test]
fn templates_are_cfn_lint_clean() {
    let dir = workspace().join("templates");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("templates dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "artifacts, state, account, region: {files:?}");
    let out = std::process::Command::new(venv_tool("cfn-lint")).args(&files).output().expect("cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every string inside a YAML value (tagged values such as `!Sub` included).
fn strings(v: &serde_yaml_ng::Value, out: &mut Vec<String>) {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::String(s) => out.push(s.clone()),
        Y::Sequence(seq) => seq.iter().for_each(|x| strings(x, out)),
        Y::Mapping(m) => m.iter().for_each(|(k, x)| {
            strings(k, out);
            strings(x, out);
        }),
        Y::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

#[test]
fn detector_role_has_no_wildcard_beyond_its_own_log_group() {
    use serde_yaml_ng::Value as Y;
    let own_log_group =
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/ctguard-detector:*";
    let mut roles = 0;
    for t in ["ctguard-artifacts.yaml", "ctguard-state.yaml", "ctguard-account.yaml", "ctguard-region.yaml"] {
        let text = std::fs::read_to_string(workspace().join("templates").join(t)).expect("template");
        let doc: Y = serde_yaml_ng::from_str(&text).expect("YAML");
        let resources = doc.get("Resources").and_then(Y::as_mapping).expect("Resources");
        for (id, res) in resources {
            let ty = res.get("Type").and_then(Y::as_str).unwrap_or_default();
            if !ty.starts_with("AWS::IAM::") {
                continue;
            }
            let props = res.get("Properties").expect("Properties");
            assert!(props.get("ManagedPolicyArns").is_none(), "{t} {id:?}: no managed policies");
            // The role's inline policies, or one policy of its own attached to the role (the
            // conditional Security Hub grant).
            let own = [props.clone()];
            let (policies, expected_sids): (&[Y], &[&str]) = match ty {
                "AWS::IAM::Role" => {
                    roles += 1;
                    (
                        props.get("Policies").and_then(Y::as_sequence).expect("inline policies"),
                        &["Alerts", "DeadLetters", "OwnLogGroup", "StateTable"],
                    )
                }
                "AWS::IAM::Policy" => {
                    // `!Ref DetectorRole` is a tagged value to the YAML parser.
                    let attached: Vec<String> = props
                        .get("Roles")
                        .and_then(Y::as_sequence)
                        .into_iter()
                        .flatten()
                        .map(|r| format!("{r:?}"))
                        .collect();
                    assert!(
                        attached.len() == 1 && attached[0].contains("Ref") && attached[0].contains("\"DetectorRole\""),
                        "{t} {id:?}: attached to the detector role only: {attached:?}"
                    );
                    // Only when enabled.
                    match res.get("Condition").and_then(Y::as_str) {
                        Some("ImportFindings") => (&own, &["SecurityHubFindings"]),
                        Some("AutoContainSessions") => (&own, &["ContainOptedInRoles", "NeverCtguardsOwnRoles"]),
                        other => panic!("{t} {id:?}: a grant of its own must be conditional, not {other:?}"),
                    }
                }
                other => panic!("{t} {id:?}: unexpected IAM resource {other}"),
            };
            let mut sids = Vec::new();
            for p in policies {
                let stmts = p
                    .get("PolicyDocument")
                    .and_then(|d| d.get("Statement"))
                    .and_then(Y::as_sequence)
                    .expect("Statement");
                for s in stmts {
                    let sid = s.get("Sid").and_then(Y::as_str).unwrap_or("?").to_string();
                    // The one deny: automatic containment may never write ctguard's own roles.
                    let deny = sid == "NeverCtguardsOwnRoles";
                    assert_eq!(s.get("Effect").and_then(Y::as_str), Some(if deny { "Deny" } else { "Allow" }), "{sid}");
                    if deny {
                        assert_eq!(s.get("Action").and_then(Y::as_str), Some("iam:PutRolePolicy"));
                        let mut r = Vec::new();
                        strings(s.get("Resource").expect("Resource"), &mut r);
                        assert_eq!(
                            r,
                            [
                                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ctguard-*",
                                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*/ctguard-*"
                            ]
                        );
                        sids.push(sid);
                        continue;
                    }
                    // Any role of the account, but only those carrying the opt-in tag.
                    let tag_bound = s
                        .get("Condition")
                        .and_then(|c| c.get("StringEquals"))
                        .and_then(|c| c.get("aws:ResourceTag/ctguard-auto-contain"))
                        .and_then(Y::as_str)
                        == Some("true");
                    let mut actions = Vec::new();
                    strings(s.get("Action").expect("Action"), &mut actions);
                    for a in &actions {
                        assert!(!a.contains('*'), "{t} {sid}: wildcard action {a}");
                    }
                    assert!(
                        !actions.iter().any(|a| a == "logs:CreateLogGroup"),
                        "{t} {sid}: the stack creates the log group"
                    );
                    let mut resources = Vec::new();
                    strings(s.get("Resource").expect("Resource"), &mut resources);
                    for r in &resources {
                        let allowed = r == own_log_group
                            || (tag_bound && r == "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*");
                        assert!(!r.contains('*') || allowed, "{t} {sid}: wildcard resource {r}");
                    }
                    assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none(), "{t} {sid}: no Not*");
                    sids.push(sid);
                }
            }
            sids.sort();
            assert_eq!(sids, expected_sids, "{t}: the detector role's grants");
        }
    }
    assert_eq!(roles, 1, "exactly one IAM resource (the detector role)");
}

/// The side-effects alarm watches exactly the metric the detector writes in its log.
#[test]
fn the_side_effects_alarm_watches_the_metric_the_detector_writes() {
    use serde_yaml_ng::Value as Y;
    let text = std::fs::read_to_string(workspace().join("templates/ctguard-region.yaml")).expect("template");
    let doc: Y = serde_yaml_ng::from_str(&text).expect("YAML");
    let p = doc
        .get("Resources")
        .and_then(|r| r.get("DetectorSideEffectsAlarm"))
        .and_then(|a| a.get("Properties"))
        .expect("the alarm");
    assert_eq!(p.get("Namespace").and_then(Y::as_str), Some(ctguard_detector::emf::NAMESPACE));
    assert_eq!(p.get("MetricName").and_then(Y::as_str), Some(ctguard_detector::emf::SIDE_EFFECT_FAILURES));
    let dims = p.get("Dimensions").and_then(Y::as_sequence).expect("dimensions");
    assert_eq!(dims.len(), 1, "the function-wide dimension set only");
    assert_eq!(dims[0].get("Name").and_then(Y::as_str), Some("FunctionName"));
    assert!(format!("{:?}", dims[0].get("Value")).contains("DetectorFunction"), "{dims:?}");
    // The log line carries that dimension set.
    let line = ctguard_detector::emf::side_effect_failure("ctguard-detector", ctguard_detector::emf::Step::Record, 0);
    let v: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], serde_json::json!(["FunctionName"]));
}

/// The state table lets the installer delete only what `ctguard verify`'s synthetic keys leave.
#[test]
fn the_state_tables_delete_exception_covers_exactly_verifys_items() {
    use ctguard_deploy::verify::{synthetic_key, synthetic_state_keys, SYNTHETIC_KEY_PREFIX};
    let text = std::fs::read_to_string(workspace().join("templates/ctguard-state.yaml")).expect("template");
    let patterns = [format!("K#{SYNTHETIC_KEY_PREFIX}*"), format!("A#{SYNTHETIC_KEY_PREFIX}*")];
    for p in &patterns {
        assert!(text.contains(&format!("\"{p}\"")), "the template's LeadingKeys name {p}");
    }
    for seed in [1, 7, 12345] {
        let key = synthetic_key(seed);
        assert!(ctguard_detector::engine::is_synthetic_key(&key), "{key}");
        for pk in synthetic_state_keys(&key, "ip:198.51.100.1") {
            assert!(
                patterns.iter().any(|p| pk.starts_with(p.trim_end_matches('*'))),
                "{pk} is deletable by the installer"
            );
        }
    }
    // A real key's items never are.
    assert!(!"K#ASIAQWERTYQWERTYQWER".starts_with(&format!("K#{SYNTHETIC_KEY_PREFIX}")));
}
