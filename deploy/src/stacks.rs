//! The AWS seam of install/status/uninstall. [`StackApi`] is CloudFormation in one account ×
//! region; [`TargetApi`] adds the few other calls a target needs (trail check, code object,
//! bucket emptying, health, leftovers). Both take and return ctguard types only, so
//! [`FakeStacks`] needs no SDK builders and doubles as an in-memory backend for command tests.
//!
//! [`CfnStacks`] is the real implementation; [`AwsConnector`] builds one per target, assuming
//! `--role-name` in member accounts (once per account, cached) and counting every HTTP attempt
//! per target with an SDK interceptor ([`CallCounter`]) so the benchmark can report calls per
//! target.

use std::collections::HashMap;
#[cfg(any(test, feature = "test-support"))]
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(any(test, feature = "test-support"))]
use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::deploy::PollOptions;
use crate::plan::{BucketOwnership, StackKind, StackSpec, StackState, OWNER_TAG, OWNER_VALUE};
use crate::targets::Target;
use crate::trail::{self, AdvancedSelector, BasicSelector, FieldSelector, Selectors, TrailInfo, TrailVerdict};
use ctguard_aws::{err_text, in_region};

/// Fixed names of the regional resources (the templates set them; `verify` relies on them).
pub const FUNCTION_NAME: &str = "ctguard-detector";
pub const RULE_NAME: &str = "ctguard-detector";
pub const DLQ_NAME: &str = "ctguard-detector-dlq";
pub const TABLE_NAME: &str = "ctguard-state";
pub const TOPIC_NAME: &str = "ctguard-alerts";

/// A failed AWS call: the service's error code (when it sent one) and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(message: impl Into<String>) -> Self {
        ApiError { code: None, message: message.into() }
    }

    /// An SDK error as the service's code and the readable text, without naming the call.
    pub(crate) fn from_sdk_text<E>(e: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        ApiError { code: e.code().map(str::to_string), message: err_text(e) }
    }

    pub(crate) fn from_sdk<E>(
        op: &str,
        e: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        ApiError { code: e.code().map(str::to_string), message: format!("{op}: {}", err_text(e)) }
    }
}

/// The outcome of UpdateStack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    Started,
    /// "No updates are to be performed": success, nothing to wait for.
    NoChanges,
}

/// CloudFormation in one account × region.
pub trait StackApi {
    /// `None` when no stack of that name exists (CloudFormation's "does not exist").
    fn describe(&self, name: &str) -> impl Future<Output = Result<Option<StackState>, ApiError>> + Send;
    fn create(&self, spec: &StackSpec) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn update(&self, spec: &StackSpec) -> impl Future<Output = Result<UpdateOutcome, ApiError>> + Send;
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// What `status` reads about a deployed region besides its stacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The EventBridge rule's state (`ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS` expected).
    pub rule_state: Option<String>,
    /// Messages waiting in the DLQ: events the detector failed to process.
    pub dlq_depth: Option<u64>,
    /// Whatever could not be read, and why.
    pub unreadable: Vec<String>,
}

/// Everything else a target needs.
pub trait TargetApi: StackApi {
    fn target(&self) -> &Target;
    /// Trails visible in this region, judged by [`trail::assess`].
    fn trail(&self) -> impl Future<Output = Result<TrailVerdict, ApiError>> + Send;
    fn code_present(&self, bucket: &str, key: &str) -> impl Future<Output = Result<bool, ApiError>> + Send;
    fn upload_code(
        &self,
        bucket: &str,
        key: &str,
        body: &'static [u8],
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Whether `bucket` is provably ctguard's: the resource `logical_id` of ctguard's stack
    /// `stack` (created, not failed), tagged as ctguard's, in this target's account.
    fn bucket_ownership(
        &self,
        stack: &str,
        logical_id: &str,
        bucket: &str,
    ) -> impl Future<Output = Result<BucketOwnership, ApiError>> + Send;
    /// Deletes every object version and delete marker; returns how many were removed. Versions
    /// whose deletion is denied are retried for `retry.timeout` with `retry`'s doubling delay;
    /// then the error names how many are left, the first few, and why.
    fn empty_bucket(&self, bucket: &str, retry: &PollOptions) -> impl Future<Output = Result<usize, ApiError>> + Send;
    fn health(&self, dlq_url: Option<&str>) -> impl Future<Output = Health> + Send;
    /// ctguard-named resources still present here (home: include the account-level ones;
    /// bucket: the artifacts bucket to look for). Used at the end of uninstall.
    fn leftovers(&self, home: bool, bucket: Option<&str>)
        -> impl Future<Output = Result<Vec<String>, ApiError>> + Send;
    /// AWS API calls (HTTP attempts) made through this handle so far.
    fn calls(&self) -> u64;
}

/// Builds the API handle of a target.
pub trait Connector: Sync {
    type Api: TargetApi + Send + Sync;
    fn connect(&self, target: &Target) -> impl Future<Output = Result<Self::Api, ApiError>> + Send;
    /// Calls made outside any target (AssumeRole, Organizations, ...).
    fn shared_calls(&self) -> u64 {
        0
    }
}

// ------------------------------------------------------------------------------------------
// Counting

/// Counts every HTTP attempt (retries included) of the clients it is attached to.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "ctguard-call-counter"
    }
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.add();
        // Every counted client is also recorded (off unless the tests ask).
        ctguard_aws::OperationLog::observe(cfg);
        Ok(())
    }
}

