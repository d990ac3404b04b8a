//! `ctguard trace --access-key KEY PATH…`: one key's history, sources, allowlist and risky calls.
//!
//! Prints, in order: the last use; the network identities the key was used from, with the
//! detector's verdict on each; an IAM statement pinning the principal to the trusted ones, with
//! its caveats; the high-risk operations ([`ctguard_forensics::risk`]); the call that minted the
//! key; the timeline; and, with `--flow-logs`, the private hosts behind NAT-gateway calls.
//! `--json` writes one object per line with a `kind` field; `--csv` writes the timeline.
//! The summary always says how much of the input could not be read, and the text report says so
//! next to "no use of KEY". Exit codes: 0 nothing notable and every input read, 1 reuse or
//! high-risk operations found, 2 usage error, 3 some input unreadable (and nothing found), 5 no
//! CloudTrail or ActionTrail record in the input at all.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ctguard_detector::identity::Cidr;
use serde_json::json;

use crate::args::{GlobalArgs, Output};
use crate::commands::scan::{input_health, inputs, load_policy, time_range, LimitArgs};
use crate::exit;
use crate::output::Table;
use crate::progress::Progress;
use ctguard_forensics::flowlogs::{Candidate, FlowCounts, Format, IpRanges, NatGateway};
use ctguard_forensics::read::{default_threads, FileError, ReadCounts, ReadOptions};
use ctguard_forensics::sources::{self, Kind, Listing, TimeRange};
use ctguard_forensics::trace::{self, TraceEvent, TraceOptions, TraceReport};

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The access key ID to trace (ASIA…/AKIA… on AWS, STS.…/LTAI… on Alibaba Cloud).
    #[arg(long, value_name = "KEY")]
    pub access_key: String,
    /// Log files, directories or s3://bucket/prefix (CloudTrail or ActionTrail). With none, the
    /// bundled sample is read.
    pub paths: Vec<String>,
    /// Only events at or after this time (2018-11-28T23:00:00Z or 2018-11-28).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events at or before this time (a bare date means the end of that day).
    #[arg(long)]
    pub until: Option<String>,
    /// VPC flow logs (files, directories or s3://): name the private hosts behind calls made
    /// from a NAT gateway address.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub flow_logs: Vec<String>,
    /// A NAT gateway: PUBLIC_IP[=PRIVATE_IP|eni-…[,…]]. NAT gateways created in the logs read
    /// (CreateNatGateway) are found without it.
    #[arg(long, value_name = "MAPPING")]
    pub nat: Vec<String>,
    /// AWS ip-ranges.json, to match flows against the called service's endpoint addresses.
    #[arg(long, value_name = "FILE")]
    pub ip_ranges: Option<PathBuf>,
    /// Endpoint networks to match flows against (instead of --ip-ranges).
    #[arg(long, value_name = "CIDR")]
    pub endpoint_cidr: Vec<String>,
    /// Field list of flow logs that have no header line, e.g. '${srcaddr} ${dstaddr} ${start} ${end}'
    /// (default: the version 2 format).
    #[arg(long, value_name = "FIELDS")]
    pub flow_log_format: Option<String>,
    /// Detector policy (JSON), as for `ctguard scan`.
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

