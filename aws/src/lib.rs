//! AWS plumbing shared by the deploy and forensics crates and the `ctguard` commands: one
//! `SdkConfig` from plain options (with the HTTPS client), the caller's identity, and readable
//! SDK error text. Per-account configurations (`sts:AssumeRole`, assumed once per account and
//! shared) are built by `ctguard_deploy::stacks::AwsConnector`.
//!
//! Clients are cheap to derive from a config; configs are expensive to load, so each is built
//! once per account and reused for every region.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

/// Where and as whom to call AWS: the plain form of the command line's global options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// AWS profile (default: the standard credential chain).
    pub profile: Option<String>,
    /// Region for the caller's own calls (default: from the profile/environment).
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (a local emulator).
    pub endpoint_url: Option<String>,
}

/// The role ctguard assumes in member accounts: the one AWS Organizations creates in every
/// account it creates. Override with `--role-name` where an install uses another.
pub const DEFAULT_MEMBER_ROLE: &str = "OrganizationAccountAccessRole";

/// The HTTPS client: rustls on ring (no C toolchain or cmake needed to build it).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Loads the base configuration: standard credential chain (env, profile, SSO, IMDS…),
/// `--profile`, `--region`, and `--endpoint-url`/`AWS_ENDPOINT_URL` for emulators.
pub async fn load(g: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(p) = &g.profile {
        // As aws-cli does: an explicit profile wins over keys in the environment, which the
        // default chain would otherwise read first.
        let providers = aws_config::provider_config::ProviderConfig::without_region().with_http_client(http_client());
        let creds = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&providers)
            .profile_name(p)
            .build();
        loader = loader.profile_name(p).credentials_provider(creds);
    }
    if let Some(r) = &g.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &g.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let cfg = loader.load().await;
    if cfg.region().is_none() {
        // A region is needed for the first calls (STS, Organizations); us-east-1 is where the
        // global services live.
        return cfg.into_builder().region(Region::new("us-east-1")).build();
    }
    cfg
}

/// The same configuration pointed at another region.
pub fn in_region(cfg: &SdkConfig, region: &str) -> SdkConfig {
    cfg.clone().into_builder().region(Region::new(region.to_string())).build()
}

/// What can go wrong before any target is touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// `sts:GetCallerIdentity` failed (with the SDK's error text).
    #[error("cannot identify the caller (are AWS credentials set?): {0}")]
    UnknownCaller(String),
    #[error("sts:GetCallerIdentity returned no account")]
    NoAccount,
}

/// The caller's account id (`sts:GetCallerIdentity`).
pub async fn caller_account(cfg: &SdkConfig) -> Result<String, AwsError> {
    let out = aws_sdk_sts::Client::new(cfg)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::UnknownCaller(err_text(&e)))?;
    out.account.ok_or(AwsError::NoAccount)
}

/// A readable one-line description of an SDK error: code and message when the service sent them.
pub fn err_text<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    if let Some(code) = e.code() {
        return format!("{code}: {}", e.message().unwrap_or(""));
    }
    // No error code: the service answered something the SDK could not read (an emulator's
    // HTML error page, a proxy). Say what status came back rather than a parser message.
    if let aws_smithy_runtime_api::client::result::SdkError::ServiceError(se) = e {
        let raw = se.raw();
        let status = raw.status().as_u16();
        let body = raw.body().bytes().map(|b| String::from_utf8_lossy(b).chars().take(160).collect::<String>());
        return format!(
            "HTTP {status} with no AWS error code{}",
            body.filter(|b| !b.trim().is_empty())
                .map(|b| format!(": {}", b.split_whitespace().collect::<Vec<_>>().join(" ")))
                .unwrap_or_default()
        );
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
