//! ctguard's service-managed StackSets (`ctguard-state-auto`, `ctguard-account-auto`,
//! `ctguard-region-auto`), in either mode of [`DeployWith`]:
//!
//! - **stacksets**: the StackSets own every member account below the root (or the `--ou`s),
//!   with automatic deployment, so accounts that join later get the detector without a re-run
//!   and no role is needed in any member account. A re-run updates the template of every
//!   instance, and adds instances only for accounts or regions that have none, naming those
//!   accounts (`INTERSECTION`): it never re-targets the others.
//! - **direct**: the existing accounts get direct stacks ([`crate::deploy`]) and the StackSets
//!   target the OUs *minus* those accounts (`AccountFilterType: DIFFERENCE`), sent once, when
//!   the instances are first created. The exclusion list is never changed afterwards: removing
//!   an account from a `DIFFERENCE` list has been reported to delete *every* instance of the
//!   stack set (terraform-provider-aws issue 47721), so updates carry no deployment target at
//!   all ([`StackSetApi::update_set`] cannot take one) and deletions refuse `DIFFERENCE`
//!   ([`Targets::for_delete`]). When the list would leave no account (a first `--org` install:
//!   every account is direct), no instance is created, because CreateStackInstances with such a
//!   filter is not documented to succeed; the StackSets then have no target, accounts joining
//!   later are not covered, and the run says so.
//!
//! Owners are discovered ([`Discovered`], [`crate::ownership`]): an account with an instance
//! belongs to the StackSets and a re-run deploys no direct stack there.
//!
//! StackSets run one operation at a time per stack set: every call waits for any running
//! operation, then for its own, and uses a deterministic operation id so a retried request is
//! recognised instead of queued twice. Per account × region results come from the operation
//! results.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

use crate::deploy::{DeployEvent, Outcome, Phase, PollOptions, Reporter, StepResult, TargetResult};
use crate::ownership::{self, DeployWith, MODE_TAG};
use crate::plan::{InstallConfig, StackKind, StackSpec, OWNER_TAG, OWNER_VALUE, SPEC_TAG};
use crate::stacks::ApiError;
use crate::stacksets::{Filter, Instance, OpResult, Prefs, SetBody, SetInfo, StackSetApi, Targets};
use crate::targets::{Target, TargetSet};

/// Suffix of ctguard's StackSet names.
pub const SUFFIX: &str = "-auto";
/// Prefix every ctguard StackSet name has.
pub const PREFIX: &str = "ctguard-";

/// One StackSet and where its instances go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSetRequest {
    pub name: String,
    pub spec: StackSpec,
    pub regions: Vec<String>,
    /// Organization root or OUs the stack set (and its automatic deployment) covers.
    pub ou_ids: Vec<String>,
    /// Member accounts below `ou_ids` today (the management account never counts).
    pub members: Vec<String>,
    /// Accounts excluded from the instances (direct mode: the directly deployed ones).
    pub exclude_accounts: Vec<String>,
    pub mode: DeployWith,
}

impl StackSetRequest {
    /// Targets of the first CreateStackInstances: the OUs, minus the direct accounts in the
    /// direct mode.
    pub fn deployment_targets(&self) -> Targets {
        let mut t = Targets::ous(&self.ou_ids);
        if self.mode == DeployWith::Direct && !self.exclude_accounts.is_empty() {
            t.accounts = self.exclude_accounts.clone();
            t.filter = Filter::Difference;
        }
        t
    }

    /// Member accounts the first CreateStackInstances would reach.
    pub fn selected(&self) -> Vec<&String> {
        self.members.iter().filter(|m| !self.exclude_accounts.contains(m)).collect()
    }

    /// CreateStackSet/UpdateStackSet body: the same template and parameters as a direct
    /// deployment (the templates take nothing per account), plus the mode tag.
    pub fn body(&self) -> SetBody {
        let mut tags = self.spec.tags.clone();
        tags.insert(MODE_TAG.into(), self.mode.as_str().into());
        SetBody {
            name: self.name.clone(),
            template_body: self.spec.template_body.to_string(),
            parameters: self.spec.parameters.clone(),
            tags,
            // An account leaving the organization (or the targeted OUs) loses its detector.
            retain_on_removal: false,
        }
    }

