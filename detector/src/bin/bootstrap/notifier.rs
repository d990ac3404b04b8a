//! Everything one alert produces, in order:
//! 1. the automatic containment of the session (when enabled, `install --auto-contain`),
//!    within [`CONTAIN_BUDGET`]: first, because it is the step that stops the thief, and its
//!    outcome travels in the alert (`containment`), so the record, the finding and the message
//!    all say what was done;
//! 2. its record in the state table (for `ctguard contain --alert ID`) and its Security Hub
//!    finding (when enabled), together and within [`SECONDARY_BUDGET`];
//! 3. the SNS message, the one that must go out.
//!
//! Steps 1 and 2 are idempotent (the same policy, the same item, the same finding id: a
//! retried event finds or rewrites them, never duplicates them), bounded and best effort, so
//! that neither a slow IAM nor a failing Security Hub holds the alert back by more than its
//! budget; each failure is counted ([`count_failure`]). Synthetic alerts (`ctguard verify`'s)
//! are never contained and produce neither a record nor a finding: a test must not leave a
//! finding behind, nor a record `contain --alert` could act on.

use std::time::Duration;

use ctguard_detector::contain::{auto_apply, auto_eligible, auto_timed_out, not_eligible, AutoContainment, AutoStatus};
use ctguard_detector::emf::{side_effect_failure, Step};
use ctguard_detector::health::HealthNotice;
use ctguard_detector::time::{format_rfc3339, now_ms};
use ctguard_detector::{Alert, AlertSink, SinkError};

use crate::dynamo::DynamoStore;
use crate::hub::SecurityHub;
use crate::iam::Iam;
use crate::sns::SnsSink;

/// Where health notices go ([`ctguard_detector::health`]).
pub trait HealthSink: Send + Sync {
    fn notify(&self, notice: &HealthNotice) -> impl std::future::Future<Output = Result<(), SinkError>> + Send;
}

pub struct Notifier {
    pub sns: SnsSink,
    pub records: Option<DynamoStore>,
    /// `Err`: turned on, but its setting is unusable (each alert counts the failure).
    pub hub: Option<Result<SecurityHub, String>>,
    /// `Err`: turned on, but its setting is unusable (each alert says so and counts it).
    pub contain: Option<Result<AutoContain, String>>,
}

/// Automatic containment: IAM, the account whose roles it may act on (the detector's), and
/// the allowlist (its networks are spared by the deny).
pub struct AutoContain {
    pub iam: Iam,
    pub account: String,
    pub policy: ctguard_detector::Policy,
}

/// The most the automatic containment may delay an alert (three IAM calls, each tried again
/// once or twice when throttled).
pub const CONTAIN_BUDGET: Duration = Duration::from_secs(4);

/// The most the record and the finding may delay an alert, together.
pub const SECONDARY_BUDGET: Duration = Duration::from_secs(3);

/// Above this an alert's JSON is not recorded (DynamoDB's item limit is 400 KB); the alert
/// itself still goes out. The scope's bounds keep real alerts far below it.
const RECORD_MAX: usize = 350_000;

/// Counts a failed side effect of an alert ([`ctguard_detector::emf`]): one log line that
/// CloudWatch turns into a data point, which the alarm `ctguard-detector-side-effects` watches.
fn count_failure(step: Step) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "ctguard-detector".to_string());
    println!("{}", side_effect_failure(&function, step, now_ms()));
}

impl Notifier {
    async fn record(&self, alert: &Alert, now: i64) {
        let Some(store) = &self.records else { return };
        match serde_json::to_string(alert) {
            Ok(json) if json.len() <= RECORD_MAX => {
                if let Err(e) = store.record_alert(&json, &alert.id, now / 1000).await {
                    tracing::error!(alert_id = %alert.id, error = %e, "alert record not written (contain --alert will not find it)");
                    count_failure(Step::Record);
                }
            }
            Ok(json) => tracing::warn!(alert_id = %alert.id, bytes = json.len(), "alert too large to record"),
            Err(e) => tracing::error!(alert_id = %alert.id, error = %e, "alert not serializable for its record"),
        }
    }

    async fn import(&self, alert: &Alert, now: i64) {
        let hub = match &self.hub {
            None => return,
            Some(Ok(hub)) => hub,
            Some(Err(why)) => {
                tracing::error!(alert_id = %alert.id, error = %why, "Security Hub import failed: misconfigured");
                count_failure(Step::SecurityHub);
                return;
            }
        };
        let finding = ctguard_detector::finding::asff(alert, &hub.region, &hub.account, &format_rfc3339(now));
        match hub.import(&finding).await {
            Ok(()) => tracing::info!(alert_id = %alert.id, "finding imported into Security Hub"),
            Err(e) => {
                tracing::error!(alert_id = %alert.id, error = %e, "Security Hub import failed");
                count_failure(Step::SecurityHub);
            }
        }
    }

    /// `alert` with what automatic containment did, when it is on.
    async fn contained(&self, alert: &Alert) -> Option<AutoContainment> {
        let outcome = match self.contain.as_ref()? {
            // Turned on but unusable: every alert says so, and every one is counted.
            Err(why) => AutoContainment {
                status: AutoStatus::Failed,
                role: None,
                policy: None,
                detail: format!("automatic containment is misconfigured ({why}): contain by hand"),
                release: None,
            },
            Ok(auto) => {
                let networks = auto.policy.networks_for(alert.role_arn.as_deref());
                match auto_eligible(alert, &auto.account, &networks) {
                    Err(why) => not_eligible(&why),
                    Ok(c) => match tokio::time::timeout(CONTAIN_BUDGET, auto_apply(&auto.iam, &c)).await {
                        Ok(o) => o,
                        Err(_) => auto_timed_out(&c, CONTAIN_BUDGET),
                    },
                }
            }
        };
        match outcome.status {
            AutoStatus::Applied | AutoStatus::AlreadyContained => {
                tracing::warn!(alert_id = %alert.id, status = outcome.status.as_str(), detail = %outcome.detail, "session contained")
            }
            AutoStatus::Failed => {
                tracing::error!(alert_id = %alert.id, detail = %outcome.detail, "automatic containment failed");
                count_failure(Step::Containment);
            }
            AutoStatus::NotEligible | AutoStatus::NotOptedIn => {
                tracing::info!(alert_id = %alert.id, status = outcome.status.as_str(), detail = %outcome.detail, "not contained")
            }
        }
        Some(outcome)
    }
}

impl AlertSink for Notifier {
    async fn publish(&self, alert: &Alert) -> Result<(), SinkError> {
        let with_containment;
        let alert = match self.contained(alert).await {
            Some(c) => {
                with_containment = Alert { containment: Some(c), ..alert.clone() };
                &with_containment
            }
            None => alert,
        };
        if !alert.synthetic {
            let now = now_ms();
            let both = async { tokio::join!(self.record(alert, now), self.import(alert, now)) };
            if tokio::time::timeout(SECONDARY_BUDGET, both).await.is_err() {
                tracing::error!(alert_id = %alert.id, budget = ?SECONDARY_BUDGET,
                    "alert record / Security Hub import cut short: the alert goes out without them");
                count_failure(Step::Budget);
            }
        }
        self.sns.publish(alert).await
    }
}

impl HealthSink for Notifier {
    async fn notify(&self, notice: &HealthNotice) -> Result<(), SinkError> {
        self.sns.notify(notice).await
    }
}
