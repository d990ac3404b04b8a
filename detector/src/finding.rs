//! An alert as an AWS Security Finding Format (ASFF) finding, for Security Hub's
//! `BatchImportFindings`.
//!
//! The finding id is the alert's stable id, so every copy of one alert (a retried invocation,
//! another Lambda environment) re-imports the same finding, which Security Hub updates instead
//! of duplicating. The product is the account's default product for custom findings
//! (`arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`). Pure: the bootstrap sends
//! what [`asff`] returns.

use serde_json::{json, Value};

use crate::alert::{Alert, Severity};
use crate::notify::{clean, commands};
use crate::time::format_rfc3339;

/// The AWS partition of `region` and its DNS suffix: `aws-cn` (`amazonaws.com.cn`) for China,
/// `aws-us-gov` for GovCloud, `aws` (`amazonaws.com`) everywhere else.
pub fn partition(region: &str) -> (&'static str, &'static str) {
    if region.starts_with("cn-") {
        ("aws-cn", "amazonaws.com.cn")
    } else if region.starts_with("us-gov-") {
        ("aws-us-gov", "amazonaws.com")
    } else {
        ("aws", "amazonaws.com")
    }
}

/// The default product ARN for custom findings of `account` in `region`.
pub fn default_product_arn(region: &str, account: &str) -> String {
    let p = partition(region).0;
    format!("arn:{p}:securityhub:{region}:{account}:product/{account}/default")
}

/// ASFF `Severity.Label` and the matching normalized score.
fn severity(s: Severity) -> (&'static str, u8) {
    match s {
        Severity::High => ("HIGH", 70),
        Severity::Medium => ("MEDIUM", 40),
    }
}

