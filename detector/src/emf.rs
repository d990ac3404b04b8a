//! Metrics the detector reports by writing them into its log (CloudWatch's embedded metric
//! format): no `cloudwatch:PutMetricData` grant and no call in the alert's path; CloudWatch
//! Logs turns the line into a data point of the metric.
//!
//! One metric today: [`SIDE_EFFECT_FAILURES`], a count of the things an alert should have
//! produced besides its SNS message and did not (its record, its Security Hub finding, its
//! automatic containment). The alarm `ctguard-detector-side-effects` watches it, so a broken
//! integration is told as a health notice instead of living in the log alone.

use serde_json::json;

/// The metrics' namespace.
pub const NAMESPACE: &str = "ctguard";
/// Failed alert side effects (dimensions `FunctionName`, and `FunctionName` + `Step`).
pub const SIDE_EFFECT_FAILURES: &str = "AlertSideEffectFailures";

/// The steps an alert's side effects are counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The alert's record in the state table.
    Record,
    /// The Security Hub finding.
    SecurityHub,
    /// The record and the finding together ran out of their time budget.
    Budget,
    /// The automatic containment failed (not: was not eligible, or not opted in).
    Containment,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Record => "record",
            Step::SecurityHub => "security-hub",
            Step::Budget => "budget",
            Step::Containment => "containment",
        }
    }
}

/// The log line that counts one failed `step` of `function` at `now` (epoch milliseconds).
pub fn side_effect_failure(function: &str, step: Step, now: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"], ["FunctionName", "Step"]],
                "Metrics": [{"Name": SIDE_EFFECT_FAILURES, "Unit": "Count"}],
            }],
        },
        "FunctionName": function,
        "Step": step.as_str(),
        SIDE_EFFECT_FAILURES: 1,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn one_line_in_the_embedded_metric_format() {
        let line = side_effect_failure("ctguard-detector", Step::SecurityHub, 1_700_000_000_000);
        assert!(!line.contains('\n'), "one log line");
        let v: Value = serde_json::from_str(&line).expect("JSON");
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(m["Namespace"], "ctguard");
        assert_eq!(m["Metrics"][0]["Name"], SIDE_EFFECT_FAILURES);
        // Every dimension and the metric named in the directive is a member of the root.
        for dims in m["Dimensions"].as_array().expect("dimension sets") {
            for d in dims.as_array().expect("dimension set") {
                assert!(v[d.as_str().expect("name")].is_string(), "{d} in {v}");
            }
        }
        assert_eq!(v[SIDE_EFFECT_FAILURES], 1);
        assert_eq!((v["FunctionName"].as_str(), v["Step"].as_str()), (Some("ctguard-detector"), Some("security-hub")));
    }
}