    /// Deterministic id of an operation on this request: the same request retried gets the
    /// same id, which StackSets refuses to run twice.
    pub fn operation_id(&self, op: &str, extra: &str) -> String {
        let ctx = format!(
            "{}|{}|{}|{}|{}",
            self.spec.spec_hash,
            self.regions.join(","),
            self.ou_ids.join(","),
            self.exclude_accounts.join(","),
            extra
        );
        let h = crate::embedded::code_hash(ctx.as_bytes());
        format!("ctguard-{op}-{}", h.get(..32).unwrap_or(&h))
    }
}

/// The StackSets for `cfg`: state and account (home region only) and region (every region).
pub fn plan(
    cfg: &InstallConfig,
    set: &TargetSet,
    ou_ids: &[String],
    members: &[String],
    exclude: &[String],
    mode: DeployWith,
) -> Vec<StackSetRequest> {
    let mk = |spec: StackSpec, regions: Vec<String>| StackSetRequest {
        name: format!("{}{SUFFIX}", spec.kind.stack_name()),
        spec,
        regions,
        ou_ids: ou_ids.to_vec(),
        members: members.to_vec(),
        exclude_accounts: if mode == DeployWith::Direct { exclude.to_vec() } else { Vec::new() },
        mode,
    };
    let home = vec![set.home_region.clone()];
    let mut v = vec![mk(cfg.state_spec(), home.clone())];
    if let Some(a) = cfg.account_spec() {
        v.push(mk(a, home));
    }
    v.push(mk(cfg.region_spec(), set.regions.clone()));
    v
}

/// ctguard's StackSets as found: their description and instances.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovered {
    pub sets: BTreeMap<String, SetInfo>,
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// Why they could not be read, if so.
    pub unreadable: Option<String>,
}

impl Discovered {
    /// The mode the existing installation was made in (`None`: no ctguard StackSet).
    pub fn mode(&self) -> Option<DeployWith> {
        ownership::discovered_mode(self.sets.values().map(|s| &s.tags))
    }

    /// Accounts the StackSets own (at least one instance).
    pub fn stackset_accounts(&self) -> BTreeSet<String> {
        ownership::stackset_accounts(&self.instances)
    }

    /// True when accounts joining the organization get the detector without a re-run: the
    /// region StackSet deploys automatically and has targets (instances) to follow.
    pub fn new_accounts_covered(&self) -> bool {
        let name = format!("{}{SUFFIX}", StackKind::Region.stack_name());
        self.sets.get(&name).is_some_and(|s| s.auto_deploy) && self.instances.get(&name).is_some_and(|i| !i.is_empty())
    }
}

/// Reads ctguard's StackSets (those whose name ends in [`SUFFIX`]) and their instances.
pub async fn discover<S: StackSetApi>(api: &S) -> Discovered {
    let mut d = Discovered::default();
    let names = match api.list_sets(PREFIX).await {
        Ok(n) => n,
        Err(e) => {
            d.unreadable = Some(e.message);
            return d;
        }
    };
    for n in names.into_iter().filter(|n| n.ends_with(SUFFIX)) {
        match api.describe_set(&n).await {
            Ok(Some(info)) => {
                d.sets.insert(n.clone(), info);
            }
            Ok(None) => continue,
            Err(e) => d.unreadable = Some(e.message),
        }
        match api.list_instances(&n).await {
            Ok(i) => {
                d.instances.insert(n, i);
            }
            Err(e) => d.unreadable = Some(e.message),
        }
    }
    d
}

fn owned(info: &SetInfo) -> bool {
    info.tags.get(OWNER_TAG).map(String::as_str) == Some(OWNER_VALUE)
}

