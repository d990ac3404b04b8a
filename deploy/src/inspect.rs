//! `status` without the printing: read each target (stacks, trail, rule, DLQ) through the
//! [`Connector`] seam, then [`judge`] it, purely, against the bundled version. A target is
//! healthy when it is covered (directly or by auto-deployment), its stacks are settled
//! successes with the bundled code, its trail logs management events, its rule delivers all
//! management events and its DLQ is empty. [`crate::metrics`] then adds what CloudWatch says
//! about the last 24 hours (errors, DLQ depth, the two alarms).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::metrics::HealthMetrics;
use crate::plan::{StackKind, StackState};
use crate::stacks::{Connector, Health, StackApi, TargetApi};
use crate::targets::{Target, TargetSet};
use crate::trail::TrailVerdict;

/// The rule state that delivers read-only management events too.
pub const RULE_STATE: &str = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS";

/// How a target gets its detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoveredBy {
    /// ctguard's stacks, deployed by `ctguard install` in the account.
    Direct,
    /// A StackSet instance (auto-deployment: the account joined after the install).
    AutoDeploy,
    /// Nothing: not installed here.
    None,
}

/// What the bundled binary would deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundled {
    pub version: String,
    pub code_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetStatus {
    pub target: Target,
    pub covered_by: CoveredBy,
    pub deployed_version: Option<String>,
    pub bundled_version: String,
    /// Whether the deployed code is the bundled build (`None`: not deployed directly).
    pub code_current: Option<bool>,
    /// Stack name → status.
    pub stacks: BTreeMap<String, String>,
    pub trail: Option<TrailVerdict>,
    pub health: Health,
    /// Everything wrong here; empty when healthy.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong: throttles, a DLQ emptied since, metrics that could not be read.
    pub warnings: Vec<String>,
    /// CloudWatch over the last 24 h ([`crate::metrics::collect`]; `None`: not read here).
    pub metrics: Option<HealthMetrics>,
}

