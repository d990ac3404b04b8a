//! The engine of `install` and `uninstall`: observe every target, plan ([`crate::plan`]),
//! then carry the plans out with bounded concurrency. It never prints: it emits
//! [`DeployEvent`]s to a [`Reporter`] (progress bars, plain lines or a test recorder are
//! consumers; the `ctguard` binary's `progress` module renders them) and returns a report the
//! command renders.
//!
//! A failing target never stops the others: its error is recorded in its [`TargetResult`] and
//! the rest carry on (ripgrep's "keep going, remember the error" rule). A re-run observes
//! again and resumes where the last one stopped, since plans are computed from what exists.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::plan::{self, Action, InstallConfig, StackKind, StackState, Step, TargetPlan};
use crate::stacks::{ApiError, Connector, StackApi, TargetApi, UpdateOutcome};
use crate::targets::{Target, TargetSet};
use crate::trail::TrailVerdict;

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading what exists (stacks, trails, code object).
    Observe,
    /// Code buckets and the code object, installing account, every region.
    Artifacts,
    /// Account and regional stacks, every target.
    Stacks,
    /// StackSets for accounts joining later.
    AutoDeploy,
    /// Uninstall: checking that nothing is left.
    Leftovers,
}

/// What the engine reports while it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeployEvent {
    PhaseStarted {
        phase: Phase,
        targets: usize,
    },
    StepStarted {
        target: Target,
        what: String,
        action: String,
    },
    /// A stack's status changed while it was being waited on.
    StackStatus {
        target: Target,
        stack: String,
        status: String,
        reason: Option<String>,
    },
    TargetFinished {
        target: Target,
        phase: Phase,
        ok: bool,
        changes: usize,
        message: Option<String>,
    },
    /// Something the user should read (e.g. targets without a trail, installing anyway).
    Warning {
        message: String,
    },
}

/// A consumer of [`DeployEvent`]s.
pub trait Reporter: Sync {
    fn report(&self, event: &DeployEvent);
}

impl<F: Fn(&DeployEvent) + Sync> Reporter for F {
    fn report(&self, event: &DeployEvent) {
        self(event)
    }
}

/// How stack operations are waited on: describe, and if still running, sleep with a doubling
/// delay. The first describe comes at once (emulators finish synchronously).
#[derive(Debug, Clone, Copy)]
pub struct PollOptions {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
    /// How long a denied deletion (an object version an SCP, a bucket policy or Object Lock
    /// protects) is retried, with the same doubling delay, before the step fails and says what
    /// is left and why. Denials are sometimes lifted by a policy change in progress; they are
    /// never waited on for as long as a stack operation.
    pub denied_retry: Duration,
}

impl PollOptions {
    /// The clock of one wait: `first_delay`, doubling up to `max_delay`, until `timeout`.
    pub fn backoff(&self) -> Backoff {
        Backoff { start: Instant::now(), delay: self.first_delay, max: self.max_delay, timeout: self.timeout }
    }
}

/// See [`PollOptions::backoff`].
#[derive(Debug)]
pub struct Backoff {
    start: Instant,
    delay: Duration,
    max: Duration,
    timeout: Duration,
}

impl Backoff {
    pub fn timed_out(&self) -> bool {
        self.start.elapsed() > self.timeout
    }

    /// Sleeps the current delay, then doubles it (up to the maximum).
    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.max);
    }
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15),
            timeout: Duration::from_secs(60 * 60),
            denied_retry: Duration::from_secs(30),
        }
    }
}

/// A target's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed {
        reason: String,
    },
    /// Not attempted (`reason` says why: stopped by a prerequisite, plan only, ...).
    Skipped {
        reason: String,
    },
}

/// One step as carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepResult {
    pub what: String,
    pub action: String,
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetResult {
    pub target: Target,
    pub phase: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail: Option<TrailVerdict>,
    pub steps: Vec<StepResult>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// AWS API calls made for this target (every phase).
    pub calls: u64,
}

impl TargetResult {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.done).count()
    }
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// What a run did (or, with `plan_only`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub plans: Vec<TargetPlan>,
    pub results: Vec<TargetResult>,
    /// Why nothing was changed, when a prerequisite stopped the run.
    pub stopped: Option<String>,
    /// Resources still present after an uninstall (target → names).
    pub leftovers: BTreeMap<String, Vec<String>>,
    /// Calls made outside any target (AssumeRole, Organizations, StackSets).
    pub shared_calls: u64,
    pub elapsed_ms: u128,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.failed()).count()
    }
    pub fn total_calls(&self) -> u64 {
        self.shared_calls + self.results.iter().map(|r| r.calls).sum::<u64>()
    }
}

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub concurrency: usize,
    pub plan_only: bool,
    pub allow_missing_trail: bool,
    pub poll: PollOptions,
}

/// What was seen in one target.
struct Observed<A> {
    target: Target,
    api: Result<A, ApiError>,
    stacks: BTreeMap<StackKind, StackState>,
    trail: Option<TrailVerdict>,
    code_present: bool,
    error: Option<String>,
}

async fn observe<C: Connector>(
    c: &C,
    target: Target,
    kinds: &[StackKind],
    trail: bool,
    code: Option<(&str, &str)>,
) -> Observed<C::Api> {
    let mut o = Observed {
        target: target.clone(),
        api: Err(ApiError::new("not connected")),
        stacks: BTreeMap::new(),
        trail: None,
        code_present: false,
        error: None,
    };
    let api = match c.connect(&target).await {
        Ok(a) => a,
        Err(e) => {
            o.error = Some(e.to_string());
            o.api = Err(e);
            return o;
        }
    };
    for &k in kinds {
        match api.describe(k.stack_name()).await {
            Ok(Some(s)) => {
                o.stacks.insert(k, s);
            }
            Ok(None) => {}
            Err(e) => {
                o.error = Some(e.to_string());
                break;
            }
        }
    }
    if trail && o.error.is_none() {
        match api.trail().await {
            Ok(v) => o.trail = Some(v),
            Err(e) => o.error = Some(format!("cannot check the trail: {e}")),
        }
    }
    if let (Some((bucket, key)), None) = (code, &o.error) {
        // A missing artifacts stack means a missing bucket: no need to ask.
        if o.stacks.contains_key(&StackKind::Artifacts) {
            match api.code_present(bucket, key).await {
                Ok(p) => o.code_present = p,
                Err(e) => o.error = Some(e.to_string()),
            }
        }
    }
    o.api = Ok(api);
    o
}

