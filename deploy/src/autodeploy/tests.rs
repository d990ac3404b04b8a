//! Account lifecycle tests against the fakes: [`FakeCloud`] for direct stacks and [`FakeOrg`]
//! for service-managed StackSets. The emulator (moto) ignores OU targeting, AccountFilterType
//! and automatic deployment and deploys into the management account, so these tests use the
//! fake organization, which follows AWS's documented behaviour (see `stacksets.rs`), and
//! assert the recorded request sequence of each transition.

use std::time::Duration;

use super::*;
use crate::deploy::{RunOptions, RunReport};
use crate::stacks::FakeCloud;
use crate::stacksets::{FakeOrg, FakeStackSets};
use crate::targets::expand;

const M: &str = "111111111111";
const A: &str = "222222222222";
const B: &str = "333333333333";
const C: &str = "444444444444";
const ROOT: &str = "r-root";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

fn cfg() -> InstallConfig {
    InstallConfig {
        version: "0.1.0".into(),
        code_hash: "ab".repeat(32),
        artifacts_account: M.into(),
        home_region: "us-east-1".into(),
        org_id: Some("o-abcdefghij".into()),
        alert_topic_arn: None,
        alert_email: None,
        policy: "{}".into(),
        log_retention_days: 90,
        default_ttl_hours: 12,
        security_hub: false,
        auto_contain: false,
    }
}

/// The direct deployment's request: everything stated, no confirmation needed.
fn request() -> crate::deploy::Request<'static> {
    static CFG: std::sync::OnceLock<InstallConfig> = std::sync::OnceLock::new();
    crate::deploy::Request {
        cfg: CFG.get_or_init(cfg),
        stated: crate::plan::Stated::ALL,
        gate: &|_: &[crate::plan::TargetPlan]| Ok(()),
    }
}

struct World {
    cloud: FakeCloud,
    sets: FakeStackSets,
}

fn world() -> World {
    let cloud = FakeCloud::default();
    let mut org = FakeOrg::new(M, ROOT);
    org.add_ou("ou-a", ROOT);
    org.add_ou("ou-b", ROOT);
    org.accounts.insert(A.into(), "ou-a".into());
    org.accounts.insert(B.into(), "ou-b".into());
    org.cloud = Some(cloud.clone());
    World { cloud, sets: FakeStackSets::new(org) }
}

fn opts(plan_only: bool) -> RunOptions {
    let poll = PollOptions {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        timeout: Duration::from_secs(5),
        ..PollOptions::default()
    };
    RunOptions { concurrency: 4, plan_only, allow_missing_trail: true, poll }
}

/// The organization's ACTIVE accounts (what `--org` selects), as `org::all_accounts` lists them.
fn active(w: &World) -> Vec<String> {
    w.sets.with(|o| o.accounts.keys().filter(|a| !o.suspended.contains(*a)).cloned().collect())
}

async fn install(w: &World, asked: Option<DeployWith>, ous: &[&str], plan_only: bool) -> RolloutReport {
    let accounts: Vec<String> = if ous == [ROOT] {
        active(w)
    } else {
        let all = active(w);
        w.sets.with(|o| {
            all.into_iter()
                .filter(|a| ous.iter().any(|ou| o.accounts.get(a).map(String::as_str) == Some(*ou)))
                .collect()
        })
    };
    let regions: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
    let set = expand(&accounts, &regions, "us-east-1", false).unwrap();
    let ro = Rollout {
        ous: ous.iter().map(|s| s.to_string()).collect(),
        management: M.into(),
        asked,
        auto_deploy: true,
        org_wide: true,
        prefs: Prefs::default(),
    };
    let rep = |_: &DeployEvent| {};
    rollout(&w.cloud, &w.sets, &set, &cfg(), &request(), b"zip", &opts(plan_only), &ro, &rep).await.unwrap()
}

fn direct_stacks(w: &World, account: &str) -> usize {
    w.cloud.with(|c| c.stacks.keys().filter(|(t, n)| t.account == account && n == "ctguard-region").count())
}

fn instances(w: &World, account: &str) -> usize {
    w.sets.with(|o| o.instances("ctguard-region-auto").keys().filter(|(a, _)| a == account).count())
}

/// Detectors per region of `account`: exactly one everywhere is the invariant.
fn detectors(w: &World, account: &str) -> usize {
    direct_stacks(w, account) + instances(w, account)
}