impl TargetStatus {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Judges one target from what was read.
pub fn judge(
    target: &Target,
    home: bool,
    stacks: &BTreeMap<StackKind, StackState>,
    trail: Option<&TrailVerdict>,
    health: &Health,
    auto_covered: bool,
    bundled: &Bundled,
) -> TargetStatus {
    let mut problems = Vec::new();
    let region = stacks.get(&StackKind::Region).filter(|s| s.owned());
    let covered_by = match (region, auto_covered) {
        (Some(_), _) => CoveredBy::Direct,
        (None, true) => CoveredBy::AutoDeploy,
        (None, false) => CoveredBy::None,
    };
    if covered_by == CoveredBy::None {
        problems.push("not installed (no ctguard-region stack, no auto-deployed instance)".to_string());
    }
    for (k, s) in stacks {
        if !s.owned() {
            problems.push(format!("{}: exists but not created by ctguard", s.name));
        } else if !s.healthy() {
            let why = s.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            problems.push(format!("{k}: {}{why}", s.status));
        }
    }
    let code_current = region.map(|r| region_problems(r, stacks, home, bundled, &mut problems));
    if let Some(TrailVerdict::Missing { reason }) = trail {
        problems.push(format!("no usable trail: {reason}"));
    }
    if covered_by != CoveredBy::None {
        health_problems(health, covered_by, &mut problems);
    }
    TargetStatus {
        target: target.clone(),
        covered_by,
        deployed_version: region.and_then(|r| r.version().map(str::to_string)),
        bundled_version: bundled.version.clone(),
        code_current,
        stacks: stacks.values().map(|s| (s.name.clone(), s.status.clone())).collect(),
        trail: trail.cloned(),
        health: health.clone(),
        problems,
        warnings: Vec::new(),
        metrics: None,
    }
}

/// Judges a target that a StackSet owns from its instances' statuses alone (no role in the
/// account is needed): healthy when every instance is `CURRENT`/`SUCCEEDED`.
pub fn judge_instances(target: &Target, sets: &BTreeMap<String, String>, bundled: &Bundled) -> TargetStatus {
    let problems = sets
        .iter()
        .filter(|(_, st)| st.as_str() != "CURRENT/SUCCEEDED" && st.as_str() != "CURRENT")
        .map(|(n, st)| format!("{n} instance {st}"))
        .collect();
    TargetStatus {
        target: target.clone(),
        covered_by: CoveredBy::AutoDeploy,
        deployed_version: None,
        bundled_version: bundled.version.clone(),
        code_current: None,
        stacks: sets.clone(),
        trail: None,
        health: Health::default(),
        problems,
        warnings: Vec::new(),
        metrics: None,
    }
}

/// Problems of a deployed regional stack (outdated code; at home, missing state or topic
/// stacks). Returns whether its code is the bundled one.
fn region_problems(
    r: &StackState,
    stacks: &BTreeMap<StackKind, StackState>,
    home: bool,
    bundled: &Bundled,
    problems: &mut Vec<String>,
) -> bool {
    let key = r.parameters.get("CodeKey").cloned().unwrap_or_default();
    let current = key == bundled.code_key;
    if !current {
        problems.push(format!(
            "outdated: deployed {} (code {}), bundled {} (code {}); run `ctguard install`",
            r.version().unwrap_or("?"),
            short(&key),
            bundled.version,
            short(&bundled.code_key)
        ));
    }
    if home {
        if !stacks.contains_key(&StackKind::State) {
            problems.push("ctguard-state (the state table) is missing".into());
        }
        let central = r.parameters.get("AlertTopicArn").is_some_and(|a| !a.is_empty());
        if !central && !stacks.contains_key(&StackKind::Account) {
            problems.push("ctguard-account (the alert topic) is missing".into());
        }
    }
    current
}

/// Problems of a covered target's rule and DLQ.
fn health_problems(health: &Health, covered_by: CoveredBy, problems: &mut Vec<String>) {
    match health.rule_state.as_deref() {
        Some(RULE_STATE) => {}
        Some(other) => {
            problems.push(format!("rule {}: state {other}, expected {RULE_STATE}", crate::stacks::RULE_NAME))
        }
        None if covered_by == CoveredBy::Direct => {
            problems.push(format!("rule {} not found", crate::stacks::RULE_NAME))
        }
        None => {}
    }
    if let Some(n) = health.dlq_depth.filter(|n| *n > 0) {
        problems.push(format!(
            "{n} events in the DLQ {} (the detector failed on them): replay them with `ctguard redrive`",
            crate::stacks::DLQ_NAME
        ));
    }
}

fn short(key: &str) -> String {
    let h = key.trim_start_matches("ctguard/").trim_end_matches(".zip");
    h.chars().take(12).collect()
}

/// Reads and judges every target.
pub async fn inspect<C: Connector>(
    c: &C,
    set: &TargetSet,
    bundled: &Bundled,
    auto_accounts: &BTreeSet<String>,
    concurrency: usize,
) -> (Vec<TargetStatus>, u64) {
    let mut v: Vec<(TargetStatus, u64)> = stream::iter(set.targets())
        .map(|t| async move {
            let home = set.is_home(&t);
            let auto = auto_accounts.contains(&t.account);
            let api = match c.connect(&t).await {
                Ok(a) => a,
                Err(e) => {
                    let mut s = judge(&t, home, &BTreeMap::new(), None, &Health::default(), auto, bundled);
                    s.problems = vec![format!("unreachable: {e}")];
                    return (s, 0);
                }
            };
            let kinds: &[StackKind] =
                if home { &[StackKind::State, StackKind::Account, StackKind::Region] } else { &[StackKind::Region] };
            let mut stacks = BTreeMap::new();
            let mut errors = Vec::new();
            for &k in kinds {
                match api.describe(k.stack_name()).await {
                    Ok(Some(s)) => {
                        stacks.insert(k, s);
                    }
                    Ok(None) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            let trail = match api.trail().await {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(format!("trail: {e}"));
                    None
                }
            };
            let dlq = stacks.get(&StackKind::Region).and_then(|s| s.outputs.get("DlqUrl").cloned());
            let health = api.health(dlq.as_deref()).await;
            let mut s = judge(&t, home, &stacks, trail.as_ref(), &health, auto, bundled);
            s.problems.extend(errors.into_iter().map(|e| format!("could not read: {e}")));
            (s, api.calls())
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    v.sort_by(|a, b| a.0.target.cmp(&b.0.target));
    let calls = v.iter().map(|x| x.1).sum();
    (v.into_iter().map(|x| x.0).collect(), calls)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plan::{InstallConfig, StackSpec};

    fn cfg() -> InstallConfig {
        InstallConfig {
            version: "0.1.0".into(),
            code_hash: "ab".repeat(32),
            artifacts_account: "123456789012".into(),
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
    fn bundled() -> Bundled {
        Bundled { version: "0.1.0".into(), code_key: cfg().code_key() }
    }
    fn deployed(spec: &StackSpec) -> StackState {
        StackState {
            name: spec.name().into(),
            status: "CREATE_COMPLETE".into(),
            tags: spec.tags.clone(),
            parameters: spec.parameters.clone(),
            ..Default::default()
        }
    }
    fn home_stacks(c: &InstallConfig) -> BTreeMap<StackKind, StackState> {
        [c.state_spec(), c.account_spec().unwrap(), c.region_spec()].iter().map(|s| (s.kind, deployed(s))).collect()
    }
    fn good_health() -> Health {
        Health { rule_state: Some(RULE_STATE.into()), dlq_depth: Some(0), unreadable: vec![] }
    }
    fn t() -> Target {
        Target::new("111111111111", "us-east-1")
    }
    fn ok_trail() -> TrailVerdict {
        TrailVerdict::Ok { name: "org".into() }
    }

    #[test]
    fn fully_deployed_target_is_healthy() {
        let s = judge(&t(), true, &home_stacks(&cfg()), Some(&ok_trail()), &good_health(), false, &bundled());
        assert!(s.healthy(), "{:?}", s.problems);
        assert_eq!(s.covered_by, CoveredBy::Direct);
        assert_eq!(s.code_current, Some(true));
        assert_eq!(s.deployed_version.as_deref(), Some("0.1.0"));
    }

    #[test]
    fn each_fault_is_named() {
        let mut stacks = home_stacks(&cfg());
        stacks.get_mut(&StackKind::Region).unwrap().status = "UPDATE_ROLLBACK_COMPLETE".into();
        stacks.remove(&StackKind::Account);
        let mut h = good_health();
        h.rule_state = Some("ENABLED".into());
        h.dlq_depth = Some(3);
        let b = Bundled { version: "0.2.0".into(), code_key: "ctguard/cdcdcdcdcdcd.zip".into() };
        let s = judge(&t(), true, &stacks, Some(&TrailVerdict::Missing { reason: "no trail".into() }), &h, false, &b);
        let all = s.problems.join("\n");
        for needle in [
            "UPDATE_ROLLBACK_COMPLETE",
            "outdated",
            "alert topic",
            "no usable trail",
            "state ENABLED",
            "3 events in the DLQ",
        ] {
            assert!(all.contains(needle), "{needle} missing from:\n{all}");
        }
        assert_eq!(s.code_current, Some(false));
    }

    #[test]
    fn coverage_direct_auto_or_none() {
        let none = judge(&t(), false, &BTreeMap::new(), Some(&ok_trail()), &Health::default(), false, &bundled());
        assert_eq!(none.covered_by, CoveredBy::None);
        assert!(!none.healthy());
        let auto = judge(&t(), false, &BTreeMap::new(), Some(&ok_trail()), &good_health(), true, &bundled());
        assert_eq!(auto.covered_by, CoveredBy::AutoDeploy);
        assert!(auto.healthy(), "{:?}", auto.problems);
    }

    #[test]
    fn central_topic_needs_no_account_stack() {
        let mut c = cfg();
        c.alert_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:central".into());
        let stacks: BTreeMap<_, _> = [c.state_spec(), c.region_spec()].iter().map(|s| (s.kind, deployed(s))).collect();
        let s = judge(
            &t(),
            true,
            &stacks,
            Some(&ok_trail()),
            &good_health(),
            false,
            &Bundled { version: "0.1.0".into(), code_key: c.code_key() },
        );
        assert!(s.healthy(), "{:?}", s.problems);
    }
}
