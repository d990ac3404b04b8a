//! Planning, separated from doing: observed stack state + desired stack specs → actions.
//! Nothing here calls AWS; `ctguard install --plan` prints what this module returns, and
//! [`crate::deploy`] executes it.
//!
//! Idempotency rests on the `ctguard:spec` stack tag: the SHA-256 of the template body and the
//! sorted parameters. A stack whose tag matches the desired spec and whose status is a settled
//! success needs no call at all, so a second `install` with nothing new makes no change (and
//! only one DescribeStacks per stack).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::embedded;
use crate::targets::Target;

/// Tag on every stack (and, through the templates, every resource) that ctguard created.
pub const OWNER_TAG: &str = "ctguard:owner";
pub const OWNER_VALUE: &str = "ctguard";
/// The detector version a stack was deployed with.
pub const VERSION_TAG: &str = "ctguard:version";
/// Hash of template body + parameters the stack was deployed with (see [`spec_hash`]).
pub const SPEC_TAG: &str = "ctguard:spec";

/// The four stack kinds. Names are fixed so every command (and `verify`) finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackKind {
    /// Installing account, every region: the code bucket.
    Artifacts,
    /// Every account, home region: the state table.
    State,
    /// Every account, home region: the alert topic (absent with a central topic).
    Account,
    /// Every account × region: rule, function, role, DLQ, log group.
    Region,
}

impl StackKind {
    pub const ALL: [StackKind; 4] = [StackKind::Artifacts, StackKind::State, StackKind::Account, StackKind::Region];

    pub fn stack_name(self) -> &'static str {
        match self {
            StackKind::Artifacts => "ctguard-artifacts",
            StackKind::State => "ctguard-state",
            StackKind::Account => "ctguard-account",
            StackKind::Region => "ctguard-region",
        }
    }

    pub fn template_name(self) -> &'static str {
        match self {
            StackKind::Artifacts => "ctguard-artifacts.yaml",
            StackKind::State => "ctguard-state.yaml",
            StackKind::Account => "ctguard-account.yaml",
            StackKind::Region => "ctguard-region.yaml",
        }
    }

    /// The bundled template body.
    pub fn template_body(self) -> &'static str {
        embedded::template(self.template_name()).unwrap_or("")
    }

    pub fn from_stack_name(name: &str) -> Option<StackKind> {
        StackKind::ALL.into_iter().find(|k| k.stack_name() == name)
    }
}

impl fmt::Display for StackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.stack_name())
    }
}

/// What a stack should look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSpec {
    pub kind: StackKind,
    #[serde(skip)]
    pub template_body: &'static str,
    pub parameters: BTreeMap<String, String>,
    /// Stack tags: owner, version and spec hash.
    pub tags: BTreeMap<String, String>,
    pub spec_hash: String,
}

impl StackSpec {
    pub fn new(
        kind: StackKind,
        template_body: &'static str,
        parameters: BTreeMap<String, String>,
        version: &str,
    ) -> Self {
        let spec_hash = spec_hash(template_body, &parameters);
        let tags = BTreeMap::from([
            (OWNER_TAG.to_string(), OWNER_VALUE.to_string()),
            (VERSION_TAG.to_string(), version.to_string()),
            (SPEC_TAG.to_string(), spec_hash.clone()),
        ]);
        StackSpec { kind, template_body, parameters, tags, spec_hash }
    }

    pub fn name(&self) -> &'static str {
        self.kind.stack_name()
    }
}

