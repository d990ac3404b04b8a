//! Accounts that join the organization later: service-managed StackSets with automatic
//! deployment (`ctguard-state-auto`, `ctguard-account-auto`, `ctguard-region-auto`).
//!
//! Existing accounts are deployed directly (stacks in each account, see [`crate::deploy`]), so
//! the StackSets target the organization root (or the `--ou`s) *minus* every directly managed
//! account (`AccountFilterType: DIFFERENCE`): no account gets a second copy of the detector,
//! and every account that joins later gets one without a re-run. This works because the
//! templates take no per-account parameter (names derive from `AWS::AccountId`).
//!
//! StackSets run one operation at a time per stack set: every call here first waits for any
//! running operation, then waits for its own to finish, and uses a deterministic operation id
//! so a retried request is recognised (`OperationIdAlreadyExistsException`) instead of queued
//! twice.
//!
//! moto ignores `AccountFilterType` and `AutoDeployment` (it would deploy duplicates), so the
//! end-to-end tests run with `--no-auto-deploy`; the requests built here are covered by unit
//! tests below.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_sdk_cloudformation::types::{
    AccountFilterType, AutoDeployment, CallAs, Capability, DeploymentTargets, ManagedExecution, Parameter,
    PermissionModels, RegionConcurrencyType, StackSetOperationPreferences, Tag,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::deploy::{DeployEvent, Outcome, Phase, PollOptions, Reporter, StepResult, TargetResult};
use crate::plan::{InstallConfig, StackKind, StackSpec, OWNER_TAG, OWNER_VALUE, SPEC_TAG};
use crate::targets::{Target, TargetSet};
use ctguard_aws::err_text;

/// Suffix of ctguard's StackSet names.
pub const SUFFIX: &str = "-auto";

/// One StackSet and where its instances go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSetRequest {
    pub name: String,
    pub spec: StackSpec,
    pub regions: Vec<String>,
    /// Organization root or OUs the stack set (and its auto-deployment) covers.
    pub ou_ids: Vec<String>,
    /// Accounts excluded from the instances: those ctguard deploys directly.
    pub exclude_accounts: Vec<String>,
    /// True when the caller is a delegated administrator rather than the management account.
    pub delegated_admin: bool,
}

impl StackSetRequest {
    /// `DeploymentTargets` of CreateStackInstances: the OUs minus the direct accounts.
    pub fn deployment_targets(&self) -> DeploymentTargets {
        let mut b = DeploymentTargets::builder().set_organizational_unit_ids(Some(self.ou_ids.clone()));
        if !self.exclude_accounts.is_empty() {
            b = b.set_accounts(Some(self.exclude_accounts.clone())).account_filter_type(AccountFilterType::Difference);
        }
        b.build()
    }

    pub fn auto_deployment(&self) -> AutoDeployment {
        // Removing an account from the organization removes its detector too.
        AutoDeployment::builder().enabled(true).retain_stacks_on_account_removal(false).build()
    }

    pub fn call_as(&self) -> CallAs {
        if self.delegated_admin {
            CallAs::DelegatedAdmin
        } else {
            CallAs::SelfValue
        }
    }

    pub fn parameters(&self) -> Vec<Parameter> {
        self.spec
            .parameters
            .iter()
            .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
            .collect()
    }

    pub fn tags(&self) -> Vec<Tag> {
        self.spec.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
    }

    /// Every region at once, all accounts at once, and a failing account does not stop the
    /// others (its instance shows up as failed in `status`).
    pub fn preferences(&self) -> StackSetOperationPreferences {
        StackSetOperationPreferences::builder()
            .region_concurrency_type(RegionConcurrencyType::Parallel)
            .max_concurrent_percentage(100)
            .failure_tolerance_percentage(100)
            .build()
    }

