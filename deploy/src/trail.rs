//! The prerequisite: a CloudTrail trail that logs management events, read *and* write, in
//! every account × region. EventBridge only receives "AWS API Call via CloudTrail" events for
//! calls a trail records, so without one the detector is blind. Pure: the AWS side
//! ([`crate::stacks::CfnStacks`]) fetches [`TrailInfo`]s, [`assess`] judges them.
//!
//! Read-only calls matter most: a thief's first call is usually `sts:GetCallerIdentity`, then
//! `List*`/`Describe*`. A `WriteOnly` trail would let all of that through unseen, so it fails
//! the check with that reason.

use serde::Serialize;

/// One trail visible in a region (its own, a multi-region shadow, or an organization trail).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrailInfo {
    pub name: String,
    pub arn: String,
    pub home_region: String,
    pub multi_region: bool,
    pub organization: bool,
    /// `None` when the status could not be read (organization trails seen from a member).
    pub logging: Option<bool>,
    pub selectors: Selectors,
}

/// A trail's event selectors, as GetEventSelectors returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub enum Selectors {
    /// None configured (AWS's default for a new trail: all management events) or unreadable.
    #[default]
    Default,
    Basic(Vec<BasicSelector>),
    Advanced(Vec<AdvancedSelector>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasicSelector {
    /// `All`, `ReadOnly` or `WriteOnly`.
    pub read_write: String,
    pub include_management: bool,
}

/// One advanced selector: its field selectors as (field, Equals values, NotEquals values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdvancedSelector {
    pub fields: Vec<FieldSelector>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSelector {
    pub field: String,
    pub equals: Vec<String>,
    pub not_equals: Vec<String>,
}

/// The verdict for one account × region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "trail", rename_all = "snake_case")]
pub enum TrailVerdict {
    /// Management events, read and write, are logged by this trail.
    Ok { name: String },
    /// The detector would be blind (or half blind); `reason` says why.
    Missing { reason: String },
}

impl TrailVerdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, TrailVerdict::Ok { .. })
    }
    pub fn describe(&self) -> String {
        match self {
            TrailVerdict::Ok { name } => format!("ok ({name})"),
            TrailVerdict::Missing { reason } => format!("MISSING: {reason}"),
        }
    }
}

/// Which management events the selectors record: (read-only, write).
pub fn management_coverage(sel: &Selectors) -> (bool, bool) {
    match sel {
        Selectors::Default => (true, true),
        Selectors::Basic(v) => {
            v.iter().filter(|s| s.include_management).fold((false, false), |(r, w), s| match s.read_write.as_str() {
                "ReadOnly" => (true, w),
                "WriteOnly" => (r, true),
                _ => (true, true),
            })
        }
        Selectors::Advanced(v) => v.iter().fold((false, false), |(r, w), s| {
            let field = |name: &str| s.fields.iter().find(|f| f.field == name);
            let management = field("eventCategory").is_some_and(|f| f.equals.iter().any(|e| e == "Management"));
            if !management {
                return (r, w);
            }
            match field("readOnly") {
                None => (true, true),
                Some(f) if f.equals.iter().any(|e| e == "true") || f.not_equals.iter().any(|e| e == "false") => {
                    (true, w)
                }
                Some(f) if f.equals.iter().any(|e| e == "false") || f.not_equals.iter().any(|e| e == "true") => {
                    (r, true)
                }
                Some(_) => (true, true),
            }
        }),
    }
}

/// Why one trail is not enough, or `None` when it is.
pub fn problem(t: &TrailInfo) -> Option<String> {
    if t.logging == Some(false) {
        return Some(format!("trail {} is not logging (StopLogging)", t.name));
    }
    match management_coverage(&t.selectors) {
        (true, true) => None,
        (false, true) => Some(format!(
            "trail {} logs only write management events: read-only calls (GetCallerIdentity, List*, Describe*) would go unseen",
            t.name
        )),
        (true, false) => Some(format!("trail {} logs only read-only management events", t.name)),
        (false, false) => Some(format!("trail {} does not log management events", t.name)),
    }
}