/// SHA-256 (hex) of the template body and the parameters in key order. Every piece is
/// length-prefixed, so no two different inputs encode alike (a value holding "\nB=" cannot
/// pass for another parameter).
pub fn spec_hash(body: &str, parameters: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(body);
    for (k, v) in parameters {
        put(k);
        put(v);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A stack as DescribeStacks reports it (ctguard types only: the seam never leaks SDK types).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StackState {
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

impl StackState {
    /// Created by ctguard (carries the ownership tag).
    pub fn owned(&self) -> bool {
        self.tags.get(OWNER_TAG).map(String::as_str) == Some(OWNER_VALUE)
    }
    pub fn spec(&self) -> Option<&str> {
        self.tags.get(SPEC_TAG).map(String::as_str)
    }
    pub fn version(&self) -> Option<&str> {
        self.tags.get(VERSION_TAG).map(String::as_str)
    }
    /// An operation is running; nothing may be started on the stack until it settles.
    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
    /// A settled success: CREATE/UPDATE/IMPORT_COMPLETE, but not the *ROLLBACK_COMPLETE states.
    pub fn healthy(&self) -> bool {
        self.status.ends_with("_COMPLETE") && !self.status.contains("ROLLBACK") && self.status != "DELETE_COMPLETE"
    }
}

/// What to do with one stack (or the code object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do: the stack matches the spec (or is absent and not wanted).
    NoChange,
    Create,
    /// Update; `changed` names the parameters that differ (empty: template or tags differ).
    Update {
        changed: Vec<String>,
    },
    /// A failed creation left a stack that can only be deleted: delete, then create.
    Recreate {
        status: String,
    },
    Delete,
    /// An operation is running on the stack: wait for it to settle, then plan again.
    Wait {
        status: String,
    },
    /// Cannot proceed without a person (foreign stack with our name, UPDATE_ROLLBACK_FAILED, ...).
    Blocked {
        reason: String,
    },
    /// A stack with our name that ctguard did not create: never touched.
    LeaveForeign,
    /// Upload the Lambda zip (it is not in the bucket yet).
    UploadCode {
        bucket: String,
        key: String,
    },
    /// Delete every object version from the bucket (before its stack is deleted).
    EmptyBucket {
        bucket: String,
    },
    /// A bucket of ctguard's fixed name that ctguard cannot prove it owns: never emptied.
    LeaveBucket {
        reason: String,
    },
}

impl Action {
    /// True when carrying it out changes something in AWS.
    pub fn changes(&self) -> bool {
        !matches!(self, Action::NoChange | Action::LeaveForeign | Action::Blocked { .. } | Action::LeaveBucket { .. })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::NoChange => f.write_str("no change"),
            Action::Create => f.write_str("create"),
            Action::Update { changed } if changed.is_empty() => f.write_str("update (template)"),
            Action::Update { changed } => write!(f, "update ({})", changed.join(", ")),
            Action::Recreate { status } => write!(f, "recreate (was {status})"),
            Action::Delete => f.write_str("delete"),
            Action::Wait { status } => write!(f, "wait ({status}), then re-plan"),
            Action::Blocked { reason } => write!(f, "blocked: {reason}"),
            Action::LeaveForeign => f.write_str("left alone (not created by ctguard)"),
            Action::UploadCode { .. } => f.write_str("upload"),
            Action::EmptyBucket { .. } => f.write_str("empty (every object version)"),
            Action::LeaveBucket { reason } => write!(f, "left alone (not provably ctguard's: {reason})"),
        }
    }
}

/// One step of a target's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stack name, or `s3://bucket/key` for code uploads.
    pub what: String,
    pub kind: Option<StackKind>,
    #[serde(flatten)]
    pub action: Action,
    #[serde(skip)]
    pub spec: Option<StackSpec>,
    /// Every parameter the step changes, old → new (empty for no change, deletes and uploads).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<ParamChange>,
}

/// One parameter of a stack as it changes: `old` is `None` when the stack does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamChange {
    pub name: String,
    pub old: Option<String>,
    pub new: String,
}

/// The parameters `desired` sets differently from `observed` (all of them for a new stack).
/// Nothing for a stack that is left alone or deleted: the plan's action says it all then.
pub fn param_diff(action: &Action, desired: Option<&StackSpec>, observed: Option<&StackState>) -> Vec<ParamChange> {
    let Some(want) = desired else { return Vec::new() };
    let fresh = matches!(action, Action::Create | Action::Recreate { .. });
    if !fresh && !matches!(action, Action::Update { .. }) {
        return Vec::new();
    }
    want.parameters
        .iter()
        .filter_map(|(k, v)| {
            let old = if fresh { None } else { observed.and_then(|o| o.parameters.get(k)).cloned() };
            (old.as_ref() != Some(v)).then(|| ParamChange { name: k.clone(), old, new: v.clone() })
        })
        .collect()
}

