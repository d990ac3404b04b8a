//! The StackSets mode (`install --org`, the default: service-managed StackSets with automatic
//! deployment for the members, the management account directly) end to end on the emulator
//! whose functions run (`scripts/moto_lambda.py`) and whose service-managed StackSets behave as
//! AWS documents them (`scripts/moto_stacksets.py`: OU targeting, account filters, automatic
//! deployment on CreateAccount/MoveAccount/RemoveAccountFromOrganization, no instance in the
//! management account, instances as real stacks in the member accounts).
//!
//! Every assertion is on what is deployed in each account, listed with that account's own
//! credentials: an IAM user the test creates in each member (its "eyes"), so that the members'
//! `OrganizationAccountAccessRole` can be deleted and the emulator then refuses any AssumeRole
//! into them, as AWS does for a role that does not exist.
//!
//! What the emulator cannot do, said plainly: StackSets operations complete synchronously (AWS
//! takes minutes; ctguard's polling sees the final status at once); `CallAs` and trusted access
//! are not checked; verify of a member is run with the member's own credentials, since verify
//! sends events and reads queues in the account itself (with no role into the members, that is
//! how an operator verifies them too).

use std::collections::BTreeMap;
use std::process::Output;

use aws_config::SdkConfig;
use ctguard_tests::*;
use serde_json::Value;

const MGMT: &str = "123456789012";
const HOME: &str = "us-east-1";
const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];
const MEMBER_ROLE: &str = "OrganizationAccountAccessRole";
const OBSERVER: &str = "ctguard-tests-observer";

/// Static credentials (key, secret, token).
type Creds = (String, String, Option<String>);

/// The emulated organization: management account + members in two OUs, each with a logging
/// trail, and an observer user per member.
struct Org {
    emu: Emulator,
    /// "prod" and "dev".
    ous: Vec<String>,
    members: Vec<String>,
    observers: BTreeMap<String, Creds>,
}

fn mgmt_creds() -> Creds {
    ("testing".into(), "testing".into(), None)
}

fn config(endpoint: &str, c: &Creds, region: &str) -> SdkConfig {
    sdk_config(endpoint, region, &c.0, &c.1, c.2.as_deref())
}

impl Org {
    fn orgs(&self) -> aws_sdk_organizations::Client {
        aws_sdk_organizations::Client::new(&self.emu.config(HOME))
    }

    fn creds(&self, account: &str) -> Creds {
        if account == MGMT {
            return mgmt_creds();
        }
        self.observers.get(account).cloned().unwrap_or_else(|| panic!("no observer in {account}"))
    }

    fn all_accounts(&self) -> Vec<String> {
        std::iter::once(MGMT.to_string()).chain(self.members.iter().cloned()).collect()
    }

    /// A new member account in `ou`, with a trail and an observer (created through its
    /// OrganizationAccountAccessRole, which CreateAccount makes).
    async fn join(&mut self, name: &str, ou: &str) -> String {
        let st = self
            .orgs()
            .create_account()
            .email(format!("{name}@example.com"))
            .account_name(name)
            .send()
            .await
            .expect("create account");
        let id = st.create_account_status().and_then(|s| s.account_id()).expect("account id").to_string();
        let role = role_session(&self.emu.endpoint, &id).await.expect("the new account's role");
        let cfg = config(&self.emu.endpoint, &role, HOME);
        logging_trail(&cfg).await;
        self.observers.insert(id.clone(), observer(&cfg).await);
        self.move_account(&id, ou).await;
        self.members.push(id.clone());
        id
    }

    async fn move_account(&self, account: &str, to: &str) {
        let parents = self.orgs().list_parents().child_id(account).send().await.expect("parents");
        let from = parents.parents().first().and_then(|p| p.id()).expect("a parent").to_string();
        self.orgs()
            .move_account()
            .account_id(account)
            .source_parent_id(from)
            .destination_parent_id(to)
            .send()
            .await
            .expect("move account");
    }
}