/// The finding for `alert`, imported into `region` of `account` (the detector's own: Security
/// Hub accepts findings only for the product's account). `now` is RFC 3339 (`UpdatedAt`).
pub fn asff(alert: &Alert, region: &str, account: &str, now: &str) -> Value {
    let (label, normalized) = severity(alert.severity);
    let part = partition(region).0;
    let mut resources = Vec::new();
    if let Some(role) = &alert.role_arn {
        resources.push(json!({"Type": "AwsIamRole", "Id": clean(role), "Region": region, "Partition": part}));
    }
    if let Some(i) = &alert.instance_id {
        let owner = alert.account.as_deref().unwrap_or(account);
        let r = alert.offending.region.as_deref().unwrap_or(region);
        resources
            .push(json!({"Type": "AwsEc2Instance", "Id": format!("arn:{part}:ec2:{r}:{owner}:instance/{}", clean(i)),
            "Region": r, "Partition": part}));
    }
    resources.push(json!({"Type": "AwsIamAccessKey", "Id": clean(&alert.access_key_id), "Region": region, "Partition": part,
        "Details": {"AwsIamAccessKey": {"PrincipalName": alert.principal_arn.as_deref().map(clean).unwrap_or_default()}}}));
    let expected: Vec<String> = alert.expected.iter().map(|e| clean(&e.identity)).collect();
    let c = commands(alert);
    // Timestamps re-rendered from the parsed times: Security Hub takes RFC 3339 only, and a
    // record's own text may be in another accepted form.
    let seen_at = format_rfc3339(alert.offending.time_ms);
    let first_seen = format_rfc3339(
        alert
            .expected
            .iter()
            .map(|e| e.first_seen.time_ms)
            .min()
            .unwrap_or(alert.offending.time_ms)
            .min(alert.offending.time_ms),
    );
    let mut description =
        format!("{} Expected: {}. Seen: {}.", clean(&alert.reason), expected.join(", "), clean(&alert.seen_identity));
    // ASFF limits Description to 1024 characters.
    if description.chars().count() > 1024 {
        description = description.chars().take(1021).collect::<String>() + "...";
    }
    let mut title = clean(&alert.title);
    if title.chars().count() > 256 {
        title = title.chars().take(253).collect::<String>() + "...";
    }
    let mut f = json!({
        "SchemaVersion": "2018-10-08",
        "Id": alert.id,
        "ProductArn": default_product_arn(region, account),
        "GeneratorId": "ctguard/credential-reuse",
        // The importing account: the default product accepts findings for its own account
        // only, and the detector judges its own account's events.
        "AwsAccountId": account,
        "Types": ["TTPs/Credential Access", "Unusual Behaviors/User"],
        "CreatedAt": seen_at,
        "FirstObservedAt": first_seen,
        "LastObservedAt": seen_at,
        "UpdatedAt": now,
        "Severity": {"Label": label, "Normalized": normalized},
        "Title": title,
        "Description": description,
        "Remediation": {"Recommendation": {"Text": format!(
            "Decide whether {} is yours. If not, trace the key ({}) and contain the session without stopping the \
             workload ({}); rotate the credentials, then release ({}).",
            clean(&alert.seen_identity), c.first().cloned().unwrap_or_default(), c.get(2).cloned().unwrap_or_default(),
            c.get(3).cloned().unwrap_or_default()).chars().take(512).collect::<String>()}},
        "ProductFields": {
            "ctguard/alert_id": alert.id,
            "ctguard/synthetic": if alert.synthetic { "true" } else { "false" },
            "ctguard/scope": clean(&alert.scope),
            "ctguard/expected_identities": expected.join(","),
            "ctguard/seen_identity": clean(&alert.seen_identity),
            "ctguard/offending_event_id": alert.offending.event_id.as_deref().map(clean).unwrap_or_default(),
            "ctguard/offending_event_name": alert.offending.event_name.as_deref().map(clean).unwrap_or_default(),
            "ctguard/trace_command": c.first().cloned().unwrap_or_default(),
            "ctguard/containment": alert.containment.as_ref().map(|c| c.status.as_str()).unwrap_or("off"),
        },
        "Resources": resources,
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    });
    if let (Some(ip), Some(obj)) =
        (alert.offending.source_ip.as_deref().and_then(|ip| ip.parse::<std::net::IpAddr>().ok()), f.as_object_mut())
    {
        let field = if ip.is_ipv4() { "SourceIpV4" } else { "SourceIpV6" };
        obj.insert("Network".into(), json!({"Direction": "IN", field: ip.to_string()}));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finding_carries_the_alert_id_severity_resources_and_remediation() {
        let a = crate::notify::tests::sample(false);
        let f = asff(&a, "us-east-1", "123456789012", "2024-05-01T10:05:00Z");
        assert_eq!(f["Id"], a.id);
        assert_eq!(f["ProductArn"], "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default");
        assert_eq!(f["Severity"]["Label"], "HIGH");
        assert_eq!(f["Types"][0], "TTPs/Credential Access");
        let types: Vec<&str> =
            f["Resources"].as_array().expect("resources").iter().filter_map(|r| r["Type"].as_str()).collect();
        assert_eq!(types, ["AwsIamRole", "AwsEc2Instance", "AwsIamAccessKey"]);
        assert_eq!(f["Resources"][1]["Id"], "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0");
        assert_eq!(f["ProductFields"]["ctguard/expected_identities"], "ip:203.0.113.10");
        assert_eq!(f["ProductFields"]["ctguard/seen_identity"], "ip:198.51.100.66");
        assert!(f["ProductFields"]["ctguard/trace_command"]
            .as_str()
            .unwrap_or("")
            .starts_with("ctguard trace --access-key"));
        assert!(f["Remediation"]["Recommendation"]["Text"].as_str().unwrap_or("").contains("ctguard contain"));
        assert!(f["Description"].as_str().unwrap_or("").chars().count() <= 1024);
        assert_eq!(f["ProductFields"]["ctguard/containment"], "off");
        let mut contained = a.clone();
        contained.containment = Some(crate::contain::AutoContainment {
            status: crate::contain::AutoStatus::Applied,
            role: Some("app".into()),
            policy: Some("ctguard-contain-i-0123456789abcdef0".into()),
            detail: "d".into(),
            release: Some("ctguard release".into()),
        });
        let g = asff(&contained, "us-east-1", "123456789012", "2024-05-01T10:05:00Z");
        assert_eq!(g["ProductFields"]["ctguard/containment"], "applied");
        // The same alert, rendered again (a retry), is the same finding.
        assert_eq!(asff(&a, "us-east-1", "123456789012", "2024-05-01T10:05:00Z"), f);
    }

    #[test]
    fn the_partition_follows_the_region() {
        let a = crate::notify::tests::sample(false);
        let f = asff(&a, "cn-north-1", "123456789012", "2024-05-01T10:05:00Z");
        assert_eq!(f["ProductArn"], "arn:aws-cn:securityhub:cn-north-1:123456789012:product/123456789012/default");
        assert!(f["Resources"].as_array().expect("resources").iter().all(|r| r["Partition"] == "aws-cn"), "{f}");
        let g = asff(&a, "us-gov-west-1", "123456789012", "now");
        assert_eq!(g["Resources"][0]["Partition"], "aws-us-gov");
        assert_eq!(partition("eu-central-2"), ("aws", "amazonaws.com"));
    }

    #[test]
    fn long_text_is_cut_to_the_asff_limits() {
        let mut a = crate::notify::tests::sample(false);
        a.title = "T".repeat(5000);
        a.reason = "R".repeat(5000);
        let f = asff(&a, "us-east-1", "123456789012", "now");
        assert!(f["Title"].as_str().unwrap_or("").chars().count() <= 256);
        assert!(f["Description"].as_str().unwrap_or("").chars().count() <= 1024);
        assert!(f["Remediation"]["Recommendation"]["Text"].as_str().unwrap_or("").chars().count() <= 512);
    }
}