/// Which settings this run states. A setting not stated keeps the value each deployed stack
/// already has (a re-run without flags changes nothing), and takes its default only where
/// nothing is deployed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Stated {
    /// Alert routing: `alert_topic_arn` and `alert_email` (they decide together).
    pub alert: bool,
    pub policy: bool,
    pub log_retention_days: bool,
    pub default_ttl_hours: bool,
    pub security_hub: bool,
    pub auto_contain: bool,
}

impl Stated {
    /// Every setting stated: the configuration is applied as given.
    pub const ALL: Stated = Stated {
        alert: true,
        policy: true,
        log_retention_days: true,
        default_ttl_hours: true,
        security_hub: true,
        auto_contain: true,
    };
}

/// Everything to do in one account × region, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetPlan {
    pub target: Target,
    pub steps: Vec<Step>,
}

impl TargetPlan {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.action.changes()).count()
    }
    pub fn blocked(&self) -> Vec<&Step> {
        self.steps.iter().filter(|s| matches!(s.action, Action::Blocked { .. })).collect()
    }
}

/// Decides what to do with one stack.
pub fn plan_stack(desired: Option<&StackSpec>, observed: Option<&StackState>) -> Action {
    let Some(obs) = observed else {
        return if desired.is_some() { Action::Create } else { Action::NoChange };
    };
    if !obs.owned() {
        return match desired {
            Some(_) => Action::Blocked {
                reason: format!(
                    "a stack named {} exists but was not created by ctguard (no {OWNER_TAG} tag); rename or delete it",
                    obs.name
                ),
            },
            None => Action::LeaveForeign,
        };
    }
    if obs.in_progress() {
        return Action::Wait { status: obs.status.clone() };
    }
    let Some(want) = desired else {
        return Action::Delete;
    };
    match obs.status.as_str() {
        // Creation failed: such a stack cannot be updated, only deleted.
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" | "DELETE_FAILED" => {
            return Action::Recreate { status: obs.status.clone() }
        }
        "UPDATE_ROLLBACK_FAILED" => {
            return Action::Blocked {
                reason: "UPDATE_ROLLBACK_FAILED: fix the cause, then run `aws cloudformation continue-update-rollback`"
                    .into(),
            }
        }
        _ => {}
    }
    if obs.healthy() && obs.spec() == Some(want.spec_hash.as_str()) {
        return Action::NoChange;
    }
    let mut changed: Vec<String> =
        want.parameters.iter().filter(|(k, v)| obs.parameters.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    changed.extend(obs.parameters.keys().filter(|k| !want.parameters.contains_key(*k)).cloned());
    Action::Update { changed }
}

/// Plans the stacks of one target: `kinds` are the stacks this target is responsible for, in
/// deployment order; `desired` holds the specs of those that should exist.
pub fn plan_target(
    target: &Target,
    kinds: &[StackKind],
    desired: &[StackSpec],
    observed: &BTreeMap<StackKind, StackState>,
) -> TargetPlan {
    let steps = kinds
        .iter()
        .map(|&k| {
            let want = desired.iter().find(|s| s.kind == k);
            let action = plan_stack(want, observed.get(&k));
            Step {
                what: k.stack_name().to_string(),
                kind: Some(k),
                diff: param_diff(&action, want, observed.get(&k)),
                action,
                spec: want.cloned(),
            }
        })
        .collect();
    TargetPlan { target: target.clone(), steps }
}

/// Plans removal: the same kinds in reverse deployment order, nothing desired.
pub fn plan_removal(target: &Target, kinds: &[StackKind], observed: &BTreeMap<StackKind, StackState>) -> TargetPlan {
    let steps = kinds
        .iter()
        .rev()
        .map(|&k| Step {
            what: k.stack_name().to_string(),
            kind: Some(k),
            action: plan_stack(None, observed.get(&k)),
            spec: None,
            diff: Vec::new(),
        })
        .collect();
    TargetPlan { target: target.clone(), steps }
}

