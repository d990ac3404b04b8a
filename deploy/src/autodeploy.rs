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
use std::future::Future;

use aws_sdk_cloudformation::types::{
    AccountFilterType, AutoDeployment, CallAs, Capability, DeploymentTargets, ManagedExecution, Parameter,
    PermissionModels, RegionConcurrencyType, StackSetOperationPreferences, Tag,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::deploy::{DeployEvent, Outcome, Phase, PollOptions, Reporter, StepResult, TargetResult};
use crate::plan::{InstallConfig, StackKind, StackSpec, OWNER_TAG, OWNER_VALUE, SPEC_TAG};
use crate::stacks::ApiError;
use crate::targets::{Target, TargetSet};

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

/// A StackSet as ctguard needs to see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackSetInfo {
    pub tags: BTreeMap<String, String>,
    /// Automatic deployment to accounts that join later is on.
    pub auto_deployment: bool,
}

impl StackSetInfo {
    /// Tagged as created by ctguard.
    pub fn owned(&self) -> bool {
        self.tags.get(OWNER_TAG).map(String::as_str) == Some(OWNER_VALUE)
    }
}

/// One stack instance: where a StackSet deployed (or is deploying) a stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    pub account: Option<String>,
    pub ou: Option<String>,
    pub region: Option<String>,
}

/// A StackSet operation's status (`RUNNING`, `SUCCEEDED`, `FAILED`, ...) and its reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationState {
    pub status: String,
    pub reason: Option<String>,
}