async fn role_session(endpoint: &str, account: &str) -> Result<Creds, String> {
    let sts = aws_sdk_sts::Client::new(&sdk_config(endpoint, HOME, "testing", "testing", None));
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{MEMBER_ROLE}"))
        .role_session_name("ctguard-tests")
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let c = out.credentials().ok_or("no credentials")?;
    Ok((c.access_key_id().to_string(), c.secret_access_key().to_string(), Some(c.session_token().to_string())))
}

/// An IAM user with an access key in the account of `cfg`: the emulator maps its key to that
/// account, so the test reads (and verifies) the account without any cross-account role.
async fn observer(cfg: &SdkConfig) -> Creds {
    let iam = aws_sdk_iam::Client::new(cfg);
    iam.create_user().user_name(OBSERVER).send().await.expect("observer user");
    let k = iam.create_access_key().user_name(OBSERVER).send().await.expect("observer key");
    let k = k.access_key().expect("access key");
    (k.access_key_id().to_string(), k.secret_access_key().to_string(), None)
}

/// Management account + 4 members (2 in "prod", 2 in "dev"), trails everywhere.
async fn organization() -> Org {
    use aws_sdk_organizations::types::OrganizationFeatureSet;
    let emu = Emulator::start();
    let orgs = aws_sdk_organizations::Client::new(&emu.config(HOME));
    orgs.create_organization().feature_set(OrganizationFeatureSet::All).send().await.expect("organization");
    let roots = orgs.list_roots().send().await.expect("roots");
    let root = roots.roots().first().and_then(|r| r.id()).expect("root id").to_string();
    let mut ous = Vec::new();
    for name in ["prod", "dev"] {
        let ou = orgs.create_organizational_unit().parent_id(&root).name(name).send().await.expect("ou");
        ous.push(ou.organizational_unit().and_then(|o| o.id()).expect("ou id").to_string());
    }
    logging_trail(&emu.config(HOME)).await;
    crate::install::stacksets_trusted_access(&emu.config(HOME)).await;
    let mut org = Org { emu, ous: ous.clone(), members: Vec::new(), observers: BTreeMap::new() };
    for i in 0..4 {
        org.join(&format!("member{i}"), &ous[i % 2]).await;
    }
    org
}

/// Deletes OrganizationAccountAccessRole in every member and checks it can no longer be assumed.
async fn drop_member_roles(org: &Org) {
    for m in &org.members {
        drop_role(org, m).await;
    }
}

async fn drop_role(org: &Org, account: &str) {
    let iam = aws_sdk_iam::Client::new(&config(&org.emu.endpoint, &org.creds(account), HOME));
    iam.delete_role().role_name(MEMBER_ROLE).send().await.expect("delete the member role");
    let refused = role_session(&org.emu.endpoint, account).await.expect_err("no role, no session");
    assert!(refused.contains("AccessDenied"), "{account}: {refused}");
}

fn run(org: &Org, args: &[&str]) -> Output {
    ctguard(Some(&org.emu.endpoint)).args(args).output().expect("run ctguard")
}

/// `ctguard` acting as the account of `c` (an observer user's key: no session token).
fn run_as(org: &Org, c: &Creds, args: &[&str]) -> Output {
    let mut cmd = ctguard(Some(&org.emu.endpoint));
    cmd.env("AWS_ACCESS_KEY_ID", &c.0).env("AWS_SECRET_ACCESS_KEY", &c.1).env_remove("AWS_SESSION_TOKEN");
    if let Some(t) = &c.2 {
        cmd.env("AWS_SESSION_TOKEN", t);
    }
    cmd.args(args).output().expect("run ctguard")
}

fn must(org: &Org, o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what} failed:\n{}\n--- emulator log (tail)\n{}",
        output_text(&o),
        tail(&org.emu.log(), 40)
    );
    o
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Stack names with a StackSet instance's generated suffix cut (`StackSet-ctguard-region-auto-*`):
/// two instances of one stack set would show as two equal entries.
fn stack_kind(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("StackSet-") {
        // StackSet-<stack set name>-<uuid (5 dash-separated groups)>
        let parts: Vec<&str> = rest.split('-').collect();
        let keep = parts.len().saturating_sub(5);
        return rest.starts_with("ctguard-").then(|| format!("StackSet-{}-*", parts[..keep].join("-")));
    }
    name.starts_with("ctguard-").then(|| name.to_string())
}