/// The planned changes that lower protection, one line each, for a person to confirm: deleting
/// an account's alert topic (and with it its subscriptions), dropping or replacing the alert
/// email, sending alerts to another topic. Tightening changes (a new allowlist, a longer
/// retention) are not listed.
pub fn exposure_changes(plans: &[TargetPlan]) -> Vec<String> {
    let mut v = Vec::new();
    for p in plans {
        for s in &p.steps {
            if s.kind == Some(StackKind::Account) && s.action == Action::Delete {
                v.push(format!("{}: delete the alert topic stack ctguard-account and its subscriptions", p.target));
            }
            for d in &s.diff {
                let old = d.old.as_deref().unwrap_or("");
                let watched = matches!(d.name.as_str(), "AlertEmail" | "AlertTopicArn");
                if watched && !old.is_empty() {
                    let new = if d.new.is_empty() { "(none)" } else { d.new.as_str() };
                    v.push(format!("{}: {} {old} → {new}", p.target, d.name));
                }
            }
        }
    }
    v
}

/// Everything an install deploys, the same for every account (see the templates: no
/// parameter is account specific, which is what lets StackSets reuse them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallConfig {
    pub version: String,
    /// SHA-256 of the bundled Lambda zip.
    pub code_hash: String,
    pub artifacts_account: String,
    pub home_region: String,
    pub org_id: Option<String>,
    pub alert_topic_arn: Option<String>,
    pub alert_email: Option<String>,
    pub policy: String,
    pub log_retention_days: u32,
    pub default_ttl_hours: u32,
    /// Import alerts into Security Hub (the regional template's `SecurityHub`).
    pub security_hub: bool,
    /// Let the detector contain opted-in roles' sessions by itself (the regional template's
    /// `AutoContain`).
    pub auto_contain: bool,
}

impl InstallConfig {
    /// The S3 key of the code: content-addressed, so a new build rolls out and an unchanged
    /// one is a no-op.
    pub fn code_key(&self) -> String {
        Self::code_key_for(&self.code_hash)
    }

    /// The S3 key of a build with this content hash.
    pub fn code_key_for(code_hash: &str) -> String {
        format!("ctguard/{code_hash}.zip")
    }

    pub fn bucket(&self, region: &str) -> String {
        artifacts_bucket(&self.artifacts_account, region)
    }

    pub fn artifacts_spec(&self) -> StackSpec {
        let p = BTreeMap::from([
            ("OrgId".to_string(), self.org_id.clone().unwrap_or_default()),
            ("DetectorVersion".to_string(), self.version.clone()),
        ]);
        StackSpec::new(StackKind::Artifacts, StackKind::Artifacts.template_body(), p, &self.version)
    }

    pub fn state_spec(&self) -> StackSpec {
        let p = BTreeMap::from([("DetectorVersion".to_string(), self.version.clone())]);
        StackSpec::new(StackKind::State, StackKind::State.template_body(), p, &self.version)
    }

    /// `None` when alerts go to a central topic (nothing to deploy then).
    pub fn account_spec(&self) -> Option<StackSpec> {
        if self.alert_topic_arn.is_some() {
            return None;
        }
        let p = BTreeMap::from([
            ("DetectorVersion".to_string(), self.version.clone()),
            ("AlertEmail".to_string(), self.alert_email.clone().unwrap_or_default()),
        ]);
        Some(StackSpec::new(StackKind::Account, StackKind::Account.template_body(), p, &self.version))
    }

    pub fn region_spec(&self) -> StackSpec {
        let p = BTreeMap::from([
            ("DetectorVersion".to_string(), self.version.clone()),
            ("ArtifactsAccountId".to_string(), self.artifacts_account.clone()),
            ("HomeRegion".to_string(), self.home_region.clone()),
            ("CodeKey".to_string(), self.code_key()),
            ("AlertTopicArn".to_string(), self.alert_topic_arn.clone().unwrap_or_default()),
            ("Policy".to_string(), self.policy.clone()),
            ("LogRetentionDays".to_string(), self.log_retention_days.to_string()),
            ("DefaultTtlHours".to_string(), self.default_ttl_hours.to_string()),
            ("SecurityHub".to_string(), self.security_hub.to_string()),
            ("AutoContain".to_string(), self.auto_contain.to_string()),
        ]);
        StackSpec::new(StackKind::Region, StackKind::Region.template_body(), p, &self.version)
    }