/// Sets `ExpectedBucketOwner` (the `x-amz-expected-bucket-owner` header) on every request of
/// the S3 client it is attached to, so no S3 call of ctguard's can act on a bucket of the same
/// name in another account (bucket names are global; S3 answers 403 instead). Done once here
/// rather than per call so that no call can forget it.
#[derive(Debug, Clone)]
pub struct ExpectedBucketOwner(pub String);

impl Intercept for ExpectedBucketOwner {
    fn name(&self) -> &'static str {
        "ctguard-expected-bucket-owner"
    }
    fn modify_before_signing(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert("x-amz-expected-bucket-owner", self.0.clone());
        Ok(())
    }
}

/// The member-account credentials provider: assumes the role once and shares the result.
///
/// Every target of an account builds its own clients, and the SDK's identity cache does not
/// merge concurrent first loads, so without this the targets of one account would each call
/// AssumeRole when they start together. Here the first caller fetches while the others wait on
/// the lock; credentials are reused until five minutes before they expire. Each real fetch is
/// counted (the benchmark reports AssumeRole calls).
#[derive(Debug)]
struct SharedAssumedRole {
    inner: aws_config::sts::AssumeRoleProvider,
    counter: CallCounter,
    cached: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

/// Credentials closer than this to expiry are fetched again.
const CREDENTIALS_REFRESH_MARGIN: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl ProvideCredentials for SharedAssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let mut cached = self.cached.lock().await;
            if let Some(c) = cached.as_ref() {
                let fresh = c.expiry().is_none_or(|e| e > std::time::SystemTime::now() + CREDENTIALS_REFRESH_MARGIN);
                if fresh {
                    return Ok(c.clone());
                }
            }
            self.counter.add();
            // Made by aws-config's own STS client, which no interceptor of ours sees.
            ctguard_aws::record("STS", "AssumeRole");
            let c = self.inner.provide_credentials().await?;
            *cached = Some(c.clone());
            Ok(c)
        })
    }
}

// ------------------------------------------------------------------------------------------
// AWS

/// Connects to targets with the caller's credentials (own account) or by assuming
/// `role_name` (member accounts).
pub struct AwsConnector {
    base: SdkConfig,
    caller_account: String,
    role_name: String,
    accounts: tokio::sync::Mutex<HashMap<String, SdkConfig>>,
    shared: CallCounter,
}

impl AwsConnector {
    /// `base` must come from [`ctguard_aws::load`] (or `aws_config::defaults`): assuming roles
    /// needs the time source and sleep implementation the loader sets up.
    pub fn new(base: SdkConfig, caller_account: String, role_name: String) -> Self {
        AwsConnector { base, caller_account, role_name, accounts: Default::default(), shared: CallCounter::default() }
    }

    pub fn caller_account(&self) -> &str {
        &self.caller_account
    }

    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// The account's configuration (assume-role provider built once per account).
    pub async fn account_config(&self, account: &str) -> SdkConfig {
        if account == self.caller_account {
            return self.base.clone();
        }
        let mut cache = self.accounts.lock().await;
        if let Some(c) = cache.get(account) {
            return c.clone();
        }
        let arn = format!("arn:aws:iam::{account}:role/{}", self.role_name);
        let inner = aws_config::sts::AssumeRoleProvider::builder(arn)
            .session_name("ctguard-installer")
            .configure(&self.base)
            .build()
            .await;
        let provider = SharedAssumedRole { inner, counter: self.shared.clone(), cached: Default::default() };
        let cfg =
            self.base.clone().into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        cache.insert(account.to_string(), cfg.clone());
        cfg
    }
}

impl Connector for AwsConnector {
    type Api = CfnStacks;

    async fn connect(&self, target: &Target) -> Result<CfnStacks, ApiError> {
        let cfg = in_region(&self.account_config(&target.account).await, &target.region);
        Ok(CfnStacks::new(target.clone(), cfg))
    }

    fn shared_calls(&self) -> u64 {
        self.shared.get()
    }
}

/// CloudFormation (plus S3, CloudTrail, EventBridge, SQS...) in one account × region.
pub struct CfnStacks {
    target: Target,
    cfg: SdkConfig,
    counter: CallCounter,
    cfn: aws_sdk_cloudformation::Client,
}

