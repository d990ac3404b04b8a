//! `ctguard trace`: everything one access key did, from the logs.
//!
//! Answers, for one key: when and from where was it last used; from which network identities
//! is it used at all (with a ready IAM statement pinning the principal to the legitimate ones);
//! which high-risk operations it made ([`super::risk`]); the full timeline; which call minted
//! it; and, for calls from a NAT gateway, which private host made them ([`super::flowlogs`]).
//!
//! Files that do not mention the key are skipped after decoding, without parsing, so a trace
//! over a large corpus costs little more than decompressing it. The key's uses also go through
//! the same fold and ordered replay as `scan`, so "which sources are legitimate" is the
//! detector's own answer: the first identity is trusted, a later new one is reuse.

use std::collections::{BTreeMap, BTreeSet};

use ctguard_detector::identity::{classify as classify_origin, NetworkIdentity, Origin};
use ctguard_detector::time::{format_rfc3339, Millis};
use ctguard_detector::{Alert, Policy, Record};
use serde::Serialize;
use serde_json::{json, Value};

use super::flowlogs::{self, Attribution, Candidate, NatGateway, Query};
use super::read::{self, FileError, Filter, ReadCounts, ReadOptions, Seq};
use super::risk::{self, Category};
use super::scan::{self, pipeline_for, Fold, ScanOptions};
use super::sources::{Fetcher, Input, Listing, Source, TimeRange};

/// How a record relates to the traced key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// A call signed with the key.
    Use,
    /// The call whose response created the key (`AssumeRole`, `GetSessionToken`, `CreateAccessKey`…).
    Issued,
}

/// The risk tag of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RiskTag {
    pub category: Category,
    pub why: &'static str,
}

/// One event of the key, reduced to what a responder reads (never parameters or responses,
/// which can hold secrets).
#[derive(Clone, Debug, Serialize)]
pub struct TraceEvent {
    pub time: Option<String>,
    #[serde(skip)]
    pub time_ms: Option<Millis>,
    #[serde(skip)]
    pub seq: Seq,
    pub relation: Relation,
    pub event_name: Option<String>,
    pub event_source: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub source_ip: Option<String>,
    pub vpc_endpoint_id: Option<String>,
    /// The network identity label (`203.0.113.7`, `vpce-0abc`, `aws-service lambda.amazonaws.com`…).
    pub network: String,
    #[serde(skip)]
    network_key: Option<String>,
    #[serde(skip)]
    network_kind: NetKind,
    pub principal_arn: Option<String>,
    pub principal_type: Option<String>,
    pub account: Option<String>,
    pub user_agent: Option<String>,
    pub error_code: Option<String>,
    pub event_id: Option<String>,
    pub risk: Option<RiskTag>,
    /// Whether the credentials came from the EC2 instance metadata service.
    #[serde(skip)]
    pub ec2_delivered: bool,
    #[serde(skip)]
    pub role_arn: Option<String>,
}

impl TraceEvent {
    /// Timeline order: time, then the event's own fields, then its place in the input. Of two
    /// copies of one event id the first in this order is kept; `sql/trace.sql` keeps the same
    /// one, since a file position (which Athena's rows lack) decides only between copies that
    /// are identical in every field compared here.
    fn order(&self) -> (Millis, [&str; 7], Seq) {
        fn f(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or_default()
        }
        let fields = [
            f(&self.event_source),
            f(&self.event_name),
            f(&self.region),
            f(&self.source_ip),
            f(&self.vpc_endpoint_id),
            f(&self.user_agent),
            f(&self.error_code),
        ];
        (self.time_ms.unwrap_or(Millis::MIN), fields, self.seq)
    }
    pub fn api(&self) -> String {
        format!("{}:{}", self.service.as_deref().unwrap_or("?"), self.event_name.as_deref().unwrap_or("?"))
    }
    pub fn result(&self) -> &str {
        self.error_code.as_deref().unwrap_or("ok")
    }
}