/// What ctguard deployed in `account`, listed with the account's own credentials, sorted, with
/// duplicates kept: "<region> stack|function|table|topic <name>", "role <name>".
async fn deployed(org: &Org, account: &str) -> Vec<String> {
    let creds = org.creds(account);
    let ep = &org.emu.endpoint;
    let mut found = Vec::new();
    for region in REGIONS {
        let cfg = config(ep, &creds, region);
        let cfn = aws_sdk_cloudformation::Client::new(&cfg);
        let stacks = cfn.describe_stacks().send().await.unwrap_or_else(|e| panic!("{account}: stacks: {e:?}"));
        for st in stacks.stacks() {
            let live = st.stack_status().is_none_or(|s| s.as_str() != "DELETE_COMPLETE");
            if let Some(k) = stack_kind(st.stack_name().unwrap_or_default()).filter(|_| live) {
                found.push(format!("{region} stack {k}"));
            }
        }
        let functions = aws_sdk_lambda::Client::new(&cfg).list_functions().send().await.expect("functions");
        for f in functions.functions().iter().filter_map(|f| f.function_name()).filter(|n| n.starts_with("ctguard")) {
            found.push(format!("{region} function {f}"));
        }
        let tables = aws_sdk_dynamodb::Client::new(&cfg).list_tables().send().await.expect("tables");
        for t in tables.table_names().iter().filter(|n| n.starts_with("ctguard")) {
            found.push(format!("{region} table {t}"));
        }
        let topics = aws_sdk_sns::Client::new(&cfg).list_topics().send().await.expect("topics");
        for t in topics.topics().iter().filter_map(|t| t.topic_arn()).filter(|a| a.contains(":ctguard")) {
            found.push(format!("{region} topic {}", t.rsplit(':').next().unwrap_or_default()));
        }
    }
    let iam = aws_sdk_iam::Client::new(&config(ep, &creds, HOME));
    for r in iam.list_roles().send().await.expect("roles").roles() {
        if r.role_name().starts_with("ctguard") {
            found.push(format!("role {}", r.role_name()));
        }
    }
    found.sort();
    found
}

/// What the StackSets leave in a member: the three stack sets' instances (state and account at
/// home, region everywhere) and their resources; exactly one of each.
fn member_expected() -> Vec<String> {
    let mut e = vec![
        format!("{HOME} stack StackSet-ctguard-state-auto-*"),
        format!("{HOME} stack StackSet-ctguard-account-auto-*"),
        format!("{HOME} table ctguard-state"),
        format!("{HOME} topic ctguard-alerts"),
    ];
    for region in REGIONS {
        e.push(format!("{region} stack StackSet-ctguard-region-auto-*"));
        e.push(format!("{region} function ctguard-detector"));
        e.push(format!("role ctguard-detector-{region}"));
    }
    e.sort();
    e
}

/// The management account: ctguard's own stacks, no StackSet instance.
fn management_expected() -> Vec<String> {
    let mut e = vec![
        format!("{HOME} stack ctguard-state"),
        format!("{HOME} stack ctguard-account"),
        format!("{HOME} table ctguard-state"),
        format!("{HOME} topic ctguard-alerts"),
    ];
    for region in REGIONS {
        e.push(format!("{region} stack ctguard-artifacts"));
        e.push(format!("{region} stack ctguard-region"));
        e.push(format!("{region} function ctguard-detector"));
        e.push(format!("role ctguard-detector-{region}"));
    }
    e.sort();
    e
}

/// A member deployed directly (`--deploy-with direct`): ctguard's own stacks.
fn direct_member_expected() -> Vec<String> {
    let mut e: Vec<String> = management_expected().into_iter().filter(|x| !x.contains("ctguard-artifacts")).collect();
    e.sort();
    e
}