macro_rules! counted_client {
    ($krate:ident, $cfg:expr, $counter:expr) => {
        $krate::Client::from_conf($krate::config::Builder::from($cfg).interceptor($counter.clone()).build())
    };
}

impl CfnStacks {
    pub fn new(target: Target, cfg: SdkConfig) -> Self {
        let counter = CallCounter::default();
        let cfn = counted_client!(aws_sdk_cloudformation, &cfg, counter);
        CfnStacks { target, cfg, counter, cfn }
    }

    /// This target's configuration (the account's credentials, the target's region).
    pub fn config(&self) -> &SdkConfig {
        &self.cfg
    }

    /// A CloudFormation client of this target, with call counting (StackSets live here too).
    pub fn cloudformation(&self) -> &aws_sdk_cloudformation::Client {
        &self.cfn
    }

    /// S3 of this target: every call carries `ExpectedBucketOwner` (this target's account).
    fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.cfg)
                .interceptor(self.counter.clone())
                .interceptor(ExpectedBucketOwner(self.target.account.clone()))
                .build(),
        )
    }

    /// CloudWatch of this target, with call counting (`status`'s metrics and alarms).
    pub(crate) fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        counted_client!(aws_sdk_cloudwatch, &self.cfg, self.counter)
    }

    fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        counted_client!(aws_sdk_cloudtrail, &in_region(&self.cfg, region), self.counter)
    }

    fn params(spec: &StackSpec) -> Vec<aws_sdk_cloudformation::types::Parameter> {
        spec.parameters
            .iter()
            .map(|(k, v)| {
                aws_sdk_cloudformation::types::Parameter::builder().parameter_key(k).parameter_value(v).build()
            })
            .collect()
    }

    fn tags(spec: &StackSpec) -> Vec<aws_sdk_cloudformation::types::Tag> {
        spec.tags.iter().map(|(k, v)| aws_sdk_cloudformation::types::Tag::builder().key(k).value(v).build()).collect()
    }

    async fn trail_info(&self, t: &aws_sdk_cloudtrail::types::Trail) -> TrailInfo {
        let arn = t.trail_arn().unwrap_or_default().to_string();
        let home = t.home_region().unwrap_or(&self.target.region).to_string();
        let mut info = TrailInfo {
            name: t.name().unwrap_or_default().to_string(),
            arn: arn.clone(),
            home_region: home.clone(),
            multi_region: t.is_multi_region_trail().unwrap_or(false),
            organization: t.is_organization_trail().unwrap_or(false),
            logging: None,
            selectors: Selectors::Default,
        };
        // Status and selectors are only served by the trail's home region.
        let ct = self.cloudtrail(&home);
        if let Ok(s) = ct.get_trail_status().name(&arn).send().await {
            info.logging = s.is_logging();
        }
        if let Ok(sel) = ct.get_event_selectors().trail_name(&arn).send().await {
            if !sel.advanced_event_selectors().is_empty() {
                info.selectors = Selectors::Advanced(
                    sel.advanced_event_selectors()
                        .iter()
                        .map(|a| AdvancedSelector {
                            fields: a
                                .field_selectors()
                                .iter()
                                .map(|f| FieldSelector {
                                    field: f.field().to_string(),
                                    equals: f.equals().to_vec(),
                                    not_equals: f.not_equals().to_vec(),
                                })
                                .collect(),
                        })
                        .collect(),
                );
            } else if !sel.event_selectors().is_empty() {
                info.selectors = Selectors::Basic(
                    sel.event_selectors()
                        .iter()
                        .map(|e| BasicSelector {
                            read_write: e
                                .read_write_type()
                                .map(|r| r.as_str().to_string())
                                .unwrap_or_else(|| "All".into()),
                            include_management: e.include_management_events().unwrap_or(true),
                        })
                        .collect(),
                );
            }
        }
        info
    }
}

