//! The StackSets seam: [`StackSetApi`] is the handful of service-managed StackSets calls ctguard
//! makes from the management (or delegated administrator) account, in ctguard types only.
//! [`CfnStackSets`] implements it on CloudFormation; [`FakeStackSets`] implements it over
//! [`FakeOrg`], an in-memory organization that behaves as AWS documents service-managed
//! StackSets (and unlike the emulator, moto, which ignores OU targeting, `AccountFilterType`
//! and auto-deployment and deploys into the management account):
//!
//! - instances go to the *member* accounts below the target OUs (recursively), never to the
//!   management account, even when it sits below a target; each lists the root or OU it was
//!   targeted through (`OrganizationalUnitId`), not the account's parent;
//! - `AccountFilterType` `INTERSECTION` keeps only the listed accounts, `DIFFERENCE` drops them,
//!   `NONE` takes every account below the OUs;
//! - automatic deployment creates the stack set's instances in an account that joins (or is
//!   moved into) a target OU, and deletes them when it leaves (or is moved out) unless the
//!   stack set retains stacks on account removal;
//! - operations skip suspended accounts (`SKIPPED_SUSPENDED_ACCOUNT`) and keep their existing
//!   instances;
//! - an instance landing where another copy of ctguard's fixed-name resources exists fails
//!   (`Table already exists: ctguard-state`, what the emulator answers), and keeps nothing.
//!
//! Every request the fake receives is recorded in [`FakeOrg::requests`] so that tests assert
//! the exact request sequence of each lifecycle transition.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    AccountFilterType, AutoDeployment, CallAs, Capability, DeploymentTargets, ManagedExecution, Parameter,
    PermissionModels, RegionConcurrencyType, StackSetOperationPreferences, StackSetStatus, Tag,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use serde::Serialize;

use crate::stacks::{ApiError, CallCounter};

/// How the account list of [`Targets`] applies to the accounts below its OUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Filter {
    /// Every account below the OUs.
    None,
    /// Only the listed accounts (below the OUs).
    Intersection,
    /// Every account below the OUs except the listed ones. Only ever sent when a stack set's
    /// instances are first created; see [`Targets::for_delete`].
    Difference,
}

/// Where a StackSets operation goes: OUs, optionally narrowed by an account list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Targets {
    pub ous: Vec<String>,
    pub accounts: Vec<String>,
    pub filter: Filter,
}

impl Targets {
    /// Every account below `ous`.
    pub fn ous(ous: &[String]) -> Self {
        Targets { ous: ous.to_vec(), accounts: Vec::new(), filter: Filter::None }
    }

    /// Only `accounts`, below `ous`.
    pub fn only(ous: &[String], accounts: &[String]) -> Self {
        Targets { ous: ous.to_vec(), accounts: accounts.to_vec(), filter: Filter::Intersection }
    }

    /// The targets of a deletion. A `DIFFERENCE` list is refused: removing an account from an
    /// exclusion list and sending the remainder as a deletion has been reported to delete *all*
    /// of a stack set's instances (terraform-provider-aws issue 47721, "Removing account from
    /// DIFFERENCE filter triggers delete action"), so ctguard never deletes through one.
    pub fn for_delete(self) -> Result<Self, ApiError> {
        if self.filter == Filter::Difference {
            return Err(ApiError::new(
                "refusing DeleteStackInstances with AccountFilterType DIFFERENCE: it can delete every \
                 other account's instances (terraform-provider-aws issue 47721)",
            ));
        }
        Ok(self)
    }

    fn sdk(&self) -> DeploymentTargets {
        let mut b = DeploymentTargets::builder().set_organizational_unit_ids(Some(self.ous.clone()));
        match self.filter {
            Filter::None => b = b.account_filter_type(AccountFilterType::None),
            Filter::Intersection => {
                b = b.set_accounts(Some(self.accounts.clone())).account_filter_type(AccountFilterType::Intersection)
            }
            Filter::Difference => {
                b = b.set_accounts(Some(self.accounts.clone())).account_filter_type(AccountFilterType::Difference)
            }
        }
        b.build()
    }
}

/// Operation preferences (`--max-concurrent`, `--failure-tolerance`, `--region-concurrency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefs {
    /// Percentage of accounts worked on at once, per region.
    pub max_concurrent_percentage: u8,
    /// Percentage of accounts that may fail, per region, before the operation stops.
    pub failure_tolerance_percentage: u8,
    /// All regions at once (true) or one region after the other.
    pub regions_parallel: bool,
}

