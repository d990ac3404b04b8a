//! `ctguard scan PATH…`: replay CloudTrail/ActionTrail logs through the detector, offline.
//!
//! Reads files, directory trees or `s3://bucket/prefix`, replays every event in event-time
//! order through the same engine the Lambda runs (with an in-memory state store), and prints the
//! alerts it would have raised. With no path it scans a bundled sample so a newcomer sees it
//! work. The summary always says how much of the input could not be read, and where.
//! Exit codes: 0 no alert and every input read, 1 alerts, 2 usage error, 3 no alert but some
//! input unreadable, 5 no CloudTrail or ActionTrail record in the input at all.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ctguard_detector::{Alert, Policy};
use indicatif::HumanBytes;

use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{emit, Table};
use crate::progress::Progress;
use ctguard_forensics::decode::{Limits, DEFAULT_MAX_DECOMPRESSED};
use ctguard_forensics::read::{default_threads, FileError, ReadCounts, ReadOptions};
use ctguard_forensics::scan::{self, ScanOptions, ScanReport, ScanSummary};
use ctguard_forensics::sources::{self, Fetcher, Kind, Listing, Source, SourceKind, TimeRange};
use ctguard_forensics::{SAMPLE_CLOUDTRAIL, SAMPLE_NAME};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Log files, directories or s3://bucket/prefix: CloudTrail (S3 delivery, gzip or plain;
    /// JSON arrays; JSON lines; EventBridge events) or Alibaba Cloud ActionTrail. With none, a
    /// bundled sample is scanned.
    pub paths: Vec<String>,
    /// Only events at or after this time (2018-11-28T23:00:00Z or 2018-11-28).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events at or before this time (a bare date means the end of that day).
    #[arg(long)]
    pub until: Option<String>,
    /// Detector policy (JSON: allowlists, TTLs), the same document the Lambda reads from CTGUARD_POLICY.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Threads decoding files (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub athena: super::athena::AthenaArgs,
}

/// Limits on what one file may cost.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most decompressed data read from one file (512MiB, 16GiB…; default 4GiB). The rest of a
    /// larger file (a gzip bomb, a device) is reported as not read, and the run goes on.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
}

impl LimitArgs {
    pub fn read_options(&self) -> ReadOptions {
        let max_decompressed = self.max_file_size.unwrap_or(DEFAULT_MAX_DECOMPRESSED);
        ReadOptions { limits: Limits { max_decompressed }, pipeline: false }
    }
}

/// Parses a size such as `512MiB`, `4GiB` or `1000000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let v = s
        .trim()
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("`{s}` is not a size (use e.g. 512MiB or 4GiB): {e}"))?
        .as_u64();
    if v == 0 {
        return Err("the size must be above zero".into());
    }
    Ok(v)
}

/// Parses `--since`/`--until`.
pub fn time_range(since: Option<&str>, until: Option<&str>) -> anyhow::Result<TimeRange> {
    let r = TimeRange {
        since: since.map(|s| sources::parse_time_arg(s, false)).transpose().map_err(anyhow::Error::msg)?,
        until: until.map(|s| sources::parse_time_arg(s, true)).transpose().map_err(anyhow::Error::msg)?,
    };
    if let (Some(a), Some(b)) = (r.since, r.until) {
        anyhow::ensure!(a <= b, "--since is after --until");
    }
    Ok(r)
}

/// Reads `--policy`.
pub fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read policy {}", p.display()))?;
            Policy::from_json(&text).with_context(|| format!("policy {}", p.display()))
        }
    }
}

/// The bundled sample as a source.
pub fn sample_source() -> Source {
    Source {
        name: SAMPLE_NAME.into(),
        kind: SourceKind::Embedded(SAMPLE_CLOUDTRAIL),
        size: SAMPLE_CLOUDTRAIL.len() as u64,
    }
}

