//! AWS plumbing shared by the deploy and forensics crates and the `ctguard` commands: one
//! `SdkConfig` from plain options (with the HTTPS client), the caller's identity, and readable
//! SDK error text. Per-account configurations (`sts:AssumeRole`, assumed once per account and
//! shared) are built by `ctguard_deploy::stacks::AwsConnector`.
//!
//! Clients are cheap to derive from a config; configs are expensive to load, so each is built
//! once per account and reused for every region.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

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

/// Names the file [`OperationLog`] appends to. Unset (the default), nothing is recorded.
pub const RECORD_ENV: &str = "CTGUARD_RECORD_CALLS";

/// The file named by [`RECORD_ENV`], opened for appending once per process (`None`: off).
fn record_file() -> Option<&'static Mutex<std::fs::File>> {
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os(RECORD_ENV).filter(|p| !p.is_empty())?;
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok().map(Mutex::new)
    })
    .as_ref()
}

/// Records one AWS operation (`Service:Operation`, the SDK's names) when [`RECORD_ENV`] is set.
/// Each line is one `write` on a file opened for appending, so concurrent processes (tests run
/// many `ctguard`s at once) never interleave within a line.
pub fn record(service: &str, operation: &str) {
    if let Some(f) = record_file() {
        let line = format!("{service}:{operation}\n");
        if let Ok(mut f) = f.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// An SDK interceptor recording every operation attempt with [`record`]: what the tests use to
/// hold `ctguard template installer-policy` to the calls ctguard really makes. Off by default;
/// when off it costs one check of a cached `Option` per attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct OperationLog;

impl OperationLog {
    /// Records the operation described by the request's config bag (shared with other
    /// interceptors, such as the deploy crate's call counter).
    pub fn observe(cfg: &ConfigBag) {
        if record_file().is_none() {
            return;
        }
        if let Some(m) = cfg.load::<Metadata>() {
            record(m.service(), m.name());
        }
    }
}

impl Intercept for OperationLog {
    fn name(&self) -> &'static str {
        "ctguard-operation-log"
    }
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Self::observe(cfg);
        Ok(())
    }
}

/// An SDK client of `$krate` from `$cfg` with [`OperationLog`] attached:
/// `ctguard_aws::client!(aws_sdk_sns, &cfg)`.
#[macro_export]
macro_rules! client {
    ($krate:ident, $cfg:expr) => {
        $krate::Client::from_conf($krate::config::Builder::from($cfg).interceptor($crate::OperationLog).build())
    };
}

/// Every region name AWS has published (commercial, GovCloud, China). Used only when the
/// account cannot tell its own enabled regions (`account:ListRegions` denied or unanswered);
/// otherwise the account's answer is authoritative.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Whether `region` is in the commercial partition (not China, not GovCloud).
pub fn is_commercial_region(region: &str) -> bool {
    !region.starts_with("cn-") && !region.starts_with("us-gov-")
}

/// True for a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for names shaped like AWS regions (`us-east-1`, `ap-southeast-3`, `us-gov-west-1`):
/// a two-letter area, lowercase words, a number.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((first, rest)) = parts.split_first() else { return false };
    let Some((number, words)) = rest.split_last() else { return false };
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    first.len() == 2
        && lower(first)
        && !words.is_empty()
        && words.iter().all(|w| lower(w))
        && number.parse::<u8>().is_ok()
}

/// True for a region name as logs may carry it: lowercase letters, digits and hyphens, at most
/// 32 characters. Looser than [`is_region`] on purpose: anonymised or future logs carry names
/// that are no region ctguard knows (`us-north-2r`), and queries over them must still work;
/// the check keeps such names safe to quote in SQL.
pub fn is_region_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

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
    caller_identity(cfg).await.map(|(account, _)| account)
}

/// The caller's account id and ARN (`sts:GetCallerIdentity`).
pub async fn caller_identity(cfg: &SdkConfig) -> Result<(String, String), AwsError> {
    let out = client!(aws_sdk_sts, cfg)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::UnknownCaller(err_text(&e)))?;
    let arn = out.arn.unwrap_or_default();
    Ok((out.account.ok_or(AwsError::NoAccount)?, arn))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_shapes() {
        for ok in ["us-east-1", "ap-southeast-3", "us-gov-west-1", "eu-central-2"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["", "us-east", "US-EAST-1", "us--1", "useast1", "us-east-x", "us-1", "u-east-1", "us-east-1')--"] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn region_names_in_logs_are_looser_but_sql_safe() {
        for ok in ["us-east-1", "us-north-2r", "apiso-northsouth-3r"] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in ["", "US-EAST-1", "us-east-1')--", "us east 1", &"a".repeat(33)] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("123456789012"));
        for bad in ["", "12345678901", "1234567890123", "12345678901a", "1111' OR '1"] {
            assert!(!is_account_id(bad), "{bad}");
        }
    }
}