impl Default for Prefs {
    /// Every account and region at once, and a failing account does not stop the others: each
    /// account × region then shows its own result.
    fn default() -> Self {
        Prefs { max_concurrent_percentage: 100, failure_tolerance_percentage: 100, regions_parallel: true }
    }
}

impl Prefs {
    pub fn sdk(&self) -> StackSetOperationPreferences {
        StackSetOperationPreferences::builder()
            .region_concurrency_type(if self.regions_parallel {
                RegionConcurrencyType::Parallel
            } else {
                RegionConcurrencyType::Sequential
            })
            .max_concurrent_percentage(i32::from(self.max_concurrent_percentage.clamp(1, 100)))
            .failure_tolerance_percentage(i32::from(self.failure_tolerance_percentage.min(100)))
            .build()
    }
}

/// What creating or updating a stack set sends (never any deployment target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetBody {
    pub name: String,
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Keep the stacks when an account leaves the targets (ctguard: false).
    pub retain_on_removal: bool,
}

/// A stack set as described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetInfo {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub auto_deploy: bool,
    pub parameters: BTreeMap<String, String>,
}

/// One stack instance (account × region) as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub account: String,
    pub region: String,
    pub ou: Option<String>,
    /// `CURRENT`, `OUTDATED` or `INOPERABLE`.
    pub status: String,
    /// `SUCCEEDED`, `FAILED`, `PENDING`, `RUNNING`, `CANCELLED`, `SKIPPED_SUSPENDED_ACCOUNT`...
    pub detailed: Option<String>,
    pub reason: Option<String>,
    /// The instance's parameter overrides (they win over the stack set's values). Not in
    /// ListStackInstances: filled by [`StackSetApi::overrides`] where needed (`--plan`).
    pub overrides: BTreeMap<String, String>,
}

impl Instance {
    pub fn healthy(&self) -> bool {
        self.status == "CURRENT" && self.detailed.as_deref().is_none_or(|d| d == "SUCCEEDED")
    }
}

/// One account × region of an operation's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpResult {
    pub account: String,
    pub region: String,
    /// `SUCCEEDED`, `FAILED`, `CANCELLED`, `PENDING`, `RUNNING`.
    pub status: String,
    pub reason: Option<String>,
}

