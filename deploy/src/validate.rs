//! Checks of user input made before anything is touched: alert topic ARNs, email addresses,
//! region names. Pure; the commands call them on flags and configuration files alike, so bad
//! input gets a clear error instead of a plan that deletes something.

use thiserror::Error;

pub use ctguard_aws::KNOWN_REGIONS;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InputError {
    #[error("`{0}` is not an SNS topic ARN (arn:aws:sns:<region>:<12-digit account>:<topic name>)")]
    TopicArn(String),
    #[error("`{0}` is a FIFO topic: alerts need a standard SNS topic (a FIFO topic refuses the detector's messages, which carry no message group id, and delivers to SQS queues only, not to email)")]
    FifoTopic(String),
    #[error("`{0}` is not an email address (name@domain.tld)")]
    Email(String),
    #[error("unknown region {name}: {why}")]
    Region { name: String, why: String },
}

/// Checks an SNS topic ARN's shape: partition, service, region, account id and topic name.
pub fn topic_arn(arn: &str) -> Result<(), InputError> {
    let bad = || InputError::TopicArn(arn.to_string());
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, partition, service, region, account, name] = parts.as_slice() else { return Err(bad()) };
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let ok = *prefix == "arn"
        && partition.starts_with("aws")
        && *service == "sns"
        && crate::targets::is_region(region)
        && crate::targets::is_account_id(account)
        && name_ok;
    ok.then_some(()).ok_or_else(bad)?;
    if name.ends_with(".fifo") {
        return Err(InputError::FifoTopic(arn.to_string()));
    }
    Ok(())
}

/// Checks an email address's shape (one `@`, a local part, a dotted domain, no spaces or
/// control characters). Deliverability is SNS's business: it sends a confirmation.
pub fn email(addr: &str) -> Result<(), InputError> {
    let bad = || InputError::Email(addr.to_string());
    let (local, domain) = addr.split_once('@').ok_or_else(bad)?;
    let clean = |s: &str| !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    (clean(local) && clean(domain) && labels_ok && addr.len() <= 254).then_some(()).ok_or_else(bad)
}

/// Checks regions against the account's enabled ones when it answered (`enabled`), else
/// against [`KNOWN_REGIONS`].
pub fn regions(given: &[String], enabled: Option<&[String]>) -> Result<(), InputError> {
    for r in given {
        let r = r.trim();
        let (known, why) = match enabled {
            Some(en) => (en.iter().any(|e| e == r), format!("not enabled in this account (enabled: {})", en.join(","))),
            None => (KNOWN_REGIONS.contains(&r), "not an AWS region".to_string()),
        };
        if !known {
            return Err(InputError::Region { name: r.to_string(), why });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns() {
        assert!(topic_arn("arn:aws:sns:us-east-1:123456789012:central-alerts").is_ok());
        assert!(topic_arn("arn:aws-us-gov:sns:us-gov-west-1:123456789012:t.v2").is_ok());
        let fifo = "arn:aws:sns:us-east-1:123456789012:alerts.fifo";
        assert_eq!(topic_arn(fifo), Err(InputError::FifoTopic(fifo.into())));
        assert!(InputError::FifoTopic(fifo.into()).to_string().contains("standard SNS topic"));
        for bad in [
            "foo",
            "",
            "arn:aws:sqs:us-east-1:123456789012:q",
            "arn:aws:sns:us-east-1:1234:t",
            "arn:aws:sns:nowhere:123456789012:t",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:us-east-1:123456789012:a b",
        ] {
            assert_eq!(topic_arn(bad), Err(InputError::TopicArn(bad.into())), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(email("sec@example.com").is_ok());
        assert!(email("first.last+ctguard@sub.example.co.uk").is_ok());
        for bad in [
            "not-an-email",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a@exa mple.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_against_the_account_or_the_known_list() {
        let given = vec!["us-east-1".to_string(), "us-east-42".to_string()];
        let e = regions(&given, None).unwrap_err();
        assert!(e.to_string().contains("us-east-42"), "{e}");
        assert!(regions(&given[..1], None).is_ok());
        let enabled = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        assert!(regions(&["eu-west-1".to_string()], Some(&enabled)).is_ok());
        let e = regions(&["ap-east-1".to_string()], Some(&enabled)).unwrap_err();
        assert!(e.to_string().contains("not enabled"), "{e}");
    }
}
