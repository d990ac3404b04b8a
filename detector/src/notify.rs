//! What a person reads: one alert rendered for every kind of SNS subscriber.
//!
//! The detector publishes once, with `MessageStructure: json`, and SNS hands each subscription
//! the message for its protocol: a readable text for email, the Chatbot custom-notification
//! form for HTTPS (the only way AWS Chatbot / Amazon Q Developer in chat applications receives
//! a topic, for Slack and Teams), and the versioned alert JSON for everything else (SQS,
//! Lambda, HTTP, Firehose, `email-json` and the `default` fallback). Rendering is pure so it is
//! unit-tested here; the bootstrap only sends the result.
//!
//! Everything printed comes from the alert, and parts of an alert come from the attacker (the
//! user agent, the event name of a forged call): [`clean`] strips control characters and caps
//! their length, so that an alert cannot forge lines of the email or bloat the message.

use serde_json::{json, Value};

use crate::alert::Alert;
use crate::identity::NetworkIdentity;
use crate::state::EventRef;

/// Longest attacker-influenced value shown in a readable form.
const FIELD_MAX: usize = 200;

/// One line of text out of an untrusted value: control characters become `?`, at most
/// `FIELD_MAX` (200) characters.
pub fn clean(s: &str) -> String {
    let mut out: String = s.chars().take(FIELD_MAX).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().nth(FIELD_MAX).is_some() {
        out.push('…');
    }
    out
}

/// The identity as a person writes it: `203.0.113.10`, `vpce-0abc (owner 111122223333)`.
fn shown_identity(key: &str) -> String {
    let v = key.split_once(':').map(|(_, v)| v).unwrap_or(key);
    match v.split_once('@') {
        Some((id, owner)) => clean(&format!("{id} (owner account {owner})")),
        None => clean(v),
    }
}

fn call_line(e: &EventRef) -> String {
    let opt = |o: &Option<String>| o.as_deref().map(clean).unwrap_or_else(|| "?".to_string());
    let from = match (&e.source_ip, &e.vpc_endpoint_id) {
        (Some(ip), Some(v)) => format!("{} via {}", clean(ip), clean(v)),
        (Some(ip), None) => clean(ip),
        (None, Some(v)) => clean(v),
        (None, None) => "?".to_string(),
    };
    format!(
        "{} ({}) at {} in {} from {}, event id {}, user agent {}",
        opt(&e.event_name),
        opt(&e.event_source),
        clean(&e.event_time),
        opt(&e.region),
        from,
        opt(&e.event_id),
        opt(&e.user_agent),
    )
}

/// The role name and session name of an assumed-role principal
/// (`arn:aws:sts::A:assumed-role/ROLE/SESSION`).
pub fn role_session(principal_arn: &str) -> Option<(&str, &str)> {
    let rest = principal_arn.split_once(":assumed-role/")?.1;
    let (role, session) = rest.split_once('/')?;
    (!role.is_empty() && !session.is_empty()).then_some((role, session))
}

/// The `--allow-ip`/`--allow-vpce` flags naming the alert's trusted identities.
fn allow_flags(alert: &Alert) -> String {
    let mut f = String::new();
    for e in &alert.expected {
        let (flag, v) = match NetworkIdentity::from_key(&e.identity) {
            Some(NetworkIdentity::V4(a)) => ("--allow-ip", a.to_string()),
            Some(NetworkIdentity::V6Net(a)) => ("--allow-ip", format!("{a}/64")),
            Some(NetworkIdentity::VpcEndpoint { id, .. }) => ("--allow-vpce", id),
            _ => continue,
        };
        f.push_str(&format!(" {flag} {}", clean(&v)));
    }
    f
}

