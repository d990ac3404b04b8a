//! ctguard's deployment engine: everything `ctguard install`, `status`, `verify` and
//! `uninstall` do, without a command line or a terminal. The `ctguard` binary parses flags into
//! the plain option structs taken here and renders the reports and [`deploy::DeployEvent`]s
//! this crate returns and emits.
//!
//! - [`targets`]: accounts × regions, validated and expanded (pure);
//! - [`org`]: account and region selection through AWS Organizations and Account Management;
//! - [`session`]: the shared set-up (SDK config, caller, targets, connector);
//! - [`trail`]: the CloudTrail prerequisite, judged purely;
//! - [`plan`]: observed stack state + desired specs → actions (pure);
//! - [`stacks`]: the AWS seam ([`stacks::StackApi`], [`stacks::TargetApi`]) and its
//!   CloudFormation implementation;
//! - [`stacksets`]: the service-managed StackSets seam and a fake organization that honours
//!   OU targeting, account filters and automatic deployment;
//! - [`ownership`]: who owns each account × region (direct stacks or a StackSet), decided once;
//! - [`deploy`]: install and uninstall over many targets with bounded concurrency;
//! - [`autodeploy`]: service-managed StackSets for accounts that join later;
//! - [`preflight`]: what install needs from AWS, checked before any change;
//! - [`installer_policy`]: the installing principal's own least-privilege IAM policy;
//! - [`inspect`]: `status` without the printing;
//! - [`metrics`]: `status`'s CloudWatch metrics and alarms, and `status --cost`;
//! - [`verify`]: the end-to-end proof that a reused credential raises an alert;
//! - [`embedded`]: the Lambda zip and the CloudFormation templates this crate deploys.

pub mod autodeploy;
pub mod contain;
pub mod deploy;
pub mod embedded;
pub mod inspect;
pub mod installer_policy;
pub mod metrics;
pub mod org;
pub mod ownership;
pub mod plan;
pub mod preflight;
pub mod redrive;
pub mod session;
pub mod stacks;
pub mod stacksets;
pub mod targets;
pub mod trail;
pub mod validate;
pub mod verify;