/// Service-managed StackSets from the management or delegated administrator account.
pub trait StackSetApi: Sync {
    /// Names of the ACTIVE stack sets whose names start with `prefix`.
    fn list_sets(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    fn describe_set(&self, name: &str) -> impl Future<Output = Result<Option<SetInfo>, ApiError>> + Send;
    fn list_instances(&self, name: &str) -> impl Future<Output = Result<Vec<Instance>, ApiError>> + Send;
    /// CreateStackSet with automatic deployment on; creates no instance.
    fn create_set(&self, body: &SetBody) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// UpdateStackSet of the template, parameters and tags of every existing instance. Takes no
    /// deployment targets on purpose: an update never changes who is covered.
    fn update_set(&self, body: &SetBody, prefs: &Prefs, op: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn create_instances(
        &self,
        name: &str,
        targets: &Targets,
        regions: &[String],
        prefs: &Prefs,
        op: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// DeleteStackInstances (stacks not retained). `targets` must come from [`Targets::for_delete`].
    fn delete_instances(
        &self,
        name: &str,
        targets: &Targets,
        regions: &[String],
        prefs: &Prefs,
        op: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn delete_set(&self, name: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// An operation's status and reason.
    fn operation(
        &self,
        name: &str,
        op: &str,
    ) -> impl Future<Output = Result<(String, Option<String>), ApiError>> + Send;
    /// Whether an operation is running or queued on the stack set.
    fn busy(&self, name: &str) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// Per account × region results of an operation.
    fn results(&self, name: &str, op: &str) -> impl Future<Output = Result<Vec<OpResult>, ApiError>> + Send;
    /// The parameter overrides of one instance (DescribeStackInstance).
    fn overrides(
        &self,
        name: &str,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, ApiError>> + Send;
    fn calls(&self) -> u64;
}

// ------------------------------------------------------------------------------------------
// CloudFormation

/// [`StackSetApi`] on CloudFormation, calling as the management account or as a delegated
/// administrator.
pub struct CfnStackSets {
    cfn: aws_sdk_cloudformation::Client,
    delegated: bool,
    counter: CallCounter,
}

impl CfnStackSets {
    pub fn new(cfg: &aws_config::SdkConfig, delegated: bool) -> Self {
        let counter = CallCounter::default();
        let cfn = aws_sdk_cloudformation::Client::from_conf(
            aws_sdk_cloudformation::config::Builder::from(cfg).interceptor(counter.clone()).build(),
        );
        CfnStackSets { cfn, delegated, counter }
    }

    fn call_as(&self) -> CallAs {
        if self.delegated {
            CallAs::DelegatedAdmin
        } else {
            CallAs::SelfValue
        }
    }
}

fn sdk_params(p: &BTreeMap<String, String>) -> Vec<Parameter> {
    p.iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect()
}

fn sdk_tags(t: &BTreeMap<String, String>) -> Vec<Tag> {
    t.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn auto(retain: bool) -> AutoDeployment {
    AutoDeployment::builder().enabled(true).retain_stacks_on_account_removal(retain).build()
}

/// The answer to a request that starts an operation. A retried request whose operation id
/// already exists is the same operation, not a failure: the caller waits on it.
fn started<O, E>(what: &str, r: Result<O, SdkError<E, HttpResponse>>) -> Result<(), ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match r.map_err(|e| ApiError::from_sdk(what, &e)) {
        Err(e) if e.code.as_deref() != Some("OperationIdAlreadyExistsException") => Err(e),
        _ => Ok(()),
    }
}

/// What every operation on stack instances sends besides its own settings: the stack set,
/// where (targets × regions), how (preferences), the operation id and the caller's role.
macro_rules! on_instances {
    ($self:ident, $builder:expr, $name:expr, $targets:expr, $regions:expr, $prefs:expr, $op:expr) => {
        $builder
            .stack_set_name($name)
            .deployment_targets($targets.sdk())
            .set_regions(Some($regions.to_vec()))
            .operation_preferences($prefs.sdk())
            .operation_id($op)
            .call_as($self.call_as())
    };
}

impl StackSetApi for CfnStackSets {
    async fn list_sets(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let mut pages =
            self.cfn.list_stack_sets().status(StackSetStatus::Active).call_as(self.call_as()).into_paginator().send();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("ListStackSets", &e))?;
            out.extend(
                p.summaries()
                    .iter()
                    .filter_map(|s| s.stack_set_name())
                    .filter(|n| n.starts_with(prefix))
                    .map(String::from),
            );
        }
        Ok(out)
    }

    async fn describe_set(&self, name: &str) -> Result<Option<SetInfo>, ApiError> {
        let d = match self.cfn.describe_stack_set().stack_set_name(name).call_as(self.call_as()).send().await {
            Ok(d) => d,
            Err(e) => {
                let e = ApiError::from_sdk("DescribeStackSet", &e);
                return if e.code.as_deref() == Some("StackSetNotFoundException") { Ok(None) } else { Err(e) };
            }
        };
        Ok(d.stack_set().map(|s| SetInfo {
            name: name.to_string(),
            tags: s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().into(), t.value().unwrap_or_default().into()))
                .collect(),
            auto_deploy: s.auto_deployment().and_then(|a| a.enabled()).unwrap_or(false),
            parameters: s
                .parameters()
                .iter()
                .map(|p| (p.parameter_key().unwrap_or_default().into(), p.parameter_value().unwrap_or_default().into()))
                .collect(),
        }))
    }

    async fn list_instances(&self, name: &str) -> Result<Vec<Instance>, ApiError> {
        let mut out = Vec::new();
        let mut pages =
            self.cfn.list_stack_instances().stack_set_name(name).call_as(self.call_as()).into_paginator().send();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("ListStackInstances", &e))?;
            out.extend(p.summaries().iter().map(|s| Instance {
                account: s.account().unwrap_or_default().into(),
                region: s.region().unwrap_or_default().into(),
                ou: s.organizational_unit_id().map(String::from),
                status: s.status().map(|x| x.as_str().to_string()).unwrap_or_default(),
                detailed: s.stack_instance_status().and_then(|d| d.detailed_status()).map(|d| d.as_str().to_string()),
                reason: s.status_reason().map(String::from),
                overrides: BTreeMap::new(),
            }));
        }
        Ok(out)
    }