impl StackApi for CfnStacks {
    async fn describe(&self, name: &str) -> Result<Option<StackState>, ApiError> {
        let out = match self.cfn.describe_stacks().stack_name(name).send().await {
            Ok(o) => o,
            // A missing stack is data, not failure (unmodelled ValidationError "does not exist").
            Err(e)
                if e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist")) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(ApiError::from_sdk("DescribeStacks", &e)),
        };
        let Some(s) = out.stacks().first() else {
            return Ok(None);
        };
        Ok(Some(StackState {
            name: s.stack_name().unwrap_or(name).to_string(),
            status: s.stack_status().map(|x| x.as_str().to_string()).unwrap_or_default(),
            status_reason: s.stack_status_reason().map(str::to_string),
            tags: s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().into(), t.value().unwrap_or_default().into()))
                .collect(),
            parameters: s
                .parameters()
                .iter()
                .map(|p| (p.parameter_key().unwrap_or_default().into(), p.parameter_value().unwrap_or_default().into()))
                .collect(),
            outputs: s
                .outputs()
                .iter()
                .map(|o| (o.output_key().unwrap_or_default().into(), o.output_value().unwrap_or_default().into()))
                .collect(),
        }))
    }

    async fn create(&self, spec: &StackSpec) -> Result<(), ApiError> {
        self.cfn
            .create_stack()
            .stack_name(spec.name())
            .template_body(spec.template_body)
            .set_parameters(Some(Self::params(spec)))
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .set_tags(Some(Self::tags(spec)))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("CreateStack", &e))?;
        Ok(())
    }

    async fn update(&self, spec: &StackSpec) -> Result<UpdateOutcome, ApiError> {
        match self
            .cfn
            .update_stack()
            .stack_name(spec.name())
            .template_body(spec.template_body)
            .set_parameters(Some(Self::params(spec)))
            .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
            .set_tags(Some(Self::tags(spec)))
            .send()
            .await
        {
            Ok(_) => Ok(UpdateOutcome::Started),
            Err(e) if e.message().is_some_and(|m| m.contains("No updates are to be performed")) => {
                Ok(UpdateOutcome::NoChanges)
            }
            Err(e) => Err(ApiError::from_sdk("UpdateStack", &e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.cfn.delete_stack().stack_name(name).send().await.map_err(|e| ApiError::from_sdk("DeleteStack", &e))?;
        Ok(())
    }
}

impl TargetApi for CfnStacks {
    fn target(&self) -> &Target {
        &self.target
    }

    async fn trail(&self) -> Result<TrailVerdict, ApiError> {
        let out = self
            .cloudtrail(&self.target.region)
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("DescribeTrails", &e))?;
        let mut trails: Vec<_> = out.trail_list().to_vec();
        trails.sort_by_key(|t| {
            (!t.is_organization_trail().unwrap_or(false), !t.is_multi_region_trail().unwrap_or(false))
        });
        // Examine one trail at a time and stop at the first good one: O(1) calls per target.
        let mut seen = Vec::new();
        for t in &trails {
            let info = self.trail_info(t).await;
            if trail::problem(&info).is_none() {
                return Ok(TrailVerdict::Ok { name: info.name });
            }
            seen.push(info);
        }
        Ok(trail::assess(&seen))
    }

    async fn code_present(&self, bucket: &str, key: &str) -> Result<bool, ApiError> {
        match self.s3().head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(ApiError::from_sdk("HeadObject", &e)),
        }
    }

    async fn upload_code(&self, bucket: &str, key: &str, body: &'static [u8]) -> Result<(), ApiError> {
        self.s3()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(body))
            .content_type("application/zip")
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("PutObject", &e))?;
        Ok(())
    }

    async fn bucket_ownership(&self, stack: &str, logical_id: &str, bucket: &str) -> Result<BucketOwnership, ApiError> {
        let r = match self.cfn.describe_stack_resource().stack_name(stack).logical_resource_id(logical_id).send().await
        {
            Ok(r) => r,
            Err(e) if e.code() == Some("ValidationError") => {
                return Ok(BucketOwnership::Unproven(format!(
                    "stack {stack} holds no resource {logical_id} ({})",
                    e.message().unwrap_or_default()
                )))
            }
            Err(e) => return Err(ApiError::from_sdk("DescribeStackResource", &e)),
        };
        let detail = r.stack_resource_detail();
        let physical = detail.and_then(|d| d.physical_resource_id()).unwrap_or_default();
        let status = detail.and_then(|d| d.resource_status()).map(|s| s.as_str()).unwrap_or_default();
        if physical != bucket {
            return Ok(BucketOwnership::Unproven(format!(
                "stack {stack}'s {logical_id} is {physical:?}, not this bucket"
            )));
        }
        if !resource_held(status) {
            return Ok(BucketOwnership::Unproven(format!(
                "stack {stack}'s {logical_id} is {status}: the stack never created it (a bucket of that name already existed)"
            )));
        }
        match self.s3().get_bucket_tagging().bucket(bucket).send().await {
            Ok(t) if t.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE) => {
                Ok(BucketOwnership::Proven)
            }
            Ok(_) => Ok(BucketOwnership::Unproven(format!("no {OWNER_TAG}={OWNER_VALUE} tag"))),
            Err(e) if e.code() == Some("NoSuchTagSet") => {
                Ok(BucketOwnership::Unproven(format!("no tags (no {OWNER_TAG}={OWNER_VALUE} tag)")))
            }
            Err(e) if e.code() == Some("NoSuchBucket") => {
                Ok(BucketOwnership::Unproven("it does not exist (nothing to empty)".into()))
            }
            // 403: not this account's bucket (ExpectedBucketOwner), or no permission to read
            // its tags; either way ownership is not proven.
            Err(e) => Ok(BucketOwnership::Unproven(format!("its tags cannot be read: {}", err_text(&e)))),
        }
    }

    async fn empty_bucket(&self, bucket: &str, retry: &PollOptions) -> Result<usize, ApiError> {
        let s3 = self.s3();
        let mut removed = 0;
        let mut clock = None;
        loop {
            let pass = match empty_pass(&s3, bucket).await? {
                None => return Ok(removed),
                Some(p) => p,
            };
            removed += pass.removed;
            if pass.left == 0 {
                // Everything listed is gone; the next pass confirms the bucket is empty.
                clock = None;
                continue;
            }
            let c = clock.get_or_insert_with(|| retry.backoff());
            if c.timed_out() {
                return Err(ApiError {
                    code: Some("DeletionDenied".into()),
                    message: format!(
                        "s3://{bucket}: {} object versions could not be deleted (retried for {} s): {}{}",
                        pass.left,
                        retry.timeout.as_secs(),
                        pass.denied.join("; "),
                        if pass.left > pass.denied.len() { "; …" } else { "" }
                    ),
                });
            }
            c.sleep().await;
        }
    }

    async fn health(&self, dlq_url: Option<&str>) -> Health {
        let mut h = Health::default();
        let events = counted_client!(aws_sdk_eventbridge, &self.cfg, self.counter);
        match events.describe_rule().name(RULE_NAME).send().await {
            Ok(r) => h.rule_state = r.state().map(|s| s.as_str().to_string()),
            Err(e) => h.unreadable.push(format!("rule: {}", err_text(&e))),
        }
        if let Some(url) = dlq_url {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            let sqs = counted_client!(aws_sdk_sqs, &self.cfg, self.counter);
            match sqs.get_queue_attributes().queue_url(url).attribute_names(A::ApproximateNumberOfMessages).send().await
            {
                Ok(o) => {
                    h.dlq_depth =
                        o.attributes().and_then(|a| a.get(&A::ApproximateNumberOfMessages)).and_then(|v| v.parse().ok())
                }
                Err(e) => h.unreadable.push(format!("DLQ: {}", err_text(&e))),
            }
        }
        h
    }

    async fn leftovers(&self, home: bool, bucket: Option<&str>) -> Result<Vec<String>, ApiError> {
        let mut left = Vec::new();
        for k in StackKind::ALL {
            if let Some(s) = self.describe(k.stack_name()).await? {
                left.push(format!("stack {} ({})", s.name, s.status));
            }
        }
        let lambda = counted_client!(aws_sdk_lambda, &self.cfg, self.counter);
        if lambda.get_function().function_name(FUNCTION_NAME).send().await.is_ok() {
            left.push(format!("lambda function {FUNCTION_NAME}"));
        }
        let events = counted_client!(aws_sdk_eventbridge, &self.cfg, self.counter);
        if events.describe_rule().name(RULE_NAME).send().await.is_ok() {
            left.push(format!("eventbridge rule {RULE_NAME}"));
        }
        let sqs = counted_client!(aws_sdk_sqs, &self.cfg, self.counter);
        if sqs.get_queue_url().queue_name(DLQ_NAME).send().await.is_ok() {
            left.push(format!("sqs queue {DLQ_NAME}"));
        }
        let iam = counted_client!(aws_sdk_iam, &self.cfg, self.counter);
        let role = format!("ctguard-detector-{}", self.target.region);
        if iam.get_role().role_name(&role).send().await.is_ok() {
            left.push(format!("iam role {role}"));
        }
        if home {
            let ddb = counted_client!(aws_sdk_dynamodb, &self.cfg, self.counter);
            if ddb.describe_table().table_name(TABLE_NAME).send().await.is_ok() {
                left.push(format!("dynamodb table {TABLE_NAME}"));
            }
            let sns = counted_client!(aws_sdk_sns, &self.cfg, self.counter);
            let arn = format!("arn:aws:sns:{}:{}:{TOPIC_NAME}", self.target.region, self.target.account);
            if sns.get_topic_attributes().topic_arn(&arn).send().await.is_ok() {
                left.push(format!("sns topic {TOPIC_NAME}"));
            }
        }
        if let Some(b) = bucket {
            if self.s3().head_bucket().bucket(b).send().await.is_ok() {
                left.push(format!("s3 bucket {b}"));
            }
        }
        Ok(left)
    }

    fn calls(&self) -> u64 {
        self.counter.get()
    }
}