/// Access key IDs are short runs of letters, digits and (Alibaba `STS.`) dots.
fn check_key(k: &str) -> anyhow::Result<()> {
    let ok = (12..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    anyhow::ensure!(ok, "--access-key `{k}` does not look like an access key ID");
    Ok(())
}

/// Flow-log attribution inputs, validated before any log is read.
struct FlowSetup {
    nats: Vec<NatGateway>,
    ranges: Option<IpRanges>,
    cidrs: Vec<Cidr>,
    format: Format,
}

fn flow_setup(args: &TraceArgs) -> anyhow::Result<FlowSetup> {
    let nats =
        args.nat.iter().map(|n| NatGateway::parse_arg(n)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    let ranges = match &args.ip_ranges {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            Some(IpRanges::parse(&text).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let cidrs =
        args.endpoint_cidr.iter().map(|c| Cidr::parse(c)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    let format = match &args.flow_log_format {
        Some(f) => Format::from_fields(f).map_err(anyhow::Error::msg)?,
        None => Format::default_v2(),
    };
    if args.flow_logs.is_empty()
        && (!args.nat.is_empty() || ranges.is_some() || !cidrs.is_empty() || args.flow_log_format.is_some())
    {
        anyhow::bail!("--nat, --ip-ranges, --endpoint-cidr and --flow-log-format only apply with --flow-logs");
    }
    Ok(FlowSetup { nats, ranges, cidrs, format })
}

/// NAT attribution results.
struct NatResult {
    candidates: Vec<Candidate>,
    counts: FlowCounts,
    errors: Vec<FileError>,
    listing: Listing,
    calls: usize,
}

impl NatResult {
    /// Whether the flow logs (when any had to be read) were read whole and held flow records.
    fn complete(&self) -> bool {
        let read_any = self.counts.files > 0;
        self.counts.complete()
            && self.errors.is_empty()
            && self.listing.errors.is_empty()
            && (!read_any || self.counts.records > 0)
    }
}

pub async fn run(args: &TraceArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    check_key(&args.access_key)?;
    let range = time_range(args.since.as_deref(), args.until.as_deref())?;
    let policy = load_policy(args.policy.as_ref())?;
    if args.athena.enabled() {
        anyhow::ensure!(args.paths.is_empty(), "--athena reads the table, not paths: drop {}", args.paths.join(" "));
        let rows = super::athena::trace(&args.athena, &args.access_key, range, g).await?;
        return Ok(if rows.unwrap_or(0) > 0 { exit::FINDINGS } else { exit::OK });
    }
    let flow = flow_setup(args)?;
    let threads = args.threads.map_or_else(default_threads, usize::from);
    let inputs = inputs(&args.paths, Kind::Trail, &range, g).await?;
    let workers = sources::workers_for(&inputs.sources, threads);
    let read = args.limits.read_options();
    let opts = TraceOptions {
        key: args.access_key.clone(),
        range,
        policy,
        threads: workers,
        discover_nats: !args.flow_logs.is_empty(),
        read,
    };
    let progress = Progress::bytes(inputs.listing.bytes, inputs.sources.len(), "tracing");
    let cb = progress.callback();
    let o = opts.clone();
    let listing = inputs.listing;
    let part = tokio::task::spawn_blocking(move || trace::collect(&inputs.sources, &inputs.fetcher, &o, cb)).await?;
    progress.finish();
    let mut report = trace::report(part, &opts, &flow.nats).await?;
    report.listing = listing;

    let nat = if args.flow_logs.is_empty() {
        None
    } else {
        Some(attribute(&report, &flow, &args.flow_logs, threads, read, g).await?)
    };
    render(&report, nat.as_ref(), g.output())?;
    eprint!("{}", summary(&report, nat.as_ref()));
    Ok(exit_code(&report, nat.as_ref()))
}

/// 1 for reuse or high-risk calls, else 5 when not one record was read, else 3 when some input
/// (logs or flow logs) could not be read, else 0.
fn exit_code(report: &TraceReport, nat: Option<&NatResult>) -> u8 {
    if !report.alerts.is_empty() || !report.high_risk.is_empty() {
        exit::FINDINGS
    } else if report.read.records == 0 {
        exit::NO_RECORDS
    } else if !report.complete() || nat.is_some_and(|n| !n.complete()) {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

async fn attribute(
    report: &TraceReport,
    flow: &FlowSetup,
    paths: &[String],
    threads: usize,
    read: ReadOptions,
    g: &GlobalArgs,
) -> anyhow::Result<NatResult> {
    let queries = trace::nat_queries(report, flow.ranges.as_ref(), &flow.cidrs);
    let calls = queries.len();
    if queries.is_empty() {
        return Ok(NatResult {
            candidates: Vec::new(),
            counts: FlowCounts::default(),
            errors: Vec::new(),
            listing: Listing::default(),
            calls,
        });
    }
    let lo = queries.iter().map(|q| q.time_s).min().unwrap_or(0).saturating_mul(1000);
    let hi = queries.iter().map(|q| q.time_s).max().unwrap_or(0).saturating_mul(1000);
    // Flow windows last up to 10 minutes; a generous margin keeps pruning safe.
    let margin = 3_600_000;
    let range = TimeRange { since: Some(lo.saturating_sub(margin)), until: Some(hi.saturating_add(margin)) };
    let inputs = sources::resolve(paths, Kind::FlowLogs, &range, &g.aws()).await.map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!inputs.sources.is_empty(), "no flow-log files found in {}", paths.join(", "));
    let fmt = flow.format.clone();
    let threads = sources::workers_for(&inputs.sources, threads);
    let listing = inputs.listing;
    let (candidates, counts, errors) = tokio::task::spawn_blocking(move || {
        trace::attribute(queries, &inputs.sources, &inputs.fetcher, &fmt, threads, read)
    })
    .await?;
    Ok(NatResult { candidates, counts, errors, listing, calls })
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn short_agent(ua: &Option<String>) -> String {
    let ua = opt(ua);
    let first = ua.trim_matches(|c| c == '[' || c == ']').split_whitespace().next().unwrap_or("-").to_string();
    first.chars().take(40).collect()
}

/// The timeline as a table (also the `--csv` output).
pub fn timeline_table(events: &[TraceEvent]) -> Table {
    let mut t = Table::new(["TIME", "RELATION", "SOURCE", "API", "REGION", "RESULT", "RISK", "USER AGENT", "EVENT ID"]);
    for e in events {
        t.row([
            opt(&e.time),
            match e.relation {
                trace::Relation::Use => "use".to_string(),
                trace::Relation::Issued => "issued-by".to_string(),
            },
            e.network.clone(),
            e.api(),
            opt(&e.region),
            e.result().to_string(),
            e.risk.as_ref().map(|r| r.category.as_str().to_string()).unwrap_or_default(),
            short_agent(&e.user_agent),
            opt(&e.event_id),
        ]);
    }
    t
}

fn render(r: &TraceReport, nat: Option<&NatResult>, fmt: Output) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match fmt {
        Output::Csv => out.write_all(timeline_table(&r.timeline).render_csv()?.as_bytes())?,
        Output::Json => {
            let complete = r.complete() && nat.is_none_or(NatResult::complete);
            let mut lines = vec![json!({"kind": "summary", "access_key_id": r.access_key_id, "calls": r.calls,
                "first_use": r.first_use, "last_use": r.last_use.as_ref().and_then(|e| e.time.clone()),
                "alerts": r.alerts.len(), "high_risk": r.high_risk.len(), "complete": complete,
                "listing": r.listing, "read": r.read, "errors": r.errors,
                "flow_logs": nat.map(|n| json!({"read": n.counts, "listing": n.listing, "errors": n.errors}))})];
            if let Some(l) = &r.last_use {
                lines.push(json!({"kind": "last_use", "event": l}));
            }
            lines.extend(r.sources.iter().map(|s| json!({"kind": "source", "source": s})));
            lines.push(json!({"kind": "policy", "policy": r.policy}));
            lines.extend(r.high_risk.iter().map(|e| json!({"kind": "high_risk", "event": e})));
            lines.extend(r.issued_by.iter().map(|e| json!({"kind": "issued_by", "event": e})));
            lines.extend(r.alerts.iter().map(|a| json!({"kind": "alert", "alert": a})));
            lines.extend(r.timeline.iter().map(|e| json!({"kind": "event", "event": e})));
            if let Some(n) = nat {
                for c in &n.candidates {
                    let call = r.timeline.get(c.call);
                    lines.push(json!({"kind": "nat_host", "call_time": call.and_then(|e| e.time.clone()),
                        "call": call.map(TraceEvent::api), "nat_address": call.map(|e| e.network.clone()), "candidate": c}));
                }
            }
            for l in lines {
                writeln!(out, "{}", serde_json::to_string(&l)?)?;
            }
        }
        Output::Text => out.write_all(text_report(r, nat).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

fn text_report(r: &TraceReport, nat: Option<&NatResult>) -> String {
    let mut s = String::new();
    let Some(last) = &r.last_use else {
        if r.read.records == 0 {
            s.push_str(&format!(
                "No use of {}: the input holds no CloudTrail or ActionTrail record at all, so nothing was checked.\n",
                r.access_key_id
            ));
        } else {
            s.push_str(&format!("No use of {} in the {} records read.\n", r.access_key_id, r.read.records));
        }
        if !r.complete() {
            s.push_str(
                "PART OF THE INPUT COULD NOT BE READ (see the summary): the key may have been used in what was lost.\n",
            );
        }
        for e in &r.issued_by {
            s.push_str(&format!("It was issued by {} at {} from {}.\n", e.api(), opt(&e.time), e.network));
        }
        return s;
    };
    s.push_str(&format!(
        "Access key {}: {} calls from {} to {}\n\nLAST USE\n",
        r.access_key_id,
        r.calls,
        r.first_use.as_deref().unwrap_or("-"),
        last.time.as_deref().unwrap_or("-")
    ));
    s.push_str(&last_use_text(last));
    s.push_str("\nSOURCES\n");
    s.push_str(&sources_table(r).render_text());
    s.push_str(&policy_text(r));
    s.push_str(&high_risk_text(r));
    if !r.issued_by.is_empty() {
        s.push_str("\nISSUED BY\n");
        for e in &r.issued_by {
            let by = e.principal_arn.clone().or_else(|| e.principal_type.clone()).unwrap_or_else(|| "-".into());
            s.push_str(&format!("  {} {} by {by} from {}\n", opt(&e.time), e.api(), e.network));
        }
    }
    s.push_str("\nTIMELINE\n");
    s.push_str(&timeline_table(&r.timeline).render_text());
    if let Some(n) = nat {
        s.push_str(&nat_text(r, n));
    }
    s
}

/// The last call as `key value` lines.
fn last_use_text(last: &TraceEvent) -> String {
    let mut t = Table::new(["", ""]);
    for (k, v) in [
        ("time", opt(&last.time)),
        ("identity", format!("{} ({})", opt(&last.principal_arn), opt(&last.principal_type))),
        ("service", opt(&last.event_source)),
        ("api", opt(&last.event_name)),
        ("region", opt(&last.region)),
        ("source", last.network.clone()),
        ("user agent", opt(&last.user_agent)),
        ("result", last.result().to_string()),
    ] {
        t.row([format!("  {k}"), v]);
    }
    // Skip the empty header line.
    t.render_text().split_once('\n').map(|x| x.1.to_string()).unwrap_or_default()
}

fn sources_table(r: &TraceReport) -> Table {
    let mut t = Table::new(["SOURCE", "CALLS", "ERRORS", "FIRST SEEN", "LAST SEEN", "SERVICES", "REGIONS", "VERDICT"]);
    for x in &r.sources {
        t.row([
            x.network.clone(),
            x.calls.to_string(),
            x.errors.to_string(),
            opt(&x.first_seen),
            opt(&x.last_seen),
            x.services.iter().cloned().collect::<Vec<_>>().join(","),
            x.regions.iter().cloned().collect::<Vec<_>>().join(","),
            if x.verdict == "reuse-alert" { "REUSE ALERT".to_string() } else { x.verdict.clone() },
        ]);
    }
    t
}

fn policy_text(r: &TraceReport) -> String {
    let mut s = String::from("\nALLOWLIST POLICY STATEMENT");
    if let Some(p) = &r.policy.attach_to {
        s.push_str(&format!(" (for {p})"));
    }
    s.push('\n');
    if let Some(st) = &r.policy.statement {
        s.push_str(&serde_json::to_string_pretty(st).unwrap_or_default());
        s.push('\n');
    }
    for c in &r.policy.caveats {
        s.push_str(&format!("  - {c}\n"));
    }
    s
}

fn high_risk_text(r: &TraceReport) -> String {
    let mut s = format!("\nHIGH-RISK OPERATIONS ({})\n", r.high_risk.len());
    if !r.high_risk.is_empty() {
        let mut t = Table::new(["TIME", "CATEGORY", "API", "SOURCE", "RESULT", "WHY"]);
        for e in &r.high_risk {
            let (cat, why) = e.risk.as_ref().map(|x| (x.category.as_str(), x.why)).unwrap_or(("", ""));
            t.row([opt(&e.time), cat.to_string(), e.api(), e.network.clone(), e.result().to_string(), why.to_string()]);
        }
        s.push_str(&t.render_text());
    }
    s
}

/// The calls made from known NAT gateway addresses and the private hosts behind them.
fn nat_text(r: &TraceReport, n: &NatResult) -> String {
    let mut s = format!("\nHOSTS BEHIND NAT GATEWAYS ({} calls from known NAT addresses)\n", n.calls);
    if n.calls == 0 {
        let known: Vec<&str> = r.nat_gateways.iter().map(|g| g.public_ip.as_str()).collect();
        s.push_str(&format!(
            "  No call came from a known NAT gateway address (known: {}). Name one with --nat PUBLIC=PRIVATE.\n",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
        return s;
    }
    if n.candidates.is_empty() {
        s.push_str("  No flow matched the calls' time windows.\n");
        return s;
    }
    let mut t = Table::new(["CALL TIME", "API", "NAT ADDRESS", "HOST", "INSTANCE", "EVIDENCE", "FLOWS", "GAP"]);
    for c in &n.candidates {
        let call = r.timeline.get(c.call);
        t.row([
            call.map(|e| opt(&e.time)).unwrap_or_default(),
            call.map(TraceEvent::api).unwrap_or_default(),
            call.map(|e| e.network.clone()).unwrap_or_default(),
            c.host.clone(),
            opt(&c.instance_id),
            c.evidence.describe().to_string(),
            c.flows.to_string(),
            format!("{}s", c.distance_s),
        ]);
    }
    s.push_str(&t.render_text());
    s
}

fn summary(r: &TraceReport, nat: Option<&NatResult>) -> String {
    let mut s = format!(
        "ctguard trace: {} files ({} parsed, {} without the key), {} records; {} calls, {} high-risk, {} reuse alerts",
        r.read.files,
        r.read.files.saturating_sub(r.read.skipped_files).saturating_sub(r.read.failed_files),
        r.read.skipped_files,
        r.read.records,
        r.calls,
        r.high_risk.len(),
        r.alerts.len()
    );
    if r.out_of_range > 0 {
        s.push_str(&format!("; {} events outside the time range", r.out_of_range));
    }
    s.push('\n');
    s.push_str(&input_health("", &r.listing, &r.read, &r.errors));
    if let Some(n) = nat {
        s.push_str(&format!(
            "  flow logs: {} files, {} records ({} empty, {} unreadable lines)\n",
            n.counts.files, n.counts.records, n.counts.empty, n.counts.unreadable
        ));
        if n.counts.files > 0 && n.counts.records == 0 {
            s.push_str("  FLOW LOGS HOLD NO FLOW RECORD: no host could be attributed\n");
        }
        let flow_read = ReadCounts {
            failed_files: n.counts.failed_files,
            damaged_files: n.counts.damaged_files,
            lost: n.counts.lost.clone(),
            ..ReadCounts::default()
        };
        s.push_str(&input_health("flow logs: ", &n.listing, &flow_read, &n.errors));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("ASIAZQNB3KHGIGYQXVVG").is_ok());
        assert!(check_key("STS.NUQNP4PiGyckMsNiGELCs").is_ok());
        assert!(check_key("ASIA").is_err());
        assert!(check_key("ASIA' OR 1=1 --xxxxx").is_err());
    }

    #[test]
    fn agents_are_shortened() {
        assert_eq!(
            short_agent(&Some("[aws-cli/1.16.19 Python/2.7.10 Darwin/17.7.0 botocore/1.12.9]".into())),
            "aws-cli/1.16.19"
        );
        assert_eq!(short_agent(&None), "-");
    }
}