    /// This configuration with every setting `stated` does not name taken from the stacks
    /// deployed in one target (`observed`, ctguard's own only), so that a run changes only what
    /// it asks for. Settings nothing deploys yet keep the value in `self` (the default).
    pub fn keeping(&self, stated: Stated, observed: &BTreeMap<StackKind, StackState>) -> InstallConfig {
        let mut c = self.clone();
        let param = |k: StackKind, name: &str| {
            observed.get(&k).filter(|s| s.owned()).and_then(|s| s.parameters.get(name)).cloned()
        };
        let region = observed.get(&StackKind::Region).filter(|s| s.owned());
        if !stated.alert {
            let email = param(StackKind::Account, "AlertEmail").filter(|e| !e.is_empty());
            match param(StackKind::Region, "AlertTopicArn") {
                Some(t) if !t.is_empty() => (c.alert_topic_arn, c.alert_email) = (Some(t), None),
                Some(_) => (c.alert_topic_arn, c.alert_email) = (None, email),
                None if observed.get(&StackKind::Account).is_some_and(StackState::owned) => {
                    (c.alert_topic_arn, c.alert_email) = (None, email)
                }
                None => {}
            }
        }
        if region.is_some() {
            if !stated.policy {
                c.policy = param(StackKind::Region, "Policy").unwrap_or(c.policy);
            }
            let number = |name: &str, fallback: u32| {
                param(StackKind::Region, name).and_then(|v| v.parse().ok()).unwrap_or(fallback)
            };
            if !stated.log_retention_days {
                c.log_retention_days = number("LogRetentionDays", c.log_retention_days);
            }
            if !stated.default_ttl_hours {
                c.default_ttl_hours = number("DefaultTtlHours", c.default_ttl_hours);
            }
            // A stack from before such a parameter existed has it off.
            let switch = |name: &str| param(StackKind::Region, name).is_some_and(|v| v == "true");
            if !stated.security_hub {
                c.security_hub = switch("SecurityHub");
            }
            if !stated.auto_contain {
                c.auto_contain = switch("AutoContain");
            }
        }
        c
    }

    /// The stacks a target is responsible for (deployment order) and those it should have.
    pub fn for_target(&self, home: bool) -> (Vec<StackKind>, Vec<StackSpec>) {
        if !home {
            return (vec![StackKind::Region], vec![self.region_spec()]);
        }
        let mut desired = vec![self.state_spec()];
        desired.extend(self.account_spec());
        desired.push(self.region_spec());
        (vec![StackKind::State, StackKind::Account, StackKind::Region], desired)
    }
}

/// The code bucket of `region` in the installing account.
pub fn artifacts_bucket(account: &str, region: &str) -> String {
    format!("ctguard-artifacts-{account}-{region}")
}

/// The artifacts plan of one region of the installing account: the stack, then the code.
pub fn plan_artifacts(
    cfg: &InstallConfig,
    region: &str,
    observed: Option<&StackState>,
    code_present: bool,
) -> TargetPlan {
    let spec = cfg.artifacts_spec();
    let action = plan_stack(Some(&spec), observed);
    let stack = Step {
        what: StackKind::Artifacts.stack_name().to_string(),
        kind: Some(StackKind::Artifacts),
        diff: param_diff(&action, Some(&spec), observed),
        action,
        spec: Some(spec),
    };
    let bucket = cfg.bucket(region);
    let key = cfg.code_key();
    let upload = Step {
        // The hash shortened for tables; the action carries the full key.
        what: format!("s3://{bucket}/ctguard/{}…", cfg.code_hash.get(..12).unwrap_or(&cfg.code_hash)),
        kind: None,
        action: if code_present { Action::NoChange } else { Action::UploadCode { bucket, key } },
        spec: None,
        diff: Vec::new(),
    };
    TargetPlan { target: Target::new(cfg.artifacts_account.clone(), region), steps: vec![stack, upload] }
}