async fn observe_all<C: Connector>(
    c: &C,
    items: Vec<(Target, Vec<StackKind>)>,
    trail: bool,
    code: Option<(&str, &str)>,
    concurrency: usize,
) -> Vec<Observed<C::Api>> {
    let mut v: Vec<_> = stream::iter(items)
        .map(|(t, kinds)| async move { observe(c, t, &kinds, trail, code).await })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    v.sort_by(|a, b| a.target.cmp(&b.target));
    v
}

/// Waits until the stack is no longer `*_IN_PROGRESS`, reporting every status change.
/// Returns `None` when the stack is gone.
async fn settle<A: TargetApi>(
    api: &A,
    name: &str,
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> Result<Option<StackState>, StepError> {
    let mut clock = poll.backoff();
    let mut last = String::new();
    loop {
        let s = api.describe(name).await?;
        let Some(s) = s else { return Ok(None) };
        if s.status != last {
            rep.report(&DeployEvent::StackStatus {
                target: api.target().clone(),
                stack: name.to_string(),
                status: s.status.clone(),
                reason: s.status_reason.clone(),
            });
            last = s.status.clone();
        }
        if !s.in_progress() {
            return Ok(if s.status == "DELETE_COMPLETE" { None } else { Some(s) });
        }
        if clock.timed_out() {
            return Err(StepError::Timeout { name: name.into(), status: s.status, secs: poll.timeout.as_secs() });
        }
        clock.sleep().await;
    }
}

/// Why one stack or object action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}: no spec to deploy")]
    NoSpec(String),
    #[error("{name}: {reason}")]
    Blocked { name: String, reason: String },
    #[error("{name}: still {status} after {secs} s")]
    Timeout { name: String, status: String, secs: u64 },
    #[error("{0}: still busy")]
    Busy(String),
    #[error("{name}: stack disappeared (wanted {wanted})")]
    Disappeared { name: String, wanted: &'static str },
    /// The stack settled in another state than the one wanted (with CloudFormation's reason).
    #[error("{name}: {status} (wanted {wanted}){}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Ended { name: String, status: String, wanted: &'static str, reason: Option<String> },
}

fn failure(name: &str, s: Option<&StackState>, wanted: &'static str) -> StepError {
    match s {
        None => StepError::Disappeared { name: name.into(), wanted },
        Some(s) => {
            StepError::Ended { name: name.into(), status: s.status.clone(), wanted, reason: s.status_reason.clone() }
        }
    }
}

/// Carries out one stack or object action.
async fn run_action<A: TargetApi>(
    api: &A,
    step: &Step,
    action: &Action,
    code: &'static [u8],
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> Result<(), StepError> {
    let name = step.what.as_str();
    let spec = || step.spec.as_ref().ok_or_else(|| StepError::NoSpec(name.into()));
    match action {
        Action::NoChange | Action::LeaveForeign | Action::LeaveBucket { .. } => Ok(()),
        Action::Blocked { reason } => Err(StepError::Blocked { name: name.into(), reason: reason.clone() }),
        Action::Create => {
            api.create(spec()?).await?;
            let s = settle(api, name, poll, rep).await?;
            match &s {
                Some(st) if st.status == "CREATE_COMPLETE" => Ok(()),
                _ => Err(failure(name, s.as_ref(), "CREATE_COMPLETE")),
            }
        }
        Action::Update { .. } => match api.update(spec()?).await? {
            UpdateOutcome::NoChanges => Ok(()),
            UpdateOutcome::Started => {
                let s = settle(api, name, poll, rep).await?;
                match &s {
                    Some(st) if st.status == "UPDATE_COMPLETE" => Ok(()),
                    _ => Err(failure(name, s.as_ref(), "UPDATE_COMPLETE")),
                }
            }
        },
        Action::Recreate { .. } => {
            Box::pin(run_action(api, step, &Action::Delete, code, poll, rep)).await?;
            Box::pin(run_action(api, step, &Action::Create, code, poll, rep)).await
        }
        Action::Delete => {
            api.delete(name).await?;
            match settle(api, name, poll, rep).await? {
                None => Ok(()),
                Some(s) => Err(failure(name, Some(&s), "DELETE_COMPLETE")),
            }
        }
        Action::Wait { .. } => {
            let now = settle(api, name, poll, rep).await?;
            let next = plan::plan_stack(step.spec.as_ref(), now.as_ref());
            if matches!(next, Action::Wait { .. }) {
                return Err(StepError::Busy(name.into()));
            }
            if next.changes() {
                rep.report(&DeployEvent::StepStarted {
                    target: api.target().clone(),
                    what: step.what.clone(),
                    action: next.to_string(),
                });
            }
            Box::pin(run_action(api, step, &next, code, poll, rep)).await
        }
        Action::UploadCode { bucket, key } => Ok(api.upload_code(bucket, key, code).await?),
        Action::EmptyBucket { bucket } => {
            let retry = PollOptions { timeout: poll.denied_retry, ..*poll };
            Ok(api.empty_bucket(bucket, &retry).await.map(|_| ())?)
        }
    }
}

/// Carries out a target's plan in order; the first failing step ends the target.
pub async fn execute<A: TargetApi>(
    api: &A,
    plan: &TargetPlan,
    phase: Phase,
    code: &'static [u8],
    poll: &PollOptions,
    rep: &dyn Reporter,
) -> (Vec<StepResult>, Outcome) {
    let mut steps = Vec::new();
    for step in &plan.steps {
        if step.action.changes() {
            rep.report(&DeployEvent::StepStarted {
                target: plan.target.clone(),
                what: step.what.clone(),
                action: step.action.to_string(),
            });
        }
        let r = run_action(api, step, &step.action, code, poll, rep).await;
        steps.push(StepResult {
            what: step.what.clone(),
            action: step.action.to_string(),
            done: r.is_ok() && step.action.changes(),
        });
        if let Err(e) = r {
            let reason = e.to_string();
            finish(rep, &plan.target, phase, &steps, Some(reason.clone()));
            return (steps, Outcome::Failed { reason });
        }
    }
    finish(rep, &plan.target, phase, &steps, None);
    (steps, Outcome::Ok)
}

fn finish(rep: &dyn Reporter, target: &Target, phase: Phase, steps: &[StepResult], error: Option<String>) {
    rep.report(&DeployEvent::TargetFinished {
        target: target.clone(),
        phase,
        ok: error.is_none(),
        changes: steps.iter().filter(|s| s.done).count(),
        message: error,
    });
}

fn skipped(plan: &TargetPlan, phase: Phase, trail: Option<TrailVerdict>, calls: u64, reason: &str) -> TargetResult {
    TargetResult {
        target: plan.target.clone(),
        phase,
        trail,
        steps: plan
            .steps
            .iter()
            .map(|s| StepResult { what: s.what.clone(), action: s.action.to_string(), done: false })
            .collect(),
        outcome: Outcome::Skipped { reason: reason.to_string() },
        calls,
    }
}

/// `install`: artifacts in every region of the installing account, then the account and
/// regional stacks of every target. `code` is the Lambda zip to upload where missing. Every
/// setting of `cfg` is applied as given (see [`install_with`] to keep deployed values).
pub async fn install<C: Connector>(
    c: &C,
    set: &TargetSet,
    cfg: &InstallConfig,
    code: &'static [u8],
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> RunReport {
    let req = Request { cfg, stated: plan::Stated::ALL, gate: &|_: &[TargetPlan]| Ok(()) };
    install_with(c, set, &req, code, opts, rep).await
}

/// Decides, once every plan is known and before any change, whether the run may go on
/// (`Err` says why not: e.g. a person declined a change that lowers protection).
pub type Gate<'a> = &'a (dyn Fn(&[TargetPlan]) -> Result<(), String> + Sync);

/// What an install should reach: the configuration, which of its settings this run states
/// (the others keep each target's deployed values), and the gate before changes.
pub struct Request<'a> {
    pub cfg: &'a InstallConfig,
    pub stated: plan::Stated,
    pub gate: Gate<'a>,
}

/// [`install`] keeping the deployed value of every setting `req.stated` leaves out, per target,
/// and asking `req.gate` before the first change.
pub async fn install_with<C: Connector>(
    c: &C,
    set: &TargetSet,
    req: &Request<'_>,
    code: &'static [u8],
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> RunReport {
    let cfg = req.cfg;
    let start = Instant::now();
    let mut report = RunReport::default();
    for w in &set.warnings {
        rep.report(&DeployEvent::Warning { message: w.clone() });
    }
    let (art_obs, obs) = observe_install(c, set, cfg, opts, rep).await;
    let (art_plans, plans) = plan_install(cfg, req.stated, set, &art_obs, &obs);
    report.plans = art_plans.iter().chain(plans.iter()).cloned().collect();

    let blind = obs.iter().filter(|o| o.trail.as_ref().is_some_and(|t| !t.is_ok())).count();
    let blind_msg = format!(
        "{blind} of {} targets have no CloudTrail trail logging management events (read and write); the detector would be blind there",
        obs.len()
    );
    if opts.plan_only {
        if blind > 0 && !opts.allow_missing_trail {
            report.stopped = Some(format!("{blind_msg}; install would stop (see --allow-missing-trail)"));
        }
        report.results = plan_only_results(art_plans.iter().zip(&art_obs).chain(plans.iter().zip(&obs)), true);
        return finished(report, c, start);
    }
    if blind > 0 {
        if !opts.allow_missing_trail {
            report.results = stopped_for_trails(&plans, &obs);
            report.stopped = Some(format!("{blind_msg}; nothing was changed. Create a trail (an organization trail covers every account) or pass --allow-missing-trail"));
            return finished(report, c, start);
        }
        rep.report(&DeployEvent::Warning {
            message: format!("{blind_msg}; installing anyway (--allow-missing-trail)"),
        });
    }
    if let Err(why) = (req.gate)(&report.plans) {
        report.results = art_plans
            .iter()
            .zip(&art_obs)
            .chain(plans.iter().zip(&obs))
            .map(|(p, o)| skipped(p, Phase::Stacks, o.trail.clone(), calls_of(o), "not confirmed"))
            .collect();
        report.stopped = Some(format!("{why}; nothing was changed"));
        return finished(report, c, start);
    }
    let art_results = deploy_artifacts(&art_plans, &art_obs, code, opts, rep).await;
    let results = deploy_stacks(&plans, &obs, &art_results, code, opts, rep).await;
    report.results = art_results.into_iter().chain(results).collect();
    report.results.sort_by(|a, b| (a.phase, &a.target).cmp(&(b.phase, &b.target)));
    finished(report, c, start)
}

/// A report's closing figures: calls made outside any target, and the wall time.
fn finished<C: Connector>(mut report: RunReport, c: &C, start: Instant) -> RunReport {
    report.shared_calls = c.shared_calls();
    report.elapsed_ms = start.elapsed().as_millis();
    report
}

fn calls_of<A: TargetApi>(o: &Observed<A>) -> u64 {
    o.api.as_ref().map(|a| a.calls()).unwrap_or(0)
}

/// Observes the artifacts (bucket stack and code object) of every region of the installing
/// account, and the stacks and trail of every target.
async fn observe_install<C: Connector>(
    c: &C,
    set: &TargetSet,
    cfg: &InstallConfig,
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> (Vec<Observed<C::Api>>, Vec<Observed<C::Api>>) {
    let targets = set.targets();
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Observe, targets: targets.len() + set.regions.len() });
    let key = cfg.code_key();
    // Each region has its own bucket name; observe them concurrently.
    let art_obs = stream::iter(&set.regions)
        .map(|region| {
            let t = Target::new(cfg.artifacts_account.clone(), region.clone());
            let bucket = cfg.bucket(region);
            let key = key.clone();
            async move { observe(c, t, &[StackKind::Artifacts], false, Some((&bucket, &key))).await }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let items: Vec<_> = targets.iter().map(|t| (t.clone(), cfg.for_target(set.is_home(t)).0)).collect();
    let obs = observe_all(c, items, true, None, opts.concurrency).await;
    (art_obs, obs)
}

/// The artifacts plans (sorted by target) and the stack plans of every target.
/// Plans every target; settings `stated` leaves out keep each target's deployed values.
fn plan_install<A>(
    cfg: &InstallConfig,
    stated: plan::Stated,
    set: &TargetSet,
    art_obs: &[Observed<A>],
    obs: &[Observed<A>],
) -> (Vec<TargetPlan>, Vec<TargetPlan>) {
    let mut art_plans: Vec<TargetPlan> = art_obs
        .iter()
        .map(|o| plan::plan_artifacts(cfg, &o.target.region, o.stacks.get(&StackKind::Artifacts), o.code_present))
        .collect();
    art_plans.sort_by(|a, b| a.target.cmp(&b.target));
    let plans = obs
        .iter()
        .map(|o| {
            let (kinds, desired) = cfg.keeping(stated, &o.stacks).for_target(set.is_home(&o.target));
            plan::plan_target(&o.target, &kinds, &desired, &o.stacks)
        })
        .collect();
    (art_plans, plans)
}

/// `--plan`: every plan as a skipped result (failed where the target could not be read).
fn plan_only_results<'a, A: TargetApi + 'a>(
    pairs: impl Iterator<Item = (&'a TargetPlan, &'a Observed<A>)>,
    with_trail: bool,
) -> Vec<TargetResult> {
    pairs
        .map(|(p, o)| {
            let trail = if with_trail { o.trail.clone() } else { None };
            let mut r = skipped(p, Phase::Stacks, trail, calls_of(o), "plan only");
            if let Some(e) = &o.error {
                r.outcome = Outcome::Failed { reason: e.clone() };
            }
            r
        })
        .collect()
}

/// The results of an install stopped because some targets have no usable trail.
fn stopped_for_trails<A: TargetApi>(plans: &[TargetPlan], obs: &[Observed<A>]) -> Vec<TargetResult> {
    plans
        .iter()
        .zip(obs)
        .map(|(p, o)| {
            let why = "install stopped: missing trails (see --allow-missing-trail)";
            let mut r = skipped(p, Phase::Stacks, o.trail.clone(), calls_of(o), why);
            if let Some(TrailVerdict::Missing { reason }) = &o.trail {
                r.outcome = Outcome::Failed { reason: format!("no usable trail: {reason}") };
            }
            r
        })
        .collect()
}

/// Artifacts, every region, before any function needs its code.
async fn deploy_artifacts<A: TargetApi>(
    art_plans: &[TargetPlan],
    art_obs: &[Observed<A>],
    code: &'static [u8],
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> Vec<TargetResult> {
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Artifacts, targets: art_plans.len() });
    stream::iter(art_plans.iter().zip(art_obs))
        .map(|(p, o)| run_one(o, p, Phase::Artifacts, code, opts, rep))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await
}

/// Account and regional stacks, every target; a region whose code bucket failed is not tried.
async fn deploy_stacks<A: TargetApi>(
    plans: &[TargetPlan],
    obs: &[Observed<A>],
    art_results: &[TargetResult],
    code: &'static [u8],
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> Vec<TargetResult> {
    let bad_regions: BTreeMap<String, String> = art_results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { reason } => Some((r.target.region.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Stacks, targets: plans.len() });
    stream::iter(plans.iter().zip(obs))
        .map(|(p, o)| {
            let bad = bad_regions.get(&p.target.region).cloned();
            async move {
                if let Some(why) = bad {
                    let mut r = skipped(p, Phase::Stacks, o.trail.clone(), calls_of(o), "");
                    r.outcome = Outcome::Failed { reason: format!("code bucket of {} failed: {why}", p.target.region) };
                    finish(rep, &p.target, Phase::Stacks, &[], Some(why));
                    return r;
                }
                run_one(o, p, Phase::Stacks, code, opts, rep).await
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await
}

async fn run_one<A: TargetApi>(
    o: &Observed<A>,
    p: &TargetPlan,
    phase: Phase,
    code: &'static [u8],
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> TargetResult {
    let api = match (&o.api, &o.error) {
        (Ok(api), None) => api,
        (_, err) => {
            let reason = err.clone().unwrap_or_else(|| "cannot connect".into());
            finish(rep, &p.target, phase, &[], Some(reason.clone()));
            let mut r = skipped(p, phase, o.trail.clone(), calls_of(o), "");
            r.outcome = Outcome::Failed { reason };
            return r;
        }
    };
    let (steps, outcome) = execute(api, p, phase, code, &opts.poll, rep).await;
    TargetResult { target: p.target.clone(), phase, trail: o.trail.clone(), steps, outcome, calls: api.calls() }
}

/// Options of an uninstall.
#[derive(Debug, Clone, Copy)]
pub struct RemoveOptions {
    pub keep_state: bool,
    /// Also remove the artifacts buckets (only when the whole installation goes).
    pub remove_artifacts: bool,
}

/// The stacks a target holds: state, account and region at home, region elsewhere.
pub fn kinds_for(home: bool, keep_state: bool) -> Vec<StackKind> {
    match (home, keep_state) {
        (false, _) => vec![StackKind::Region],
        (true, false) => vec![StackKind::State, StackKind::Account, StackKind::Region],
        (true, true) => vec![StackKind::Account, StackKind::Region],
    }
}

/// `uninstall`: the regional and account stacks of every target, then (when asked) the
/// artifacts of the installing account, then a check of what is left.
pub async fn uninstall<C: Connector>(
    c: &C,
    set: &TargetSet,
    artifacts_account: &str,
    ropts: &RemoveOptions,
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> RunReport {
    let start = Instant::now();
    let mut report = RunReport::default();
    let targets = set.targets();
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Observe, targets: targets.len() });
    let items: Vec<_> = targets.iter().map(|t| (t.clone(), kinds_for(set.is_home(t), ropts.keep_state))).collect();
    let obs = observe_all(c, items, false, None, opts.concurrency).await;
    let plans: Vec<TargetPlan> = obs
        .iter()
        .map(|o| plan::plan_removal(&o.target, &kinds_for(set.is_home(&o.target), ropts.keep_state), &o.stacks))
        .collect();
    let art_obs = if ropts.remove_artifacts {
        let items: Vec<_> = set
            .regions
            .iter()
            .map(|r| (Target::new(artifacts_account, r.clone()), vec![StackKind::Artifacts]))
            .collect();
        observe_all(c, items, false, None, opts.concurrency).await
    } else {
        Vec::new()
    };
    let art_plans: Vec<TargetPlan> = stream::iter(&art_obs)
        .map(|o| async move {
            let stack = o.stacks.get(&StackKind::Artifacts);
            let ownership = match (&o.api, stack) {
                (Ok(api), Some(st)) if st.owned() => Some(bucket_ownership(api, artifacts_account, &o.target).await),
                _ => None,
            };
            plan::plan_artifacts_removal(artifacts_account, &o.target.region, stack, ownership.as_ref())
        })
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
    report.plans = plans.iter().chain(art_plans.iter()).cloned().collect();
    if opts.plan_only {
        report.results = plan_only_results(plans.iter().zip(&obs).chain(art_plans.iter().zip(&art_obs)), false);
        return finished(report, c, start);
    }

    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Stacks, targets: plans.len() });
    report.results = stream::iter(plans.iter().zip(&obs))
        .map(|(p, o)| run_one(o, p, Phase::Stacks, &[], opts, rep))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let any_failed = report.results.iter().any(TargetResult::failed);
    if !art_plans.is_empty() {
        rep.report(&DeployEvent::PhaseStarted { phase: Phase::Artifacts, targets: art_plans.len() });
        for (p, o) in art_plans.iter().zip(&art_obs) {
            let r = if any_failed {
                skipped(p, Phase::Artifacts, None, 0, "kept: some targets still have their stacks (re-run uninstall)")
            } else {
                run_one(o, p, Phase::Artifacts, &[], opts, rep).await
            };
            report.results.push(r);
        }
    }
    let removed_artifacts = ropts.remove_artifacts && !any_failed;
    report.leftovers = leftovers(set, &obs, artifacts_account, removed_artifacts, ropts, opts, rep).await;
    // Calls of the leftover check, added to each target's count.
    for r in report.results.iter_mut().filter(|r| r.phase == Phase::Stacks) {
        if let Some(o) = obs.iter().find(|o| o.target == r.target) {
            if let Ok(api) = &o.api {
                r.calls = api.calls();
            }
        }
    }
    report.results.sort_by(|a, b| (a.phase, &a.target).cmp(&(b.phase, &b.target)));
    finished(report, c, start)
}

/// Whether the artifacts bucket of `target` is provably ctguard's (an error reading it is a
/// reason not to empty it, not a failure).
async fn bucket_ownership<A: TargetApi>(api: &A, account: &str, target: &Target) -> plan::BucketOwnership {
    let bucket = plan::artifacts_bucket(account, &target.region);
    api.bucket_ownership(StackKind::Artifacts.stack_name(), plan::ARTIFACTS_BUCKET_RESOURCE, &bucket)
        .await
        .unwrap_or_else(|e| plan::BucketOwnership::Unproven(format!("ownership could not be checked: {e}")))
}

/// What is left after an uninstall, everywhere we looked: target → resources still there.
async fn leftovers<A: TargetApi>(
    set: &TargetSet,
    obs: &[Observed<A>],
    artifacts_account: &str,
    removed_artifacts: bool,
    ropts: &RemoveOptions,
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> BTreeMap<String, Vec<String>> {
    rep.report(&DeployEvent::PhaseStarted { phase: Phase::Leftovers, targets: obs.len() });
    let left: Vec<(Target, Result<Vec<String>, ApiError>)> = stream::iter(obs)
        .map(|o| async move {
            let Ok(api) = &o.api else {
                return (o.target.clone(), Err(ApiError::new("not reachable")));
            };
            let bucket = (removed_artifacts && o.target.account == artifacts_account)
                .then(|| plan::artifacts_bucket(artifacts_account, &o.target.region));
            let l = api.leftovers(set.is_home(&o.target), bucket.as_deref()).await;
            (o.target.clone(), l)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (t, l) in left {
        let mut l = l.unwrap_or_else(|e| vec![format!("could not check: {e}")]);
        if ropts.keep_state && set.is_home(&t) {
            // Kept on purpose: not a leftover.
            l.retain(|x| !x.contains("ctguard-state"));
        }
        if !l.is_empty() {
            out.insert(t.to_string(), l);
        }
    }
    out
}

/// What is deployed in one target (for `status`, and for `verify` to find the resources).
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub target: Target,
    /// ctguard stacks present here, by kind (outputs included).
    pub stacks: BTreeMap<StackKind, StackState>,
    /// Set when the target could not be read.
    pub error: Option<String>,
}

impl Installed {
    /// Regional stack outputs (FunctionArn, RuleArn, DlqUrl, ...), when deployed.
    pub fn region_outputs(&self) -> Option<&BTreeMap<String, String>> {
        self.stacks.get(&StackKind::Region).map(|s| &s.outputs)
    }
}

/// Reads the ctguard stacks of every target (no change made). Targets whose regional stack is
/// missing are returned too, with fewer stacks, so callers can tell "not installed".
pub async fn discover<C: Connector>(c: &C, set: &TargetSet, concurrency: usize) -> Vec<Installed> {
    let items: Vec<_> = set
        .targets()
        .into_iter()
        .map(|t| {
            let kinds = if set.is_home(&t) {
                vec![StackKind::State, StackKind::Account, StackKind::Region]
            } else {
                vec![StackKind::Region]
            };
            (t, kinds)
        })
        .collect();
    observe_all(c, items, false, None, concurrency)
        .await
        .into_iter()
        .map(|o| Installed { target: o.target, stacks: o.stacks, error: o.error })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::stacks::FakeCloud;
    use crate::targets::expand;

    /// Keeps every event, in order.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<DeployEvent>>);

    impl Reporter for Recorder {
        fn report(&self, e: &DeployEvent) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone());
        }
    }

    impl Recorder {
        fn events(&self) -> Vec<DeployEvent> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }

    #[test]
    fn recorder_keeps_events_in_order() {
        let r = Recorder::default();
        r.report(&DeployEvent::Warning { message: "a".into() });
        r.report(&DeployEvent::PhaseStarted { phase: Phase::Stacks, targets: 2 });
        assert_eq!(r.events().len(), 2);
    }

    fn set(accounts: &[&str], regions: &[&str]) -> TargetSet {
        let a: Vec<String> = accounts.iter().map(|s| s.to_string()).collect();
        let r: Vec<String> = regions.iter().map(|s| s.to_string()).collect();
        expand(&a, &r, "us-east-1", false).unwrap()
    }

    fn cfg() -> InstallConfig {
        InstallConfig {
            version: "0.1.0".into(),
            code_hash: "ab".repeat(32),
            artifacts_account: "111111111111".into(),
            home_region: "us-east-1".into(),
            org_id: None,
            alert_topic_arn: None,
            alert_email: None,
            policy: "{}".into(),
            log_retention_days: 90,
            default_ttl_hours: 12,
            security_hub: false,
            auto_contain: false,
        }
    }

    fn opts() -> RunOptions {
        RunOptions {
            concurrency: 4,
            plan_only: false,
            allow_missing_trail: false,
            poll: PollOptions {
                first_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                timeout: Duration::from_secs(5),
                denied_retry: Duration::from_millis(50),
            },
        }
    }

    static ZIP: &[u8] = b"zip";

    fn stack_count(cloud: &FakeCloud) -> usize {
        cloud.with(|w| w.stacks.len())
    }

    #[tokio::test]
    async fn install_creates_everything_then_second_run_changes_nothing() {
        let cloud = FakeCloud::default();
        cloud.with(|w| w.in_progress_polls = 2);
        let s = set(&["111111111111", "222222222222"], &["us-east-1", "eu-west-1"]);
        let rec = Recorder::default();
        let r = install(&cloud, &s, &cfg(), ZIP, &opts(), &rec).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.results);
        // 2 artifacts + per account (state, account, region@home, region@eu) = 2 + 2*4.
        assert_eq!(stack_count(&cloud), 10);
        assert_eq!(cloud.with(|w| w.objects.len()), 2, "code uploaded to both regional buckets");
        let events = rec.events();
        assert!(events
            .iter()
            .any(|e| matches!(e, DeployEvent::StackStatus { status, .. } if status == "CREATE_IN_PROGRESS")));
        assert!(events
            .iter()
            .any(|e| matches!(e, DeployEvent::StackStatus { status, .. } if status == "CREATE_COMPLETE")));

        cloud.with(|w| w.calls.clear());
        let r2 = install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        assert_eq!(r2.failed(), 0);
        assert!(r2.results.iter().all(|r| r.changes() == 0), "{:#?}", r2.results);
        let writes: Vec<String> = cloud.with(|w| {
            w.calls.iter().filter(|c| !c.contains("Describe") && !c.contains("HeadObject")).cloned().collect()
        });
        assert!(writes.is_empty(), "second run wrote: {writes:?}");
    }

    #[tokio::test]
    async fn new_build_updates_only_region_stacks_and_uploads_once_per_region() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111"], &["us-east-1", "eu-west-1"]);
        install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        cloud.with(|w| w.calls.clear());
        let mut c2 = cfg();
        c2.code_hash = "cd".repeat(32);
        let r = install(&cloud, &s, &c2, ZIP, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0);
        let mut writes: Vec<String> = cloud.with(|w| {
            w.calls
                .iter()
                .filter(|c| c.contains("Update") || c.contains("Create") || c.contains("Put"))
                .cloned()
                .collect()
        });
        writes.sort();
        assert_eq!(
            writes,
            vec![
                "111111111111/eu-west-1 PutObject ctguard/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd.zip",
                "111111111111/eu-west-1 UpdateStack ctguard-region",
                "111111111111/us-east-1 PutObject ctguard/cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd.zip",
                "111111111111/us-east-1 UpdateStack ctguard-region",
            ]
        );
    }

    #[tokio::test]
    async fn one_failing_target_leaves_the_others_installed_and_a_rerun_resumes() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111", "222222222222", "333333333333"], &["us-east-1"]);
        let bad = Target::new("222222222222", "us-east-1");
        cloud.with(|w| w.fail.insert((bad.clone(), "ctguard-state".into()), "Table already exists".into()));
        let r = install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 1);
        let failed = r.results.iter().find(|r| r.failed()).unwrap();
        assert_eq!(failed.target, bad);
        assert!(
            matches!(&failed.outcome, Outcome::Failed { reason } if reason.contains("ROLLBACK_COMPLETE") && reason.contains("Table already exists")),
            "{failed:?}"
        );
        // The others are complete.
        for a in ["111111111111", "333333333333"] {
            let t = Target::new(a, "us-east-1");
            assert!(cloud.with(|w| w
                .stacks
                .get(&(t.clone(), "ctguard-region".into()))
                .is_some_and(|s| s.status == "CREATE_COMPLETE")));
        }
        // Re-run: the ROLLBACK_COMPLETE stack is deleted and created again; the rest untouched.
        cloud.with(|w| w.calls.clear());
        let r = install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.results);
        let writes: Vec<String> = cloud
            .with(|w| w.calls.iter().filter(|c| !c.contains("Describe") && !c.contains("Head")).cloned().collect());
        assert_eq!(
            writes,
            vec![
                "222222222222/us-east-1 DeleteStack ctguard-state",
                "222222222222/us-east-1 CreateStack ctguard-state",
                "222222222222/us-east-1 CreateStack ctguard-account",
                "222222222222/us-east-1 CreateStack ctguard-region",
            ]
        );
    }

    #[tokio::test]
    async fn missing_trail_stops_before_any_change_unless_allowed() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111", "222222222222"], &["us-east-1"]);
        cloud.with(|w| {
            w.trails
                .insert(Target::new("222222222222", "us-east-1"), TrailVerdict::Missing { reason: "no trail".into() })
        });
        let mut plan = opts();
        plan.plan_only = true;
        let r = install(&cloud, &s, &cfg(), ZIP, &plan, &Recorder::default()).await;
        assert!(
            r.stopped.as_deref().is_some_and(|m| m.contains("install would stop")),
            "--plan tells: {:?}",
            r.stopped
        );
        let r = install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        assert!(r.stopped.as_deref().is_some_and(|m| m.contains("--allow-missing-trail")), "{:?}", r.stopped);
        assert_eq!(stack_count(&cloud), 0);
        assert_eq!(r.failed(), 1);
        let mut o = opts();
        o.allow_missing_trail = true;
        let rec = Recorder::default();
        let r = install(&cloud, &s, &cfg(), ZIP, &o, &rec).await;
        assert!(r.stopped.is_none());
        assert_eq!(r.failed(), 0);
        assert!(rec
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, DeployEvent::Warning { message } if message.contains("installing anyway"))));
    }

    #[tokio::test]
    async fn plan_only_changes_nothing_and_lists_every_step() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111"], &["us-east-1", "eu-west-1"]);
        let mut o = opts();
        o.plan_only = true;
        let r = install(&cloud, &s, &cfg(), ZIP, &o, &Recorder::default()).await;
        assert_eq!(stack_count(&cloud), 0);
        let steps: Vec<String> = r
            .plans
            .iter()
            .flat_map(|p| p.steps.iter().map(move |st| format!("{} {} {}", p.target, st.what, st.action)))
            .collect();
        assert_eq!(steps.len(), 2 * 2 + 3 + 1, "{steps:#?}");
        assert!(steps.contains(&"111111111111/us-east-1 ctguard-state create".to_string()));
        assert!(steps
            .iter()
            .any(|s| s.starts_with("111111111111/eu-west-1 s3://ctguard-artifacts-111111111111-eu-west-1/ctguard/")
                && s.contains("upload")));
    }

    #[tokio::test]
    async fn unreachable_account_fails_alone() {
        let cloud = FakeCloud::default();
        cloud.with(|w| w.unreachable.insert("222222222222".into(), "AccessDenied".into()));
        let s = set(&["111111111111", "222222222222"], &["us-east-1"]);
        let r = install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 1);
        assert!(r.results.iter().any(|r| r.target.account == "222222222222"
            && matches!(&r.outcome, Outcome::Failed { reason } if reason.contains("AccessDenied"))));
        assert!(
            cloud.with(|w| w.stacks.contains_key(&(Target::new("111111111111", "us-east-1"), "ctguard-region".into())))
        );
    }

    #[tokio::test]
    async fn uninstall_removes_everything_keeps_state_on_request_and_is_idempotent() {
        let cloud = FakeCloud::default();
        cloud.with(|w| w.in_progress_polls = 1);
        let s = set(&["111111111111", "222222222222"], &["us-east-1", "eu-west-1"]);
        install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        // A foreign stack with our name is never touched.
        let foreign = Target::new("222222222222", "us-east-1");
        cloud.with(|w| {
            w.stacks.insert(
                (foreign.clone(), "ctguard-account".into()),
                StackState { name: "ctguard-account".into(), status: "CREATE_COMPLETE".into(), ..Default::default() },
            )
        });
        let keep = RemoveOptions { keep_state: true, remove_artifacts: true };
        let r = uninstall(&cloud, &s, "111111111111", &keep, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.results);
        let left: Vec<(Target, String)> = cloud.with(|w| w.stacks.keys().cloned().collect());
        let mut names: Vec<String> = left.iter().map(|(t, n)| format!("{t} {n}")).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "111111111111/us-east-1 ctguard-state",
                "222222222222/us-east-1 ctguard-account",
                "222222222222/us-east-1 ctguard-state"
            ]
        );
        // The kept state is not a leftover; the foreign stack is listed (never deleted).
        assert_eq!(
            r.leftovers,
            BTreeMap::from([(
                "222222222222/us-east-1".to_string(),
                vec!["stack ctguard-account (CREATE_COMPLETE)".to_string()]
            )])
        );
        assert_eq!(cloud.with(|w| w.objects.len()), 0, "artifacts emptied");

        let all = RemoveOptions { keep_state: false, remove_artifacts: true };
        let r = uninstall(&cloud, &s, "111111111111", &all, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0);
        let r = uninstall(&cloud, &s, "111111111111", &all, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0);
        assert!(r.results.iter().all(|x| x.changes() == 0), "idempotent");
        // Only the foreign stack is left, reported as left.
        assert_eq!(stack_count(&cloud), 1);
        assert_eq!(r.leftovers.keys().collect::<Vec<_>>(), vec!["222222222222/us-east-1"]);
    }

    #[tokio::test]
    async fn a_denied_deletion_is_retried_then_stops_with_what_is_left_and_why() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111"], &["us-east-1"]);
        install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        let bucket = plan::artifacts_bucket("111111111111", "us-east-1");
        let held = cloud.with(|w| w.objects.iter().find(|o| o.0 == bucket).cloned()).unwrap();
        cloud.with(|w| {
            w.objects.insert((bucket.clone(), "ctguard/other.zip".into()));
            w.denied_objects.insert(held.clone());
        });
        let all = RemoveOptions { keep_state: false, remove_artifacts: true };
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            uninstall(&cloud, &s, "111111111111", &all, &opts(), &Recorder::default()),
        )
        .await
        .expect("a denied deletion must not spin forever");
        let art = r.results.iter().find(|x| x.phase == Phase::Artifacts).unwrap();
        assert!(
            matches!(&art.outcome, Outcome::Failed { reason } if reason.contains("1 object versions could not be deleted")),
            "{art:?}"
        );
        let empties = cloud.with(|w| w.calls.iter().filter(|c| c.contains("DeleteObjects")).count());
        assert!(empties >= 2, "retried before giving up ({empties} attempts)");
        // The deletable object went, the denied one stays, and so does the stack holding it.
        assert_eq!(cloud.with(|w| w.objects.iter().filter(|o| o.0 == bucket).cloned().collect::<Vec<_>>()), vec![held]);
        assert!(cloud
            .with(|w| w.stacks.contains_key(&(Target::new("111111111111", "us-east-1"), "ctguard-artifacts".into()))));
        assert_eq!(
            r.leftovers.get("111111111111/us-east-1").cloned().unwrap_or_default(),
            vec!["stack ctguard-artifacts (CREATE_COMPLETE)".to_string(), format!("s3 objects in {bucket}")]
        );
        // The denial lifted: a re-run finishes.
        cloud.with(|w| w.denied_objects.clear());
        let r = uninstall(&cloud, &s, "111111111111", &all, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.results);
        assert!(r.leftovers.is_empty(), "{:?}", r.leftovers);
    }

    #[tokio::test]
    async fn a_bucket_ctguard_cannot_prove_it_owns_is_never_emptied() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111"], &["us-east-1"]);
        install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        let bucket = plan::artifacts_bucket("111111111111", "us-east-1");
        let home = Target::new("111111111111", "us-east-1");
        let all = RemoveOptions { keep_state: false, remove_artifacts: true };
        // The tag is gone: not provably ctguard's.
        cloud.with(|w| w.unowned_buckets.insert(bucket.clone(), "no ctguard:owner=ctguard tag".into()));
        let mut plan_only = opts();
        plan_only.plan_only = true;
        let r = uninstall(&cloud, &s, "111111111111", &all, &plan_only, &Recorder::default()).await;
        let step = r.plans.iter().flat_map(|p| &p.steps).find(|st| st.what == format!("s3://{bucket}")).unwrap();
        assert!(
            matches!(&step.action, Action::LeaveBucket { reason } if reason.contains("no ctguard:owner")),
            "--plan says it will be left alone: {step:?}"
        );
        // Its stack failed (a name collision): the stack goes, the bucket is not touched.
        cloud.with(|w| {
            w.unowned_buckets.clear();
            if let Some(st) = w.stacks.get_mut(&(home.clone(), "ctguard-artifacts".into())) {
                st.status = "ROLLBACK_COMPLETE".into();
            }
        });
        let before = cloud.with(|w| w.objects.len());
        let r = uninstall(&cloud, &s, "111111111111", &all, &opts(), &Recorder::default()).await;
        assert_eq!(r.failed(), 0, "{:#?}", r.results);
        assert_eq!(cloud.with(|w| w.objects.len()), before, "nothing deleted from a bucket not proven ours");
        assert!(!cloud.with(|w| w.calls.iter().any(|c| c.contains("DeleteObjects"))));
        assert!(!cloud.with(|w| w.stacks.contains_key(&(home.clone(), "ctguard-artifacts".into()))));
        let art = r.results.iter().find(|x| x.phase == Phase::Artifacts).unwrap();
        assert!(art.steps[0].action.starts_with("left alone"), "{art:?}");
    }

    #[tokio::test]
    async fn discover_lists_installed_stacks_with_outputs() {
        let cloud = FakeCloud::default();
        let s = set(&["111111111111"], &["us-east-1", "eu-west-1"]);
        install(&cloud, &s, &cfg(), ZIP, &opts(), &Recorder::default()).await;
        let found = discover(&cloud, &s, 4).await;
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].stacks.len() + found[1].stacks.len(), 4);
        assert!(found.iter().all(|i| i.region_outputs().is_some()));
    }
}