/// What kind of network identity a call came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetKind {
    Ip,
    Ip6,
    Vpce,
    /// An AWS service acting for the principal.
    AwsService,
    /// A private address without a VPC endpoint.
    Private,
    /// A value that is not an address.
    Opaque,
    #[default]
    None,
}

fn network_of(r: &Record) -> (NetKind, String, Option<String>) {
    let src = r.source_ip_address.get();
    match classify_origin(src, r.vpc_endpoint_id.get(), r.vpc_endpoint_account_id.get()) {
        Origin::Identity(i) => {
            let key = Some(i.key());
            match i {
                NetworkIdentity::V4(a) => (NetKind::Ip, a.to_string(), key),
                NetworkIdentity::V6Net(a) => (NetKind::Ip6, format!("{a}/64"), key),
                NetworkIdentity::VpcEndpoint { id, .. } => (NetKind::Vpce, id, key),
                NetworkIdentity::Opaque(s) => (NetKind::Opaque, s, key),
            }
        }
        Origin::AwsService => (NetKind::AwsService, format!("aws-service {}", src.unwrap_or("")), None),
        Origin::Unattributable => (NetKind::Private, format!("private {}", src.unwrap_or("")), None),
        Origin::Missing => (NetKind::None, "-".into(), None),
    }
}

fn owned(t: &ctguard_detector::event::Text) -> Option<String> {
    t.get().map(str::to_string)
}

fn trace_event(r: &Record, seq: Seq, relation: Relation) -> TraceEvent {
    let (kind, label, key) = network_of(r);
    let source = r.event_source.get();
    let name = r.event_name.get();
    let ui = r.user_identity.as_ref();
    TraceEvent {
        time: r.time().map(format_rfc3339),
        time_ms: r.time(),
        seq,
        relation,
        event_name: name.map(str::to_string),
        event_source: source.map(str::to_string),
        service: source.map(|s| risk::service_of(s).to_string()),
        region: owned(&r.aws_region),
        source_ip: owned(&r.source_ip_address),
        vpc_endpoint_id: owned(&r.vpc_endpoint_id),
        network: label,
        network_key: key,
        network_kind: kind,
        principal_arn: ui.and_then(|u| owned(&u.arn)),
        principal_type: ui.and_then(|u| owned(&u.kind)),
        account: r.account().map(str::to_string),
        user_agent: r.user_agent().map(str::to_string),
        error_code: owned(&r.error_code),
        event_id: owned(&r.event_id),
        risk: match (relation, source, name) {
            (Relation::Use, Some(s), Some(n)) => {
                risk::lookup(s, n).map(|e| RiskTag { category: e.category, why: e.why })
            }
            _ => None,
        },
        ec2_delivered: r.ec2_role_delivery(),
        role_arn: r.role_arn().map(str::to_string),
    }
}

/// Whether the record's response created `key` (looked up as text: every API that mints keys
/// returns the new id under `accessKeyId`, at different depths).
fn issued(r: &Record, key: &str) -> bool {
    r.response_elements.is_some_and(|raw| {
        let t = raw.get();
        t.contains(key) && t.contains("accessKeyId")
    })
}

/// Options of one trace.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub key: String,
    pub range: TimeRange,
    pub policy: Policy,
    pub threads: usize,
    /// Also collect NAT gateways from `CreateNatGateway` events.
    pub discover_nats: bool,
    pub read: ReadOptions,
}

/// What one file (or a merge of files) contributed.
#[derive(Debug, Default)]
pub struct TracePart {
    events: Vec<TraceEvent>,
    fold: Fold,
    nats: Vec<NatGateway>,
    read: ReadCounts,
    errors: Vec<FileError>,
    out_of_range: u64,
}

impl TracePart {
    fn merge(&mut self, o: TracePart) {
        self.events.extend(o.events);
        self.fold.merge(o.fold);
        self.nats.extend(o.nats);
        self.read.merge(o.read);
        self.errors.extend(o.errors);
        self.out_of_range += o.out_of_range;
    }
}