fn clear(w: &World) {
    w.sets.with(|o| o.requests.clear());
    w.cloud.with(|c| c.calls.clear());
}

fn failed(r: &RunReport) -> Vec<String> {
    r.results.iter().filter(|x| x.failed()).map(|x| format!("{}: {:?}", x.target, x.outcome)).collect()
}

#[tokio::test]
async fn stacksets_mode_installs_members_through_stacksets_and_the_management_account_directly() {
    let w = world();
    let r = install(&w, Some(DeployWith::StackSets), &[ROOT], false).await;
    assert!(failed(&r.report).is_empty(), "{:?}", failed(&r.report));
    assert_eq!(
        w.sets.writes(),
        [
            "CreateStackSet ctguard-state-auto",
            "CreateStackInstances ctguard-state-auto ous=r-root filter=None accounts= regions=us-east-1",
            "CreateStackSet ctguard-account-auto",
            "CreateStackInstances ctguard-account-auto ous=r-root filter=None accounts= regions=us-east-1",
            "CreateStackSet ctguard-region-auto",
            "CreateStackInstances ctguard-region-auto ous=r-root filter=None accounts= regions=us-east-1,eu-west-1",
        ]
    );
    for a in [A, B] {
        assert_eq!(instances(&w, a), 2, "{a}: one instance per region");
        assert_eq!(direct_stacks(&w, a), 0, "{a}: no direct stack, so no role was needed");
    }
    assert_eq!(direct_stacks(&w, M), 2, "management account directly");
    assert_eq!(instances(&w, M), 0, "StackSets never deploy into the management account");
    // No AssumeRole-backed call reached a member account.
    assert!(w.cloud.with(|c| c.calls.iter().all(|l| l.starts_with(M))), "{:?}", w.cloud.with(|c| c.calls.clone()));
    // Per account × region rows from the operation results.
    let rows: Vec<String> =
        r.report.results.iter().filter(|x| x.target.account == A).map(|x| x.target.to_string()).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(r.mode, Some(DeployWith::StackSets));
}

#[tokio::test]
async fn stacksets_mode_join_then_rerun_sends_nothing_and_leave_removes_only_that_account() {
    let w = world();
    install(&w, None, &[ROOT], false).await; // org-wide default: StackSets
    w.sets.with(|o| o.join(C, "ou-b"));
    assert_eq!(instances(&w, C), 2, "automatic deployment covered the new account");
    clear(&w);
    let r = install(&w, None, &[ROOT], false).await;
    assert!(failed(&r.report).is_empty(), "{:?}", failed(&r.report));
    assert!(w.sets.writes().is_empty(), "a re-run with nothing new sends no write: {:?}", w.sets.writes());
    for a in [A, B, C] {
        assert_eq!(detectors(&w, a), 2, "{a}: exactly one detector per region");
    }
    w.sets.with(|o| o.leave(A));
    assert_eq!(instances(&w, A), 0, "the leaving account's instances go");
    assert_eq!((instances(&w, B), instances(&w, C)), (2, 2), "the others stay");
    clear(&w);
    install(&w, None, &[ROOT], false).await;
    assert!(w.sets.writes().is_empty(), "{:?}", w.sets.writes());
}

#[tokio::test]
async fn stacksets_mode_suspended_account_is_skipped_and_kept_and_missing_accounts_are_named() {
    let w = world();
    install(&w, None, &[ROOT], false).await;
    w.sets.with(|o| o.suspend(B));
    // An account that joined while automatic deployment could not reach it: no instance.
    w.sets.with(|o| o.accounts.insert(C.into(), "ou-a".into()));
    clear(&w);
    let r = install(&w, None, &[ROOT], false).await;
    assert!(failed(&r.report).is_empty(), "{:?}", failed(&r.report));
    assert_eq!(
        w.sets.writes(),
        [
            format!("CreateStackInstances ctguard-state-auto ous=r-root filter=Intersection accounts={C} regions=us-east-1"),
            format!("CreateStackInstances ctguard-account-auto ous=r-root filter=Intersection accounts={C} regions=us-east-1"),
            format!(
                "CreateStackInstances ctguard-region-auto ous=r-root filter=Intersection accounts={C} regions=us-east-1,eu-west-1"
            ),
        ],
        "only the uncovered account is named; the suspended one is not re-targeted"
    );
    assert_eq!(instances(&w, B), 2, "a suspended account keeps its instances");
    assert_eq!(instances(&w, C), 2);
}

