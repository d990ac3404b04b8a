//! Security Hub's `BatchImportFindings`, sent as one SigV4-signed `POST /findings/import`
//! ([`crate::signed`]): the finding's body is [`ctguard_detector::finding::asff`].

use serde_json::{json, Value};

use crate::signed::{endpoint_from_env, Post, Signed, Verdict};

pub struct SecurityHub {
    signed: Signed,
    endpoint: String,
    /// The region and account of the product the findings go to: the detector's own.
    pub region: String,
    pub account: String,
}

/// The product ARN `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default` as
/// (region, account); anything else is refused (the template always writes this form).
pub fn parse_product(arn: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "securityhub", region, account, product]
            if !region.is_empty()
                && ctguard_detector::is_account_id(account)
                && *product == format!("product/{account}/default") =>
        {
            Ok((region.to_string(), account.to_string()))
        }
        _ => Err(format!("`{arn}` is not an account's default Security Hub product ARN")),
    }
}

impl SecurityHub {
    pub fn new(signed: Signed, product_arn: &str) -> Result<Self, String> {
        let (region, account) = parse_product(product_arn)?;
        let dns = ctguard_detector::finding::partition(&region).1;
        let endpoint = endpoint_from_env("SECURITYHUB", format!("https://securityhub.{region}.{dns}"));
        Ok(SecurityHub { signed, endpoint, region, account })
    }

    /// Imports one finding; `Err` names what failed. A finding Security Hub refused
    /// (`FailedCount` > 0) is an error too, with its code.
    pub async fn import(&self, finding: &Value) -> Result<(), String> {
        let body = json!({"Findings": [finding]}).to_string();
        let url = format!("{}/findings/import", self.endpoint);
        let post = Post {
            url: &url,
            region: &self.region,
            service: "securityhub",
            content_type: "application/json",
            body: &body,
        };
        self.signed.call(&post, judge, |why| why).await
    }
}

/// What an answer means: success, worth another attempt (throttled, server error), or final.
fn judge(status: u16, body: &str) -> Verdict<(), String> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let short: String = body.chars().take(300).collect();
    match status {
        200 => match v.get("FailedCount").and_then(Value::as_u64) {
            Some(0) => Verdict::Done(()),
            Some(_) => {
                let first = v.get("FailedFindings").and_then(|f| f.get(0));
                let code = first.and_then(|f| f.get("ErrorCode")).and_then(Value::as_str).unwrap_or("?");
                let msg = first.and_then(|f| f.get("ErrorMessage")).and_then(Value::as_str).unwrap_or("");
                Verdict::Fail(format!("finding refused: {code}: {msg}"))
            }
            None => Verdict::Fail(format!("unexpected answer: {short}")),
        },
        429 | 500..=599 => Verdict::Retry(format!("HTTP {status}: {short}")),
        // 403 AccessDenied / InvalidAccessException (Security Hub not enabled here), 400 ...
        _ => Verdict::Fail(format!("HTTP {status}: {short}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_product_of_an_account() {
        assert_eq!(
            parse_product("arn:aws:securityhub:eu-west-1:123456789012:product/123456789012/default"),
            Ok(("eu-west-1".to_string(), "123456789012".to_string()))
        );
        for bad in [
            "",
            "arn:aws:securityhub:eu-west-1:123456789012:product/999999999999/default",
            "arn:aws:securityhub:eu-west-1:123456789012:product/aws/guardduty",
            "arn:aws:sns:eu-west-1:123456789012:product/123456789012/default",
            "arn:aws:securityhub::123456789012:product/123456789012/default",
        ] {
            assert!(parse_product(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(judge(200, r#"{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}"#), Verdict::Done(()));
        assert!(matches!(
            judge(200, r#"{"FailedCount":1,"SuccessCount":0,"FailedFindings":[{"Id":"x","ErrorCode":"InvalidInput","ErrorMessage":"bad"}]}"#),
            Verdict::Fail(e) if e.contains("InvalidInput")
        ));
        assert!(matches!(judge(429, "{}"), Verdict::Retry(_)));
        assert!(matches!(judge(503, "oops"), Verdict::Retry(_)));
        assert!(matches!(judge(403, r#"{"message":"not subscribed"}"#), Verdict::Fail(e) if e.contains("403")));
        assert!(matches!(judge(200, "not json"), Verdict::Fail(_)));
    }
}