/// True when a stack resource in this status is (still) the stack's: created and not deleted.
/// A bucket whose creation failed (CREATE_FAILED: its name was taken) is someone else's.
fn resource_held(status: &str) -> bool {
    let never_created = status.starts_with("CREATE_") && status != "CREATE_COMPLETE";
    let gone = matches!(status, "DELETE_COMPLETE" | "DELETE_SKIPPED" | "");
    !(never_created || gone)
}

/// How many denied versions an error message names.
const DENIED_SHOWN: usize = 5;

/// One pass of [`CfnStacks::empty_bucket`] over every page of versions.
struct EmptyPass {
    removed: usize,
    /// Versions listed but not deleted.
    left: usize,
    /// The first few of them, with S3's reason.
    denied: Vec<String>,
}

/// Lists every object version and delete marker (following the markers, so denied versions
/// never hide the ones after them) and deletes each page. `None`: the bucket is empty or gone.
async fn empty_pass(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<EmptyPass>, ApiError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let mut pass = EmptyPass { removed: 0, left: 0, denied: Vec::new() };
    let mut listed = 0;
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = match s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(None),
            Err(e) => return Err(ApiError::from_sdk("ListObjectVersions", &e)),
        };
        let mut ids = Vec::new();
        for (k, v) in page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
        {
            let Some(k) = k else { continue };
            let id = ObjectIdentifier::builder()
                .key(k)
                .set_version_id(v.map(str::to_string))
                .build()
                .map_err(|e| ApiError::new(e.to_string()))?;
            ids.push(id);
        }
        listed += ids.len();
        // A page holds at most 1000 keys, DeleteObjects' limit.
        for chunk in ids.chunks(1000) {
            let del = Delete::builder()
                .set_objects(Some(chunk.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| ApiError::new(e.to_string()))?;
            match s3.delete_objects().bucket(bucket).delete(del).send().await {
                Ok(out) => {
                    let errors = out.errors();
                    pass.removed += chunk.len().saturating_sub(errors.len());
                    pass.left += errors.len();
                    for e in errors.iter().take(DENIED_SHOWN.saturating_sub(pass.denied.len())) {
                        pass.denied.push(format!(
                            "{} (version {}): {}: {}",
                            e.key().unwrap_or_default(),
                            e.version_id().unwrap_or("null"),
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or_default()
                        ));
                    }
                }
                // The whole request denied (no s3:DeleteObjectVersion at all): every version
                // of the chunk is left; retried like a per-key denial.
                Err(e) if e.code() == Some("AccessDenied") => {
                    pass.left += chunk.len();
                    if pass.denied.len() < DENIED_SHOWN {
                        pass.denied.push(format!("DeleteObjects: {}", err_text(&e)));
                    }
                }
                Err(e) => return Err(ApiError::from_sdk("DeleteObjects", &e)),
            }
        }
        if page.is_truncated() == Some(true) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    Ok((listed > 0).then_some(pass))
}

