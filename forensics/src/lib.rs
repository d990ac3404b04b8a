//! Forensics over the logs people already have: the library behind `ctguard scan`, `trace` and
//! `keys`. No command line and no terminal here: progress is reported through callbacks.
//!
//! When a key leaks, responders ask: when and from where was it last used; from which addresses
//! is it used at all (to pin it with an allowlist); what risky things did it do; which keys are
//! idle and should be disabled; and, behind a NAT, which private host made the call. These
//! modules answer them offline, from CloudTrail (S3 delivery, arrays, JSON lines, EventBridge
//! envelopes), Alibaba Cloud ActionTrail and VPC flow logs, on local files or `s3://` prefixes.
//!
//! - [`sources`]: listing files and S3 objects, with time-range pruning on the delivery layout;
//! - [`decode`]: a source's bytes → decompressed bytes, streamed, damage reported in line;
//! - [`framing`]: decompressed text → records, one bad byte costing one record;
//! - [`loss`]: the account of what could not be read, by reason and place;
//! - [`read`]: records checked and parsed (envelopes, ActionTrail), on worker threads;
//! - [`scan`]: the ordered replay through the detection engine;
//! - [`trace`]: one key's history, sources, allowlist statement and risky operations;
//! - [`risk`]: the documented catalogue of high-risk operations;
//! - [`flowlogs`]: VPC flow logs and NAT-gateway attribution;
//! - [`keys`]: IAM access keys, their last use, idle ones disabled.

pub mod athena;
pub mod decode;
pub mod flowlogs;
pub mod framing;
pub mod fuzzing;
pub mod keys;
pub mod loss;
pub mod read;
pub mod risk;
pub mod scan;
pub mod sources;
pub mod trace;

/// The bundled sample for `ctguard scan` with no path: an EC2 instance's role credentials used
/// from the instance's address, then replayed from elsewhere (see `forensics/samples/README.md`).
pub const SAMPLE_CLOUDTRAIL: &[u8] = include_bytes!("../samples/cloudtrail-stolen-instance-key.json");

/// Shown as the name of the bundled sample.
pub const SAMPLE_NAME: &str = "<bundled sample: stolen EC2 instance credentials>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses() {
        let text = std::str::from_utf8(SAMPLE_CLOUDTRAIL).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(text).expect("json");
        assert!(v["Records"].as_array().is_some_and(|r| r.len() >= 10));
    }
}