fn trace_file(index: usize, src: &Source, input: Input<'_>, opts: &TraceOptions, scan_opts: &ScanOptions) -> TracePart {
    let mut part = TracePart::default();
    let mut needles = vec![opts.key.clone()];
    if opts.discover_nats {
        needles.push("CreateNatGateway".into());
        needles.push("AssociateNatGatewayAddress".into());
    }
    let filter = Filter { needles };
    let mut counts = ReadCounts::default();
    read::for_each_record(index, &src.name, input, &opts.read, &filter, &mut counts, |r, source, seq| {
        let name = r.event_name.get().unwrap_or("");
        if opts.discover_nats
            && r.error_code.get().is_none()
            && (name == "CreateNatGateway" || name == "AssociateNatGatewayAddress")
        {
            if let Some(resp) = r.response_elements.and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok()) {
                let origin = format!("{name} {}", r.time().map(format_rfc3339).unwrap_or_default());
                part.nats.extend(flowlogs::nat_gateways_in(&resp, &origin));
            }
        }
        let relation = if r.access_key_id() == Some(opts.key.as_str()) {
            Relation::Use
        } else if issued(r, &opts.key) {
            Relation::Issued
        } else {
            return;
        };
        if let Some(t) = r.time() {
            if !opts.range.contains(t) {
                part.out_of_range += 1;
                return;
            }
        } else if !opts.range.is_open() {
            part.out_of_range += 1;
            return;
        }
        part.events.push(trace_event(r, seq, relation));
        if relation == Relation::Use {
            part.fold.add(r, source, seq, scan_opts);
        }
    });
    part.read = counts;
    part
}

/// Statistics of one network identity the key was used from.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStat {
    pub network: String,
    pub kind: NetKind,
    pub calls: u64,
    pub errors: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub services: BTreeSet<String>,
    pub regions: BTreeSet<String>,
    pub user_agents: BTreeSet<String>,
    /// `trusted` (the detector's first use), `reuse-alert`, or empty when not an identity.
    pub verdict: String,
    #[serde(skip)]
    key: Option<String>,
}

/// An IAM policy statement, serialised in the conventional field order.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub action: &'static str,
    pub resource: &'static str,
    /// Operator → { key → values }.
    pub condition: serde_json::Map<String, Value>,
}

/// The allowlist statement and what to know before attaching it.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyAdvice {
    /// The principal to attach it to (role or user ARN), when known.
    pub attach_to: Option<String>,
    pub statement: Option<Statement>,
    pub caveats: Vec<String>,
}

/// Everything a trace found.
#[derive(Debug, Serialize)]
pub struct TraceReport {
    pub access_key_id: String,
    pub calls: u64,
    pub first_use: Option<String>,
    pub last_use: Option<TraceEvent>,
    pub issued_by: Vec<TraceEvent>,
    pub sources: Vec<SourceStat>,
    pub policy: PolicyAdvice,
    pub high_risk: Vec<TraceEvent>,
    pub timeline: Vec<TraceEvent>,
    pub alerts: Vec<Alert>,
    pub nat_gateways: Vec<NatGateway>,
    /// What listing the inputs found (set by the caller, which listed them).
    pub listing: Listing,
    pub read: ReadCounts,
    pub out_of_range: u64,
    /// Files that could not be opened.
    pub errors: Vec<FileError>,
}

impl TraceReport {
    /// Whether every input was listed and read whole.
    pub fn complete(&self) -> bool {
        self.read.complete() && self.errors.is_empty() && self.listing.errors.is_empty()
    }
}

/// Reads every source and assembles the report (blocking; run it on a blocking thread).
pub fn collect(sources: &[Source], fetcher: &Fetcher, opts: &TraceOptions, mut progress: impl FnMut(u64)) -> TracePart {
    let scan_opts = ScanOptions { policy: opts.policy.clone(), ..ScanOptions::default() };
    let opts = &TraceOptions { read: pipeline_for(sources, opts.threads, opts.read), ..opts.clone() };
    let mut total = TracePart::default();
    read::process_parallel(
        sources,
        fetcher,
        opts.threads,
        |i, src, input| trace_file(i, src, input, opts, &scan_opts),
        |i, r| {
            progress(sources[i].size);
            match r {
                Ok(p) => total.merge(p),
                Err(e) => {
                    total.read.files += 1;
                    total.read.failed_files += 1;
                    total.errors.push(e);
                }
            }
        },
    );
    total
}