    /// Deterministic id of an operation on this request: the same request retried gets the
    /// same id, which StackSets refuses to run twice.
    pub fn operation_id(&self, op: &str) -> String {
        let mut ctx = self.spec.spec_hash.clone();
        ctx.push_str(&self.regions.join(","));
        ctx.push_str(&self.ou_ids.join(","));
        ctx.push_str(&self.exclude_accounts.join(","));
        let h = crate::embedded::code_hash(ctx.as_bytes());
        format!("ctguard-{op}-{}", &h[..32])
    }
}

/// The StackSets for `cfg`: state and account (home region only) and region (every region).
pub fn plan(
    cfg: &InstallConfig,
    set: &TargetSet,
    ou_ids: &[String],
    direct_accounts: &[String],
    delegated_admin: bool,
) -> Vec<StackSetRequest> {
    let mk = |spec: StackSpec, regions: Vec<String>| StackSetRequest {
        name: format!("{}{SUFFIX}", spec.kind.stack_name()),
        spec,
        regions,
        ou_ids: ou_ids.to_vec(),
        exclude_accounts: direct_accounts.to_vec(),
        delegated_admin,
    };
    let home = vec![set.home_region.clone()];
    let mut v = vec![mk(cfg.state_spec(), home.clone())];
    if let Some(a) = cfg.account_spec() {
        v.push(mk(a, home));
    }
    v.push(mk(cfg.region_spec(), set.regions.clone()));
    v
}

/// Who is covered by auto-deployment (for `status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    /// ctguard StackSets found, with whether automatic deployment is on.
    pub stack_sets: BTreeMap<String, bool>,
    /// Accounts with at least one StackSet instance.
    pub accounts: BTreeSet<String>,
    /// Why coverage could not be read, if so.
    pub unreadable: Option<String>,
}

impl Coverage {
    /// True when accounts joining the organization get the detector without a re-run.
    pub fn new_accounts_covered(&self) -> bool {
        let name = format!("{}{SUFFIX}", StackKind::Region.stack_name());
        self.stack_sets.get(&name).copied().unwrap_or(false)
    }
}

fn call_as(delegated: bool) -> CallAs {
    if delegated {
        CallAs::DelegatedAdmin
    } else {
        CallAs::SelfValue
    }
}