/// The exact commands a responder runs next: trace, contain (plan, then apply), release.
pub fn commands(alert: &Alert) -> Vec<String> {
    let key = clean(&alert.access_key_id);
    let account = alert.account.as_deref().map(clean).unwrap_or_else(|| "ACCOUNT".to_string());
    let (role, session) = alert
        .principal_arn
        .as_deref()
        .and_then(role_session)
        .map(|(r, s)| (clean(r), clean(s)))
        .unwrap_or_else(|| ("ROLE".to_string(), "SESSION".to_string()));
    let who = format!("--access-key {key} --account {account} --role {role} --session {session}");
    vec![
        format!("ctguard trace --access-key {key} s3://YOUR-TRAIL-BUCKET/AWSLogs/{account}/CloudTrail/"),
        format!("ctguard contain {who}{} --plan", allow_flags(alert)),
        format!("ctguard contain {who}{}", allow_flags(alert)),
        format!("ctguard release {who}"),
    ]
}

/// What to do next, as sentences; [`commands`] gives the matching command lines.
fn next_steps(alert: &Alert) -> Vec<String> {
    let seen = shown_identity(&alert.seen_identity);
    let c = commands(alert);
    let cmd = |i: usize| c.get(i).cloned().unwrap_or_default();
    vec![
        format!(
            "Decide whether {seen} is yours (a new NAT gateway, VPN egress, a moved instance). If it is, the alert \
             is a false positive: nothing else to do."
        ),
        format!("Trace what the key did, from where and when: {}", cmd(0)),
        format!(
            "Contain it without stopping the workload (denies the session everywhere except its trusted identities; \
             shows the policy and asks first): {}",
            cmd(2)
        ),
        "Rotate the credentials at their source (stop/start the instance, or revoke the role's sessions), then \
         remove the containment: "
            .to_string()
            + &cmd(3),
    ]
}

/// What the automatic containment did, in one line.
fn containment_line(c: &crate::contain::AutoContainment) -> String {
    use crate::contain::AutoStatus;
    let head = match c.status {
        AutoStatus::Applied => "CONTAINED automatically",
        AutoStatus::AlreadyContained => "Already contained",
        AutoStatus::NotEligible | AutoStatus::NotOptedIn => "Not contained",
        AutoStatus::Failed => "Automatic containment FAILED",
    };
    format!("{head}: {}", clean(&c.detail))
}

/// The email body: plain text, readable without tools.
pub fn email_text(alert: &Alert) -> String {
    let mut t = String::new();
    let line = |t: &mut String, s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    if alert.synthetic {
        line(&mut t, "*** SYNTHETIC TEST ALERT from `ctguard verify`: not an incident ***\n");
    }
    line(&mut t, &format!("{} severity: {}", alert.severity.as_str(), clean(&alert.title)));
    line(&mut t, "");
    line(&mut t, &format!("What:  {}", clean(&alert.reason)));
    line(&mut t, &format!("Key:   {} (trust scope: {})", clean(&alert.access_key_id), clean(&alert.scope)));
    if let Some(r) = &alert.role_arn {
        line(&mut t, &format!("Role:  {}", clean(r)));
    }
    if let Some(p) = &alert.principal_arn {
        line(&mut t, &format!("Who:   {}", clean(p)));
    }
    if let Some(i) = &alert.instance_id {
        line(&mut t, &format!("Host:  EC2 instance {}", clean(i)));
    }
    let regions: Vec<String> = alert.regions.iter().map(|r| clean(r)).collect();
    line(
        &mut t,
        &format!(
            "Where: account {}, region(s) {}",
            alert.account.as_deref().map(clean).unwrap_or_else(|| "unknown".to_string()),
            regions.join(", ")
        ),
    );
    line(&mut t, "");
    let expected: Vec<String> = alert.expected.iter().map(|e| shown_identity(&e.identity)).collect();
    line(&mut t, &format!("Expected (trusted) identity: {}", expected.join(", ")));
    line(&mut t, &format!("Seen identity:               {}", shown_identity(&alert.seen_identity)));
    if alert.out_of_order {
        line(&mut t, "Note: the offending call happened before the trusted one but was delivered later.");
    }
    line(&mut t, "");
    for e in &alert.expected {
        line(&mut t, &format!("First call:     {}", call_line(&e.first_seen)));
    }
    line(&mut t, &format!("Offending call: {}", call_line(&alert.offending)));
    line(&mut t, "");
    if let Some(c) = &alert.containment {
        line(&mut t, &containment_line(c));
        if let Some(r) = &c.release {
            line(&mut t, &format!("  Undo: {}", clean(r)));
        }
        line(&mut t, "");
    }
    line(&mut t, "What to do next:");
    for (i, s) in next_steps(alert).iter().enumerate() {
        line(&mut t, &format!("  {}. {s}", i + 1));
    }
    line(&mut t, "");
    line(&mut t, "Commands:");
    for c in commands(alert) {
        line(&mut t, &format!("  {c}"));
    }
    line(&mut t, "");
    line(&mut t, &format!("Alert id {} - detector {}", clean(&alert.id), clean(&alert.detector_version)));
    t
}