/// The logical id of the code bucket in the artifacts template: the stack resource a bucket
/// must be to count as ctguard's.
pub const ARTIFACTS_BUCKET_RESOURCE: &str = "ArtifactsBucket";

/// Whether a bucket of ctguard's fixed name is provably ctguard's. Bucket names are global, so
/// the name proves nothing: someone else's bucket (in this account, or squatted from another
/// one, which makes ctguard's own stack fail) may carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "ownership", content = "reason", rename_all = "snake_case")]
pub enum BucketOwnership {
    /// ctguard's artifacts stack holds it (its resource, not failed), it carries ctguard's
    /// owner tag, and it belongs to the installing account (`ExpectedBucketOwner`).
    Proven,
    /// Why not (or why it could not be proven): it is then never emptied.
    Unproven(String),
}

/// The uninstall plan of one region's artifacts: empty the bucket (only when `ownership` is
/// proven), then delete the stack.
pub fn plan_artifacts_removal(
    account: &str,
    region: &str,
    observed: Option<&StackState>,
    ownership: Option<&BucketOwnership>,
) -> TargetPlan {
    let mut steps = Vec::new();
    let action = plan_stack(None, observed);
    if action == Action::Delete {
        let bucket = artifacts_bucket(account, region);
        let empty = match ownership {
            Some(BucketOwnership::Proven) => Action::EmptyBucket { bucket: bucket.clone() },
            Some(BucketOwnership::Unproven(why)) => Action::LeaveBucket { reason: why.clone() },
            None => Action::LeaveBucket { reason: "its ownership was not checked".into() },
        };
        steps.push(Step { what: format!("s3://{bucket}"), kind: None, action: empty, spec: None, diff: Vec::new() });
    }
    steps.push(Step {
        what: StackKind::Artifacts.stack_name().to_string(),
        kind: Some(StackKind::Artifacts),
        action,
        spec: None,
        diff: Vec::new(),
    });
    TargetPlan { target: Target::new(account, region), steps }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> InstallConfig {
        InstallConfig {
            version: "0.1.0".into(),
            code_hash: "ab".repeat(32),
            artifacts_account: "123456789012".into(),
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

    fn deployed(spec: &StackSpec, status: &str) -> StackState {
        StackState {
            name: spec.name().into(),
            status: status.into(),
            tags: spec.tags.clone(),
            parameters: spec.parameters.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn spec_hash_covers_body_and_every_parameter() {
        let p = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let h = spec_hash("body", &p);
        assert_eq!(h.len(), 64);
        assert_eq!(h, spec_hash("body", &p.clone()));
        assert_ne!(h, spec_hash("body2", &p));
        assert_ne!(h, spec_hash("body", &BTreeMap::from([("A".to_string(), "2".to_string())])));
        // "A=1\nB=" must differ from "A=1\nB" shifting into the value.
        let p2 = BTreeMap::from([("A".to_string(), "1\nB=".to_string())]);
        let p3 = BTreeMap::from([("A".to_string(), "1".to_string()), ("B".to_string(), "".to_string())]);
        assert_ne!(spec_hash("b", &p2), spec_hash("b", &p3));
    }

    #[test]
    fn absent_stack_is_created_and_matching_one_is_left_alone() {
        let spec = cfg().region_spec();
        assert_eq!(plan_stack(Some(&spec), None), Action::Create);
        for ok in ["CREATE_COMPLETE", "UPDATE_COMPLETE"] {
            assert_eq!(plan_stack(Some(&spec), Some(&deployed(&spec, ok))), Action::NoChange, "{ok}");
        }
        assert_eq!(plan_stack(None, None), Action::NoChange);
    }

    #[test]
    fn new_build_updates_only_the_code_key() {
        let old = cfg().region_spec();
        let mut c = cfg();
        c.code_hash = "cd".repeat(32);
        let new = c.region_spec();
        assert_ne!(old.spec_hash, new.spec_hash);
        assert_eq!(
            plan_stack(Some(&new), Some(&deployed(&old, "CREATE_COMPLETE"))),
            Action::Update { changed: vec!["CodeKey".into()] }
        );
        assert_eq!(new.parameters["CodeKey"], format!("ctguard/{}.zip", "cd".repeat(32)));
    }

    #[test]
    fn rolled_back_update_is_retried_even_if_the_tag_matches() {
        let spec = cfg().region_spec();
        let a = plan_stack(Some(&spec), Some(&deployed(&spec, "UPDATE_ROLLBACK_COMPLETE")));
        assert_eq!(a, Action::Update { changed: vec![] });
    }

    #[test]
    fn failed_creation_is_recreated_and_running_operations_are_waited_for() {
        let spec = cfg().state_spec();
        assert_eq!(
            plan_stack(Some(&spec), Some(&deployed(&spec, "ROLLBACK_COMPLETE"))),
            Action::Recreate { status: "ROLLBACK_COMPLETE".into() }
        );
        assert_eq!(
            plan_stack(Some(&spec), Some(&deployed(&spec, "UPDATE_IN_PROGRESS"))),
            Action::Wait { status: "UPDATE_IN_PROGRESS".into() }
        );
        assert_eq!(
            plan_stack(None, Some(&deployed(&spec, "DELETE_IN_PROGRESS"))),
            Action::Wait { status: "DELETE_IN_PROGRESS".into() }
        );
        assert!(matches!(
            plan_stack(Some(&spec), Some(&deployed(&spec, "UPDATE_ROLLBACK_FAILED"))),
            Action::Blocked { .. }
        ));
    }

    #[test]
    fn foreign_stacks_are_never_touched() {
        let spec = cfg().region_spec();
        let foreign =
            StackState { name: "ctguard-region".into(), status: "CREATE_COMPLETE".into(), ..Default::default() };
        let a = plan_stack(Some(&spec), Some(&foreign));
        assert!(matches!(&a, Action::Blocked { reason } if reason.contains("not created by ctguard")), "{a:?}");
        assert_eq!(plan_stack(None, Some(&foreign)), Action::LeaveForeign);
        assert!(!Action::LeaveForeign.changes());
    }

    #[test]
    fn home_target_gets_state_account_and_region_stacks_others_only_region() {
        let c = cfg();
        let (kinds, desired) = c.for_target(true);
        assert_eq!(kinds, vec![StackKind::State, StackKind::Account, StackKind::Region]);
        assert_eq!(desired.iter().map(|s| s.kind).collect::<Vec<_>>(), kinds);
        let (kinds, desired) = c.for_target(false);
        assert_eq!(kinds, vec![StackKind::Region]);
        assert_eq!(desired.len(), 1);
    }

    #[test]
    fn central_topic_drops_the_account_stack_and_removes_an_old_one() {
        let mut c = cfg();
        let own = c.account_spec().unwrap();
        c.alert_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:central".into());
        let (kinds, desired) = c.for_target(true);
        assert!(desired.iter().all(|s| s.kind != StackKind::Account));
        let observed = BTreeMap::from([(StackKind::Account, deployed(&own, "CREATE_COMPLETE"))]);
        let plan = plan_target(&Target::new("111111111111", "us-east-1"), &kinds, &desired, &observed);
        let actions: Vec<_> = plan.steps.iter().map(|s| (s.what.as_str(), s.action.clone())).collect();
        assert_eq!(
            actions,
            vec![
                ("ctguard-state", Action::Create),
                ("ctguard-account", Action::Delete),
                ("ctguard-region", Action::Create)
            ]
        );
        assert_eq!(plan.changes(), 3);
        assert_eq!(c.region_spec().parameters["AlertTopicArn"], "arn:aws:sns:us-east-1:123456789012:central");
    }

    #[test]
    fn region_parameters_are_the_same_for_every_account() {
        // What lets a StackSet deploy them unchanged: nothing in them names a member account.
        let p = cfg().region_spec().parameters;
        let template = StackKind::Region.template_body();
        for k in p.keys() {
            assert!(template.contains(&format!("\n  {k}:\n")), "template declares parameter {k}");
        }
        assert_eq!(p["ArtifactsAccountId"], "123456789012");
        assert_eq!(p.len(), 10);
    }

    #[test]
    fn every_parameter_passed_exists_in_its_template() {
        let c = cfg();
        let mut specs = vec![c.artifacts_spec(), c.state_spec(), c.region_spec()];
        specs.extend(c.account_spec());
        for s in specs {
            let body = s.kind.template_body();
            assert!(!body.is_empty(), "{} embedded", s.kind);
            for k in s.parameters.keys() {
                assert!(body.contains(&format!("\n  {k}:\n")), "{} declares {k}", s.kind.template_name());
            }
            assert_eq!(s.tags[OWNER_TAG], OWNER_VALUE);
            assert_eq!(s.tags[SPEC_TAG], s.spec_hash);
        }
    }

    #[test]
    fn artifacts_upload_only_when_the_object_is_missing() {
        let c = cfg();
        let p = plan_artifacts(&c, "eu-west-1", None, false);
        assert_eq!(p.target, Target::new("123456789012", "eu-west-1"));
        assert_eq!(p.steps[0].action, Action::Create);
        assert_eq!(
            p.steps[1].action,
            Action::UploadCode { bucket: "ctguard-artifacts-123456789012-eu-west-1".into(), key: c.code_key() }
        );
        let spec = c.artifacts_spec();
        let p = plan_artifacts(&c, "eu-west-1", Some(&deployed(&spec, "CREATE_COMPLETE")), true);
        assert_eq!(p.changes(), 0);
    }

    #[test]
    fn removal_runs_in_reverse_order_and_empties_buckets_first() {
        let c = cfg();
        let observed: BTreeMap<_, _> = [c.state_spec(), c.account_spec().unwrap(), c.region_spec()]
            .iter()
            .map(|s| (s.kind, deployed(s, "CREATE_COMPLETE")))
            .collect();
        let t = Target::new("111111111111", "us-east-1");
        let p = plan_removal(&t, &[StackKind::State, StackKind::Account, StackKind::Region], &observed);
        let whats: Vec<_> = p.steps.iter().map(|s| (s.what.as_str(), s.action.clone())).collect();
        assert_eq!(
            whats,
            vec![
                ("ctguard-region", Action::Delete),
                ("ctguard-account", Action::Delete),
                ("ctguard-state", Action::Delete)
            ]
        );
        // Already gone: nothing to do (idempotent uninstall).
        assert_eq!(plan_removal(&t, &[StackKind::Region], &BTreeMap::new()).changes(), 0);

        let art = deployed(&c.artifacts_spec(), "CREATE_COMPLETE");
        let a = plan_artifacts_removal("123456789012", "us-east-1", Some(&art), Some(&BucketOwnership::Proven));
        assert_eq!(
            a.steps[0].action,
            Action::EmptyBucket { bucket: "ctguard-artifacts-123456789012-us-east-1".into() }
        );
        assert_eq!(a.steps[1].action, Action::Delete);
        assert_eq!(plan_artifacts_removal("123456789012", "us-east-1", None, None).changes(), 0);
        // A bucket ctguard cannot prove it owns is never emptied; its (failed) stack still goes.
        for own in [None, Some(BucketOwnership::Unproven("no ctguard:owner tag".into()))] {
            let a = plan_artifacts_removal("123456789012", "us-east-1", Some(&art), own.as_ref());
            assert!(matches!(&a.steps[0].action, Action::LeaveBucket { .. }), "{:?}", a.steps[0]);
            assert!(!a.steps[0].action.changes());
            assert_eq!(a.steps[1].action, Action::Delete);
        }
        // The ownership check asks the stack for this resource: the template must declare it.
        let body = embedded::template("ctguard-artifacts.yaml").unwrap_or_default();
        assert!(body.contains(&format!("\n  {ARTIFACTS_BUCKET_RESOURCE}:\n")), "logical id in the template");
    }
}