// ------------------------------------------------------------------------------------------
// Fake (test code only: unit tests, or the `test-support` feature for other crates' tests)

#[cfg(any(test, feature = "test-support"))]
/// In-memory world shared by every [`FakeStacks`] handle: stacks per target, trails, objects,
/// scripted failures and a log of the calls made.
#[derive(Debug, Default)]
pub struct FakeWorld {
    pub stacks: HashMap<(Target, String), StackState>,
    /// Trail verdict per target; targets not listed have a good trail.
    pub trails: HashMap<Target, TrailVerdict>,
    pub objects: HashSet<(String, String)>,
    /// (target, stack) whose next create or update fails (ROLLBACK with this reason).
    pub fail: HashMap<(Target, String), String>,
    /// Targets whose connect fails (e.g. the role cannot be assumed).
    pub unreachable: HashMap<String, String>,
    /// How many describes an operation stays *_IN_PROGRESS (0: settled at once).
    pub in_progress_polls: usize,
    /// Targets where a StackSet instance holds ctguard's fixed resource names (set by
    /// [`crate::stacksets::FakeOrg`]): a direct stack created there fails as on AWS.
    pub foreign: HashSet<Target>,
    /// Buckets of ctguard's name that ctguard cannot prove it owns, with the reason.
    pub unowned_buckets: HashMap<String, String>,
    /// (bucket, key) whose deletion is denied (an SCP, a bucket policy, Object Lock).
    pub denied_objects: HashSet<(String, String)>,
    pending: HashMap<(Target, String), (usize, StackState)>,
    pub calls: Vec<String>,
}

#[cfg(any(test, feature = "test-support"))]
/// A [`Connector`] over a shared [`FakeWorld`].
#[derive(Debug, Clone, Default)]
pub struct FakeCloud(pub Arc<Mutex<FakeWorld>>);

#[cfg(any(test, feature = "test-support"))]
impl FakeCloud {
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeWorld) -> R) -> R {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut w)
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Connector for FakeCloud {
    type Api = FakeStacks;
    async fn connect(&self, target: &Target) -> Result<FakeStacks, ApiError> {
        if let Some(why) = self.with(|w| w.unreachable.get(&target.account).cloned()) {
            return Err(ApiError::new(format!("AssumeRole into {}: {why}", target.account)));
        }
        Ok(FakeStacks { target: target.clone(), cloud: self.clone(), counter: CallCounter::default() })
    }
}

