//! `ctguard template installer-policy` holds exactly the actions ctguard's calls need: every
//! AWS operation of a full lifecycle on an emulated Organization whose functions run
//! (`install --plan`, `install` with auto-deployment, a no-op re-run, a changed setting,
//! `status`, `verify`,
//! turning auto-deployment off, `uninstall`) is recorded (`CTGUARD_RECORD_CALLS`, the
//! `OperationLog` interceptor of `ctguard-aws`), mapped to IAM actions, and compared with the
//! policy both ways.
//!
//! What the emulator cannot do, said plainly: moto's service-managed StackSets ignore account
//! filters and deploy into the management account, so the StackSets *mode* and StackSet
//! instances are not run here; their actions are listed in [`NOT_RUN_ON_THE_EMULATOR`] (the
//! calls are exercised against `FakeOrg` in `deploy/src/autodeploy/tests.rs`). moto evaluates
//! no IAM, so the policy's sufficiency on AWS is not proven here, only that it names every
//! action the code calls and nothing else.

use std::collections::BTreeSet;

use ctguard_deploy::installer_policy;
use ctguard_tests::*;

use crate::install::{add_trail, stacksets_trusted_access, text, HOME};

/// Actions no run of this scenario makes, each with why: StackSet instances (see the module
/// doc), and paths another test covers.
const NOT_RUN_ON_THE_EMULATOR: &[&str] = &[
    "cloudformation:CreateStackInstances",
    "cloudformation:DeleteStackInstances",
    // Only a caller that is not the management account asks who the delegated administrators
    // are; only --ou walks organizational units.
    "organizations:ListDelegatedAdministrators",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListAccountsForParent",
    // verify --via invoke (covered by verify.rs, not repeated here).
    "lambda:InvokeFunction",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_installer_policy_names_exactly_the_actions_the_runs_use() {
    let emu = Emulator::start();
    let ep = emu.endpoint.clone();
    let cfg = emu.config(HOME);
    let org = aws_sdk_organizations::Client::new(&cfg);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("organization");
    let member = org
        .create_account()
        .email("member@example.com")
        .account_name("member")
        .send()
        .await
        .expect("account")
        .create_account_status()
        .and_then(|s| s.account_id().map(str::to_string))
        .expect("account id");
    stacksets_trusted_access(&cfg).await;
    logging_trail(&cfg).await;
    add_trail(&ep, &member).await;

    let log = std::env::temp_dir().join(format!("ctguard-calls-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let run = |args: &[&str], want: i32| {
        let out = ctguard(Some(&ep)).env("CTGUARD_RECORD_CALLS", &log).args(args).output().expect("run ctguard");
        assert_eq!(out.status.code(), Some(want), "ctguard {args:?}\n{}", text(&out));
    };
    let org_args = ["--org", "--regions", HOME];
    run(&[&["install", "--plan", "--deploy-with", "direct"], &org_args[..]].concat(), 4);
    run(&[&["install", "--deploy-with", "direct", "--wait-timeout", "120"], &org_args[..]].concat(), 0);
    run(&[&["install"], &org_args[..]].concat(), 0);
    run(&[&["install", "--log-retention-days", "30"], &org_args[..]].concat(), 0);
    run(&[&["status"], &org_args[..]].concat(), 0);
    run(&["verify", "--regions", HOME, "--timeout", "20"], 0);
    run(&[&["install", "--no-auto-deploy", "--yes"], &org_args[..]].concat(), 0);
    run(&[&["uninstall", "--yes"], &org_args[..]].concat(), 0);

    let recorded = std::fs::read_to_string(&log).expect("the runs recorded their calls");
    let _ = std::fs::remove_file(&log);
    let used: BTreeSet<String> = recorded
        .lines()
        .filter_map(|l| l.split_once(':'))
        .flat_map(|(service, op)| installer_policy::actions_for(service, op))
        .collect();
    assert!(used.len() > 20, "the runs made calls: {used:?}");
    let granted: BTreeSet<String> = installer_policy::own_actions().into_iter().map(str::to_string).collect();
    let missing: Vec<&String> = used.difference(&granted).collect();
    assert!(missing.is_empty(), "used but not in the installer policy: {missing:?}");
    let not_run: BTreeSet<String> = NOT_RUN_ON_THE_EMULATOR.iter().map(|s| s.to_string()).collect();
    let unused: Vec<&String> = granted.difference(&used).filter(|a| !not_run.contains(*a)).collect();
    assert!(unused.is_empty(), "granted but never used by a run: {unused:?}");
    let stale: Vec<&String> = not_run.intersection(&used).collect();
    assert!(stale.is_empty(), "listed as not run on the emulator, yet used: {stale:?}");
    let not_granted: Vec<&String> = not_run.difference(&granted).collect();
    assert!(not_granted.is_empty(), "not-run actions missing from the policy: {not_granted:?}");

    // The printed policy is the same document.
    let out = ctguard(None).args(["template", "installer-policy"]).output().expect("template");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), installer_policy::document());
}