/// The AWS Chatbot custom-notification form (schema `version` 1.0, `source` custom), which
/// Chatbot renders in Slack and Microsoft Teams. The alert id is the thread id, so copies of
/// one alert land in one thread.
pub fn chatbot(alert: &Alert) -> Value {
    let icon = if alert.synthetic { ":test_tube:" } else { ":rotating_light:" };
    let expected: Vec<String> = alert.expected.iter().map(|e| shown_identity(&e.identity)).collect();
    let mut description = format!(
        "*{}* {}\n*Key* `{}` · *Account* {} · *Region(s)* {}\n*Expected* {} · *Seen* {}\n*Offending call* {}",
        alert.severity.as_str(),
        clean(&alert.reason),
        clean(&alert.access_key_id),
        alert.account.as_deref().map(clean).unwrap_or_else(|| "?".to_string()),
        alert.regions.iter().map(|r| clean(r)).collect::<Vec<_>>().join(", "),
        expected.join(", "),
        shown_identity(&alert.seen_identity),
        call_line(&alert.offending),
    );
    if let Some(c) = &alert.containment {
        description.push('\n');
        description.push_str(&containment_line(c));
    }
    if alert.synthetic {
        description = format!("_Synthetic test alert from `ctguard verify`: not an incident._\n{description}");
    }
    let steps: Vec<String> = commands(alert).into_iter().map(|c| format!("`{c}`")).collect();
    let mut resources: Vec<String> = Vec::new();
    resources.extend(alert.role_arn.as_deref().map(clean));
    resources.extend(alert.instance_id.as_deref().map(clean));
    resources.push(clean(&alert.access_key_id));
    json!({
        "version": "1.0",
        "source": "custom",
        "id": clean(&alert.id),
        "content": {
            "textType": "client-markdown",
            "title": format!("{icon} {}", clean(&alert.title)),
            "description": description,
            "nextSteps": steps,
            "keywords": [alert.severity.as_str(), clean(&alert.kind), alert.account.as_deref().map(clean).unwrap_or_default()],
        },
        "metadata": {
            "threadId": clean(&alert.id),
            "summary": clean(&alert.title),
            "eventType": "ctguard.credential-reuse",
            "relatedResources": resources,
            "additionalContext": {
                "alert_id": clean(&alert.id),
                "severity": alert.severity.as_str(),
                "synthetic": if alert.synthetic { "true" } else { "false" },
                "schema": clean(&alert.schema),
            },
        },
    })
}

/// The SNS `Message` for `MessageStructure: json`: one string per protocol, `default` for
/// any protocol not named. The versioned alert JSON goes to machines through `default` alone
/// (SQS, Lambda, HTTP, Firehose, `email-json`): one copy, as every byte counts against SNS's
/// 256 KiB; people get [`email_text`] and [`chatbot`], both of bounded size.
pub fn sns_message(alert: &Alert) -> String {
    per_protocol(alert, email_text(alert), &chatbot(alert))
}