/// The first good trail wins; otherwise every trail's problem is reported.
pub fn assess(trails: &[TrailInfo]) -> TrailVerdict {
    if trails.is_empty() {
        return TrailVerdict::Missing {
            reason: "no CloudTrail trail (account or organization trail) logs this region".into(),
        };
    }
    let mut problems = Vec::new();
    for t in trails {
        match problem(t) {
            None => return TrailVerdict::Ok { name: t.name.clone() },
            Some(p) => problems.push(p),
        }
    }
    TrailVerdict::Missing { reason: problems.join("; ") }
}

/// The order trails are examined in: organization trails, then multi-region, then the rest, so
/// the usual case costs one GetTrailStatus and one GetEventSelectors.
pub fn preference(t: &TrailInfo) -> (bool, bool, String) {
    (!t.organization, !t.multi_region, t.name.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trail(sel: Selectors) -> TrailInfo {
        TrailInfo { name: "main".into(), logging: Some(true), selectors: sel, ..Default::default() }
    }
    fn basic(rw: &str, mgmt: bool) -> BasicSelector {
        BasicSelector { read_write: rw.into(), include_management: mgmt }
    }
    fn adv(fields: &[(&str, &[&str], &[&str])]) -> AdvancedSelector {
        AdvancedSelector {
            fields: fields
                .iter()
                .map(|(f, eq, ne)| FieldSelector {
                    field: f.to_string(),
                    equals: eq.iter().map(|s| s.to_string()).collect(),
                    not_equals: ne.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn no_trail_is_blind() {
        assert!(matches!(assess(&[]), TrailVerdict::Missing { reason } if reason.contains("no CloudTrail trail")));
    }

    #[test]
    fn default_and_all_management_selectors_pass() {
        assert_eq!(assess(&[trail(Selectors::Default)]), TrailVerdict::Ok { name: "main".into() });
        assert!(assess(&[trail(Selectors::Basic(vec![basic("All", true)]))]).is_ok());
        assert!(assess(&[trail(Selectors::Basic(vec![basic("ReadOnly", true), basic("WriteOnly", true)]))]).is_ok());
        assert!(assess(&[trail(Selectors::Advanced(vec![adv(&[("eventCategory", &["Management"], &[])])]))]).is_ok());
    }

    #[test]
    fn write_only_is_refused_with_the_reason() {
        let v = assess(&[trail(Selectors::Basic(vec![basic("WriteOnly", true)]))]);
        assert!(matches!(&v, TrailVerdict::Missing { reason } if reason.contains("read-only calls")), "{v:?}");
        let v = assess(&[trail(Selectors::Advanced(vec![adv(&[
            ("eventCategory", &["Management"], &[]),
            ("readOnly", &["false"], &[]),
        ])]))]);
        assert!(matches!(&v, TrailVerdict::Missing { reason } if reason.contains("only write")), "{v:?}");
    }

    #[test]
    fn data_events_only_and_stopped_trails_fail() {
        let v = assess(&[trail(Selectors::Basic(vec![basic("All", false)]))]);
        assert!(matches!(&v, TrailVerdict::Missing { reason } if reason.contains("does not log management")));
        let v = assess(&[trail(Selectors::Advanced(vec![adv(&[("eventCategory", &["Data"], &[])])]))]);
        assert!(!v.is_ok());
        let mut stopped = trail(Selectors::Default);
        stopped.logging = Some(false);
        assert!(matches!(assess(&[stopped]), TrailVerdict::Missing { reason } if reason.contains("not logging")));
    }

    #[test]
    fn one_good_trail_among_bad_ones_is_enough() {
        let bad = trail(Selectors::Basic(vec![basic("WriteOnly", true)]));
        let mut good = trail(Selectors::Default);
        good.name = "org".into();
        assert_eq!(assess(&[bad, good]), TrailVerdict::Ok { name: "org".into() });
    }

    #[test]
    fn organization_and_multi_region_trails_are_tried_first() {
        let mut v = [
            TrailInfo { name: "b-local".into(), ..Default::default() },
            TrailInfo { name: "a-multi".into(), multi_region: true, ..Default::default() },
            TrailInfo { name: "z-org".into(), organization: true, multi_region: true, ..Default::default() },
        ];
        v.sort_by_key(preference);
        let names: Vec<_> = v.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["z-org", "a-multi", "b-local"]);
    }
}