#[tokio::test]
async fn ou_install_follows_accounts_moved_between_ous() {
    let w = world();
    install(&w, Some(DeployWith::StackSets), &["ou-a"], false).await;
    assert_eq!((instances(&w, A), instances(&w, B)), (2, 0));
    // The management account is not below ou-a: no stack of its own, but the artifacts buckets
    // the instances read the function's code from are there.
    for r in REGIONS {
        let has = |n: &str| w.cloud.with(|c| c.stacks.contains_key(&(Target::new(M, r), n.to_string())));
        assert!(has("ctguard-artifacts"), "{r}: the instances' code bucket");
        assert!(!has("ctguard-region"), "{r}: the management account is not selected");
    }
    w.sets.with(|o| o.move_account(A, "ou-b"));
    assert_eq!(instances(&w, A), 0, "moved out of the targeted OU: instances deleted (not retained)");
    w.sets.with(|o| o.move_account(B, "ou-a"));
    assert_eq!(instances(&w, B), 2, "moved into the targeted OU: automatic deployment");
    clear(&w);
    install(&w, None, &["ou-a"], false).await;
    assert!(w.sets.writes().is_empty(), "{:?}", w.sets.writes());
}

#[tokio::test]
async fn new_region_is_added_below_the_ous_without_touching_accounts() {
    let w = world();
    install(&w, None, &[ROOT], false).await;
    clear(&w);
    // Same org, a third region asked for.
    let regions: Vec<String> = ["us-east-1", "eu-west-1", "ap-south-1"].iter().map(|s| s.to_string()).collect();
    let set = expand(&active(&w), &regions, "us-east-1", false).unwrap();
    let ro = Rollout {
        ous: vec![ROOT.into()],
        management: M.into(),
        asked: None,
        auto_deploy: true,
        org_wide: true,
        prefs: Prefs::default(),
    };
    let rep = |_: &DeployEvent| {};
    rollout(&w.cloud, &w.sets, &set, &cfg(), &request(), b"zip", &opts(false), &ro, &rep).await.unwrap();
    let writes = w.sets.writes();
    assert!(writes.iter().all(|l| !l.starts_with("UpdateStackSet")), "same template: no update: {writes:?}");
    assert!(writes.contains(
        &"CreateStackInstances ctguard-region-auto ous=r-root filter=None accounts= regions=ap-south-1".to_string()
    ));
    assert!(writes.iter().all(|l| !l.starts_with("Delete")), "{writes:?}");
    assert_eq!(instances(&w, A), 3);
}

#[tokio::test]
async fn uninstall_through_the_stack_set_deletes_by_ou_without_account_filter() {
    let w = world();
    install(&w, None, &[ROOT], false).await;
    w.sets.with(|o| o.join(C, "ou-a"));
    clear(&w);
    let home = Target::new(M, "us-east-1");
    let rep = |_: &DeployEvent| {};
    let (row, accounts) = remove(&w.sets, None, &Prefs::default(), &opts(false).poll, &rep, &home).await;
    assert!(!row.failed(), "{row:?}");
    assert_eq!(accounts, BTreeSet::from([A.to_string(), B.to_string(), C.to_string()]));
    let writes = w.sets.writes();
    assert_eq!(writes.len(), 6, "{writes:?}");
    assert!(
        writes.iter().filter(|l| l.starts_with("DeleteStackInstances")).all(|l| l.contains("filter=None")),
        "{writes:?}"
    );
    assert!(w.sets.with(|o| o.set_names().is_empty()));
    assert_eq!(detectors(&w, C), 0);
    assert_eq!(direct_stacks(&w, M), 2, "the management account's direct stacks are uninstalled by deploy::uninstall");
}

