//! One SigV4-signed HTTPS POST, for the two APIs the detector calls without an SDK crate
//! (Security Hub's `BatchImportFindings`, IAM's Query API for automatic containment).
//!
//! Not the SDK crates: `aws-sdk-securityhub` and `aws-sdk-iam` carry whole service models and
//! would add minutes to every build and megabytes to the Lambda zip for three calls. The
//! pieces used here (the signer, the HTTPS connector, the credentials chain) are the ones the
//! SDK clients in this binary already link.

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

pub struct Signed {
    connector: Connector,
    credentials: SharedCredentialsProvider,
}

/// Where a service is: `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL` (the SDK's own
/// overrides, honoured the same way), else `default`.
pub fn endpoint(service_override: Option<String>, global_override: Option<String>, default: String) -> String {
    service_override
        .or(global_override)
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .unwrap_or(default)
}

/// [`endpoint`] from the environment, for the service whose override suffix is `env_suffix`
/// (`SECURITYHUB`, `IAM`).
pub fn endpoint_from_env(env_suffix: &str, default: String) -> String {
    endpoint(
        std::env::var(format!("AWS_ENDPOINT_URL_{env_suffix}")).ok(),
        std::env::var("AWS_ENDPOINT_URL").ok(),
        default,
    )
}

/// One signed POST: where, to whom, and what.
pub struct Post<'a> {
    pub url: &'a str,
    /// The region and service the request is signed for.
    pub region: &'a str,
    pub service: &'a str,
    pub content_type: &'a str,
    pub body: &'a str,
}

/// What an answer means to the caller: its result, worth another attempt (with why), or final.
#[derive(Debug, PartialEq)]
pub enum Verdict<T, E> {
    Done(T),
    Retry(String),
    Fail(E),
}

/// Per attempt: connect, send, read the answer. Callers bound the whole call further
/// (`notifier::CONTAIN_BUDGET`, `notifier::SECONDARY_BUDGET`).
const ATTEMPT: Duration = Duration::from_millis(1500);
/// Attempts at one call (a retryable answer, a transport error or a timeout is tried again).
const ATTEMPTS: u32 = 3;

impl Signed {
    pub fn new(connector: Connector, credentials: SharedCredentialsProvider) -> Self {
        Signed { connector, credentials }
    }

    /// Sends `post` up to [`ATTEMPTS`] times, each within [`ATTEMPT`], backing off between
    /// them; `judge` reads each answer (status, text). When every attempt failed, `exhausted`
    /// makes the error from the last reason.
    pub async fn call<T, E>(
        &self,
        post: &Post<'_>,
        judge: impl Fn(u16, &str) -> Verdict<T, E>,
        exhausted: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            match tokio::time::timeout(ATTEMPT, self.send(post)).await {
                Ok(Ok((status, text))) => match judge(status, &text) {
                    Verdict::Done(t) => return Ok(t),
                    Verdict::Retry(why) => last = why,
                    Verdict::Fail(e) => return Err(e),
                },
                Ok(Err(why)) => last = why,
                Err(_) => last = format!("no answer within {ATTEMPT:?}"),
            }
        }
        Err(exhausted(format!("{ATTEMPTS} attempts failed, the last: {last}")))
    }

    async fn send(&self, p: &Post<'_>) -> Result<(u16, String), String> {
        let creds = self.credentials.provide_credentials().await.map_err(|e| format!("credentials: {e}"))?;
        let identity: Identity = creds.into();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(p.url)
            .header("content-type", p.content_type)
            .body(SdkBody::from(p.body.to_string()))
            .map_err(|e| format!("request: {e}"))?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(p.region)
            .name(p.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let headers = [("content-type", p.content_type)];
        let signable = SignableRequest::new("POST", p.url, headers.into_iter(), SignableBody::Bytes(p.body.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_and_default() {
        let d = || "https://securityhub.eu-west-1.amazonaws.com".to_string();
        assert_eq!(endpoint(None, None, d()), "https://securityhub.eu-west-1.amazonaws.com");
        assert_eq!(endpoint(None, Some("http://127.0.0.1:5000/".into()), d()), "http://127.0.0.1:5000");
        assert_eq!(endpoint(Some("http://a:1".into()), Some("http://b:2".into()), d()), "http://a:1");
        assert_eq!(endpoint(Some(" ".into()), None, d()), "https://securityhub.eu-west-1.amazonaws.com");
    }
}