async fn ctguard_stack_sets(cfn: &Client, delegated: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut pages = cfn
        .list_stack_sets()
        .status(aws_sdk_cloudformation::types::StackSetStatus::Active)
        .call_as(call_as(delegated))
        .into_paginator()
        .send();
    while let Some(p) = pages.next().await {
        let p = p.map_err(|e| format!("ListStackSets: {}", err_text(&e)))?;
        out.extend(
            p.summaries()
                .iter()
                .filter_map(|s| s.stack_set_name())
                .filter(|n| n.starts_with("ctguard-") && n.ends_with(SUFFIX))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// Reads the ctguard StackSets and their instances.
pub async fn coverage(cfn: &Client, delegated: bool) -> Coverage {
    let mut c = Coverage::default();
    let names = match ctguard_stack_sets(cfn, delegated).await {
        Ok(n) => n,
        Err(e) => {
            c.unreadable = Some(e);
            return c;
        }
    };
    for n in names {
        let auto = cfn
            .describe_stack_set()
            .stack_set_name(&n)
            .call_as(call_as(delegated))
            .send()
            .await
            .ok()
            .and_then(|d| d.stack_set().and_then(|s| s.auto_deployment()).and_then(|a| a.enabled()))
            .unwrap_or(false);
        c.stack_sets.insert(n.clone(), auto);
        let mut pages =
            cfn.list_stack_instances().stack_set_name(&n).call_as(call_as(delegated)).into_paginator().send();
        while let Some(p) = pages.next().await {
            match p {
                Ok(p) => c.accounts.extend(p.summaries().iter().filter_map(|s| s.account().map(str::to_string))),
                Err(e) => c.unreadable = Some(format!("ListStackInstances {n}: {}", err_text(&e))),
            }
        }
    }
    c
}

/// Waits for every running operation of the stack set to end (one at a time is all StackSets
/// allows; starting another would fail with OperationInProgressException).
async fn wait_idle(cfn: &Client, name: &str, delegated: bool, poll: &PollOptions) -> Result<(), String> {
    let start = Instant::now();
    let mut delay = poll.first_delay;
    loop {
        let ops = cfn
            .list_stack_set_operations()
            .stack_set_name(name)
            .call_as(call_as(delegated))
            .send()
            .await
            .map_err(|e| format!("ListStackSetOperations {name}: {}", err_text(&e)))?;
        let running = ops
            .summaries()
            .iter()
            .any(|o| o.status().is_some_and(|s| matches!(s.as_str(), "RUNNING" | "QUEUED" | "STOPPING")));
        if !running {
            return Ok(());
        }
        if start.elapsed() > poll.timeout {
            return Err(format!("{name}: an operation is still running after {} s", poll.timeout.as_secs()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(poll.max_delay);
    }
}

/// Waits for one operation; `Err` with its status reason when it did not succeed.
async fn wait_operation(
    cfn: &Client,
    name: &str,
    op: &str,
    delegated: bool,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<(), String> {
    let start = Instant::now();
    let mut delay = poll.first_delay;
    let mut last = String::new();
    loop {
        let d = cfn
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(op)
            .call_as(call_as(delegated))
            .send()
            .await
            .map_err(|e| format!("DescribeStackSetOperation {name} {op}: {}", err_text(&e)))?;
        let o = d.stack_set_operation();
        let status = o.and_then(|o| o.status()).map(|s| s.as_str().to_string()).unwrap_or_default();
        if status != last {
            rep.report(&DeployEvent::StackStatus {
                target: target.clone(),
                stack: name.to_string(),
                status: status.clone(),
                reason: None,
            });
            last = status.clone();
        }
        match status.as_str() {
            "SUCCEEDED" => return Ok(()),
            "FAILED" | "STOPPED" => {
                let why = o.and_then(|o| o.status_reason()).unwrap_or("see the StackSet's operation results");
                return Err(format!("{name}: operation {op} {status}: {why}"));
            }
            _ => {}
        }
        if start.elapsed() > poll.timeout {
            return Err(format!("{name}: operation {op} still {status} after {} s", poll.timeout.as_secs()));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(poll.max_delay);
    }
}

/// Runs `send` with `op_id`; a retried request whose operation already exists is waited on
/// instead of started again.
fn already_exists<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("OperationIdAlreadyExistsException")
}

async fn apply_one(
    cfn: &Client,
    r: &StackSetRequest,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let existing = match cfn.describe_stack_set().stack_set_name(&r.name).call_as(r.call_as()).send().await {
        Ok(d) => d.stack_set().cloned(),
        Err(e) if e.code() == Some("StackSetNotFoundException") => None,
        Err(e) => return Err(format!("DescribeStackSet {}: {}", r.name, err_text(&e))),
    };
    match existing {
        Some(s) => {
            let tags: BTreeMap<&str, &str> =
                s.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
            if tags.get(OWNER_TAG) != Some(&OWNER_VALUE) {
                return Err(format!("a StackSet named {} exists but was not created by ctguard", r.name));
            }
            let auto_on = s.auto_deployment().and_then(|a| a.enabled()).unwrap_or(false);
            if tags.get(SPEC_TAG) == Some(&r.spec.spec_hash.as_str()) && auto_on {
                return Ok(done);
            }
            wait_idle(cfn, &r.name, r.delegated_admin, poll).await?;
            let op = r.operation_id("update");
            rep.report(&DeployEvent::StepStarted {
                target: target.clone(),
                what: r.name.clone(),
                action: "update stack set".into(),
            });
            let res = cfn
                .update_stack_set()
                .stack_set_name(&r.name)
                .template_body(r.spec.template_body)
                .set_parameters(Some(r.parameters()))
                .set_tags(Some(r.tags()))
                .capabilities(Capability::CapabilityNamedIam)
                .permission_model(PermissionModels::ServiceManaged)
                .auto_deployment(r.auto_deployment())
                .operation_preferences(r.preferences())
                .operation_id(&op)
                .call_as(r.call_as())
                .send()
                .await;
            match res {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(format!("UpdateStackSet {}: {}", r.name, err_text(&e))),
            }
            wait_operation(cfn, &r.name, &op, r.delegated_admin, poll, rep, target).await?;
            done.push(format!("{}: updated", r.name));
        }
        None => {
            rep.report(&DeployEvent::StepStarted {
                target: target.clone(),
                what: r.name.clone(),
                action: "create stack set".into(),
            });
            cfn.create_stack_set()
                .stack_set_name(&r.name)
                .description("ctguard: deploys the detector into accounts that join the organization")
                .template_body(r.spec.template_body)
                .set_parameters(Some(r.parameters()))
                .set_tags(Some(r.tags()))
                .capabilities(Capability::CapabilityNamedIam)
                .permission_model(PermissionModels::ServiceManaged)
                .auto_deployment(r.auto_deployment())
                .managed_execution(ManagedExecution::builder().active(false).build())
                .call_as(r.call_as())
                .send()
                .await
                .map_err(|e| format!("CreateStackSet {}: {}", r.name, err_text(&e)))?;
            done.push(format!("{}: created", r.name));
            let op = r.operation_id("instances");
            let res = cfn
                .create_stack_instances()
                .stack_set_name(&r.name)
                .deployment_targets(r.deployment_targets())
                .set_regions(Some(r.regions.clone()))
                .operation_preferences(r.preferences())
                .operation_id(&op)
                .call_as(r.call_as())
                .send()
                .await;
            match res {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => return Err(format!("CreateStackInstances {}: {}", r.name, err_text(&e))),
            }
            wait_operation(cfn, &r.name, &op, r.delegated_admin, poll, rep, target).await?;
            done.push(format!(
                "{}: targets {} minus {} direct accounts",
                r.name,
                r.ou_ids.join(","),
                r.exclude_accounts.len()
            ));
        }
    }
    Ok(done)
}

/// Creates or updates the StackSets, one after the other (each waits for its operation).
pub async fn apply(
    cfn: &Client,
    reqs: &[StackSetRequest],
    target: &Target,
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> TargetResult {
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::AutoDeploy, targets: 1 });
    let mut steps = Vec::new();
    for r in reqs {
        match apply_one(cfn, r, poll, rep, target).await {
            Ok(done) => {
                let changed = !done.is_empty();
                steps.push(StepResult {
                    what: r.name.clone(),
                    action: if changed { done.join("; ") } else { "no change".into() },
                    done: changed,
                });
            }
            Err(reason) => {
                steps.push(StepResult { what: r.name.clone(), action: "failed".into(), done: false });
                rep.report(&DeployEvent::TargetFinished {
                    target: target.clone(),
                    phase: Phase::AutoDeploy,
                    ok: false,
                    changes: 0,
                    message: Some(reason.clone()),
                });
                return TargetResult {
                    target: target.clone(),
                    phase: Phase::AutoDeploy,
                    trail: None,
                    steps,
                    outcome: Outcome::Failed { reason },
                    calls: 0,
                };
            }
        }
    }
    let changes = steps.iter().filter(|s| s.done).count();
    rep.report(&DeployEvent::TargetFinished {
        target: target.clone(),
        phase: Phase::AutoDeploy,
        ok: true,
        changes,
        message: None,
    });
    TargetResult {
        target: target.clone(),
        phase: Phase::AutoDeploy,
        trail: None,
        steps,
        outcome: Outcome::Ok,
        calls: 0,
    }
}

/// Deletes every ctguard StackSet (its instances first). Only stack sets tagged as ctguard's.
pub async fn remove(
    cfn: &Client,
    delegated: bool,
    target: &Target,
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> TargetResult {
    let mut steps = Vec::new();
    let fail = |steps: Vec<StepResult>, reason: String| TargetResult {
        target: target.clone(),
        phase: Phase::AutoDeploy,
        trail: None,
        steps,
        outcome: Outcome::Failed { reason },
        calls: 0,
    };
    let names = match ctguard_stack_sets(cfn, delegated).await {
        Ok(n) => n,
        Err(e) => return fail(steps, e),
    };
    if !names.is_empty() {
        rep.report(&DeployEvent::PhaseStarted { phase: Phase::AutoDeploy, targets: names.len() });
    }
    // Region stacks first, state last (reverse of deployment).
    let mut names = names;
    names.sort_by_key(|n| {
        std::cmp::Reverse(StackKind::ALL.iter().position(|k| n.starts_with(k.stack_name())).unwrap_or(0))
    });
    for n in names {
        let owned = cfn
            .describe_stack_set()
            .stack_set_name(&n)
            .call_as(call_as(delegated))
            .send()
            .await
            .ok()
            .and_then(|d| {
                d.stack_set()
                    .map(|s| s.tags().iter().any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(OWNER_VALUE)))
            })
            .unwrap_or(false);
        if !owned {
            steps.push(StepResult {
                what: n.clone(),
                action: "left alone (not created by ctguard)".into(),
                done: false,
            });
            continue;
        }
        let mut ous = BTreeSet::new();
        let mut regions = BTreeSet::new();
        let mut pages =
            cfn.list_stack_instances().stack_set_name(&n).call_as(call_as(delegated)).into_paginator().send();
        while let Some(p) = pages.next().await {
            match p {
                Ok(p) => {
                    for s in p.summaries() {
                        ous.extend(s.organizational_unit_id().map(str::to_string));
                        regions.extend(s.region().map(str::to_string));
                    }
                }
                Err(e) => return fail(steps, format!("ListStackInstances {n}: {}", err_text(&e))),
            }
        }
        if let Err(e) = wait_idle(cfn, &n, delegated, poll).await {
            return fail(steps, e);
        }
        if !ous.is_empty() {
            rep.report(&DeployEvent::StepStarted {
                target: target.clone(),
                what: n.clone(),
                action: "delete stack instances".into(),
            });
            let op = format!(
                "ctguard-delete-{}",
                &crate::embedded::code_hash(format!("{n}{ous:?}{regions:?}").as_bytes())[..32]
            );
            let res = cfn
                .delete_stack_instances()
                .stack_set_name(&n)
                .deployment_targets(
                    DeploymentTargets::builder().set_organizational_unit_ids(Some(ous.into_iter().collect())).build(),
                )
                .set_regions(Some(regions.into_iter().collect()))
                .retain_stacks(false)
                .operation_id(&op)
                .call_as(call_as(delegated))
                .send()
                .await;
            match res {
                Ok(_) => {}
                Err(e) if already_exists(&e) => {}
                Err(e) => return fail(steps, format!("DeleteStackInstances {n}: {}", err_text(&e))),
            }
            if let Err(e) = wait_operation(cfn, &n, &op, delegated, poll, rep, target).await {
                return fail(steps, e);
            }
        }
        if let Err(e) = cfn.delete_stack_set().stack_set_name(&n).call_as(call_as(delegated)).send().await {
            return fail(steps, format!("DeleteStackSet {n}: {}", err_text(&e)));
        }
        steps.push(StepResult { what: n.clone(), action: "deleted (instances first)".into(), done: true });
    }
    TargetResult {
        target: target.clone(),
        phase: Phase::AutoDeploy,
        trail: None,
        steps,
        outcome: Outcome::Ok,
        calls: 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::targets::expand;

    fn cfg(central: Option<&str>) -> InstallConfig {
        InstallConfig {
            version: "0.1.0".into(),
            code_hash: "ab".repeat(32),
            artifacts_account: "123456789012".into(),
            home_region: "us-east-1".into(),
            org_id: Some("o-abcdefghij".into()),
            alert_topic_arn: central.map(str::to_string),
            alert_email: None,
            policy: "{}".into(),
            log_retention_days: 90,
            default_ttl_hours: 12,
        }
    }

    fn set() -> TargetSet {
        let a: Vec<String> = ["123456789012", "111111111111"].iter().map(|s| s.to_string()).collect();
        expand(&a, &["us-east-1".to_string(), "eu-west-1".to_string()], "us-east-1", false).unwrap()
    }

    #[test]
    fn targets_the_root_minus_every_directly_managed_account() {
        let direct = set().accounts.clone();
        let reqs = plan(&cfg(None), &set(), &["r-abcd".to_string()], &direct, false);
        let names: Vec<_> = reqs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ctguard-state-auto", "ctguard-account-auto", "ctguard-region-auto"]);
        let region = &reqs[2];
        let dt = region.deployment_targets();
        assert_eq!(dt.organizational_unit_ids(), ["r-abcd"]);
        assert_eq!(dt.accounts(), ["111111111111", "123456789012"]);
        assert_eq!(dt.account_filter_type(), Some(&AccountFilterType::Difference));
        assert_eq!(region.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(reqs[0].regions, ["us-east-1"], "state only in the home region");
        let auto = region.auto_deployment();
        assert_eq!(auto.enabled(), Some(true));
        assert_eq!(auto.retain_stacks_on_account_removal(), Some(false));
        assert_eq!(region.call_as(), CallAs::SelfValue);
        // Same parameters as the direct deployment: the template needs nothing per account.
        assert_eq!(region.spec, cfg(None).region_spec());
        assert!(region
            .tags()
            .iter()
            .any(|t| t.key() == Some(SPEC_TAG) && t.value() == Some(region.spec.spec_hash.as_str())));
    }

    #[test]
    fn central_topic_means_no_account_stack_set_and_delegated_admin_calls_as_such() {
        let reqs =
            plan(&cfg(Some("arn:aws:sns:us-east-1:123456789012:central")), &set(), &["ou-ab-1".into()], &[], true);
        let names: Vec<_> = reqs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ctguard-state-auto", "ctguard-region-auto"]);
        assert_eq!(reqs[1].call_as(), CallAs::DelegatedAdmin);
        // Nothing to exclude: plain OU targeting, no filter.
        let dt = reqs[1].deployment_targets();
        assert!(dt.accounts().is_empty());
        assert_eq!(dt.account_filter_type(), None);
    }

    #[test]
    fn operation_ids_are_stable_per_request_and_differ_when_it_changes() {
        let direct = set().accounts.clone();
        let a = plan(&cfg(None), &set(), &["r-abcd".into()], &direct, false);
        let b = plan(&cfg(None), &set(), &["r-abcd".into()], &direct, false);
        assert_eq!(a[2].operation_id("instances"), b[2].operation_id("instances"));
        let c = plan(&cfg(None), &set(), &["r-abcd".into()], &direct[..1], false);
        assert_ne!(a[2].operation_id("instances"), c[2].operation_id("instances"));
        let id = a[2].operation_id("instances");
        assert!(id.len() <= 128 && id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'), "{id}");
        let p = a[2].preferences();
        assert_eq!(p.region_concurrency_type(), Some(&RegionConcurrencyType::Parallel));
    }

    #[test]
    fn coverage_of_new_accounts_depends_on_the_region_stack_set() {
        let mut c = Coverage::default();
        assert!(!c.new_accounts_covered());
        c.stack_sets.insert("ctguard-region-auto".into(), true);
        assert!(c.new_accounts_covered());
        c.stack_sets.insert("ctguard-region-auto".into(), false);
        assert!(!c.new_accounts_covered());
    }
}