    async fn create_set(&self, b: &SetBody) -> Result<(), ApiError> {
        self.cfn
            .create_stack_set()
            .stack_set_name(&b.name)
            .description("ctguard: the detector in every member account (service-managed, automatic deployment)")
            .template_body(&b.template_body)
            .set_parameters(Some(sdk_params(&b.parameters)))
            .set_tags(Some(sdk_tags(&b.tags)))
            .capabilities(Capability::CapabilityNamedIam)
            .permission_model(PermissionModels::ServiceManaged)
            .auto_deployment(auto(b.retain_on_removal))
            .managed_execution(ManagedExecution::builder().active(false).build())
            .call_as(self.call_as())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("CreateStackSet", &e))?;
        Ok(())
    }

    async fn update_set(&self, b: &SetBody, prefs: &Prefs, op: &str) -> Result<(), ApiError> {
        let r = self
            .cfn
            .update_stack_set()
            .stack_set_name(&b.name)
            .template_body(&b.template_body)
            .set_parameters(Some(sdk_params(&b.parameters)))
            .set_tags(Some(sdk_tags(&b.tags)))
            .capabilities(Capability::CapabilityNamedIam)
            .permission_model(PermissionModels::ServiceManaged)
            .auto_deployment(auto(b.retain_on_removal))
            .operation_preferences(prefs.sdk())
            .operation_id(op)
            .call_as(self.call_as())
            .send()
            .await;
        started("UpdateStackSet", r)
    }

    async fn create_instances(
        &self,
        name: &str,
        t: &Targets,
        regions: &[String],
        prefs: &Prefs,
        op: &str,
    ) -> Result<(), ApiError> {
        let r = on_instances!(self, self.cfn.create_stack_instances(), name, t, regions, prefs, op).send().await;
        started("CreateStackInstances", r)
    }

    async fn delete_instances(
        &self,
        name: &str,
        t: &Targets,
        regions: &[String],
        prefs: &Prefs,
        op: &str,
    ) -> Result<(), ApiError> {
        let t = t.clone().for_delete()?;
        let r = on_instances!(self, self.cfn.delete_stack_instances(), name, t, regions, prefs, op)
            .retain_stacks(false)
            .send()
            .await;
        started("DeleteStackInstances", r)
    }

    async fn delete_set(&self, name: &str) -> Result<(), ApiError> {
        match self.cfn.delete_stack_set().stack_set_name(name).call_as(self.call_as()).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ApiError::from_sdk("DeleteStackSet", &e);
                if e.code.as_deref() == Some("StackSetNotFoundException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn operation(&self, name: &str, op: &str) -> Result<(String, Option<String>), ApiError> {
        let d = self
            .cfn
            .describe_stack_set_operation()
            .stack_set_name(name)
            .operation_id(op)
            .call_as(self.call_as())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("DescribeStackSetOperation", &e))?;
        let o = d.stack_set_operation();
        Ok((
            o.and_then(|o| o.status()).map(|s| s.as_str().to_string()).unwrap_or_default(),
            o.and_then(|o| o.status_reason()).map(String::from),
        ))
    }

    async fn busy(&self, name: &str) -> Result<bool, ApiError> {
        let ops = self
            .cfn
            .list_stack_set_operations()
            .stack_set_name(name)
            .call_as(self.call_as())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("ListStackSetOperations", &e))?;
        Ok(ops
            .summaries()
            .iter()
            .any(|o| o.status().is_some_and(|s| matches!(s.as_str(), "RUNNING" | "QUEUED" | "STOPPING"))))
    }

    async fn results(&self, name: &str, op: &str) -> Result<Vec<OpResult>, ApiError> {
        let mut out = Vec::new();
        let mut pages = self
            .cfn
            .list_stack_set_operation_results()
            .stack_set_name(name)
            .operation_id(op)
            .call_as(self.call_as())
            .into_paginator()
            .send();
        while let Some(p) = pages.next().await {
            let p = p.map_err(|e| ApiError::from_sdk("ListStackSetOperationResults", &e))?;
            out.extend(p.summaries().iter().map(|s| OpResult {
                account: s.account().unwrap_or_default().into(),
                region: s.region().unwrap_or_default().into(),
                status: s.status().map(|x| x.as_str().to_string()).unwrap_or_default(),
                reason: s.status_reason().map(String::from),
            }));
        }
        Ok(out)
    }

    async fn overrides(&self, name: &str, account: &str, region: &str) -> Result<BTreeMap<String, String>, ApiError> {
        let d = self
            .cfn
            .describe_stack_instance()
            .stack_set_name(name)
            .stack_instance_account(account)
            .stack_instance_region(region)
            .call_as(self.call_as())
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("DescribeStackInstance", &e))?;
        Ok(d.stack_instance()
            .map(|i| {
                i.parameter_overrides()
                    .iter()
                    .map(|p| {
                        (p.parameter_key().unwrap_or_default().into(), p.parameter_value().unwrap_or_default().into())
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }
}

// ------------------------------------------------------------------------------------------
// Fake organization (test code only: unit tests, or the `test-support` feature)

#[cfg(any(test, feature = "test-support"))]
pub use fake::{FakeOrg, FakeStackSets};

#[cfg(any(test, feature = "test-support"))]
mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use super::{Filter, Instance, OpResult, Prefs, SetBody, SetInfo, StackSetApi, Targets};
    use crate::stacks::{ApiError, CallCounter, FakeCloud};
    use crate::targets::Target;

    #[derive(Debug, Clone)]
    struct FakeSet {
        info: SetInfo,
        retain: bool,
        /// OUs the instances were created for: automatic deployment watches these.
        target_ous: BTreeSet<String>,
        regions: BTreeSet<String>,
        instances: BTreeMap<(String, String), Instance>,
    }

    /// An in-memory organization with service-managed StackSets (see the module doc for the AWS
    /// behaviour it follows). When `cloud` is set, instances and direct stacks share the fixed
    /// resource names: an instance cannot land where a direct `ctguard-state`/`ctguard-region`
    /// stack exists, and [`FakeOrg`] marks its instances in [`crate::stacks::FakeWorld::foreign`]
    /// so a direct stack cannot land where an instance exists.
    #[derive(Debug, Default)]
    pub struct FakeOrg {
        pub management: String,
        pub root: String,
        /// OU (or root) → its parent.
        pub ou_parent: BTreeMap<String, String>,
        /// Member account → its parent OU (or root).
        pub accounts: BTreeMap<String, String>,
        pub suspended: BTreeSet<String>,
        sets: BTreeMap<String, FakeSet>,
        ops: BTreeMap<(String, String), (String, Vec<OpResult>)>,
        /// Every request, in order, e.g. `CreateStackInstances ctguard-region-auto ous=r-root filter=None accounts= regions=us-east-1`.
        pub requests: Vec<String>,
        pub cloud: Option<FakeCloud>,
    }

    impl FakeOrg {
        /// An organization with a management account and the root.
        pub fn new(management: &str, root: &str) -> Self {
            let mut o = FakeOrg { management: management.into(), root: root.into(), ..Default::default() };
            o.accounts.insert(management.into(), root.into());
            o
        }

        pub fn add_ou(&mut self, ou: &str, parent: &str) {
            self.ou_parent.insert(ou.into(), parent.into());
        }

        fn below(&self, account: &str, ou: &str) -> bool {
            let mut cur = self.accounts.get(account).cloned();
            while let Some(p) = cur {
                if p == ou {
                    return true;
                }
                cur = self.ou_parent.get(&p).cloned();
            }
            false
        }

        /// The member accounts `t` selects (never the management account).
        fn resolve(&self, t: &Targets) -> BTreeSet<String> {
            self.accounts
                .keys()
                .filter(|a| **a != self.management && t.ous.iter().any(|ou| self.below(a, ou)))
                .filter(|a| match t.filter {
                    Filter::None => true,
                    Filter::Intersection => t.accounts.contains(a),
                    Filter::Difference => !t.accounts.contains(a),
                })
                .cloned()
                .collect()
        }

        /// Whether another copy of ctguard already holds the fixed names in `account` × `region`.
        fn collides(&self, set: &str, account: &str, region: &str) -> Option<String> {
            let direct = self.cloud.as_ref().and_then(|c| {
                c.with(|w| {
                    let t = Target::new(account, region);
                    ["ctguard-state", "ctguard-region", "ctguard-account"]
                        .into_iter()
                        .find(|n| w.stacks.contains_key(&(t.clone(), n.to_string())))
                        .map(String::from)
                })
            });
            let other = self.sets.iter().find(|(n, s)| {
                n.as_str() != set
                    && same_kind(n, set)
                    && s.instances.contains_key(&(account.to_string(), region.to_string()))
            });
            direct
                .map(|d| format!("{d} exists (Table already exists: ctguard-state)"))
                .or(other.map(|(n, _)| format!("{n} instance exists")))
        }

        fn place(&mut self, set: &str, account: &str, region: &str) -> OpResult {
            // ListStackInstances names the root or OU of the deployment targets the account was
            // reached through, not its parent.
            let targeted = self.sets.get(set).and_then(|s| s.target_ous.iter().find(|ou| self.below(account, ou)));
            let ou = targeted.cloned().or_else(|| self.accounts.get(account).cloned());
            let mut r =
                OpResult { account: account.into(), region: region.into(), status: "SUCCEEDED".into(), reason: None };
            let mut inst = Instance {
                account: account.into(),
                region: region.into(),
                ou,
                status: "CURRENT".into(),
                detailed: Some("SUCCEEDED".into()),
                reason: None,
                overrides: BTreeMap::new(),
            };
            if self.suspended.contains(account) {
                // Operations skip suspended accounts: nothing is created, nothing recorded.
                r.status = "CANCELLED".into();
                r.reason = Some("SKIPPED_SUSPENDED_ACCOUNT".into());
                return r;
            }
            if let Some(why) = self.collides(set, account, region) {
                inst.status = "OUTDATED".into();
                inst.detailed = Some("FAILED".into());
                inst.reason = Some(why.clone());
                r.status = "FAILED".into();
                r.reason = Some(why);
            } else if let Some(c) = &self.cloud {
                c.with(|w| w.foreign.insert(Target::new(account, region)));
            }
            if let Some(s) = self.sets.get_mut(set) {
                s.instances.insert((account.into(), region.into()), inst);
            }
            r
        }

        fn unplace(&mut self, set: &str, account: &str, region: &str) -> OpResult {
            let failed = self
                .sets
                .get_mut(set)
                .and_then(|s| s.instances.remove(&(account.to_string(), region.to_string())))
                .is_some_and(|i| i.detailed.as_deref() == Some("FAILED"));
            // A failed instance created nothing; a good one held the fixed names.
            if !failed {
                if let Some(c) = &self.cloud {
                    c.with(|w| w.foreign.remove(&Target::new(account, region)));
                }
            }
            OpResult { account: account.into(), region: region.into(), status: "SUCCEEDED".into(), reason: None }
        }

        /// Automatic deployment after a membership change of `account`.
        fn auto_deploy(&mut self, account: &str) {
            let names: Vec<String> = self.sets.keys().cloned().collect();
            for n in names {
                let Some(s) = self.sets.get(&n).cloned() else { continue };
                if !s.info.auto_deploy {
                    continue;
                }
                let member = self.accounts.contains_key(account) && account != self.management;
                let targeted = member && s.target_ous.iter().any(|ou| self.below(account, ou));
                for region in &s.regions {
                    let has = s.instances.contains_key(&(account.to_string(), region.clone()));
                    if targeted && !has {
                        self.place(&n, account, region);
                    } else if !targeted && has && !s.retain {
                        self.unplace(&n, account, region);
                    }
                }
            }
        }

        /// A new account joins `ou` (AWS runs automatic deployment).
        pub fn join(&mut self, account: &str, ou: &str) {
            self.accounts.insert(account.into(), ou.into());
            self.auto_deploy(account);
        }

        /// The account leaves the organization.
        pub fn leave(&mut self, account: &str) {
            self.accounts.remove(account);
            self.suspended.remove(account);
            self.auto_deploy(account);
        }

        /// The account is suspended (closed): StackSets operations skip it; its stacks stay.
        pub fn suspend(&mut self, account: &str) {
            self.suspended.insert(account.into());
        }

        /// The account moves to another OU.
        pub fn move_account(&mut self, account: &str, to: &str) {
            self.accounts.insert(account.into(), to.into());
            self.auto_deploy(account);
        }

        /// Gives an instance parameter overrides (UpdateStackInstances, as an operator would).
        pub fn set_overrides(&mut self, set: &str, account: &str, region: &str, overrides: &[(&str, &str)]) {
            let key = (account.to_string(), region.to_string());
            if let Some(i) = self.sets.get_mut(set).and_then(|s| s.instances.get_mut(&key)) {
                i.overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            }
        }

        /// Accounts with an instance of `set`, with the instance's detailed status.
        pub fn instances(&self, set: &str) -> BTreeMap<(String, String), String> {
            self.sets
                .get(set)
                .map(|s| s.instances.iter().map(|(k, i)| (k.clone(), i.detailed.clone().unwrap_or_default())).collect())
                .unwrap_or_default()
        }

        pub fn set_names(&self) -> Vec<String> {
            self.sets.keys().cloned().collect()
        }
    }

    /// `ctguard-region-auto` and `ctguard-region-members` deploy the same resources.
    fn same_kind(a: &str, b: &str) -> bool {
        let kind = |n: &str| n.rsplit_once('-').map(|(k, _)| k.to_string()).unwrap_or_default();
        kind(a) == kind(b)
    }

    /// A [`StackSetApi`] over a shared [`FakeOrg`].
    #[derive(Debug, Clone, Default)]
    pub struct FakeStackSets {
        pub org: Arc<Mutex<FakeOrg>>,
        counter: CallCounter,
    }

    impl FakeStackSets {
        pub fn new(org: FakeOrg) -> Self {
            FakeStackSets { org: Arc::new(Mutex::new(org)), counter: CallCounter::default() }
        }

        pub fn with<R>(&self, f: impl FnOnce(&mut FakeOrg) -> R) -> R {
            let mut o = self.org.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut o)
        }

        fn req(&self, line: String) {
            self.counter.add();
            self.with(|o| o.requests.push(line));
        }

        /// Only the mutating requests (what tests compare against the expected sequence).
        pub fn writes(&self) -> Vec<String> {
            self.with(|o| {
                o.requests
                    .iter()
                    .filter(|r| {
                        [
                            "CreateStackSet",
                            "UpdateStackSet",
                            "CreateStackInstances",
                            "DeleteStackInstances",
                            "DeleteStackSet",
                        ]
                        .iter()
                        .any(|w| r.starts_with(&format!("{w} ")))
                    })
                    .cloned()
                    .collect()
            })
        }
    }

    fn missing(name: &str) -> ApiError {
        ApiError { code: Some("StackSetNotFoundException".into()), message: format!("StackSet {name} not found") }
    }

    impl StackSetApi for FakeStackSets {
        async fn list_sets(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
            self.req(format!("ListStackSets {prefix}"));
            Ok(self.with(|o| o.sets.keys().filter(|n| n.starts_with(prefix)).cloned().collect()))
        }

        async fn describe_set(&self, name: &str) -> Result<Option<SetInfo>, ApiError> {
            self.req(format!("DescribeStackSet {name}"));
            Ok(self.with(|o| o.sets.get(name).map(|s| s.info.clone())))
        }

        async fn list_instances(&self, name: &str) -> Result<Vec<Instance>, ApiError> {
            self.req(format!("ListStackInstances {name}"));
            // ListStackInstances carries no overrides: only DescribeStackInstance does.
            let strip = |i: &Instance| Instance { overrides: BTreeMap::new(), ..i.clone() };
            self.with(|o| {
                o.sets.get(name).map(|s| s.instances.values().map(strip).collect()).ok_or_else(|| missing(name))
            })
        }

        async fn create_set(&self, b: &SetBody) -> Result<(), ApiError> {
            self.req(format!("CreateStackSet {}", b.name));
            self.with(|o| {
                if o.sets.contains_key(&b.name) {
                    return Err(ApiError { code: Some("NameAlreadyExistsException".into()), message: b.name.clone() });
                }
                let info = SetInfo {
                    name: b.name.clone(),
                    tags: b.tags.clone(),
                    auto_deploy: true,
                    parameters: b.parameters.clone(),
                };
                let set = FakeSet {
                    info,
                    retain: b.retain_on_removal,
                    target_ous: BTreeSet::new(),
                    regions: BTreeSet::new(),
                    instances: BTreeMap::new(),
                };
                o.sets.insert(b.name.clone(), set);
                Ok(())
            })
        }

        async fn update_set(&self, b: &SetBody, _prefs: &Prefs, op: &str) -> Result<(), ApiError> {
            self.req(format!("UpdateStackSet {} op={op}", b.name));
            self.with(|o| {
                let s = o.sets.get_mut(&b.name).ok_or_else(|| missing(&b.name))?;
                s.info.tags = b.tags.clone();
                s.info.parameters = b.parameters.clone();
                s.info.auto_deploy = true;
                let keys: Vec<(String, String)> = s.instances.keys().cloned().collect();
                let results = keys
                    .into_iter()
                    .map(|(a, r)| OpResult { account: a, region: r, status: "SUCCEEDED".into(), reason: None })
                    .collect();
                o.ops.insert((b.name.clone(), op.into()), ("SUCCEEDED".into(), results));
                Ok(())
            })
        }

        async fn create_instances(
            &self,
            name: &str,
            t: &Targets,
            regions: &[String],
            _prefs: &Prefs,
            op: &str,
        ) -> Result<(), ApiError> {
            self.req(format!(
                "CreateStackInstances {name} ous={} filter={:?} accounts={} regions={}",
                t.ous.join(","),
                t.filter,
                t.accounts.join(","),
                regions.join(",")
            ));
            self.with(|o| {
                if !o.sets.contains_key(name) {
                    return Err(missing(name));
                }
                let accounts = o.resolve(t);
                if accounts.is_empty() {
                    // Not documented to succeed: the fake refuses it, so tests prove ctguard never
                    // sends it.
                    return Err(ApiError::new(format!("CreateStackInstances {name}: the targets select no account")));
                }
                if let Some(s) = o.sets.get_mut(name) {
                    s.target_ous.extend(t.ous.iter().cloned());
                    s.regions.extend(regions.iter().cloned());
                }
                let mut results = Vec::new();
                for a in &accounts {
                    for r in regions {
                        results.push(o.place(name, a, r));
                    }
                }
                o.ops.insert((name.into(), op.into()), ("SUCCEEDED".into(), results));
                Ok(())
            })
        }

        async fn delete_instances(
            &self,
            name: &str,
            t: &Targets,
            regions: &[String],
            _prefs: &Prefs,
            op: &str,
        ) -> Result<(), ApiError> {
            self.req(format!(
                "DeleteStackInstances {name} ous={} filter={:?} accounts={} regions={}",
                t.ous.join(","),
                t.filter,
                t.accounts.join(","),
                regions.join(",")
            ));
            let t = t.clone().for_delete()?;
            self.with(|o| {
                let s = o.sets.get(name).cloned().ok_or_else(|| missing(name))?;
                let selected = o.resolve(&t);
                let mut results = Vec::new();
                for (a, r) in s.instances.keys() {
                    // Instances of accounts that left the organization are deleted with their OU.
                    let gone = !o.accounts.contains_key(a) && t.filter == Filter::None;
                    if regions.contains(r) && (selected.contains(a) || gone) {
                        results.push(o.unplace(name, a, r));
                    }
                }
                if let Some(s) = o.sets.get_mut(name) {
                    if t.filter == Filter::None {
                        s.target_ous.retain(|ou| !t.ous.contains(ou));
                    }
                }
                o.ops.insert((name.into(), op.into()), ("SUCCEEDED".into(), results));
                Ok(())
            })
        }

        async fn delete_set(&self, name: &str) -> Result<(), ApiError> {
            self.req(format!("DeleteStackSet {name}"));
            self.with(|o| match o.sets.get(name) {
                Some(s) if !s.instances.is_empty() => Err(ApiError {
                    code: Some("StackSetNotEmptyException".into()),
                    message: format!("{name} still has {} instances", s.instances.len()),
                }),
                _ => {
                    o.sets.remove(name);
                    Ok(())
                }
            })
        }

        async fn operation(&self, name: &str, op: &str) -> Result<(String, Option<String>), ApiError> {
            self.req(format!("DescribeStackSetOperation {name} {op}"));
            self.with(|o| {
                o.ops
                    .get(&(name.to_string(), op.to_string()))
                    .map(|(s, _)| (s.clone(), None))
                    .ok_or_else(|| ApiError { code: Some("OperationNotFoundException".into()), message: op.into() })
            })
        }

        async fn busy(&self, name: &str) -> Result<bool, ApiError> {
            self.req(format!("ListStackSetOperations {name}"));
            Ok(false)
        }

        async fn results(&self, name: &str, op: &str) -> Result<Vec<OpResult>, ApiError> {
            self.req(format!("ListStackSetOperationResults {name} {op}"));
            Ok(self
                .with(|o| o.ops.get(&(name.to_string(), op.to_string())).map(|(_, r)| r.clone()).unwrap_or_default()))
        }

        async fn overrides(
            &self,
            name: &str,
            account: &str,
            region: &str,
        ) -> Result<BTreeMap<String, String>, ApiError> {
            self.req(format!("DescribeStackInstance {name} {account} {region}"));
            let key = (account.to_string(), region.to_string());
            self.with(|o| {
                o.sets.get(name).and_then(|s| s.instances.get(&key)).map(|i| i.overrides.clone()).ok_or_else(|| {
                    ApiError { code: Some("StackInstanceNotFoundException".into()), message: format!("{key:?}") }
                })
            })
        }

        fn calls(&self) -> u64 {
            self.counter.get()
        }
    }
}