#[tokio::test]
async fn ou_uninstall_removes_only_the_instances_listed_under_those_ous() {
    let home = Target::new(M, "us-east-1");
    let rep = |_: &DeployEvent| {};
    // An --ou install, uninstalled with the same --ou: instances, then the sets.
    let w = world();
    install(&w, Some(DeployWith::StackSets), &["ou-a"], false).await;
    clear(&w);
    let ous = ["ou-a".to_string()];
    let (row, accounts) = remove(&w.sets, Some(&ous), &Prefs::default(), &opts(false).poll, &rep, &home).await;
    assert!(!row.failed(), "{row:?}");
    assert_eq!(accounts, BTreeSet::from([A.to_string()]));
    assert_eq!(detectors(&w, A), 0);
    assert!(w.sets.with(|o| o.set_names().is_empty()), "no instance left: the sets go");
    // An --org install (instances listed under the root): `--ou ou-a` deletes nothing, says why.
    let w = world();
    install(&w, None, &[ROOT], false).await;
    clear(&w);
    let (row, accounts) = remove(&w.sets, Some(&ous), &Prefs::default(), &opts(false).poll, &rep, &home).await;
    assert!(w.sets.writes().is_empty(), "{:?}", w.sets.writes());
    assert_eq!((detectors(&w, A), detectors(&w, B)), (2, 2));
    assert_eq!(accounts, BTreeSet::from([A.to_string(), B.to_string()]), "StackSet-owned: no direct removal there");
    assert!(row.steps.iter().all(|s| s.action.contains("kept: listed under r-root")), "{:?}", row.steps);
}

#[tokio::test]
async fn direct_mode_first_org_install_sends_no_zero_account_filter_and_says_so() {
    let w = world();
    let r = install(&w, Some(DeployWith::Direct), &[ROOT], false).await;
    assert!(failed(&r.report).is_empty(), "{:?}", failed(&r.report));
    let writes = w.sets.writes();
    assert!(writes.iter().all(|l| l.starts_with("CreateStackSet")), "no instance request: {writes:?}");
    let row = r.report.results.iter().find(|x| x.target.account == M && x.phase == Phase::AutoDeploy).unwrap();
    assert!(row.steps.iter().any(|s| s.action.contains("NOT covered")), "{:?}", row.steps);
    for a in [M, A, B] {
        assert_eq!(detectors(&w, a), 2);
    }
}

#[tokio::test]
async fn direct_mode_rerun_leaves_an_auto_deployed_account_to_its_stack_set() {
    let w = world();
    install(&w, Some(DeployWith::Direct), &[ROOT], false).await;
    // A legacy installation whose StackSet had a target: model it by targeting the root now
    // (what AWS would have recorded had the first CreateStackInstances succeeded).
    w.sets.with(|o| o.join("555555555555", "ou-a"));
    let legacy = Targets { ous: vec![ROOT.into()], accounts: vec![A.into(), B.into()], filter: Filter::Difference };
    for (name, regions) in [
        ("ctguard-state-auto", vec!["us-east-1"]),
        ("ctguard-account-auto", vec!["us-east-1"]),
        ("ctguard-region-auto", REGIONS.to_vec()),
    ] {
        let regions: Vec<String> = regions.iter().map(|s| s.to_string()).collect();
        w.sets.create_instances(name, &legacy, &regions, &Prefs::default(), "legacy").await.unwrap();
    }
    w.sets.with(|o| o.join(C, "ou-b"));
    assert_eq!(instances(&w, C), 2, "joined and auto-deployed");
    clear(&w);
    let r = install(&w, None, &[ROOT], false).await;
    assert_eq!(r.mode, Some(DeployWith::Direct), "the installed mode is kept");
    assert!(failed(&r.report).is_empty(), "no collision: {:?}", failed(&r.report));
    assert_eq!(direct_stacks(&w, C), 0, "no second copy in the auto-deployed account");
    assert!(w.cloud.with(|c| c.calls.iter().all(|l| !l.starts_with(C))), "C not even touched directly");
    assert!(r.notes.iter().any(|n| n.starts_with(C) && n.contains("owned by the StackSets")), "{:?}", r.notes);
    assert!(w.sets.writes().is_empty(), "exclusion list never resent: {:?}", w.sets.writes());
    for a in [M, A, B, C] {
        assert_eq!(detectors(&w, a), 2, "{a}: exactly one detector per region");
    }
    // Asking to switch modes is refused, nothing is moved.
    let ro = Rollout {
        ous: vec![ROOT.into()],
        management: M.into(),
        asked: Some(DeployWith::StackSets),
        auto_deploy: true,
        org_wide: true,
        prefs: Prefs::default(),
    };
    let set = expand(&active(&w), &REGIONS.map(String::from), "us-east-1", false).unwrap();
    let rep = |_: &DeployEvent| {};
    let e = rollout(&w.cloud, &w.sets, &set, &cfg(), &request(), b"zip", &opts(false), &ro, &rep).await.unwrap_err();
    assert!(e.contains("move every account"), "{e}");
}