/// Builds the report from what was collected: replay, statistics, policy, risks.
pub async fn report(
    part: TracePart,
    opts: &TraceOptions,
    extra_nats: &[NatGateway],
) -> Result<TraceReport, scan::ScanError> {
    let TracePart { mut events, fold, nats, read, errors, out_of_range } = part;
    events.sort_by(|a, b| a.order().cmp(&b.order()));
    // The same event can be read twice (overlapping inputs); keep one of each event id.
    let mut seen = BTreeSet::new();
    events.retain(|e| e.event_id.as_ref().is_none_or(|id| seen.insert((id.clone(), e.relation as u8))));
    let alerts = scan::replay(fold, opts.policy.clone()).await?.alerts;
    let uses: Vec<&TraceEvent> = events.iter().filter(|e| e.relation == Relation::Use).collect();
    let sources = source_stats(&uses, &alerts);
    let policy = allowlist(&sources, &uses, &alerts);
    let mut nat_gateways: Vec<NatGateway> = extra_nats.to_vec();
    for n in nats {
        if !nat_gateways.iter().any(|m| m.public_ip == n.public_ip && m.private_ips == n.private_ips) {
            nat_gateways.push(n);
        }
    }
    Ok(TraceReport {
        access_key_id: opts.key.clone(),
        calls: uses.len() as u64,
        first_use: uses.iter().find_map(|e| e.time.clone()),
        last_use: uses.iter().rev().find(|e| e.time_ms.is_some()).or(uses.last()).map(|e| (*e).clone()),
        issued_by: events.iter().filter(|e| e.relation == Relation::Issued).cloned().collect(),
        high_risk: uses.iter().filter(|e| e.risk.is_some()).map(|e| (*e).clone()).collect(),
        sources,
        policy,
        timeline: events,
        alerts,
        nat_gateways,
        listing: Listing::default(),
        read,
        out_of_range,
        errors,
    })
}

fn source_stats(uses: &[&TraceEvent], alerts: &[Alert]) -> Vec<SourceStat> {
    let mut by: BTreeMap<(NetKind, String), SourceStat> = BTreeMap::new();
    for e in uses {
        let s = by.entry((e.network_kind, e.network.clone())).or_insert_with(|| SourceStat {
            network: e.network.clone(),
            kind: e.network_kind,
            calls: 0,
            errors: 0,
            first_seen: None,
            last_seen: None,
            services: BTreeSet::new(),
            regions: BTreeSet::new(),
            user_agents: BTreeSet::new(),
            verdict: String::new(),
            key: e.network_key.clone(),
        });
        s.calls += 1;
        s.errors += u64::from(e.error_code.is_some());
        if s.first_seen.is_none() {
            s.first_seen = e.time.clone();
        }
        if e.time.is_some() {
            s.last_seen = e.time.clone();
        }
        s.services.extend(e.service.clone());
        s.regions.extend(e.region.clone());
        s.user_agents.extend(e.user_agent.clone());
    }
    let mut out: Vec<SourceStat> = by.into_values().collect();
    for s in &mut out {
        let Some(k) = &s.key else { continue };
        // Every identity the replay did not flag was trusted, allowlisted or an accepted move.
        s.verdict = if alerts.iter().any(|a| &a.seen_identity == k) { "reuse-alert" } else { "trusted" }.into();
    }
    out.sort_by(|a, b| a.first_seen.cmp(&b.first_seen).then(a.network.cmp(&b.network)));
    out
}

