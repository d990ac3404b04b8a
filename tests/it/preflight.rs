//! Install's preflight on the emulated Organization: the section is printed by `--plan` and by
//! `install`, and a blocking failure (here: no StackSets trusted access with auto-deployment
//! on) stops the install before any change, with its fix.
//!
//! What the emulator cannot do, said plainly: moto lets any role be assumed (its AssumeRole
//! does not check the role exists or trusts the caller), has no `account:ListRegions`, and no
//! delegated administrator can be made to fail its StackSets calls; those checks are covered by
//! the unit tests of `ctguard-deploy`'s `preflight` module against `FakePreflight`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::install::{add_trail, ctguard_resources, json_lines, organization, run, text, HOME, MGMT};

fn checks(out: &std::process::Output) -> Vec<Value> {
    json_lines(out).into_iter().filter(|l| l["type"] == "preflight").collect()
}

fn check<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no {name} check in {all:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn no_trusted_access_stops_an_auto_deploy_install_before_any_change() {
    let org = organization().await;
    let ep = org.endpoint();
    for a in std::iter::once(MGMT.to_string()).chain(org.members.iter().cloned()) {
        add_trail(&ep, &a).await;
    }
    // The organization as it is before `activate-organizations-access`.
    aws_sdk_organizations::Client::new(&org.moto.config(HOME))
        .disable_aws_service_access()
        .service_principal("member.org.stacksets.cloudformation.amazonaws.com")
        .send()
        .await
        .expect("disable trusted access");

    let out = run(&org, &["install", "--org", "--regions", HOME, "--plan", "--json"]);
    assert_eq!(out.status.code(), Some(2), "a blocking preflight failure: exit 2\n{}", text(&out));
    let all = checks(&out);
    let names: Vec<&str> = all.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "identity",
            "installing account",
            "StackSets trusted access",
            "StackSets service-linked role",
            "cross-account role",
            "trail",
            "regions"
        ],
        "{}",
        text(&out)
    );
    assert_eq!(check(&all, "identity")["verdict"], "pass");
    assert!(check(&all, "identity")["detail"].as_str().unwrap_or_default().contains(MGMT));
    assert!(check(&all, "installing account")["detail"].as_str().unwrap_or_default().contains("management account"));
    let ta = check(&all, "StackSets trusted access");
    assert_eq!(ta["verdict"], "fail", "{ta}");
    assert_eq!(ta["blocking"], true, "{ta}");
    assert!(ta["fix"].as_str().unwrap_or_default().contains("activate-organizations-access"), "{ta}");
    assert_eq!(check(&all, "cross-account role")["verdict"], "pass");
    assert!(check(&all, "cross-account role")["detail"].as_str().unwrap_or_default().contains("assumed in 4 accounts"));
    assert_eq!(check(&all, "trail")["verdict"], "pass", "{}", text(&out));
    // moto has no account:ListRegions: the check says which source it fell back on.
    let r = check(&all, "regions");
    assert_eq!(r["verdict"], "warn", "{r}");
    assert!(r["detail"].as_str().unwrap_or_default().contains("published region names"), "{r}");
    // --plan still shows the plan below the preflight.
    assert!(json_lines(&out).iter().any(|l| l["type"] == "plan"), "{}", text(&out));

    let out = run(&org, &["install", "--org", "--regions", HOME]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("preflight:") && err.contains("FAIL StackSets trusted access"), "{}", text(&out));
    assert!(err.contains("fix: activate trusted access"), "each failure with its fix:\n{}", text(&out));
    assert!(err.contains("nothing was changed"), "{}", text(&out));
    assert_eq!(ctguard_resources(&org, MGMT).await, BTreeSet::new(), "nothing created");

    // Without auto-deployment StackSets are not needed: the same organization installs.
    let out = run(&org, &["install", "--org", "--regions", HOME, "--no-auto-deploy", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = checks(&out);
    assert!(all
        .iter()
        .all(|c| c["blocking"] == false && !c["check"].as_str().unwrap_or_default().starts_with("StackSets")));
}