/// Lists the inputs (or the sample when there are none).
pub async fn inputs(
    paths: &[String],
    kind: Kind,
    range: &TimeRange,
    g: &GlobalArgs,
) -> anyhow::Result<sources::Inputs> {
    if paths.is_empty() {
        eprintln!("ctguard: no path given: using {SAMPLE_NAME} (pass files, directories or s3://bucket/prefix)");
        return Ok(sources::Inputs {
            sources: vec![sample_source()],
            fetcher: Fetcher::local(),
            listing: Default::default(),
        });
    }
    let inputs = sources::resolve(paths, kind, range, &g.aws()).await.map_err(anyhow::Error::msg)?;
    if inputs.sources.is_empty() {
        let l = &inputs.listing;
        let unreadable: Vec<String> = l.errors.iter().map(|e| format!("{}: {}", e.source, e.error)).collect();
        anyhow::bail!(
            "no log files found in {} ({} pruned by the time range, {} ignored by extension, {} FIFOs/sockets/devices skipped{})",
            paths.join(", "),
            l.pruned,
            l.ignored,
            l.special,
            if unreadable.is_empty() { String::new() } else { format!("; not readable: {}", unreadable.join("; ")) }
        );
    }
    Ok(inputs)
}

pub async fn run(args: &ScanArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let range = time_range(args.since.as_deref(), args.until.as_deref())?;
    let policy = load_policy(args.policy.as_ref())?;
    if args.athena.enabled() {
        anyhow::ensure!(args.paths.is_empty(), "--athena reads the table, not paths: drop {}", args.paths.join(" "));
        let Some((report, scanned)) = super::athena::scan(&args.athena, range, policy, g).await? else {
            return Ok(exit::OK);
        };
        render(&report, g.output())?;
        return Ok(super::athena::scan_exit_code(&report, scanned));
    }
    let inputs = inputs(&args.paths, Kind::Trail, &range, g).await?;
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let progress = Progress::bytes(inputs.listing.bytes, inputs.sources.len(), "scanning");
    let threads = sources::workers_for(&inputs.sources, threads);
    let opts = ScanOptions { policy, range, threads, read: args.limits.read_options(), ..ScanOptions::default() };
    let started = std::time::Instant::now();
    let listing = inputs.listing;
    let mut report = scan::scan(inputs.sources, inputs.fetcher, opts, progress.callback()).await?;
    report.summary.listing = listing;
    progress.finish();
    render(&report, g.output())?;
    eprint!("{}", summary_text(&report.summary, started.elapsed()));
    Ok(exit_code(&report))
}