fn expected(account: &str) -> Vec<String> {
    if account == MGMT {
        management_expected()
    } else {
        member_expected()
    }
}

async fn snapshot(org: &Org) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for a in org.all_accounts() {
        out.insert(a.clone(), deployed(org, &a).await);
    }
    out
}

/// `ctguard verify` in the account of `creds` (its own regions): per region, whether it passed.
fn verify_as(org: &Org, creds: &Creds) -> BTreeMap<String, bool> {
    let out = run_as(org, creds, &["verify", "--regions", &REGIONS.join(","), "--timeout", "30", "--json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", output_text(&out)))
        })
        .map(|o| (o["region"].as_str().unwrap_or_default().to_string(), o["pass"] == true))
        .collect()
}

fn install_args(extra: &[&str]) -> Vec<String> {
    let regions = REGIONS.join(",");
    ["install", "--regions", regions.as_str(), "--wait-timeout", "120", "--json"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stacksets_mode_installs_verifies_and_uninstalls_with_no_role_in_the_members() {
    let org = organization().await;
    drop_member_roles(&org).await;
    let regions = REGIONS.join(",");

    // The default for --org on a fresh install: StackSets for the members.
    must(&org, run(&org, &strs(&install_args(&["--org"]))), "install --org");
    for a in org.all_accounts() {
        assert_eq!(deployed(&org, &a).await, expected(&a), "{a}: one detector, by its one owner");
    }

    // status reads the members from the StackSets' instances (no role there) and the management
    // account directly: every target healthy, joining accounts covered.
    let out = must(&org, run(&org, &["status", "--org", "--regions", &regions, "--json"]), "status --org");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary = lines.iter().find(|l| l["type"] == "summary").expect("a summary line");
    assert_eq!((summary["unhealthy"].as_u64(), summary["new_accounts_covered"].as_bool()), (Some(0), Some(true)));
    for l in lines.iter().filter(|l| l["type"] == "target") {
        let want = if l["target"]["account"] == MGMT { "direct" } else { "auto_deploy" };
        assert_eq!(l["covered_by"], want, "{l}");
    }
    assert_eq!(lines.len(), org.all_accounts().len() * REGIONS.len() + 1, "{}", output_text(&out));

    // The detector runs in every account × region: verify sends a synthetic reuse through
    // EventBridge → the function deployed there → DynamoDB → SNS, in each account itself.
    for a in org.all_accounts() {
        let verdicts = verify_as(&org, &org.creds(&a));
        let want: BTreeMap<String, bool> = REGIONS.iter().map(|r| (r.to_string(), true)).collect();
        assert_eq!(verdicts, want, "{a}: verify\n{}", tail(&org.emu.log(), 40));
        for r in REGIONS {
            let arn = format!("arn:aws:lambda:{r}:{a}:function:{FUNCTION_NAME}");
            let n = org.emu.stats()["functions"][&arn]["invocations"].as_u64().unwrap_or(0);
            assert!(n >= 1, "{a}/{r}: the function in that account ran ({n} invocations)");
        }
    }

    // An operator overrides a parameter of one member's instance: `--plan` reads the listed
    // instances' overrides (DescribeStackInstance) and names it, changing nothing.
    let member = org.members[0].clone();
    use aws_sdk_cloudformation::types::{AccountFilterType, DeploymentTargets, Parameter};
    let cfn = aws_sdk_cloudformation::Client::new(&org.emu.config(HOME));
    let root = org.orgs().list_roots().send().await.expect("roots").roots()[0].id().expect("root").to_string();
    cfn.update_stack_instances()
        .stack_set_name("ctguard-region-auto")
        .deployment_targets(
            DeploymentTargets::builder()
                .organizational_unit_ids(&root)
                .accounts(&member)
                .account_filter_type(AccountFilterType::Intersection)
                .build(),
        )
        .regions("us-west-2")
        .parameter_overrides(Parameter::builder().parameter_key("LogRetentionDays").parameter_value("7").build())
        .send()
        .await
        .expect("override one instance");
    let plan = run(&org, &["install", "--org", "--regions", &regions, "--plan"]);
    assert_eq!(plan.status.code(), Some(0), "nothing to change:\n{}", output_text(&plan));
    let line = format!("{member}:us-west-2 overrides LogRetentionDays=7 (StackSet: 90)");
    assert!(String::from_utf8_lossy(&plan.stderr).contains(&line), "{line}\n{}", output_text(&plan));

    // A re-run changes nothing and creates no second copy.
    must(&org, run(&org, &strs(&install_args(&["--org"]))), "install --org again");
    for a in org.all_accounts() {
        assert_eq!(deployed(&org, &a).await, expected(&a), "{a}: after the re-run");
    }

    // Uninstall through the StackSets (and the management account directly): nothing left.
    must(&org, run(&org, &["uninstall", "--org", "--regions", &regions, "--yes"]), "uninstall --org");
    for a in org.all_accounts() {
        assert_eq!(deployed(&org, &a).await, Vec::<String>::new(), "{a}: ctguard resources left");
    }
    let cfn = aws_sdk_cloudformation::Client::new(&org.emu.config(HOME));
    for name in ["ctguard-state-auto", "ctguard-account-auto", "ctguard-region-auto"] {
        let d = cfn.describe_stack_set().stack_set_name(name).send().await;
        assert!(d.is_err(), "{name} is deleted: {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_joining_and_leaving_keep_one_owner_and_touch_no_one_else() {
    let mut org = organization().await;
    drop_member_roles(&org).await;
    let regions = REGIONS.join(",");
    must(&org, run(&org, &strs(&install_args(&["--org"]))), "install --org");
    let before = snapshot(&org).await;

    // Joins after the install (into "dev"): automatic deployment gives it the detector at once.
    let dev = org.ous[1].clone();
    let late = org.join("late", &dev).await;
    drop_role(&org, &late).await;
    assert_eq!(deployed(&org, &late).await, member_expected(), "automatic deployment, no re-run");

    // The re-run sees the account's instances (StackSets own it): no direct stack, no collision,
    // exactly one detector there, nothing changed elsewhere.
    let out = must(&org, run(&org, &strs(&install_args(&["--org"]))), "install --org after a join");
    assert_eq!(deployed(&org, &late).await, member_expected(), "{}", output_text(&out));
    for (a, was) in &before {
        assert_eq!(&deployed(&org, a).await, was, "{a}: untouched by the join and the re-run");
    }

    // An account leaves the organization: its instances (and their stacks) go, the others stay.
    // (members alternate prod, dev: the leaver is from dev, prod keeps two.)
    let leaver = org.members[1].clone();
    org.orgs().remove_account_from_organization().account_id(&leaver).send().await.expect("remove account");
    assert_eq!(deployed(&org, &leaver).await, Vec::<String>::new(), "the leaver's detector is gone");
    for (a, was) in before.iter().filter(|(a, _)| **a != leaver) {
        assert_eq!(&deployed(&org, a).await, was, "{a}: untouched by the departure");
    }
    assert_eq!(deployed(&org, &late).await, member_expected());

    // --ou installs: an account moved out of the targeted OU loses its instances.
    must(&org, run(&org, &["uninstall", "--org", "--regions", &regions, "--yes"]), "uninstall --org");
    org.members.retain(|m| *m != leaver);
    for a in org.all_accounts() {
        assert_eq!(deployed(&org, &a).await, Vec::<String>::new(), "{a}: after uninstall");
    }
    let (prod, prod_members) = (org.ous[0].clone(), [org.members[0].clone(), org.members[1].clone()]);
    // The StackSets mode is the default for --ou too.
    must(&org, run(&org, &strs(&install_args(&["--ou", &prod]))), "install --ou prod");
    let snap = snapshot(&org).await;
    for a in &prod_members {
        assert_eq!(snap.get(a), Some(&member_expected()), "{a}: below the targeted OU");
    }
    let [mover, stayer] = prod_members;
    org.move_account(&mover, &dev).await;
    assert_eq!(deployed(&org, &mover).await, Vec::<String>::new(), "moved out of the targeted OU");
    assert_eq!(deployed(&org, &stayer).await, member_expected(), "still below the targeted OU");
    for (a, was) in snap.iter().filter(|(a, _)| **a != mover) {
        assert_eq!(&deployed(&org, a).await, was, "{a}: untouched by the move");
    }

    // `uninstall --ou` removes that OU's instances and then the StackSets, through the
    // management account alone.
    must(&org, run(&org, &["uninstall", "--ou", &prod, "--regions", &regions, "--yes"]), "uninstall --ou prod");
    assert_eq!(deployed(&org, &stayer).await, Vec::<String>::new());
    let cfn = aws_sdk_cloudformation::Client::new(&org.emu.config(HOME));
    for name in ["ctguard-state-auto", "ctguard-account-auto", "ctguard-region-auto"] {
        assert!(cfn.describe_stack_set().stack_set_name(name).send().await.is_err(), "{name} is deleted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_mode_covers_a_joining_account_on_the_rerun_with_one_detector() {
    let mut org = organization().await;
    let direct = install_args(&["--org", "--deploy-with", "direct"]);
    must(&org, run(&org, &strs(&direct)), "install --org --deploy-with direct");
    let before = snapshot(&org).await;
    for (a, found) in &before {
        let want = if a == MGMT { management_expected() } else { direct_member_expected() };
        assert_eq!(found, &want, "{a}: direct stacks only (no StackSet instance)");
    }
    // The first install's exclusion list covered every account: no instance, so an account
    // joining now is not covered until a re-run...
    let dev = org.ous[1].clone();
    let late = org.join("late", &dev).await;
    assert_eq!(deployed(&org, &late).await, Vec::<String>::new(), "not covered before the re-run");
    // ...which deploys it directly, once, and changes nothing elsewhere.
    must(&org, run(&org, &strs(&direct)), "install --org --deploy-with direct after a join");
    assert_eq!(deployed(&org, &late).await, direct_member_expected());
    for (a, was) in &before {
        assert_eq!(&deployed(&org, a).await, was, "{a}: untouched");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegated_administrator_installs_and_uninstalls_through_call_as_delegated_admin() {
    // The emulator refuses service-managed StackSets calls from anyone but the management
    // account (CallAs SELF) or a registered StackSets delegated administrator (DELEGATED_ADMIN).
    let org = organization().await;
    let admin = org.members[0].clone();
    org.orgs()
        .register_delegated_administrator()
        .account_id(&admin)
        .service_principal("member.org.stacksets.cloudformation.amazonaws.com")
        .send()
        .await
        .expect("register the StackSets delegated administrator");
    let creds = org.creds(&admin);
    let regions = REGIONS.join(",");
    let out = run_as(&org, &creds, &strs(&install_args(&["--org"])));
    must(&org, out, "install --org as the delegated administrator");
    // The management account directly (through its role: the emulator does not check that the
    // management account has one, AWS would), its artifacts in the administrator's account, and
    // every member through the administrator's StackSets, the administrator's own account too.
    assert_eq!(deployed(&org, MGMT).await, direct_member_expected(), "management account");
    let mut with_artifacts = member_expected();
    with_artifacts.extend(REGIONS.iter().map(|r| format!("{r} stack ctguard-artifacts")));
    with_artifacts.sort();
    assert_eq!(deployed(&org, &admin).await, with_artifacts, "the administrator's account");
    for m in &org.members[1..] {
        assert_eq!(deployed(&org, m).await, member_expected(), "{m}");
    }
    // The management account's own view has no ctguard StackSet: they are the administrator's.
    let mgmt_sets = aws_sdk_cloudformation::Client::new(&org.emu.config(HOME)).list_stack_sets().send().await;
    assert!(mgmt_sets.expect("list").summaries().is_empty());

    let out = run_as(&org, &creds, &["uninstall", "--org", "--regions", &regions, "--yes"]);
    must(&org, out, "uninstall --org as the delegated administrator");
    for a in org.all_accounts() {
        assert_eq!(deployed(&org, &a).await, Vec::<String>::new(), "{a}: ctguard resources left");
    }
}