/// Service-managed StackSets, as the caller (`delegated`: as a delegated administrator). Takes
/// and returns ctguard types only; implemented on the CloudFormation client below and by an
/// in-memory fake in the tests.
pub trait StackSetApi: Sync {
    /// Names of the ACTIVE stack sets.
    fn list(&self, delegated: bool) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// `None` when no stack set of that name exists.
    fn describe(
        &self,
        name: &str,
        delegated: bool,
    ) -> impl Future<Output = Result<Option<StackSetInfo>, ApiError>> + Send;
    fn instances(&self, name: &str, delegated: bool) -> impl Future<Output = Result<Vec<Instance>, ApiError>> + Send;
    /// Status of every operation the stack set has run or is running.
    fn operation_statuses(
        &self,
        name: &str,
        delegated: bool,
    ) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    fn operation(
        &self,
        name: &str,
        op: &str,
        delegated: bool,
    ) -> impl Future<Output = Result<OperationState, ApiError>> + Send;
    fn create(&self, r: &StackSetRequest) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Starts operation `op`; an operation id that already exists (a retried request) is success.
    fn update(&self, r: &StackSetRequest, op: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Starts operation `op` creating the instances of `r` (same retry rule).
    fn create_instances(&self, r: &StackSetRequest, op: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Starts operation `op` deleting the instances in `ous` × `regions` (same retry rule).
    fn delete_instances(
        &self,
        name: &str,
        ous: Vec<String>,
        regions: Vec<String>,
        op: &str,
        delegated: bool,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn delete(&self, name: &str, delegated: bool) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Why a StackSet could not be brought to the wanted state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackSetError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("a StackSet named {0} exists but was not created by ctguard")]
    NotOwned(String),
    #[error("{name}: an operation is still running after {secs} s")]
    Busy { name: String, secs: u64 },
    #[error("{name}: operation {op} {status}: {why}")]
    OperationFailed { name: String, op: String, status: String, why: String },
    #[error("{name}: operation {op} still {status} after {secs} s")]
    OperationTimeout { name: String, op: String, status: String, secs: u64 },
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

async fn ctguard_stack_sets<S: StackSetApi>(cfn: &S, delegated: bool) -> Result<Vec<String>, ApiError> {
    let mut out = cfn.list(delegated).await?;
    out.retain(|n| n.starts_with("ctguard-") && n.ends_with(SUFFIX));
    Ok(out)
}

/// Reads the ctguard StackSets and their instances.
pub async fn coverage<S: StackSetApi>(cfn: &S, delegated: bool) -> Coverage {
    let mut c = Coverage::default();
    let names = match ctguard_stack_sets(cfn, delegated).await {
        Ok(n) => n,
        Err(e) => {
            c.unreadable = Some(e.to_string());
            return c;
        }
    };
    for n in names {
        let auto = cfn.describe(&n, delegated).await.ok().flatten().is_some_and(|s| s.auto_deployment);
        c.stack_sets.insert(n.clone(), auto);
        match cfn.instances(&n, delegated).await {
            Ok(v) => c.accounts.extend(v.into_iter().filter_map(|i| i.account)),
            Err(e) => c.unreadable = Some(e.to_string()),
        }
    }
    c
}

/// Waits for every running operation of the stack set to end (one at a time is all StackSets
/// allows; starting another would fail with OperationInProgressException).
async fn wait_idle<S: StackSetApi>(
    cfn: &S,
    name: &str,
    delegated: bool,
    poll: &PollOptions,
) -> Result<(), StackSetError> {
    let mut clock = poll.backoff();
    loop {
        let ops = cfn.operation_statuses(name, delegated).await?;
        let running = ops.iter().any(|s| matches!(s.as_str(), "RUNNING" | "QUEUED" | "STOPPING"));
        if !running {
            return Ok(());
        }
        if clock.timed_out() {
            return Err(StackSetError::Busy { name: name.to_string(), secs: poll.timeout.as_secs() });
        }
        clock.sleep().await;
    }
}

/// Waits for one operation; `Err` with its status reason when it did not succeed.
async fn wait_operation<S: StackSetApi>(
    cfn: &S,
    name: &str,
    op: &str,
    delegated: bool,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<(), StackSetError> {
    let mut clock = poll.backoff();
    let mut last = String::new();
    loop {
        let OperationState { status, reason } = cfn.operation(name, op, delegated).await?;
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
                let why = reason.unwrap_or_else(|| "see the StackSet's operation results".into());
                return Err(StackSetError::OperationFailed { name: name.into(), op: op.into(), status, why });
            }
            _ => {}
        }
        if clock.timed_out() {
            let secs = poll.timeout.as_secs();
            return Err(StackSetError::OperationTimeout { name: name.into(), op: op.into(), status, secs });
        }
        clock.sleep().await;
    }
}

async fn apply_one<S: StackSetApi>(
    cfn: &S,
    r: &StackSetRequest,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<Vec<String>, StackSetError> {
    match cfn.describe(&r.name, r.delegated_admin).await? {
        Some(s) => update_one(cfn, r, &s, poll, rep, target).await,
        None => create_one(cfn, r, poll, rep, target).await,
    }
}

/// Brings an existing stack set to `r` (nothing to do when its spec tag matches and
/// auto-deployment is on); refuses a stack set ctguard did not create.
async fn update_one<S: StackSetApi>(
    cfn: &S,
    r: &StackSetRequest,
    s: &StackSetInfo,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<Vec<String>, StackSetError> {
    if !s.owned() {
        return Err(StackSetError::NotOwned(r.name.clone()));
    }
    if s.tags.get(SPEC_TAG) == Some(&r.spec.spec_hash) && s.auto_deployment {
        return Ok(Vec::new());
    }
    wait_idle(cfn, &r.name, r.delegated_admin, poll).await?;
    let op = r.operation_id("update");
    rep.report(&DeployEvent::StepStarted {
        target: target.clone(),
        what: r.name.clone(),
        action: "update stack set".into(),
    });
    cfn.update(r, &op).await?;
    wait_operation(cfn, &r.name, &op, r.delegated_admin, poll, rep, target).await?;
    Ok(vec![format!("{}: updated", r.name)])
}

/// Creates the stack set, then its instances (the OUs minus the direct accounts).
async fn create_one<S: StackSetApi>(
    cfn: &S,
    r: &StackSetRequest,
    poll: &PollOptions,
    rep: &dyn Reporter,
    target: &Target,
) -> Result<Vec<String>, StackSetError> {
    rep.report(&DeployEvent::StepStarted {
        target: target.clone(),
        what: r.name.clone(),
        action: "create stack set".into(),
    });
    cfn.create(r).await?;
    let mut done = vec![format!("{}: created", r.name)];
    let op = r.operation_id("instances");
    cfn.create_instances(r, &op).await?;
    wait_operation(cfn, &r.name, &op, r.delegated_admin, poll, rep, target).await?;
    done.push(format!("{}: targets {} minus {} direct accounts", r.name, r.ou_ids.join(","), r.exclude_accounts.len()));
    Ok(done)
}

/// Creates or updates the StackSets, one after the other (each waits for its operation).
pub async fn apply<S: StackSetApi>(
    cfn: &S,
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
            Err(e) => {
                let reason = e.to_string();
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
pub async fn remove<S: StackSetApi>(
    cfn: &S,
    delegated: bool,
    target: &Target,
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> TargetResult {
    let mut steps = Vec::new();
    let result = |steps: Vec<StepResult>, outcome: Outcome| TargetResult {
        target: target.clone(),
        phase: Phase::AutoDeploy,
        trail: None,
        steps,
        outcome,
        calls: 0,
    };
    let mut names = match ctguard_stack_sets(cfn, delegated).await {
        Ok(n) => n,
        Err(e) => return result(steps, Outcome::Failed { reason: e.to_string() }),
    };
    if !names.is_empty() {
        rep.report(&DeployEvent::PhaseStarted { phase: Phase::AutoDeploy, targets: names.len() });
    }
    // Region stacks first, state last (reverse of deployment).
    names.sort_by_key(|n| {
        std::cmp::Reverse(StackKind::ALL.iter().position(|k| n.starts_with(k.stack_name())).unwrap_or(0))
    });
    for n in names {
        match remove_one(cfn, &n, delegated, target, poll, rep).await {
            Ok(step) => steps.push(step),
            Err(e) => return result(steps, Outcome::Failed { reason: e.to_string() }),
        }
    }
    result(steps, Outcome::Ok)
}

/// Deletes one stack set, its instances first; one ctguard did not create is left alone.
async fn remove_one<S: StackSetApi>(
    cfn: &S,
    n: &str,
    delegated: bool,
    target: &Target,
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> Result<StepResult, StackSetError> {
    let owned = cfn.describe(n, delegated).await.ok().flatten().is_some_and(|s| s.owned());
    if !owned {
        return Ok(StepResult {
            what: n.to_string(),
            action: "left alone (not created by ctguard)".into(),
            done: false,
        });
    }
    let mut ous = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for i in cfn.instances(n, delegated).await? {
        ous.extend(i.ou);
        regions.extend(i.region);
    }
    wait_idle(cfn, n, delegated, poll).await?;
    if !ous.is_empty() {
        rep.report(&DeployEvent::StepStarted {
            target: target.clone(),
            what: n.to_string(),
            action: "delete stack instances".into(),
        });
        let op = format!(
            "ctguard-delete-{}",
            &crate::embedded::code_hash(format!("{n}{ous:?}{regions:?}").as_bytes())[..32]
        );
        cfn.delete_instances(n, ous.into_iter().collect(), regions.into_iter().collect(), &op, delegated).await?;
        wait_operation(cfn, n, &op, delegated, poll, rep, target).await?;
    }
    cfn.delete(n, delegated).await?;
    Ok(StepResult { what: n.to_string(), action: "deleted (instances first)".into(), done: true })
}

// ------------------------------------------------------------------------------------------
// CloudFormation

/// A retried request whose operation already exists is waited on instead of started again.
fn already_exists<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("OperationIdAlreadyExistsException")
}

impl StackSetApi for Client {
    async fn list(&self, delegated: bool) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let mut pages = self
            .list_stack_sets()
            .status(aws_sdk_cloudformation::types::StackSetStatus::Active)
            .call_as(call_as(delegated))
            .into_paginator()
            .send();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("ListStackSets", &e))?;
            out.extend(p.summaries().iter().filter_map(|s| s.stack_set_name()).map(str::to_string));
        }
        Ok(out)
    }

    async fn describe(&self, name: &str, delegated: bool) -> Result<Option<StackSetInfo>, ApiError> {
        let s = match self.describe_stack_set().stack_set_name(name).call_as(call_as(delegated)).send().await {
            Ok(d) => d.stack_set().cloned(),
            Err(e) if e.code() == Some("StackSetNotFoundException") => None,
            Err(e) => return Err(ApiError::from_sdk(&format!("DescribeStackSet {name}"), &e)),
        };
        Ok(s.map(|s| StackSetInfo {
            tags: s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
                .collect(),
            auto_deployment: s.auto_deployment().and_then(|a| a.enabled()).unwrap_or(false),
        }))
    }

    async fn instances(&self, name: &str, delegated: bool) -> Result<Vec<Instance>, ApiError> {
        let mut out = Vec::new();
        let mut pages =
            self.list_stack_instances().stack_set_name(name).call_as(call_as(delegated)).into_paginator().send();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk(&format!("ListStackInstances {name}"), &e))?;
            out.extend(p.summaries().iter().map(|s| Instance {
                account: s.account().map(str::to_string),
                ou: s.organizational_unit_id().map(str::to_string),
                region: s.region().map(str::to_string),
            }));
        }
        Ok(out)
    }

    async fn operation_statuses(&self, name: &str, delegated: bool) -> Result<Vec<String>, ApiError> {
        let ops = self
            .list_stack_set_operations()
            .stack_set_name(name)
            .call_as(call_as(delegated))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&format!("ListStackSetOperations {name}"), &e))?;
        Ok(ops.summaries().iter().filter_map(|o| o.status()).map(|s| s.as_str().to_string()).collect())
    }