/// A `MessageStructure: json` message: `machine`'s JSON as the `default`, `email` for email
/// subscribers, and the Chatbot form `chat` for HTTPS (see [`sns_message`]).
pub fn per_protocol<T: serde::Serialize>(machine: &T, email: String, chat: &Value) -> String {
    let machine = serde_json::to_string(machine).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string());
    json!({
        "default": machine,
        "email": email,
        "https": chat.to_string(),
    })
    .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::{ExpectedIdentity, Severity, ALERT_SCHEMA};

    fn ev(ip: &str, name: &str, ua: &str) -> EventRef {
        EventRef {
            event_id: Some("e-1".into()),
            event_name: Some(name.into()),
            event_source: Some("s3.amazonaws.com".into()),
            event_time: "2024-05-01T10:03:00Z".into(),
            time_ms: 0,
            region: Some("eu-west-1".into()),
            source_ip: Some(ip.into()),
            vpc_endpoint_id: None,
            user_agent: Some(ua.into()),
            access_key_id: None,
            principal_arn: Some("arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0".into()),
        }
    }

    pub(crate) fn sample(synthetic: bool) -> Alert {
        Alert {
            schema: ALERT_SCHEMA.into(),
            id: crate::alert_id("ASIAQWERTYQWERTYQWER", "ip:198.51.100.66"),
            kind: "credential-reuse".into(),
            severity: Severity::High,
            synthetic,
            title: "ASIAQWERTYQWERTYQWER of app used from 198.51.100.66 (trusted: 203.0.113.10) in 123456789012".into(),
            account: Some("123456789012".into()),
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            access_key_id: "ASIAQWERTYQWERTYQWER".into(),
            principal_arn: Some("arn:aws:sts::123456789012:assumed-role/app/i-0123456789abcdef0".into()),
            role_arn: Some("arn:aws:iam::123456789012:role/app".into()),
            instance_id: Some("i-0123456789abcdef0".into()),
            scope: "instance".into(),
            expected: vec![ExpectedIdentity {
                identity: "ip:203.0.113.10".into(),
                first_seen: ev("203.0.113.10", "GetCallerIdentity", "aws-sdk-go"),
            }],
            seen_identity: "ip:198.51.100.66".into(),
            offending: ev("198.51.100.66", "ListBuckets", "evil\r\nSubject: forged line"),
            out_of_order: false,
            reason: "an EC2 instance credential was used from a network identity the instance has never used".into(),
            detector_version: "unit".into(),
            containment: None,
        }
    }

    #[test]
    fn each_protocol_gets_its_form_and_machines_get_the_versioned_alert() {
        let a = sample(false);
        let m: Value = serde_json::from_str(&sns_message(&a)).expect("structure");
        let back: Alert = serde_json::from_str(m["default"].as_str().expect("default")).expect("round-trips");
        assert_eq!(back, a);
        let keys: Vec<&String> = m.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["default", "email", "https"], "every other protocol falls back to default");
        let chat: Value = serde_json::from_str(m["https"].as_str().expect("https")).expect("chatbot JSON");
        assert_eq!((chat["version"].as_str(), chat["source"].as_str()), (Some("1.0"), Some("custom")));
        assert!(m["email"].as_str().expect("email").starts_with("HIGH severity: "));
    }

    #[test]
    fn the_email_says_who_what_where_and_what_to_do() {
        let a = sample(false);
        let t = email_text(&a);
        for want in [
            "Key:   ASIAQWERTYQWERTYQWER (trust scope: instance)",
            "Role:  arn:aws:iam::123456789012:role/app",
            "Host:  EC2 instance i-0123456789abcdef0",
            "Where: account 123456789012, region(s) us-east-1, eu-west-1",
            "Expected (trusted) identity: 203.0.113.10",
            "Seen identity:               198.51.100.66",
            "First call:     GetCallerIdentity (s3.amazonaws.com) at 2024-05-01T10:03:00Z in eu-west-1 from 203.0.113.10",
            "Offending call: ListBuckets",
            "  ctguard trace --access-key ASIAQWERTYQWERTYQWER s3://YOUR-TRAIL-BUCKET/AWSLogs/123456789012/CloudTrail/",
            "  ctguard contain --access-key ASIAQWERTYQWERTYQWER --account 123456789012 --role app \
             --session i-0123456789abcdef0 --allow-ip 203.0.113.10\n",
            "  ctguard release --access-key ASIAQWERTYQWERTYQWER --account 123456789012 --role app \
             --session i-0123456789abcdef0\n",
            &format!("Alert id {}", a.id),
        ] {
            assert!(t.contains(want), "missing `{want}` in:\n{t}");
        }
        assert!(!t.contains("SYNTHETIC"));
        assert!(email_text(&sample(true)).starts_with("*** SYNTHETIC TEST ALERT"));
    }

    #[test]
    fn the_containment_outcome_is_told_with_its_undo() {
        use crate::contain::{AutoContainment, AutoStatus};
        let mut a = sample(false);
        assert!(!email_text(&a).contains("contained"), "off: not mentioned");
        a.containment = Some(AutoContainment {
            status: AutoStatus::Applied,
            role: Some("app".into()),
            policy: Some("ctguard-contain-i-0123456789abcdef0".into()),
            detail: "session i-0123456789abcdef0 of role app is denied\r\nforged".into(),
            release: Some("ctguard release --account 123456789012 --role app --session i-0123456789abcdef0".into()),
        });
        let t = email_text(&a);
        assert!(
            t.contains("CONTAINED automatically: session i-0123456789abcdef0 of role app is denied??forged"),
            "{t}"
        );
        assert!(t.contains("  Undo: ctguard release --account 123456789012 --role app --session i-0"), "{t}");
        let d = chatbot(&a)["content"]["description"].as_str().unwrap_or("").to_string();
        assert!(d.contains("CONTAINED automatically"), "{d}");
        a.containment = Some(AutoContainment {
            status: AutoStatus::Failed,
            role: None,
            policy: None,
            detail: "IAM did not answer".into(),
            release: None,
        });
        assert!(email_text(&a).contains("Automatic containment FAILED: IAM did not answer"));
        // The machine form carries it as data.
        let m: Value = serde_json::from_str(&sns_message(&a)).expect("json");
        let alert: Value = serde_json::from_str(m["default"].as_str().unwrap_or("")).expect("alert");
        assert_eq!(alert["containment"]["status"], "failed");
    }

    #[test]
    fn attacker_text_cannot_forge_lines_or_grow_without_bound() {
        let mut a = sample(false);
        a.offending.user_agent = Some(format!("x\nSubject: pwned\n{}", "A".repeat(100_000)));
        let t = email_text(&a);
        assert!(!t.lines().any(|l| l.starts_with("Subject:")), "{t}");
        assert!(t.len() < 8_000, "{}", t.len());
        let machine = serde_json::to_string(&a).expect("json").len();
        assert!(sns_message(&a).len() < machine + 20_000, "one copy of the alert plus bounded forms");
    }

    #[test]
    fn the_chatbot_form_threads_by_alert_id_and_lists_the_resources() {
        let a = sample(true);
        let c = chatbot(&a);
        assert_eq!(c["metadata"]["threadId"], a.id);
        assert_eq!(c["metadata"]["additionalContext"]["synthetic"], "true");
        assert_eq!(c["content"]["textType"], "client-markdown");
        assert_eq!(
            c["metadata"]["relatedResources"],
            json!(["arn:aws:iam::123456789012:role/app", "i-0123456789abcdef0", "ASIAQWERTYQWERTYQWER"])
        );
        let steps = c["content"]["nextSteps"].as_array().expect("steps");
        assert!(steps.iter().any(|s| s.as_str().is_some_and(|s| s.starts_with("`ctguard contain "))), "{steps:?}");
        assert!(c["content"]["description"].as_str().unwrap_or("").starts_with("_Synthetic"));
    }
}
