//! Forensics over the logs people already have: `ctguard scan`, `trace` and `keys`.
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

pub mod decode;
pub mod flowlogs;
pub mod framing;
pub mod keys;
pub mod loss;
pub mod read;
pub mod risk;
pub mod scan;
pub mod sources;
pub mod trace;

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bundled sample for `ctguard scan` with no path: an EC2 instance's role credentials used
/// from the instance's address, then replayed from elsewhere (see `installer/samples/README.md`).
pub const SAMPLE_CLOUDTRAIL: &[u8] = include_bytes!("../../samples/cloudtrail-stolen-instance-key.json");

/// Shown as the name of the bundled sample.
pub const SAMPLE_NAME: &str = "<bundled sample: stolen EC2 instance credentials>";

/// A byte-count progress bar on stderr, drawn only when stderr is a terminal; otherwise a no-op,
/// so piped and CI output stays clean.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `total` bytes over `files` files, labelled `what`.
    pub fn bytes(total: u64, files: usize, what: &str) -> Progress {
        Progress::resolve(std::io::stderr().is_terminal(), total, files, what)
    }

    /// Decides whether to draw (pure apart from building the bar; unit-tested).
    fn resolve(is_tty: bool, total: u64, files: usize, what: &str) -> Progress {
        // A handful of small files finishes before a bar is worth drawing.
        if !is_tty || files < 8 {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(format!("{what} {files} files"));
        Progress(Some(bar))
    }

    /// A callback advancing the bar by one file's size.
    pub fn callback(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = self.0.clone();
        move |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }

    pub fn is_drawn(&self) -> bool {
        self.0.is_some()
    }
}

/// Human byte counts for summaries.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_on_a_terminal_and_for_real_work() {
        assert!(!Progress::resolve(false, 1 << 30, 1000, "x").is_drawn());
        assert!(!Progress::resolve(true, 10, 2, "x").is_drawn());
        let p = Progress::resolve(true, 1 << 30, 1000, "x");
        assert!(p.is_drawn());
        p.finish();
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_sample_parses() {
        let text = std::str::from_utf8(SAMPLE_CLOUDTRAIL).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(text).expect("json");
        assert!(v["Records"].as_array().is_some_and(|r| r.len() >= 10));
    }
}