/// The IAM statement that denies the principal everything from anywhere but the trusted
/// sources, following AWS's data-perimeter pattern: `aws:SourceIp` for public addresses,
/// `aws:SourceVpce` for endpoints (requests through an endpoint carry no `aws:SourceIp`, and
/// the `IfExists` forms let each condition pass when its key is absent), and never denying what
/// AWS services do on the principal's behalf (`aws:ViaAWSService`). Sources the detector flags
/// as reuse are left out and named in the caveats.
pub fn allowlist(sources: &[SourceStat], uses: &[&TraceEvent], alerts: &[Alert]) -> PolicyAdvice {
    let principal = uses.iter().rev().find_map(|e| e.role_arn.clone()).or_else(|| {
        uses.iter().rev().find(|e| e.principal_type.as_deref() == Some("IAMUser")).and_then(|e| e.principal_arn.clone())
    });
    let mut caveats = Vec::new();
    let (mut ips, mut vpces) = (Vec::new(), Vec::new());
    let mut excluded = Vec::new();
    let mut private = Vec::new();
    let mut opaque = Vec::new();
    for s in sources {
        if s.verdict == "reuse-alert" {
            excluded.push(s.network.clone());
            continue;
        }
        match s.kind {
            NetKind::Ip => ips.push(format!("{}/32", s.network)),
            NetKind::Ip6 => ips.push(s.network.clone()),
            NetKind::Vpce => vpces.push(s.network.clone()),
            NetKind::Private => private.push(s.network.trim_start_matches("private ").to_string()),
            NetKind::Opaque => opaque.push(s.network.clone()),
            NetKind::AwsService | NetKind::None => {}
        }
    }
    let statement = pin_statement(&ips, &vpces);
    if statement.is_none() {
        caveats.push(
            "No trusted public address or VPC endpoint was observed for this key: there is nothing to pin to.".into(),
        );
    }
    if let Some(p) = &principal {
        caveats.push(format!(
            "Attach it as an inline policy of {p}. It then applies to every session and key of that principal, not only this key: the sources were observed for this key alone, so confirm they cover every legitimate caller first."
        ));
    }
    if ips.is_empty() != vpces.is_empty() {
        if vpces.is_empty() {
            caveats.push("Only public addresses are allowed: calls through any VPC endpoint (which carry no aws:SourceIp) will be denied.".into());
        } else {
            caveats.push("Only VPC endpoints are allowed: calls over the internet will be denied.".into());
        }
    }
    caveats.push("Calls AWS services make on the principal's behalf (aws:ViaAWSService) are not denied; services acting as their own principal are not affected by an identity policy.".into());
    if !excluded.is_empty() {
        caveats.push(format!(
            "Not allowed: {} (the detector flags use from there as reuse of the key from a new network identity). Add it only if it is legitimate.",
            excluded.join(", ")
        ));
    }
    if !private.is_empty() {
        caveats.push(format!(
            "Calls from private addresses without a VPC endpoint ({}) cannot be pinned by address and would be denied.",
            private.join(", ")
        ));
    }
    if !opaque.is_empty() {
        caveats.push(format!("Source values that are not addresses ({}) were left out.", opaque.join(", ")));
    }
    if uses.iter().any(|e| e.ec2_delivered) {
        caveats.push("These are EC2 instance credentials: conditions on aws:ec2InstanceSourceVpc and aws:ec2InstanceSourcePrivateIPv4 follow the instance across address changes and are the sturdier pin.".into());
    }
    if !alerts.is_empty() {
        caveats.push("An allowlist only limits where sessions work. To cut off sessions already issued, revoke them (IAM \"Revoke active sessions\", which denies tokens issued before now via aws:TokenIssueTime) or, for a long-term key, deactivate it.".into());
    }
    PolicyAdvice { attach_to: principal, statement, caveats }
}

/// The Deny-unless-from-these-sources statement; `None` when there is nothing to pin to.
fn pin_statement(ips: &[String], vpces: &[String]) -> Option<Statement> {
    if ips.is_empty() && vpces.is_empty() {
        return None;
    }
    let mut cond = serde_json::Map::new();
    if !ips.is_empty() {
        cond.insert("NotIpAddressIfExists".into(), json!({ "aws:SourceIp": ips }));
    }
    if !vpces.is_empty() {
        cond.insert("StringNotEqualsIfExists".into(), json!({ "aws:SourceVpce": vpces }));
    }
    cond.insert("BoolIfExists".into(), json!({ "aws:ViaAWSService": "false" }));
    Some(Statement { sid: "CtguardPinToObservedSources", effect: "Deny", action: "*", resource: "*", condition: cond })
}