/// 1 when there are alerts, else 5 when not one record was read, else 3 when some input could
/// not be read, else 0.
pub fn exit_code(r: &ScanReport) -> u8 {
    if !r.alerts.is_empty() {
        exit::FINDINGS
    } else if r.summary.read.records == 0 {
        exit::NO_RECORDS
    } else if !r.summary.complete() {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// The alerts as a table.
pub fn alerts_table(alerts: &[Alert]) -> Table {
    let mut t =
        Table::new(["TIME", "SEVERITY", "ACCESS KEY", "SEEN FROM", "TRUSTED", "PRINCIPAL", "API", "ACCOUNT", "REGION"]);
    let shown = |k: &str| k.split_once(':').map(|(_, v)| v.to_string()).unwrap_or_else(|| k.to_string());
    for a in alerts {
        let principal = a.role_arn.as_deref().or(a.principal_arn.as_deref()).unwrap_or("-");
        let api = format!(
            "{}:{}",
            a.offending.event_source.as_deref().map(ctguard_forensics::risk::service_of).unwrap_or("?"),
            a.offending.event_name.as_deref().unwrap_or("?")
        );
        let sev =
            if a.synthetic { format!("{} (synthetic)", a.severity.as_str()) } else { a.severity.as_str().to_string() };
        t.row([
            a.offending.event_time.clone(),
            sev,
            a.access_key_id.clone(),
            shown(&a.seen_identity),
            a.expected.iter().map(|e| shown(&e.identity)).collect::<Vec<_>>().join(" "),
            principal.to_string(),
            api,
            a.account.clone().unwrap_or_else(|| "-".into()),
            a.offending.region.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

fn render(r: &ScanReport, fmt: Output) -> anyhow::Result<()> {
    match fmt {
        Output::Text if r.alerts.is_empty() => println!("{}", no_alert_line(&r.summary)),
        Output::Json => {
            emit(fmt, &r.alerts, &alerts_table(&r.alerts))?;
            // The last line says what was read, so a script never takes "no alert" for "clean".
            let mut v = serde_json::to_value(&r.summary)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("kind".into(), "summary".into());
                o.insert("complete".into(), r.summary.complete().into());
            }
            println!("{}", serde_json::to_string(&v)?);
        }
        _ => emit(fmt, &r.alerts, &alerts_table(&r.alerts))?,
    }
    Ok(())
}

/// What "no alert" means for this input.
pub fn no_alert_line(s: &ScanSummary) -> &'static str {
    if s.read.records == 0 {
        "No CloudTrail or ActionTrail record in the input: nothing was checked."
    } else if !s.complete() {
        "No credential reuse found in the records that could be read, but PART OF THE INPUT COULD NOT BE READ (see the summary)."
    } else {
        "No credential reuse found."
    }
}

/// Places of losses shown in the text summary (the JSON lists more).
const PLACES_SHOWN: usize = 10;

/// How much of the input could not be read, and where: always one line, more when anything
/// was lost. Shared by `scan` and `trace` (`label` names the input: "" or "flow logs: ").
pub fn input_health(label: &str, listing: &Listing, read: &ReadCounts, open_errors: &[FileError]) -> String {
    let mut out = String::new();
    let mut notes = Vec::new();
    for (n, what) in [
        (listing.special, "FIFOs/sockets/devices skipped"),
        (listing.loops, "symlink loops not followed"),
        (listing.duplicates, "files reached twice, read once"),
        (read.other_objects, "JSON objects that are not log records"),
    ] {
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    }
    if !notes.is_empty() {
        out.push_str(&format!("  {label}{}\n", notes.join("; ")));
    }
    let complete = read.complete() && open_errors.is_empty() && listing.errors.is_empty();
    if complete {
        out.push_str(&format!("  {label}unreadable input: none\n"));
        return out;
    }
    let mut parts = Vec::new();
    if read.lost.records() > 0 {
        parts.push(format!("{} records lost", read.lost.records()));
    }
    if read.lost.regions() > 0 {
        parts.push(format!("{} stretches of data lost", read.lost.regions()));
    }
    if read.failed_files + open_errors.len() as u64 > 0 {
        parts.push(format!("{} files not read at all", read.failed_files + open_errors.len() as u64));
    }
    if read.damaged_files > 0 {
        parts.push(format!("{} files read in part", read.damaged_files));
    }
    if !listing.errors.is_empty() {
        parts.push(format!("{} directories or entries not listed", listing.errors.len()));
    }
    out.push_str(&format!("  {label}UNREADABLE INPUT: {}\n", parts.join(", ")));
    if !read.lost.is_empty() {
        out.push_str(&format!("    by reason: {}\n", read.lost.summary()));
    }
    for e in listing.errors.iter().chain(open_errors) {
        out.push_str(&format!("    {}: {}\n", e.source, e.error));
    }
    for l in read.lost.places.iter().take(PLACES_SHOWN) {
        let detail = l.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        out.push_str(&format!("    {}: {}: {}{detail}\n", l.source, l.place(), l.kind.describe()));
    }
    let more = read.lost.total().saturating_sub(read.lost.places.len().min(PLACES_SHOWN) as u64);
    if more > 0 {
        out.push_str(&format!(
            "    … and {more} more (--json lists the first {})\n",
            ctguard_forensics::loss::MAX_PLACES
        ));
    }
    out
}

/// The human summary written to stderr.
pub fn summary_text(s: &ScanSummary, elapsed: std::time::Duration) -> String {
    let mut out = format!(
        "ctguard scan: {} files ({} read, {} decoded) in {:.1}s; {} records, {} events{}\n",
        s.read.files,
        HumanBytes(s.read.bytes_read),
        HumanBytes(s.read.bytes_decoded),
        elapsed.as_secs_f64(),
        s.read.records,
        s.fold.events,
        match (&s.first_event, &s.last_event) {
            (Some(a), Some(b)) => format!(" from {a} to {b}"),
            _ => String::new(),
        }
    );
    out.push_str(&format!(
        "  uses of temporary keys: {} ({} distinct key × network identity, {} repeats); alerts: {}\n",
        s.fold.uses, s.distinct_uses, s.fold.repeats, s.alerts
    ));
    if s.fold.skipped.values().any(|v| *v > 0) {
        let parts: Vec<String> = s
            .fold
            .skipped
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {v}",
                    serde_json::to_value(k).ok().and_then(|x| x.as_str().map(str::to_string)).unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!("  not checked: {}\n", parts.join(", ")));
    }
    let mut odd = Vec::new();
    for (n, what) in [
        (s.fold.opaque_sources, "uses from non-IP sources (compared verbatim)"),
        (s.fold.out_of_range, "outside the time range"),
        (s.fold.untimed_excluded, "without a time (excluded by the range)"),
        (s.read.actiontrail, "ActionTrail events"),
        (s.listing.pruned, "files/folders pruned by date"),
    ] {
        if n > 0 {
            odd.push(format!("{n} {what}"));
        }
    }
    if !odd.is_empty() {
        out.push_str(&format!("  {}\n", odd.join("; ")));
    }
    out.push_str(&input_health("", &s.listing, &s.read, &s.errors));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sample_raises_exactly_one_alert() {
        let opts = ScanOptions::default();
        let r = scan::scan(vec![sample_source()], Fetcher::local(), opts, |_| {}).await.expect("scan");
        assert_eq!(r.alerts.len(), 1);
        let a = &r.alerts[0];
        assert_eq!(a.access_key_id, "ASIAY34FZKBOKMUTVV7A");
        assert_eq!(a.seen_identity, "ip:203.0.113.66");
        assert_eq!(a.scope, "instance");
        assert_eq!(a.offending.event_time, "2024-03-12T09:14:02Z");
        assert_eq!(exit_code(&r), exit::FINDINGS);
        let text = alerts_table(&r.alerts).render_text();
        assert!(text.contains("203.0.113.66") && text.contains("54.210.33.17"), "{text}");
        let sum = summary_text(&r.summary, std::time::Duration::from_millis(5));
        assert!(sum.contains("alerts: 1"), "{sum}");
        assert!(sum.contains("console 1"), "{sum}");
        assert!(sum.contains("unreadable input: none"), "{sum}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn losses_are_always_stated() {
        use ctguard_forensics::loss::{Loss, LossKind};
        let mut read = ReadCounts { records: 5, damaged_files: 1, ..ReadCounts::default() };
        let mut l = Loss::at(LossKind::InvalidUtf8, 40).with_line(3).detail("byte 2 of the record is not UTF-8");
        l.source = "logs/a.json".into();
        read.lost.add(l);
        let listing = Listing {
            special: 2,
            errors: vec![FileError { source: "logs/private".into(), error: "Permission denied".into() }],
            ..Listing::default()
        };
        let text = input_health("", &listing, &read, &[]);
        assert!(text.contains("UNREADABLE INPUT: 1 records lost, 1 files read in part, 1 directories"), "{text}");
        assert!(text.contains("logs/a.json: line 3 (byte 40): record with invalid UTF-8"), "{text}");
        assert!(text.contains("logs/private: Permission denied"), "{text}");
        assert!(text.contains("2 FIFOs/sockets/devices skipped"), "{text}");
    }

    #[test]
    fn time_ranges_are_validated() {
        assert!(time_range(Some("2024-01-02"), Some("2024-01-01")).is_err());
        assert!(time_range(Some("soon"), None).is_err());
        let r = time_range(Some("2024-01-01"), Some("2024-01-01")).expect("range");
        assert_eq!(r.until.zip(r.since).map(|(u, s)| u - s), Some(86_399_999));
    }

    #[test]
    fn policies_are_read_and_checked() {
        assert!(load_policy(None).is_ok());
        let dir = std::env::temp_dir().join(format!("ctguard-scan-policy-{}.json", std::process::id()));
        std::fs::write(&dir, r#"{"allow_cidrs":["10.0.0.0/99"]}"#).expect("write");
        let e = load_policy(Some(&dir)).expect_err("bad prefix");
        assert!(format!("{e:#}").contains("prefix"), "{e:#}");
        let _ = std::fs::remove_file(&dir);
    }
}