/// What [`apply`] would do, one line per StackSet, from the listed instances.
pub fn plan_lines(reqs: &[StackSetRequest], d: &Discovered, prefs: &Prefs) -> Vec<String> {
    let mut out = Vec::new();
    for r in reqs {
        let prefix = format!("{} ({} mode)", r.name, r.mode.as_str());
        let Some(info) = d.sets.get(&r.name) else {
            let sel = r.selected();
            if sel.is_empty() {
                out.push(format!(
                    "{prefix}: create the StackSet; no instance (no member account left to target below {}): \
                     accounts joining later are NOT covered",
                    r.ou_ids.join(",")
                ));
            } else {
                out.push(format!(
                    "{prefix}: create the StackSet, instances in {} accounts below {}{} × regions {}; automatic \
                     deployment on; max concurrent {}%, failure tolerance {}%, regions {}",
                    sel.len(),
                    r.ou_ids.join(","),
                    if r.exclude_accounts.is_empty() {
                        String::new()
                    } else {
                        format!(" minus {} direct accounts", r.exclude_accounts.len())
                    },
                    r.regions.join(","),
                    prefs.max_concurrent_percentage,
                    prefs.failure_tolerance_percentage,
                    if prefs.regions_parallel { "in parallel" } else { "one after the other" }
                ));
            }
            continue;
        };
        if !owned(info) {
            out.push(format!("{prefix}: exists but was not created by ctguard: STOP (left alone)"));
            continue;
        }
        let inst = d.instances.get(&r.name).map(Vec::as_slice).unwrap_or_default();
        let same = info.tags.get(SPEC_TAG) == Some(&r.spec.spec_hash) && info.auto_deploy;
        let changed: Vec<String> = r
            .spec
            .parameters
            .iter()
            .filter(|(k, v)| info.parameters.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        out.push(format!(
            "{prefix}: {} instances; {}",
            inst.len(),
            if same {
                "template and parameters current: no update".to_string()
            } else if changed.is_empty() {
                format!("update the template of all {} instances (no deployment target sent)", inst.len())
            } else {
                format!(
                    "update parameters {} of all {} instances (no deployment target sent)",
                    changed.join(","),
                    inst.len()
                )
            }
        ));
        let (accounts, regions) = missing(r, inst);
        if r.mode == DeployWith::StackSets && !accounts.is_empty() {
            out.push(format!(
                "{prefix}: add instances for accounts without one (INTERSECTION): {}",
                accounts.join(",")
            ));
        }
        if r.mode == DeployWith::StackSets && !regions.is_empty() {
            out.push(format!("{prefix}: add regions {} below {}", regions.join(","), r.ou_ids.join(",")));
        }
        // An override wins over the stack set's value: what this run sends does not reach it.
        for i in inst.iter().filter(|i| !i.overrides.is_empty()) {
            let list: Vec<String> = i
                .overrides
                .iter()
                .map(|(k, v)| format!("{k}={v} (StackSet: {})", r.spec.parameters.get(k).map_or("-", String::as_str)))
                .collect();
            out.push(format!(
                "{prefix}: {}:{} overrides {}: the StackSet's value does not reach it there",
                i.account,
                i.region,
                list.join(", ")
            ));
        }
        for i in inst.iter().filter(|i| !i.healthy()) {
            let why = i.reason.as_deref().unwrap_or("");
            out.push(format!(
                "{prefix}: {}:{} is {}/{} {why}",
                i.account,
                i.region,
                i.status,
                i.detailed.as_deref().unwrap_or("-")
            ));
        }
    }
    out
}

/// Reads every listed instance's parameter overrides (one DescribeStackInstance each, so only
/// for `--plan`); returns what could not be read.
async fn read_overrides<S: StackSetApi>(api: &S, d: &mut Discovered) -> Vec<String> {
    let mut unread = Vec::new();
    for (name, inst) in d.instances.iter_mut() {
        for i in inst.iter_mut() {
            match api.overrides(name, &i.account, &i.region).await {
                Ok(o) => i.overrides = o,
                Err(e) => unread.push(format!("{name}: {}:{} overrides unknown: {}", i.account, i.region, e.message)),
            }
        }
    }
    unread
}

/// Member accounts below the OUs without an instance, and asked-for regions without any.
fn missing(r: &StackSetRequest, inst: &[Instance]) -> (Vec<String>, Vec<String>) {
    let have: BTreeSet<&str> = inst.iter().map(|i| i.account.as_str()).collect();
    let regions: BTreeSet<&str> = inst.iter().map(|i| i.region.as_str()).collect();
    let accounts = if inst.is_empty() {
        r.selected().into_iter().cloned().collect()
    } else {
        r.members.iter().filter(|m| !have.contains(m.as_str())).cloned().collect()
    };
    let regions = if inst.is_empty() {
        Vec::new()
    } else {
        r.regions.iter().filter(|x| !regions.contains(x.as_str())).cloned().collect()
    };
    (accounts, regions)
}

/// Waits for every running operation of the stack set to end (StackSets allow one at a time;
/// starting another would fail with OperationInProgressException).
async fn wait_idle<S: StackSetApi>(api: &S, name: &str, poll: &PollOptions) -> Result<(), ApiError> {
    let start = Instant::now();
    let mut delay = poll.first_delay;
    while api.busy(name).await? {
        if start.elapsed() > poll.timeout {
            return Err(ApiError::new(format!(
                "{name}: an operation is still running after {} s",
                poll.timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(poll.max_delay);
    }
    Ok(())
}

/// Waits for one operation, then returns its per account × region results (`Err` when the
/// operation itself failed or stopped).
async fn wait_operation<S: StackSetApi>(
    api: &S,
    name: &str,
    op: &str,
    poll: &PollOptions,
    rep: &dyn Reporter,
    home: &Target,
) -> Result<Vec<OpResult>, ApiError> {
    let start = Instant::now();
    let mut delay = poll.first_delay;
    let mut last = String::new();
    loop {
        let (status, reason) = api.operation(name, op).await?;
        if status != last {
            rep.report(&DeployEvent::StackStatus {
                target: home.clone(),
                stack: name.to_string(),
                status: status.clone(),
                reason: reason.clone(),
            });
            last = status.clone();
        }
        match status.as_str() {
            "SUCCEEDED" => return api.results(name, op).await,
            "FAILED" | "STOPPED" => {
                let why = reason.unwrap_or_else(|| "see the per-account results".into());
                let mut res = api.results(name, op).await.unwrap_or_default();
                res.retain(|r| r.status != "SUCCEEDED");
                let detail: Vec<String> = res
                    .iter()
                    .map(|r| format!("{}:{} {}", r.account, r.region, r.reason.as_deref().unwrap_or(&r.status)))
                    .collect();
                return Err(ApiError::new(format!("{name}: operation {op} {status}: {why} {}", detail.join("; "))));
            }
            _ => {}
        }
        if start.elapsed() > poll.timeout {
            return Err(ApiError::new(format!(
                "{name}: operation {op} still {status} after {} s",
                poll.timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(poll.max_delay);
    }
}

/// Per account × region results gathered over every operation of a run.
#[derive(Debug, Default)]
struct Results {
    set_steps: Vec<StepResult>,
    per_target: BTreeMap<Target, Vec<StepResult>>,
    failed: BTreeMap<Target, String>,
}

impl Results {
    fn add(&mut self, set: &str, action: &str, ops: Vec<OpResult>) {
        for o in ops {
            let t = Target::new(o.account, o.region);
            let ok = o.status == "SUCCEEDED";
            let skipped = o.reason.as_deref() == Some("SKIPPED_SUSPENDED_ACCOUNT");
            let what = match (&o.reason, ok) {
                (Some(r), false) => format!("{action}: {} ({r})", o.status),
                _ => format!("{action}: {}", o.status),
            };
            if !ok && !skipped {
                self.failed.insert(t.clone(), format!("{set}: {what}"));
            }
            self.per_target.entry(t).or_default().push(StepResult { what: set.into(), action: what, done: ok });
        }
    }
}

/// Creates or updates one StackSet and its instances.
/// What every operation of a run shares.
struct OpCtx<'a> {
    prefs: &'a Prefs,
    poll: &'a PollOptions,
    rep: &'a dyn Reporter,
    home: &'a Target,
}

async fn apply_one<S: StackSetApi>(
    api: &S,
    r: &StackSetRequest,
    d: &Discovered,
    cx: &OpCtx<'_>,
    res: &mut Results,
) -> Result<(), ApiError> {
    let OpCtx { prefs, poll, rep, home } = *cx;
    let step = |action: &str| {
        rep.report(&DeployEvent::StepStarted { target: home.clone(), what: r.name.clone(), action: action.into() })
    };
    let inst = d.instances.get(&r.name).map(Vec::as_slice).unwrap_or_default();
    match d.sets.get(&r.name) {
        Some(info) if !owned(info) => {
            return Err(ApiError::new(format!("a StackSet named {} exists but was not created by ctguard", r.name)))
        }
        Some(info) => {
            if info.tags.get(SPEC_TAG) != Some(&r.spec.spec_hash) || !info.auto_deploy {
                wait_idle(api, &r.name, poll).await?;
                step("update stack set");
                let op = r.operation_id("update", "");
                api.update_set(&r.body(), prefs, &op).await?;
                let out = wait_operation(api, &r.name, &op, poll, rep, home).await?;
                res.add(&r.name, "updated", out);
                res.set_steps.push(StepResult { what: r.name.clone(), action: "updated".into(), done: true });
            }
        }
        None => {
            step("create stack set");
            api.create_set(&r.body()).await?;
            res.set_steps.push(StepResult { what: r.name.clone(), action: "created".into(), done: true });
        }
    }
    // The direct mode sends its exclusion list once, with the first instances, and never again.
    if r.mode == DeployWith::Direct && !inst.is_empty() {
        return Ok(());
    }
    let (accounts, regions) = missing(r, inst);
    if !accounts.is_empty() {
        let targets = if inst.is_empty() { r.deployment_targets() } else { Targets::only(&r.ou_ids, &accounts) };
        let op = r.operation_id("instances", &accounts.join(","));
        wait_idle(api, &r.name, poll).await?;
        step("create stack instances");
        api.create_instances(&r.name, &targets, &r.regions, prefs, &op).await?;
        res.add(&r.name, "instance created", wait_operation(api, &r.name, &op, poll, rep, home).await?);
    } else if inst.is_empty() {
        res.set_steps.push(StepResult {
            what: r.name.clone(),
            action: format!(
                "no instance: no member account to target below {} (accounts joining later are NOT covered)",
                r.ou_ids.join(",")
            ),
            done: false,
        });
    }
    if !regions.is_empty() {
        let op = r.operation_id("regions", &regions.join(","));
        wait_idle(api, &r.name, poll).await?;
        step("add regions");
        api.create_instances(&r.name, &Targets::ous(&r.ou_ids), &regions, prefs, &op).await?;
        res.add(&r.name, "instance created", wait_operation(api, &r.name, &op, poll, rep, home).await?);
    }
    Ok(())
}

/// Creates or updates the StackSets in order (each waits for its operations). Returns the
/// StackSets' own row (`home`, phase AutoDeploy) and one row per account × region that an
/// operation touched, with its result.
pub async fn apply<S: StackSetApi>(
    api: &S,
    reqs: &[StackSetRequest],
    d: &Discovered,
    prefs: &Prefs,
    poll: &PollOptions,
    rep: &dyn Reporter,
    home: &Target,
) -> Vec<TargetResult> {
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::AutoDeploy, targets: 1 });
    let mut res = Results::default();
    let mut outcome = Outcome::Ok;
    for r in reqs {
        let cx = OpCtx { prefs, poll, rep, home };
        if let Err(e) = apply_one(api, r, d, &cx, &mut res).await {
            res.set_steps.push(StepResult { what: r.name.clone(), action: "failed".into(), done: false });
            outcome = Outcome::Failed { reason: e.message };
            break;
        }
    }
    let row = |target: Target, steps: Vec<StepResult>, outcome: Outcome| {
        rep.report(&DeployEvent::TargetFinished {
            target: target.clone(),
            phase: Phase::AutoDeploy,
            ok: !matches!(outcome, Outcome::Failed { .. }),
            changes: steps.iter().filter(|s| s.done).count(),
            message: match &outcome {
                Outcome::Failed { reason } => Some(reason.clone()),
                _ => None,
            },
        });
        TargetResult { target, phase: Phase::AutoDeploy, trail: None, steps, outcome, calls: 0 }
    };
    let mut out = vec![row(home.clone(), res.set_steps, outcome)];
    for (t, steps) in res.per_target {
        let o = match res.failed.remove(&t) {
            Some(reason) => Outcome::Failed { reason },
            None => Outcome::Ok,
        };
        out.push(row(t, steps, o));
    }
    out
}

/// Deletes ctguard's StackSets: their instances first (by the OUs they were listed under, all
/// regions, never with an account filter), then the sets. Only StackSets tagged as ctguard's.
/// With `only` (an `--ou` uninstall), only the instances listed under those OUs go, and a set
/// only once it has no other instance; instances listed under other OUs (e.g. the root of an
/// `--org` install) are kept and said so. Returns the row and the accounts the StackSets own
/// or owned: they have no direct stack, so no direct removal (nor role) is needed there.
pub async fn remove<S: StackSetApi>(
    api: &S,
    only: Option<&[String]>,
    prefs: &Prefs,
    poll: &PollOptions,
    rep: &dyn Reporter,
    home: &Target,
) -> (TargetResult, BTreeSet<String>) {
    let d = discover(api).await;
    let mut steps = Vec::new();
    let mut accounts = BTreeSet::new();
    let result = |steps: Vec<StepResult>, outcome: Outcome| TargetResult {
        target: home.clone(),
        phase: Phase::AutoDeploy,
        trail: None,
        steps,
        outcome,
        calls: 0,
    };
    if let Some(e) = d.unreadable {
        return (result(steps, Outcome::Failed { reason: e }), accounts);
    }
    if !d.sets.is_empty() {
        rep.report(&DeployEvent::PhaseStarted { phase: Phase::AutoDeploy, targets: d.sets.len() });
    }
    // Region stacks first, state last (reverse of deployment).
    let mut names: Vec<&String> = d.sets.keys().collect();
    names.sort_by_key(|n| {
        std::cmp::Reverse(StackKind::ALL.iter().position(|k| n.starts_with(k.stack_name())).unwrap_or(0))
    });
    for n in names {
        let Some(info) = d.sets.get(n) else { continue };
        if !owned(info) {
            steps.push(StepResult {
                what: n.clone(),
                action: "left alone (not created by ctguard)".into(),
                done: false,
            });
            continue;
        }
        let all = d.instances.get(n).map(Vec::as_slice).unwrap_or_default();
        let listed_under = |i: &&Instance| only.is_none_or(|ous| i.ou.as_ref().is_some_and(|o| ous.contains(o)));
        let (inst, kept): (Vec<Instance>, Vec<Instance>) = all.iter().cloned().partition(|i| listed_under(&i));
        accounts.extend(all.iter().map(|i| i.account.clone()));
        if let Err(e) = remove_one(api, n, &inst, kept.is_empty(), prefs, poll, rep, home).await {
            return (result(steps, Outcome::Failed { reason: e.message }), accounts);
        }
        if kept.is_empty() {
            steps.push(StepResult {
                what: n.clone(),
                action: format!("deleted ({} instances first)", inst.len()),
                done: true,
            });
        } else {
            let ous: BTreeSet<&str> = kept.iter().filter_map(|i| i.ou.as_deref()).collect();
            steps.push(StepResult {
                what: n.clone(),
                action: format!(
                    "{} instances deleted; {} kept: listed under {} (not selected; `uninstall --org` removes them)",
                    inst.len(),
                    kept.len(),
                    ous.into_iter().collect::<Vec<_>>().join(",")
                ),
                done: !inst.is_empty(),
            });
        }
    }
    (result(steps, Outcome::Ok), accounts)
}

#[allow(clippy::too_many_arguments)]
async fn remove_one<S: StackSetApi>(
    api: &S,
    name: &str,
    inst: &[Instance],
    delete_set: bool,
    prefs: &Prefs,
    poll: &PollOptions,
    rep: &dyn Reporter,
    home: &Target,
) -> Result<(), ApiError> {
    let ous: Vec<String> = inst.iter().filter_map(|i| i.ou.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let regions: Vec<String> = inst.iter().map(|i| i.region.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    wait_idle(api, name, poll).await?;
    if !ous.is_empty() {
        rep.report(&DeployEvent::StepStarted {
            target: home.clone(),
            what: name.into(),
            action: "delete stack instances".into(),
        });
        let h = crate::embedded::code_hash(format!("{name}{ous:?}{regions:?}").as_bytes());
        let op = format!("ctguard-delete-{}", h.get(..32).unwrap_or(&h));
        api.delete_instances(name, &Targets::ous(&ous), &regions, prefs, &op).await?;
        wait_operation(api, name, &op, poll, rep, home).await?;
    }
    if delete_set {
        api.delete_set(name).await?;
    }
    Ok(())
}

/// An organization-wide install: what [`rollout`] needs beyond the targets.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Root or OUs the StackSets target.
    pub ous: Vec<String>,
    pub management: String,
    /// `--deploy-with`, if given.
    pub asked: Option<DeployWith>,
    pub auto_deploy: bool,
    /// `--org` or `--ou` (StackSets target OUs, never a list of accounts).
    pub org_wide: bool,
    pub prefs: Prefs,
}

/// What [`rollout`] did (or would do).
#[derive(Debug, Default)]
pub struct RolloutReport {
    pub report: crate::deploy::RunReport,
    pub mode: Option<DeployWith>,
    /// Owner decisions and plan lines, for the operator.
    pub notes: Vec<String>,
    /// With `--plan`: StackSets changes pending (creations, updates, added instances).
    pub pending: usize,
}

/// Installs with one owner per account: discovers the StackSets and their instances, decides
/// the mode ([`ownership::resolve_mode`]), deploys directly where ctguard owns the account
/// directly (in the StackSets mode: the management account only), then creates or updates
/// the StackSets. An account with a StackSet instance never gets a direct stack. `req` is the
/// direct deployment's request (its configuration and confirmation gate); `cfg` the
/// StackSets' single configuration.
#[allow(clippy::too_many_arguments)]
pub async fn rollout<C: crate::stacks::Connector, S: StackSetApi>(
    c: &C,
    ss: &S,
    set: &TargetSet,
    cfg: &InstallConfig,
    req: &crate::deploy::Request<'_>,
    code: &'static [u8],
    opts: &crate::deploy::RunOptions,
    ro: &Rollout,
    rep: &dyn Reporter,
) -> Result<RolloutReport, String> {
    let mut d = if ro.auto_deploy || ro.asked.is_some() { discover(ss).await } else { Discovered::default() };
    if let Some(e) = &d.unreadable {
        return Err(format!("cannot read ctguard's StackSets, so the owner of each account is unknown: {e}"));
    }
    let mode = ownership::resolve_mode(ro.asked, d.mode(), ro.org_wide, ro.auto_deploy)?;
    if mode == DeployWith::StackSets && !ro.org_wide {
        return Err("--deploy-with stacksets needs --org or --ou (StackSets target organizational units)".into());
    }
    let owned = d.stackset_accounts();
    let mut notes = Vec::new();
    let direct: Vec<String> = match mode {
        DeployWith::StackSets => set.accounts.iter().filter(|a| **a == ro.management).cloned().collect(),
        DeployWith::Direct => set.accounts.iter().filter(|a| !owned.contains(*a)).cloned().collect(),
    };
    for a in set.accounts.iter().filter(|a| owned.contains(*a)) {
        notes.push(format!("{a}: owned by the StackSets (it has instances); no direct stack deployed there"));
    }
    if mode == DeployWith::StackSets {
        notes.push(format!(
            "deploy-with stacksets: {} member accounts through StackSets (no role needed in them), the management \
             account {} directly",
            set.accounts.iter().filter(|a| **a != ro.management).count(),
            ro.management
        ));
    }
    let mut pending = 0;
    let stack_sets = ro.auto_deploy || mode == DeployWith::StackSets;
    // The StackSet instances read the function's code from the installing account's artifacts
    // buckets, which the direct deployment creates: it runs (for the artifacts alone) even when
    // no selected account is deployed directly, e.g. `--ou` OUs without the management account.
    let mut report = if direct.is_empty() && !stack_sets {
        crate::deploy::RunReport::default()
    } else {
        let dset = TargetSet { accounts: direct.clone(), ..set.clone() };
        crate::deploy::install_with(c, &dset, req, code, opts, rep).await
    };
    if stack_sets && report.stopped.is_none() {
        let members: Vec<String> = set.accounts.iter().filter(|a| **a != ro.management).cloned().collect();
        let reqs = plan(cfg, set, &ro.ous, &members, &direct, mode);
        if opts.plan_only {
            notes.extend(read_overrides(ss, &mut d).await);
            let lines = plan_lines(&reqs, &d, &ro.prefs);
            pending = lines
                .iter()
                .filter(|l| l.contains(": create the StackSet") || l.contains(": update ") || l.contains(": add "))
                .count();
            notes.extend(lines);
        } else {
            let home = Target::new(ro.management.clone(), set.home_region.clone());
            report.results.extend(apply(ss, &reqs, &d, &ro.prefs, &opts.poll, rep, &home).await);
        }
    }
    Ok(RolloutReport { report, mode: Some(mode), notes, pending })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