/// NAT attribution: the queries for calls of the key made from known NAT gateway addresses.
pub fn nat_queries(
    report: &TraceReport,
    ranges: Option<&flowlogs::IpRanges>,
    cidrs: &[ctguard_detector::identity::Cidr],
) -> Vec<Query> {
    let mut out = Vec::new();
    for (i, e) in report.timeline.iter().enumerate() {
        if e.relation != Relation::Use || e.network_kind != NetKind::Ip {
            continue;
        }
        let (Some(t), Some(nat)) = (e.time_ms, report.nat_gateways.iter().find(|n| n.public_ip == e.network)) else {
            continue;
        };
        let endpoints = match (ranges, cidrs.is_empty()) {
            (_, false) => Some(cidrs.to_vec()),
            (Some(r), true) => Some(r.endpoints(e.service.as_deref().unwrap_or(""), e.region.as_deref())),
            (None, true) => None,
        };
        out.push(Query { call: i, time_s: t.div_euclid(1000), nat: nat.clone(), endpoints });
    }
    out
}

/// Reads flow logs for the queries (blocking).
pub fn attribute(
    queries: Vec<Query>,
    sources: &[Source],
    fetcher: &Fetcher,
    fmt: &flowlogs::Format,
    threads: usize,
    read: ReadOptions,
) -> (Vec<Candidate>, flowlogs::FlowCounts, Vec<FileError>) {
    let base = Attribution::new(queries);
    let mut total = base.fresh();
    let mut counts = flowlogs::FlowCounts::default();
    let mut errors = Vec::new();
    let read = pipeline_for(sources, threads, read);
    read::process_parallel(
        sources,
        fetcher,
        threads,
        |i, src, input| {
            let mut a = base.fresh();
            let mut c = flowlogs::FlowCounts::default();
            flowlogs::read_flows(i, &src.name, input, &read, fmt, &mut c, |f| a.add(f));
            (a, c)
        },
        |_, r| match r {
            Ok((a, c)) => {
                total.merge(a);
                counts.merge(c);
            }
            Err(e) => {
                counts.files += 1;
                counts.failed_files += 1;
                errors.push(e);
            }
        },
    );
    (total.candidates(), counts, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;

    fn sample() -> Vec<Source> {
        vec![Source { name: "sample".into(), kind: SourceKind::Embedded(crate::SAMPLE_CLOUDTRAIL), size: 0 }]
    }

    fn opts(key: &str) -> TraceOptions {
        TraceOptions {
            key: key.into(),
            range: TimeRange::default(),
            policy: Policy::default(),
            threads: 2,
            discover_nats: true,
            read: ReadOptions::default(),
        }
    }

    async fn trace(key: &str) -> TraceReport {
        let o = opts(key);
        let part = collect(&sample(), &Fetcher::local(), &o, |_| {});
        report(part, &o, &[]).await.expect("report")
    }

    #[tokio::test]
    async fn traces_the_sample_theft() {
        let r = trace("ASIAY34FZKBOKMUTVV7A").await;
        assert_eq!(r.calls, 10);
        let last = r.last_use.as_ref().expect("last use");
        assert_eq!(last.time.as_deref(), Some("2024-03-12T09:20:00Z"));
        assert_eq!(last.network, "54.210.33.17");
        assert_eq!(r.issued_by.len(), 1, "the EC2 AssumeRole that minted it");
        assert_eq!(r.issued_by[0].event_name.as_deref(), Some("AssumeRole"));
        let verdicts: Vec<(&str, &str, u64)> =
            r.sources.iter().map(|s| (s.network.as_str(), s.verdict.as_str(), s.calls)).collect();
        assert_eq!(verdicts, [("54.210.33.17", "trusted", 5), ("203.0.113.66", "reuse-alert", 5)]);
        let st = serde_json::to_value(r.policy.statement.as_ref().expect("statement")).expect("json");
        assert_eq!(st["Sid"], json!("CtguardPinToObservedSources"));
        assert_eq!(st["Condition"]["NotIpAddressIfExists"]["aws:SourceIp"], json!(["54.210.33.17/32"]));
        assert_eq!(r.policy.attach_to.as_deref(), Some("arn:aws:iam::111122223333:role/web-app"));
        assert!(r.policy.caveats.iter().any(|c| c.contains("203.0.113.66")));
        assert!(r.policy.caveats.iter().any(|c| c.contains("ec2InstanceSourceVpc")));
        let risky: Vec<String> = r.high_risk.iter().map(TraceEvent::api).collect();
        for api in ["secretsmanager:GetSecretValue", "iam:CreateAccessKey", "cloudtrail:StopLogging", "kms:Decrypt"] {
            assert!(risky.contains(&api.to_string()), "{api} in {risky:?}");
        }
        assert!(!risky.contains(&"sts:GetCallerIdentity".to_string()));
        assert_eq!(r.alerts.len(), 1);
        // Nothing secret ever reaches the report.
        let text = serde_json::to_string(&r).expect("json");
        assert!(!text.contains("redacted-in-sample"));
    }

    #[tokio::test]
    async fn unknown_keys_have_no_history() {
        let r = trace("ASIANOTINTHELOGS0000").await;
        assert_eq!(r.calls, 0);
        assert!(r.last_use.is_none());
        assert!(r.policy.statement.is_none());
        assert_eq!(r.read.skipped_files, 1, "a file without the key is not parsed");
    }

    #[tokio::test]
    async fn time_ranges_cut_the_timeline() {
        let mut o = opts("ASIAY34FZKBOKMUTVV7A");
        o.range = TimeRange { since: None, until: ctguard_detector::time::parse_rfc3339("2024-03-12T09:00:00Z") };
        let part = collect(&sample(), &Fetcher::local(), &o, |_| {});
        let r = report(part, &o, &[]).await.expect("report");
        assert_eq!(r.calls, 4);
        assert!(r.alerts.is_empty());
        assert_eq!(r.out_of_range, 6);
    }

    #[test]
    fn allowlist_with_endpoints_and_private_sources() {
        let ev = |net: &str, kind: NetKind| TraceEvent {
            time: Some("2024-01-01T00:00:00Z".into()),
            time_ms: Some(0),
            seq: 0,
            relation: Relation::Use,
            event_name: None,
            event_source: None,
            service: None,
            region: None,
            source_ip: None,
            vpc_endpoint_id: None,
            network: net.into(),
            network_key: None,
            network_kind: kind,
            principal_arn: Some("arn:aws:iam::1:user/u".into()),
            principal_type: Some("IAMUser".into()),
            account: None,
            user_agent: None,
            error_code: None,
            event_id: None,
            risk: None,
            ec2_delivered: false,
            role_arn: None,
        };
        let evs =
            [ev("198.51.100.1", NetKind::Ip), ev("vpce-0abc", NetKind::Vpce), ev("private 10.0.0.5", NetKind::Private)];
        let refs: Vec<&TraceEvent> = evs.iter().collect();
        let stats = source_stats(&refs, &[]);
        let p = allowlist(&stats, &refs, &[]);
        let st = serde_json::to_value(p.statement.expect("statement")).expect("json");
        assert_eq!(st["Condition"]["StringNotEqualsIfExists"]["aws:SourceVpce"], json!(["vpce-0abc"]));
        assert_eq!(st["Condition"]["BoolIfExists"]["aws:ViaAWSService"], json!("false"));
        assert_eq!(p.attach_to.as_deref(), Some("arn:aws:iam::1:user/u"));
        assert!(p.caveats.iter().any(|c| c.contains("10.0.0.5")));
    }
}