#[tokio::test]
async fn stacksets_instance_where_a_direct_stack_exists_fails_alone_and_removes_nothing() {
    let w = world();
    // An account installed directly before (e.g. `--accounts`), then the org-wide StackSets mode.
    let set = expand(&[A.to_string()], &REGIONS.map(String::from), "us-east-1", false).unwrap();
    let rep = |_: &DeployEvent| {};
    crate::deploy::install(&w.cloud, &set, &cfg(), b"zip", &opts(false), &rep).await;
    let r = install(&w, Some(DeployWith::StackSets), &[ROOT], false).await;
    let bad = failed(&r.report);
    assert!(bad.iter().all(|l| l.starts_with(A)) && !bad.is_empty(), "{bad:?}");
    assert_eq!(direct_stacks(&w, A), 2, "the direct stacks are untouched");
    assert_eq!(instances(&w, B), 2);
}

#[tokio::test]
async fn plan_lists_instances_and_changes_and_writes_nothing() {
    let w = world();
    let r = install(&w, None, &[ROOT], true).await;
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("ctguard-region-auto (stacksets mode): create the StackSet, instances in 2 accounts")),
        "{:?}",
        r.notes
    );
    assert!(w.sets.writes().is_empty());
    install(&w, None, &[ROOT], false).await;
    w.sets.with(|o| o.accounts.insert(C.into(), "ou-a".into()));
    clear(&w);
    let r = install(&w, None, &[ROOT], true).await;
    assert!(r.notes.iter().any(|n| n.contains("2 instances") || n.contains("4 instances")), "{:?}", r.notes);
    assert!(r.notes.iter().any(|n| n.contains(&format!("(INTERSECTION): {C}"))), "{:?}", r.notes);
    assert!(w.sets.writes().is_empty());
    assert!(r.notes.iter().all(|n| !n.contains(" overrides ")), "no override yet: {:?}", r.notes);
    // An instance whose parameter an operator overrode: --plan names it (ListStackInstances
    // does not carry overrides; DescribeStackInstance does).
    w.sets.with(|o| o.set_overrides("ctguard-region-auto", A, "eu-west-1", &[("LogRetentionDays", "7")]));
    let r = install(&w, None, &[ROOT], true).await;
    let line = r.notes.iter().find(|n| n.contains(" overrides ")).unwrap_or_else(|| panic!("{:?}", r.notes));
    assert!(
        line.contains(&format!(
            "ctguard-region-auto (stacksets mode): {A}:eu-west-1 overrides LogRetentionDays=7 (StackSet: 90)"
        )),
        "{line}"
    );
    assert!(w.sets.writes().is_empty());
}

#[test]
fn deletions_never_carry_an_exclusion_list() {
    let t = Targets { ous: vec![ROOT.into()], accounts: vec![A.into()], filter: Filter::Difference };
    let e = t.for_delete().unwrap_err();
    assert!(e.message.contains("47721"), "{e}");
    assert!(Targets::only(&[ROOT.into()], &[A.into()]).for_delete().is_ok());
}

#[test]
fn requests_carry_the_mode_tag_and_preferences_are_exposed() {
    let set = expand(&[M.to_string(), A.to_string()], &REGIONS.map(String::from), "us-east-1", false).unwrap();
    let reqs = plan(&cfg(), &set, &[ROOT.into()], &[A.into()], &[M.into()], DeployWith::StackSets);
    assert!(reqs.iter().all(|r| r.exclude_accounts.is_empty() && r.deployment_targets().filter == Filter::None));
    assert_eq!(reqs[2].body().tags.get(MODE_TAG).map(String::as_str), Some("stacksets"));
    let d = plan(&cfg(), &set, &[ROOT.into()], &[A.into()], &[M.into(), A.into()], DeployWith::Direct);
    assert_eq!(d[2].deployment_targets().filter, Filter::Difference);
    assert!(d[2].selected().is_empty());
    assert_ne!(reqs[2].operation_id("instances", ""), reqs[2].operation_id("instances", A));
    let p = Prefs { max_concurrent_percentage: 25, failure_tolerance_percentage: 0, regions_parallel: false }.sdk();
    assert_eq!(p.max_concurrent_percentage(), Some(25));
    assert_eq!(p.failure_tolerance_percentage(), Some(0));
    assert_eq!(p.region_concurrency_type().map(|r| r.as_str()), Some("SEQUENTIAL"));
}
