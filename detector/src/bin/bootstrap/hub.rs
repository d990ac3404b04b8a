//! Security Hub's `BatchImportFindings`, sent as one SigV4-signed `POST /findings/import`.
//!
//! Not the SDK crate: `aws-sdk-securityhub` carries the whole ASFF model (thousands of types)
//! and would add minutes to every build and megabytes to the Lambda zip for one call whose
//! body [`ctguard_detector::finding::asff`] already builds. The pieces used here (the signer,
//! the HTTPS connector, the credentials chain) are the ones the SDK clients in this binary
//! already link.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::http::Request as HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{json, Value};

/// Per attempt: connect, send, read the answer. The caller bounds the whole import further
/// (`notifier::SECONDARY_BUDGET`).
const ATTEMPT: Duration = Duration::from_millis(1500);
/// Attempts at one import (a throttle, a 5xx or a timeout is tried again).
const ATTEMPTS: u32 = 3;

pub struct SecurityHub {
    connector: Connector,
    credentials: SharedCredentialsProvider,
    endpoint: String,
    /// The region and account of the product the findings go to: the detector's own.
    pub region: String,
    pub account: String,
}

/// Where the API is: `AWS_ENDPOINT_URL_SECURITYHUB`, else `AWS_ENDPOINT_URL` (the SDK's own
/// overrides, honoured the same way), else the public regional endpoint.
pub fn endpoint(region: &str, service_override: Option<String>, global_override: Option<String>) -> String {
    service_override
        .or(global_override)
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://securityhub.{region}.amazonaws.com"))
}

/// The product ARN `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default` as
/// (region, account); anything else is refused (the template always writes this form).
pub fn parse_product(arn: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "securityhub", region, account, product]
            if !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && *product == format!("product/{account}/default") =>
        {
            Ok((region.to_string(), account.to_string()))
        }
        _ => Err(format!("`{arn}` is not an account's default Security Hub product ARN")),
    }
}

impl SecurityHub {
    pub fn new(
        connector: Connector,
        credentials: SharedCredentialsProvider,
        product_arn: &str,
    ) -> Result<Self, String> {
        let (region, account) = parse_product(product_arn)?;
        let endpoint = endpoint(
            &region,
            std::env::var("AWS_ENDPOINT_URL_SECURITYHUB").ok(),
            std::env::var("AWS_ENDPOINT_URL").ok(),
        );
        Ok(SecurityHub { connector, credentials, endpoint, region, account })
    }

    /// Imports one finding; `Err` names what failed. A finding Security Hub refused
    /// (`FailedCount` > 0) is an error too, with its code.
    pub async fn import(&self, finding: &Value) -> Result<(), String> {
        let body = json!({"Findings": [finding]}).to_string();
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            match tokio::time::timeout(ATTEMPT, self.send(&body)).await {
                Err(_) => last = format!("no answer within {ATTEMPT:?}"),
                Ok(Ok((status, text))) => match judge(status, &text) {
                    Verdict::Done => return Ok(()),
                    Verdict::Retry(e) => last = e,
                    Verdict::Fail(e) => return Err(e),
                },
                Ok(Err(e)) => last = e,
            }
        }
        Err(format!("{ATTEMPTS} attempts failed, the last: {last}"))
    }

    async fn send(&self, body: &str) -> Result<(u16, String), String> {
        let creds = self.credentials.provide_credentials().await.map_err(|e| format!("credentials: {e}"))?;
        let identity: Identity = creds.into();
        let url = format!("{}/findings/import", self.endpoint);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/json")
            .body(SdkBody::from(body.to_string()))
            .map_err(|e| format!("request: {e}"))?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("securityhub")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let headers = [("content-type", "application/json")];
        let signable = SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body.as_bytes()))
            .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| format!("signing: {e}"))?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let request = HttpRequest::try_from(request).map_err(|e| format!("request: {e}"))?;
        let response = self.connector.call(request).await.map_err(|e| format!("sending: {e}"))?;
        let status = response.status().as_u16();
        let bytes = ByteStream::new(response.into_body()).collect().await.map_err(|e| format!("reading: {e}"))?;
        Ok((status, String::from_utf8_lossy(&bytes.into_bytes()).into_owned()))
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Done,
    Retry(String),
    Fail(String),
}

/// What an answer means: success, worth another attempt (throttled, server error), or final.
fn judge(status: u16, body: &str) -> Verdict {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let short: String = body.chars().take(300).collect();
    match status {
        200 => match v.get("FailedCount").and_then(Value::as_u64) {
            Some(0) => Verdict::Done,
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
    fn endpoint_overrides_and_default() {
        assert_eq!(endpoint("eu-west-1", None, None), "https://securityhub.eu-west-1.amazonaws.com");
        assert_eq!(endpoint("eu-west-1", None, Some("http://127.0.0.1:5000/".into())), "http://127.0.0.1:5000");
        assert_eq!(endpoint("eu-west-1", Some("http://a:1".into()), Some("http://b:2".into())), "http://a:1");
        assert_eq!(endpoint("eu-west-1", Some(" ".into()), None), "https://securityhub.eu-west-1.amazonaws.com");
    }

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
        assert_eq!(judge(200, r#"{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}"#), Verdict::Done);
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