    async fn operation(&self, name: &str, op: &str, delegated: bool) -> Result<OperationState, ApiError> {
        let d = self
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(op)
            .call_as(call_as(delegated))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&format!("DescribeStackSetOperation {name} {op}"), &e))?;
        let o = d.stack_set_operation();
        Ok(OperationState {
            status: o.and_then(|o| o.status()).map(|s| s.as_str().to_string()).unwrap_or_default(),
            reason: o.and_then(|o| o.status_reason()).map(str::to_string),
        })
    }

    async fn create(&self, r: &StackSetRequest) -> Result<(), ApiError> {
        self.create_stack_set()
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
            .map_err(|e| ApiError::from_sdk(&format!("CreateStackSet {}", r.name), &e))?;
        Ok(())
    }

    async fn update(&self, r: &StackSetRequest, op: &str) -> Result<(), ApiError> {
        let res = self
            .update_stack_set()
            .stack_set_name(&r.name)
            .template_body(r.spec.template_body)
            .set_parameters(Some(r.parameters()))
            .set_tags(Some(r.tags()))
            .capabilities(Capability::CapabilityNamedIam)
            .permission_model(PermissionModels::ServiceManaged)
            .auto_deployment(r.auto_deployment())
            .operation_preferences(r.preferences())
            .operation_id(op)
            .call_as(r.call_as())
            .send()
            .await;
        match res {
            Err(e) if !already_exists(&e) => Err(ApiError::from_sdk(&format!("UpdateStackSet {}", r.name), &e)),
            _ => Ok(()),
        }
    }

    async fn create_instances(&self, r: &StackSetRequest, op: &str) -> Result<(), ApiError> {
        let res = self
            .create_stack_instances()
            .stack_set_name(&r.name)
            .deployment_targets(r.deployment_targets())
            .set_regions(Some(r.regions.clone()))
            .operation_preferences(r.preferences())
            .operation_id(op)
            .call_as(r.call_as())
            .send()
            .await;
        match res {
            Err(e) if !already_exists(&e) => Err(ApiError::from_sdk(&format!("CreateStackInstances {}", r.name), &e)),
            _ => Ok(()),
        }
    }

    async fn delete_instances(
        &self,
        name: &str,
        ous: Vec<String>,
        regions: Vec<String>,
        op: &str,
        delegated: bool,
    ) -> Result<(), ApiError> {
        let res = self
            .delete_stack_instances()
            .stack_set_name(name)
            .deployment_targets(DeploymentTargets::builder().set_organizational_unit_ids(Some(ous)).build())
            .set_regions(Some(regions))
            .retain_stacks(false)
            .operation_id(op)
            .call_as(call_as(delegated))
            .send()
            .await;
        match res {
            Err(e) if !already_exists(&e) => Err(ApiError::from_sdk(&format!("DeleteStackInstances {name}"), &e)),
            _ => Ok(()),
        }
    }

    async fn delete(&self, name: &str, delegated: bool) -> Result<(), ApiError> {
        self.delete_stack_set()
            .stack_set_name(name)
            .call_as(call_as(delegated))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&format!("DeleteStackSet {name}"), &e))?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::targets::expand;

    /// In-memory StackSets: stack sets with their tags and instances; every operation succeeds
    /// at once unless its stack set is listed in `fail_ops`. Records the mutating calls.
    #[derive(Default)]
    struct FakeStackSets {
        sets: Mutex<BTreeMap<String, (StackSetInfo, Vec<Instance>)>>,
        fail_ops: BTreeSet<String>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeStackSets {
        fn log(&self, c: String) {
            self.calls.lock().unwrap().push(c);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn names(&self) -> Vec<String> {
            self.sets.lock().unwrap().keys().cloned().collect()
        }
    }

    impl StackSetApi for FakeStackSets {
        async fn list(&self, _delegated: bool) -> Result<Vec<String>, ApiError> {
            Ok(self.names())
        }
        async fn describe(&self, name: &str, _d: bool) -> Result<Option<StackSetInfo>, ApiError> {
            Ok(self.sets.lock().unwrap().get(name).map(|(i, _)| i.clone()))
        }
        async fn instances(&self, name: &str, _d: bool) -> Result<Vec<Instance>, ApiError> {
            Ok(self.sets.lock().unwrap().get(name).map(|(_, v)| v.clone()).unwrap_or_default())
        }
        async fn operation_statuses(&self, _name: &str, _d: bool) -> Result<Vec<String>, ApiError> {
            Ok(vec!["SUCCEEDED".into()])
        }
        async fn operation(&self, name: &str, _op: &str, _d: bool) -> Result<OperationState, ApiError> {
            Ok(if self.fail_ops.contains(name) {
                OperationState { status: "FAILED".into(), reason: Some("quota".into()) }
            } else {
                OperationState { status: "SUCCEEDED".into(), reason: None }
            })
        }
        async fn create(&self, r: &StackSetRequest) -> Result<(), ApiError> {
            self.log(format!("create {}", r.name));
            let info = StackSetInfo { tags: r.spec.tags.clone(), auto_deployment: true };
            self.sets.lock().unwrap().insert(r.name.clone(), (info, Vec::new()));
            Ok(())
        }
        async fn update(&self, r: &StackSetRequest, _op: &str) -> Result<(), ApiError> {
            self.log(format!("update {}", r.name));
            if let Some((i, _)) = self.sets.lock().unwrap().get_mut(&r.name) {
                i.tags = r.spec.tags.clone();
                i.auto_deployment = true;
            }
            Ok(())
        }
        async fn create_instances(&self, r: &StackSetRequest, _op: &str) -> Result<(), ApiError> {
            self.log(format!("instances {}", r.name));
            if let Some((_, v)) = self.sets.lock().unwrap().get_mut(&r.name) {
                for ou in &r.ou_ids {
                    for region in &r.regions {
                        v.push(Instance {
                            account: Some("999999999999".into()),
                            ou: Some(ou.clone()),
                            region: Some(region.clone()),
                        });
                    }
                }
            }
            Ok(())
        }
        async fn delete_instances(
            &self,
            name: &str,
            ous: Vec<String>,
            regions: Vec<String>,
            _op: &str,
            _d: bool,
        ) -> Result<(), ApiError> {
            self.log(format!("delete instances {name} {ous:?} {regions:?}"));
            if let Some((_, v)) = self.sets.lock().unwrap().get_mut(name) {
                v.clear();
            }
            Ok(())
        }
        async fn delete(&self, name: &str, _d: bool) -> Result<(), ApiError> {
            self.log(format!("delete {name}"));
            let mut sets = self.sets.lock().unwrap();
            if sets.get(name).is_some_and(|(_, v)| !v.is_empty()) {
                return Err(ApiError::new(format!("DeleteStackSet {name}: StackSetNotEmptyException")));
            }
            sets.remove(name);
            Ok(())
        }
    }

    fn quick() -> PollOptions {
        PollOptions {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    fn home() -> Target {
        Target::new("123456789012", "us-east-1")
    }

    #[tokio::test]
    async fn apply_creates_then_changes_nothing_then_updates_a_changed_spec() {
        let fake = FakeStackSets::default();
        let direct = set().accounts.clone();
        let reqs = plan(&cfg(None), &set(), &["r-abcd".to_string()], &direct, false);
        let quiet = |_: &DeployEvent| {};
        let r = apply(&fake, &reqs, &home(), &quick(), &quiet).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(fake.names(), ["ctguard-account-auto", "ctguard-region-auto", "ctguard-state-auto"]);
        assert!(r.steps.iter().all(|s| s.done), "{:?}", r.steps);
        let region = fake.instances("ctguard-region-auto", false).await.unwrap();
        assert_eq!(region.len(), 2, "one instance per region of the root");

        let before = fake.calls().len();
        let again = apply(&fake, &reqs, &home(), &quick(), &quiet).await;
        assert_eq!(again.outcome, Outcome::Ok);
        assert!(again.steps.iter().all(|s| !s.done && s.action == "no change"), "{:?}", again.steps);
        assert_eq!(fake.calls().len(), before, "a re-run makes no change");

        let mut c = cfg(None);
        c.version = "0.2.0".into();
        let changed = plan(&c, &set(), &["r-abcd".to_string()], &direct, false);
        let up = apply(&fake, &changed, &home(), &quick(), &quiet).await;
        assert_eq!(up.outcome, Outcome::Ok);
        assert!(fake.calls().iter().any(|c| c == "update ctguard-region-auto"), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn apply_refuses_a_foreign_stack_set_and_reports_a_failed_operation() {
        let fake = FakeStackSets::default();
        fake.sets.lock().unwrap().insert("ctguard-state-auto".into(), (StackSetInfo::default(), Vec::new()));
        let reqs = plan(&cfg(None), &set(), &["r-abcd".to_string()], &[], false);
        let r = apply(&fake, &reqs, &home(), &quick(), &|_: &DeployEvent| {}).await;
        match &r.outcome {
            Outcome::Failed { reason } => assert!(reason.contains("not created by ctguard"), "{reason}"),
            o => panic!("{o:?}"),
        }
        assert!(fake.calls().is_empty(), "nothing touched: {:?}", fake.calls());

        let failing = FakeStackSets { fail_ops: ["ctguard-state-auto".to_string()].into(), ..Default::default() };
        let r = apply(&failing, &reqs, &home(), &quick(), &|_: &DeployEvent| {}).await;
        match &r.outcome {
            Outcome::Failed { reason } => assert!(reason.contains("FAILED: quota"), "{reason}"),
            o => panic!("{o:?}"),
        }
    }

    #[tokio::test]
    async fn remove_deletes_instances_first_region_first_and_leaves_foreign_sets() {
        let fake = FakeStackSets::default();
        let reqs = plan(&cfg(None), &set(), &["r-abcd".to_string()], &[], false);
        apply(&fake, &reqs, &home(), &quick(), &|_: &DeployEvent| {}).await;
        fake.sets.lock().unwrap().insert("ctguard-other-auto".into(), (StackSetInfo::default(), Vec::new()));
        fake.calls.lock().unwrap().clear();
        let r = remove(&fake, false, &home(), &quick(), &|_: &DeployEvent| {}).await;
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(fake.names(), ["ctguard-other-auto"], "only ctguard's own are deleted");
        let calls = fake.calls();
        let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
        assert!(pos("delete ctguard-region-auto") < pos("delete ctguard-state-auto"), "{calls:?}");
        assert!(calls.iter().any(|c| c.starts_with("delete instances ctguard-region-auto")), "{calls:?}");
        assert!(r.steps.iter().any(|s| s.what == "ctguard-other-auto" && !s.done));
        // A second run finds nothing of ctguard's left.
        let again = remove(&fake, false, &home(), &quick(), &|_: &DeployEvent| {}).await;
        assert!(again.steps.iter().all(|s| !s.done));
    }

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
