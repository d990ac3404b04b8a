//! Forensics at Organization scale: `scan` and `trace` pushed into Amazon Athena.
//!
//! An Organization's trail holds terabytes; downloading it to one machine takes hours. Athena
//! already reads that bucket in parallel, so ctguard sends it the *reduction* its local scan does
//! (the first use of each key from each network identity, plus the rotation and move signals;
//! [`SCAN_SQL`]) and replays the few returned rows through the same [`Detector`](ctguard_detector::Detector)
//! as a local scan. The rules stay in Rust: the SQL only groups and picks the earliest row.
//!
//! - [`sql`]: the table, the partition predicates and the query text (from `forensics/sql/`);
//! - [`query`]: the Athena seam (start, poll with backoff, pages, cancel) and its runner;
//! - [`aws`]: the seam over `aws-sdk-athena`;
//! - [`replay`]: result rows → CloudTrail records → the local fold and ordered replay.

pub mod aws;
pub mod query;
pub mod replay;
pub mod sql;

pub use sql::{Plan, Target, SCAN_SQL, TABLE_DDL, TRACE_SQL};

/// Athena's published on-demand price for SQL queries, per TB of data scanned (us-east-1 and most
/// Regions), with the 10 MB minimum per query.
pub const PRICE_USD_PER_TB: f64 = 5.0;
/// Where and when [`PRICE_USD_PER_TB`] was read.
pub const PRICE_SOURCE: &str =
    "https://aws.amazon.com/athena/pricing/ (USD 5.00 per TB scanned, 10 MB minimum per query; as published 2025-01)";
/// Athena bills at least this many bytes per query.
pub const MIN_BILLED_BYTES: u64 = 10 * 1_000_000;

/// The price of scanning `bytes`, in USD.
pub fn price_usd(bytes: u64) -> f64 {
    bytes.max(MIN_BILLED_BYTES) as f64 / 1e12 * PRICE_USD_PER_TB
}

/// The least-privilege IAM policy for `ctguard scan/trace --athena` (`ctguard template athena-policy`).
pub const POLICY: &str = include_str!("../../sql/athena-policy.json");

/// The high-risk category of a `trace` result row (`eventsource`, `eventname`), from the same
/// catalogue a local trace uses.
pub fn risk_of(row: &query::Row) -> Option<String> {
    let e = crate::risk::lookup(row.get("eventsource")?, row.get("eventname")?)?;
    Some(format!("{}: {}", e.category.as_str(), e.why))
}