#[cfg(any(test, feature = "test-support"))]
/// One target's view of a [`FakeCloud`].
#[derive(Debug, Clone)]
pub struct FakeStacks {
    target: Target,
    cloud: FakeCloud,
    counter: CallCounter,
}

#[cfg(any(test, feature = "test-support"))]
impl FakeStacks {
    fn call(&self, op: &str, what: &str) {
        self.counter.add();
        let line = format!("{} {op} {what}", self.target);
        self.cloud.with(|w| w.calls.push(line));
    }

    fn start(&self, name: &str, final_state: StackState, in_progress: &str) {
        let key = (self.target.clone(), name.to_string());
        self.cloud.with(|w| {
            let mut shown = final_state.clone();
            shown.status = in_progress.to_string();
            if w.in_progress_polls == 0 {
                w.stacks.insert(key, final_state);
            } else {
                w.stacks.insert(key.clone(), shown);
                w.pending.insert(key, (w.in_progress_polls, final_state));
            }
        });
    }

    fn state_for(&self, spec: &StackSpec, status: &str) -> StackState {
        StackState {
            name: spec.name().to_string(),
            status: status.to_string(),
            status_reason: None,
            tags: spec.tags.clone(),
            parameters: spec.parameters.clone(),
            outputs: BTreeMap::new(),
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl StackApi for FakeStacks {
    async fn describe(&self, name: &str) -> Result<Option<StackState>, ApiError> {
        self.call("DescribeStacks", name);
        let key = (self.target.clone(), name.to_string());
        Ok(self.cloud.with(|w| {
            if let Some((left, fin)) = w.pending.get_mut(&key) {
                if *left <= 1 {
                    let fin = fin.clone();
                    w.pending.remove(&key);
                    if fin.status == "DELETE_COMPLETE" {
                        w.stacks.remove(&key);
                    } else {
                        w.stacks.insert(key.clone(), fin);
                    }
                } else {
                    *left -= 1;
                }
            }
            w.stacks.get(&key).cloned()
        }))
    }

    async fn create(&self, spec: &StackSpec) -> Result<(), ApiError> {
        self.call("CreateStack", spec.name());
        let key = (self.target.clone(), spec.name().to_string());
        if self.cloud.with(|w| w.stacks.contains_key(&key)) {
            return Err(ApiError {
                code: Some("AlreadyExistsException".into()),
                message: format!("Stack [{}] already exists", spec.name()),
            });
        }
        let foreign = self.cloud.with(|w| w.foreign.contains(&self.target));
        let fail = self.cloud.with(|w| w.fail.remove(&key)).or_else(|| {
            (foreign && spec.kind != StackKind::Artifacts).then(|| "Table already exists: ctguard-state".to_string())
        });
        let mut fin = self.state_for(spec, if fail.is_some() { "ROLLBACK_COMPLETE" } else { "CREATE_COMPLETE" });
        fin.status_reason = fail;
        self.start(spec.name(), fin, "CREATE_IN_PROGRESS");
        Ok(())
    }

    async fn update(&self, spec: &StackSpec) -> Result<UpdateOutcome, ApiError> {
        self.call("UpdateStack", spec.name());
        let key = (self.target.clone(), spec.name().to_string());
        let Some(cur) = self.cloud.with(|w| w.stacks.get(&key).cloned()) else {
            return Err(ApiError {
                code: Some("ValidationError".into()),
                message: format!("Stack with id {} does not exist", spec.name()),
            });
        };
        if cur.tags == spec.tags && cur.parameters == spec.parameters {
            return Ok(UpdateOutcome::NoChanges);
        }
        let fin = match self.cloud.with(|w| w.fail.remove(&key)) {
            Some(reason) => {
                StackState { status: "UPDATE_ROLLBACK_COMPLETE".into(), status_reason: Some(reason), ..cur }
            }
            None => self.state_for(spec, "UPDATE_COMPLETE"),
        };
        self.start(spec.name(), fin, "UPDATE_IN_PROGRESS");
        Ok(UpdateOutcome::Started)
    }

    async fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.call("DeleteStack", name);
        let key = (self.target.clone(), name.to_string());
        let Some(cur) = self.cloud.with(|w| w.stacks.get(&key).cloned()) else {
            return Ok(());
        };
        let fin = StackState { status: "DELETE_COMPLETE".into(), ..cur };
        let immediate = self.cloud.with(|w| w.in_progress_polls == 0);
        if immediate {
            self.cloud.with(|w| w.stacks.remove(&key));
        } else {
            self.start(name, fin, "DELETE_IN_PROGRESS");
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-support"))]
impl TargetApi for FakeStacks {
    fn target(&self) -> &Target {
        &self.target
    }
    async fn trail(&self) -> Result<TrailVerdict, ApiError> {
        self.call("DescribeTrails", "");
        Ok(self
            .cloud
            .with(|w| w.trails.get(&self.target).cloned())
            .unwrap_or(TrailVerdict::Ok { name: "fake-trail".into() }))
    }
    async fn code_present(&self, bucket: &str, key: &str) -> Result<bool, ApiError> {
        self.call("HeadObject", key);
        Ok(self.cloud.with(|w| w.objects.contains(&(bucket.to_string(), key.to_string()))))
    }
    async fn upload_code(&self, bucket: &str, key: &str, _body: &'static [u8]) -> Result<(), ApiError> {
        self.call("PutObject", key);
        self.cloud.with(|w| w.objects.insert((bucket.to_string(), key.to_string())));
        Ok(())
    }
    async fn bucket_ownership(
        &self,
        stack: &str,
        _logical_id: &str,
        bucket: &str,
    ) -> Result<BucketOwnership, ApiError> {
        self.call("DescribeStackResource", stack);
        let key = (self.target.clone(), stack.to_string());
        let held = self.cloud.with(|w| w.stacks.get(&key).is_some_and(|s| s.owned() && s.healthy()));
        if !held {
            return Ok(BucketOwnership::Unproven(format!("stack {stack} did not create it")));
        }
        self.call("GetBucketTagging", bucket);
        Ok(match self.cloud.with(|w| w.unowned_buckets.get(bucket).cloned()) {
            Some(why) => BucketOwnership::Unproven(why),
            None => BucketOwnership::Proven,
        })
    }
    async fn empty_bucket(&self, bucket: &str, retry: &PollOptions) -> Result<usize, ApiError> {
        let mut removed = 0;
        let mut clock = None;
        loop {
            self.call("DeleteObjects", bucket);
            let (gone, left) = self.cloud.with(|w| {
                let before = w.objects.len();
                let denied = w.denied_objects.clone();
                w.objects.retain(|o| o.0 != bucket || denied.contains(o));
                let left = w.objects.iter().filter(|o| o.0 == bucket).count();
                (before - w.objects.len(), left)
            });
            removed += gone;
            if left == 0 {
                return Ok(removed);
            }
            let c = clock.get_or_insert_with(|| retry.backoff());
            if c.timed_out() {
                return Err(ApiError {
                    code: Some("DeletionDenied".into()),
                    message: format!("s3://{bucket}: {left} object versions could not be deleted: AccessDenied"),
                });
            }
            c.sleep().await;
        }
    }
    async fn health(&self, _dlq_url: Option<&str>) -> Health {
        self.call("DescribeRule", RULE_NAME);
        let deployed = self.cloud.with(|w| w.stacks.contains_key(&(self.target.clone(), "ctguard-region".to_string())));
        Health {
            rule_state: deployed.then(|| "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS".to_string()),
            dlq_depth: deployed.then_some(0),
            unreadable: vec![],
        }
    }
    async fn leftovers(&self, _home: bool, bucket: Option<&str>) -> Result<Vec<String>, ApiError> {
        let mut left = Vec::new();
        for k in StackKind::ALL {
            if let Some(s) = self.describe(k.stack_name()).await? {
                left.push(format!("stack {} ({})", s.name, s.status));
            }
        }
        if let Some(b) = bucket {
            if self.cloud.with(|w| w.objects.iter().any(|(ob, _)| ob == b)) {
                left.push(format!("s3 objects in {b}"));
            }
        }
        Ok(left)
    }
    fn calls(&self) -> u64 {
        self.counter.get()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A one-request HTTP server on loopback: returns its URL and the request head it received.
    fn one_shot(reply: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = l.accept() else { return };
            let mut head = String::new();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let _ = conn.write_all(reply.as_bytes());
            let _ = tx.send(head.to_ascii_lowercase());
        });
        (url, rx)
    }

    #[tokio::test]
    async fn every_s3_call_names_the_expected_bucket_owner() {
        let (url, rx) = one_shot("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(creds)
            .http_client(ctguard_aws::http_client())
            .load()
            .await;
        let api = CfnStacks::new(Target::new("111111111111", "us-east-1"), cfg);
        let present = api.code_present("ctguard-artifacts-111111111111-us-east-1", "ctguard/x.zip").await.unwrap();
        assert!(!present);
        let head = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(head.starts_with("head "), "{head}");
        assert!(head.contains("x-amz-expected-bucket-owner: 111111111111\r\n"), "{head}");
        // Signed, so a proxy cannot strip it unnoticed.
        assert!(head.contains("x-amz-expected-bucket-owner;"), "{head}");
    }

    #[test]
    fn a_bucket_resource_that_failed_to_create_is_not_held() {
        for s in ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED", "DELETE_FAILED", "DELETE_IN_PROGRESS"] {
            assert!(resource_held(s), "{s}");
        }
        for s in ["CREATE_FAILED", "CREATE_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_SKIPPED", ""] {
            assert!(!resource_held(s), "{s}");
        }
    }
}
