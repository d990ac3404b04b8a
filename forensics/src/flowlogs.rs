//! VPC flow logs, and which private host was behind a NAT gateway when a key was used.
//!
//! CloudTrail sees a call from a private subnet as coming from the NAT gateway's public
//! address, which every host behind it shares. Flow logs can narrow that to the host: in the
//! call's time window, which private address opened HTTPS connections that left through that NAT
//! gateway, towards the service's endpoint addresses?
//!
//! Two views of the same connection can exist (AWS "Flow log record examples", *traffic through a
//! NAT gateway*):
//!
//! - the NAT gateway's interface logs `host → NAT private address` (`srcaddr`/`dstaddr`); with
//!   the custom fields `pkt-srcaddr`/`pkt-dstaddr` it also logs the real destination;
//! - the host's own interface (when the subnet or VPC is logged) logs `host → destination`.
//!
//! Evidence is ranked: through the NAT's interface *to an endpoint address* (needs
//! `pkt-dstaddr`) beats through the NAT's interface (destination unknown) beats the host's
//! interface to an endpoint address (the NAT is inferred, not seen). Which NAT gateway owns the
//! public address comes from `--nat PUBLIC=PRIVATE|ENI` or from `CreateNatGateway` events in the
//! same CloudTrail logs. Endpoint addresses come from `--ip-ranges` (AWS `ip-ranges.json`) or
//! `--endpoint-cidr`; without either, any public destination on port 443 counts (weaker).
//!
//! Formats: the default version-2 format, and custom field lists, either from the header line
//! AWS writes at the top of every S3-delivered file or from `--flow-log-format '${…} ${…}'`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;

use ctguard_detector::identity::{is_public, parse_ip, Cidr};
use serde::Serialize;

use super::decode::{self, Event};
use super::loss::{Loss, LossKind, Losses};
use super::read::ReadOptions;

/// The default (version 2) field list.
pub const DEFAULT_FIELDS: &str =
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// CloudTrail's `eventTime` has second precision and flow windows are aggregated: a connection
/// that carried a call can be logged in a window ending up to this long before the call.
pub const WINDOW_SLACK_S: i64 = 60;

/// Positions of the fields attribution needs in a record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    len: usize,
    interface_id: Option<usize>,
    instance_id: Option<usize>,
    srcaddr: Option<usize>,
    dstaddr: Option<usize>,
    dstport: Option<usize>,
    protocol: Option<usize>,
    bytes: Option<usize>,
    start: Option<usize>,
    end: Option<usize>,
    action: Option<usize>,
    pkt_srcaddr: Option<usize>,
    pkt_dstaddr: Option<usize>,
}

/// Why a flow-log format, record, `--nat` value or `ip-ranges.json` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowLogError {
    #[error("flow-log format `{0}` has no srcaddr field")]
    NoSourceField(String),
    #[error("flow-log format `{0}` has no start/end field: calls cannot be matched in time")]
    NoTimeField(String),
    #[error("{found} fields where the format has {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("--nat {arg}: `{public}` is not a public IP address")]
    NatNotPublic { arg: String, public: String },
    #[error("--nat {arg}: `{part}` is neither a private address nor an eni-… id")]
    NatPrivateSide { arg: String, part: String },
    #[error("ip-ranges.json: {0}")]
    IpRanges(String),
    #[error("ip-ranges.json has no prefixes")]
    NoPrefixes,
}

impl Format {
    /// A format from field names (`srcaddr dstaddr …`, `${srcaddr} ${dstaddr} …`, or with `_`).
    pub fn from_fields(spec: &str) -> Result<Format, FlowLogError> {
        let names: Vec<String> = spec
            .split_whitespace()
            .map(|f| f.trim_start_matches("${").trim_end_matches('}').replace('_', "-").to_ascii_lowercase())
            .collect();
        let pos = |n: &str| names.iter().position(|x| x == n);
        let f = Format {
            len: names.len(),
            interface_id: pos("interface-id"),
            instance_id: pos("instance-id"),
            srcaddr: pos("srcaddr"),
            dstaddr: pos("dstaddr"),
            dstport: pos("dstport"),
            protocol: pos("protocol"),
            bytes: pos("bytes"),
            start: pos("start"),
            end: pos("end"),
            action: pos("action"),
            pkt_srcaddr: pos("pkt-srcaddr"),
            pkt_dstaddr: pos("pkt-dstaddr"),
        };
        if f.srcaddr.is_none() && f.pkt_srcaddr.is_none() {
            return Err(FlowLogError::NoSourceField(spec.to_string()));
        }
        if f.start.is_none() && f.end.is_none() {
            return Err(FlowLogError::NoTimeField(spec.to_string()));
        }
        Ok(f)
    }

    pub fn default_v2() -> Format {
        // The constant is a valid field list; the fallback only satisfies the type.
        Format::from_fields(DEFAULT_FIELDS).unwrap_or_default()
    }

    /// A header line as AWS writes it at the top of delivered files.
    fn from_header(line: &str) -> Option<Format> {
        let first = line.split_whitespace().next()?;
        let looks = first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_' || b == b'$' || b == b'{' || b == b'}');
        if !looks || !line.contains("addr") {
            return None;
        }
        Format::from_fields(line).ok()
    }
}

/// One flow record (fields that are `-` or absent are `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub interface_id: Option<String>,
    pub instance_id: Option<String>,
    pub srcaddr: Option<IpAddr>,
    pub dstaddr: Option<IpAddr>,
    pub dstport: Option<u16>,
    pub protocol: Option<u8>,
    pub bytes: u64,
    pub start: i64,
    pub end: i64,
    pub accepted: bool,
    pub pkt_srcaddr: Option<IpAddr>,
    pub pkt_dstaddr: Option<IpAddr>,
}

/// Counts from reading flow logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowCounts {
    pub files: u64,
    /// Files of which nothing could be read.
    pub failed_files: u64,
    /// Files read only in part.
    pub damaged_files: u64,
    pub records: u64,
    /// `NODATA`/`SKIPDATA` and records without addresses or times.
    pub empty: u64,
    /// Lines with the wrong number of fields, unparseable values, or bytes that are not UTF-8.
    pub unreadable: u64,
    /// What could not be read, by kind and place (unreadable lines included).
    pub lost: Losses,
}

impl FlowCounts {
    pub fn merge(&mut self, o: FlowCounts) {
        self.files += o.files;
        self.failed_files += o.failed_files;
        self.damaged_files += o.damaged_files;
        self.records += o.records;
        self.empty += o.empty;
        self.unreadable += o.unreadable;
        self.lost.merge(o.lost);
    }

    /// Whether every flow-log byte was read.
    pub fn complete(&self) -> bool {
        self.failed_files == 0 && self.lost.is_empty()
    }
}

fn field<'a>(parts: &[&'a str], i: Option<usize>) -> Option<&'a str> {
    i.and_then(|i| parts.get(i).copied()).filter(|s| *s != "-")
}

/// Parses one record line; `Ok(None)` for records that carry no flow (`NODATA`, `SKIPDATA`).
pub fn parse_line(fmt: &Format, line: &str) -> Result<Option<Flow>, FlowLogError> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    if parts.len() != fmt.len {
        return Err(FlowLogError::FieldCount { found: parts.len(), expected: fmt.len });
    }
    let ip = |i| field(&parts, i).and_then(parse_ip);
    let num = |i: Option<usize>| -> Result<Option<i64>, FlowLogError> {
        field(&parts, i).map(|s| s.parse::<i64>().map_err(|_| FlowLogError::NotANumber(s.to_string()))).transpose()
    };
    let (start, end) = (num(fmt.start)?, num(fmt.end)?);
    let src = ip(fmt.srcaddr).or(ip(fmt.pkt_srcaddr));
    let (Some(start), Some(end)) = (start.or(end), end.or(start)) else { return Ok(None) };
    if src.is_none() {
        return Ok(None);
    }
    Ok(Some(Flow {
        interface_id: field(&parts, fmt.interface_id).map(str::to_string),
        instance_id: field(&parts, fmt.instance_id).map(str::to_string),
        srcaddr: src,
        dstaddr: ip(fmt.dstaddr).or(ip(fmt.pkt_dstaddr)),
        dstport: num(fmt.dstport)?.and_then(|p| u16::try_from(p).ok()),
        protocol: num(fmt.protocol)?.and_then(|p| u8::try_from(p).ok()),
        bytes: num(fmt.bytes)?.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
        start,
        end,
        accepted: field(&parts, fmt.action).is_none_or(|a| a == "ACCEPT"),
        pkt_srcaddr: ip(fmt.pkt_srcaddr),
        pkt_dstaddr: ip(fmt.pkt_dstaddr),
    }))
}

/// Flow-log lines → flows. The header line AWS writes at the top of every delivered file sets
/// the format (anywhere, so concatenated files work); before any, `fallback` applies.
struct FlowLines<'a> {
    fallback: &'a Format,
    fmt: Option<Format>,
    counts: FlowCounts,
    line: u64,
    offset: u64,
}

impl FlowLines<'_> {
    /// One line (without its newline); `line`/`offset` must already point at it.
    fn line(&mut self, bytes: &[u8], f: &mut dyn FnMut(&Flow)) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.bad(bytes.len(), "not UTF-8".into());
            return;
        };
        let line = text.trim();
        if line.is_empty() {
            return;
        }
        if line.as_bytes().first().is_some_and(u8::is_ascii_lowercase) {
            if let Some(h) = Format::from_header(line) {
                self.fmt = Some(h);
                return;
            }
        }
        let current = self.fmt.as_ref().unwrap_or(self.fallback);
        match parse_line(current, line) {
            Ok(Some(flow)) => {
                self.counts.records += 1;
                f(&flow);
            }
            Ok(None) => {
                self.counts.records += 1;
                self.counts.empty += 1;
            }
            Err(e) => self.bad(bytes.len(), e.to_string()),
        }
    }

    fn bad(&mut self, len: usize, why: String) {
        self.counts.unreadable += 1;
        let loss = Loss::at(LossKind::BadFlowLine, self.offset).bytes(len as u64).detail(why);
        self.counts.lost.add(Loss { line: self.line, ..loss });
    }
}

/// Longest flow-log line read; a longer one is damage (a flow record is about 100 bytes).
pub const MAX_FLOW_LINE: usize = 64 << 10;

/// Calls `f` for every flow in a file's text (see [`read_flows`] for streams).
pub fn for_each_flow(text: &str, fallback: &Format, counts: &mut FlowCounts, mut f: impl FnMut(&Flow)) {
    let mut lines = FlowLines { fallback, fmt: None, counts: FlowCounts::default(), line: 0, offset: 0 };
    for l in text.split('\n') {
        lines.line += 1;
        lines.line(l.as_bytes(), &mut f);
        lines.offset += l.len() as u64 + 1;
    }
    counts.merge(lines.counts);
}

/// Reads one flow-log source (gzip or plain) as a stream, calling `f` for every flow. Damage
/// costs the lines it touches; everything is counted in `counts` with its place.
pub fn read_flows(
    file: usize,
    name: &str,
    input: impl Read + Send,
    opts: &ReadOptions,
    fallback: &Format,
    counts: &mut FlowCounts,
    mut f: impl FnMut(&Flow),
) {
    let mut lines = FlowLines { fallback, fmt: None, counts: FlowCounts::default(), line: 1, offset: 0 };
    let mut partial: Vec<u8> = Vec::new();
    // Skipping the rest of a line: too long, or cut by a hole in the data.
    let mut skipping = false;
    let decoded = {
        let mut on_event = |ev: Event<'_>| match ev {
            Event::Data(mut d) => {
                while !d.is_empty() {
                    let (piece, rest, ends) = match memchr::memchr(b'\n', d) {
                        Some(k) => (d.get(..k).unwrap_or_default(), d.get(k + 1..).unwrap_or_default(), true),
                        None => (d, &[][..], false),
                    };
                    d = rest;
                    if !skipping {
                        if partial.len() + piece.len() > MAX_FLOW_LINE {
                            lines.bad(partial.len() + piece.len(), format!("line longer than {MAX_FLOW_LINE} bytes"));
                            partial.clear();
                            skipping = true;
                        } else {
                            partial.extend_from_slice(piece);
                        }
                    }
                    if ends {
                        if !skipping {
                            lines.line(&partial, &mut f);
                        }
                        lines.offset += partial.len() as u64 + 1;
                        lines.line += 1;
                        partial.clear();
                        skipping = false;
                    }
                }
            }
            Event::Damage { loss, breaks } => {
                lines.counts.lost.add(Loss { line: lines.line, ..loss });
                if breaks {
                    // The line cut by the hole, and the start of the next line after it, are
                    // part of what the hole lost.
                    partial.clear();
                    skipping = true;
                }
            }
        };
        decode::decode_with(input, opts.limits, opts.pipeline, &mut on_event)
    };
    if !skipping && !partial.is_empty() {
        lines.line(&partial, &mut f);
    }
    let mut c = lines.counts;
    c.files = 1;
    (c.failed_files, c.damaged_files) = c.lost.file_outcome(decoded.decoded);
    c.lost.set_source(file, name);
    counts.merge(c);
}

/// A NAT gateway: its public address and what names its private side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NatGateway {
    pub public_ip: String,
    pub private_ips: Vec<String>,
    pub interfaces: Vec<String>,
    pub nat_gateway_id: Option<String>,
    /// Where the mapping came from (`--nat`, or the CloudTrail event that created it).
    pub origin: String,
}

impl NatGateway {
    /// Parses `--nat PUBLIC[=PRIVATE_IP|eni-…][,…]`.
    pub fn parse_arg(s: &str) -> Result<NatGateway, FlowLogError> {
        let (public, rest) = s.split_once('=').unwrap_or((s, ""));
        let p = parse_ip(public)
            .filter(is_public)
            .ok_or_else(|| FlowLogError::NatNotPublic { arg: s.to_string(), public: public.to_string() })?;
        let mut nat = NatGateway { public_ip: p.to_string(), origin: "--nat".into(), ..NatGateway::default() };
        for part in rest.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            if part.starts_with("eni-") {
                nat.interfaces.push(part.to_string());
            } else if let Some(ip) = parse_ip(part).filter(|ip| !is_public(ip)) {
                nat.private_ips.push(ip.to_string());
            } else {
                return Err(FlowLogError::NatPrivateSide { arg: s.to_string(), part: part.to_string() });
            }
        }
        Ok(nat)
    }

    fn has_private(&self, ip: &IpAddr) -> bool {
        self.private_ips.iter().any(|p| parse_ip(p).as_ref() == Some(ip))
    }

    fn has_interface(&self, eni: Option<&str>) -> bool {
        eni.is_some_and(|e| self.interfaces.iter().any(|i| i == e))
    }
}

/// Finds NAT gateways in the `responseElements` of a `CreateNatGateway` (or
/// `AssociateNatGatewayAddress`) record: every object carrying `publicIp` with `privateIp`
/// and/or `networkInterfaceId`, whatever the nesting (`natGatewayAddressSet.item` is an object
/// or an array depending on the count).
pub fn nat_gateways_in(response: &serde_json::Value, origin: &str) -> Vec<NatGateway> {
    fn walk(v: &serde_json::Value, id: Option<&str>, out: &mut Vec<NatGateway>, origin: &str) {
        match v {
            serde_json::Value::Object(o) => {
                let id = o.get("natGatewayId").and_then(|x| x.as_str()).or(id);
                let s = |k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
                if let Some(public) = s("publicIp").filter(|p| parse_ip(p).is_some()) {
                    out.push(NatGateway {
                        public_ip: public,
                        private_ips: s("privateIp").into_iter().collect(),
                        interfaces: s("networkInterfaceId").into_iter().collect(),
                        nat_gateway_id: id.map(str::to_string),
                        origin: origin.to_string(),
                    });
                }
                for x in o.values() {
                    walk(x, id, out, origin);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, id, out, origin)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(response, None, &mut out, origin);
    out
}

/// AWS `ip-ranges.json`, reduced to what endpoint matching needs.
#[derive(Clone, Debug, Default)]
pub struct IpRanges {
    /// (cidr, region, service)
    prefixes: Vec<(Cidr, String, String)>,
}

#[derive(serde::Deserialize)]
struct IpRangesDoc {
    #[serde(default)]
    prefixes: Vec<PrefixDoc>,
    #[serde(default)]
    ipv6_prefixes: Vec<PrefixDoc>,
}

#[derive(serde::Deserialize)]
struct PrefixDoc {
    #[serde(default)]
    ip_prefix: Option<String>,
    #[serde(default)]
    ipv6_prefix: Option<String>,
    #[serde(default)]
    region: String,
    #[serde(default)]
    service: String,
}

/// Services served from the global (us-east-1) endpoints.
const GLOBAL_SERVICES: &[&str] = &["iam", "sts", "organizations", "route53", "cloudfront", "account"];

impl IpRanges {
    pub fn parse(json: &str) -> Result<IpRanges, FlowLogError> {
        let doc: IpRangesDoc = serde_json::from_str(json).map_err(|e| FlowLogError::IpRanges(e.to_string()))?;
        let mut prefixes = Vec::new();
        for p in doc.prefixes.iter().chain(&doc.ipv6_prefixes) {
            let Some(c) = p.ip_prefix.as_deref().or(p.ipv6_prefix.as_deref()) else { continue };
            let cidr = Cidr::parse(c).map_err(|e| FlowLogError::IpRanges(e.to_string()))?;
            prefixes.push((cidr, p.region.clone(), p.service.clone()));
        }
        if prefixes.is_empty() {
            return Err(FlowLogError::NoPrefixes);
        }
        Ok(IpRanges { prefixes })
    }

    /// The endpoint networks of `service` (an `eventSource` label) in `region`: the S3 and
    /// DynamoDB ranges for those services, the AMAZON ranges (every API endpoint) otherwise.
    pub fn endpoints(&self, service: &str, region: Option<&str>) -> Vec<Cidr> {
        let tag = match service {
            "s3" => "S3",
            "dynamodb" => "DYNAMODB",
            _ => "AMAZON",
        };
        let any_region = GLOBAL_SERVICES.contains(&service) || region.is_none();
        self.prefixes
            .iter()
            .filter(|(_, r, s)| s == tag && (any_region || Some(r.as_str()) == region || r == "GLOBAL"))
            .map(|(c, _, _)| c.clone())
            .collect()
    }
}

/// One call to attribute.
#[derive(Clone, Debug)]
pub struct Query {
    /// The call's position in the caller's list.
    pub call: usize,
    pub time_s: i64,
    pub nat: NatGateway,
    /// Endpoint networks; `None` means any public address.
    pub endpoints: Option<Vec<Cidr>>,
}

/// How strongly a flow ties a host to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The NAT gateway's interface logged the host's packets to an endpoint address.
    NatToEndpoint,
    /// The NAT gateway's interface logged the host's HTTPS packets (destination not logged).
    NatInterface,
    /// The host's interface logged HTTPS to an endpoint address (the NAT is inferred).
    HostToEndpoint,
}

impl Evidence {
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::NatToEndpoint => "NAT interface: host → endpoint address",
            Evidence::NatInterface => "NAT interface: host → NAT (destination not logged)",
            Evidence::HostToEndpoint => "host interface: host → endpoint address",
        }
    }
}

/// A private host that may have made a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub call: usize,
    pub host: String,
    pub evidence: Evidence,
    pub flows: u64,
    pub bytes: u64,
    pub interfaces: Vec<String>,
    pub instance_id: Option<String>,
    /// Seconds between the call and the nearest flow window (0 when inside one).
    pub distance_s: i64,
}

const HTTPS: u16 = 443;
const TCP: u8 = 6;

fn in_endpoints(ip: &IpAddr, endpoints: &Option<Vec<Cidr>>) -> bool {
    match endpoints {
        Some(cidrs) => cidrs.iter().any(|c| c.contains(ip)),
        None => is_public(ip),
    }
}

/// Which evidence a flow gives for a query, and the host, if any.
fn judge(q: &Query, f: &Flow) -> Option<(IpAddr, Evidence)> {
    if !f.accepted || f.protocol.is_some_and(|p| p != TCP) {
        return None;
    }
    let src = f.pkt_srcaddr.or(f.srcaddr)?;
    if is_public(&src) || q.nat.has_private(&src) {
        return None;
    }
    // The host → NAT leg: addressed to the NAT's private side. (The NAT's own leg out, on the
    // same interface, is addressed to the public destination and is not a host.)
    let to_nat = f.dstaddr.is_some_and(|d| !is_public(&d))
        && (f.dstaddr.is_some_and(|d| q.nat.has_private(&d)) || q.nat.has_interface(f.interface_id.as_deref()));
    if to_nat {
        // On the NAT's interface the port is the real destination port.
        if f.dstport.is_some_and(|p| p != HTTPS) {
            return None;
        }
        return match f.pkt_dstaddr.filter(|d| !q.nat.has_private(d)) {
            Some(d) if in_endpoints(&d, &q.endpoints) => Some((src, Evidence::NatToEndpoint)),
            Some(_) => None,
            None => Some((src, Evidence::NatInterface)),
        };
    }
    // The host's own interface: only with known endpoint ranges, or it is any HTTPS at all.
    let dst = f.dstaddr?;
    if q.endpoints.is_some() && f.dstport == Some(HTTPS) && in_endpoints(&dst, &q.endpoints) {
        return Some((src, Evidence::HostToEndpoint));
    }
    None
}

/// Accumulates candidates for a set of queries over any number of flows.
#[derive(Debug, Default)]
pub struct Attribution {
    queries: Vec<Query>,
    found: BTreeMap<(usize, String, Evidence), Candidate>,
}

impl Attribution {
    pub fn new(mut queries: Vec<Query>) -> Attribution {
        queries.sort_by_key(|q| q.time_s);
        Attribution { queries, found: BTreeMap::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The time span flow logs must cover, for pruning.
    pub fn span_s(&self) -> Option<(i64, i64)> {
        Some((self.queries.first()?.time_s, self.queries.last()?.time_s))
    }

    /// Considers one flow.
    pub fn add(&mut self, f: &Flow) {
        // Times come from the logs: any i64, so every sum and difference saturates.
        let lo = self.queries.partition_point(|q| q.time_s < f.start.saturating_sub(WINDOW_SLACK_S));
        let hi = f.end.saturating_add(WINDOW_SLACK_S);
        for q in self.queries.get(lo..).unwrap_or_default().iter().take_while(|q| q.time_s <= hi) {
            let Some((host, ev)) = judge(q, f) else { continue };
            let distance = if q.time_s < f.start {
                f.start.saturating_sub(q.time_s)
            } else if q.time_s > f.end {
                q.time_s.saturating_sub(f.end)
            } else {
                0
            };
            let c = self.found.entry((q.call, host.to_string(), ev)).or_insert_with(|| Candidate {
                call: q.call,
                host: host.to_string(),
                evidence: ev,
                flows: 0,
                bytes: 0,
                interfaces: Vec::new(),
                instance_id: None,
                distance_s: distance,
            });
            c.flows += 1;
            c.bytes = c.bytes.saturating_add(f.bytes);
            c.distance_s = c.distance_s.min(distance);
            if let Some(i) = &f.interface_id {
                if !c.interfaces.contains(i) {
                    c.interfaces.push(i.clone());
                }
            }
            if c.instance_id.is_none() {
                c.instance_id = f.instance_id.clone();
            }
        }
    }

    /// Merges another attribution over the same queries.
    pub fn merge(&mut self, other: Attribution) {
        for (k, c) in other.found {
            match self.found.get_mut(&k) {
                Some(m) => {
                    m.flows += c.flows;
                    m.bytes = m.bytes.saturating_add(c.bytes);
                    m.distance_s = m.distance_s.min(c.distance_s);
                    for i in c.interfaces {
                        if !m.interfaces.contains(&i) {
                            m.interfaces.push(i);
                        }
                    }
                    m.instance_id = m.instance_id.take().or(c.instance_id);
                }
                None => {
                    self.found.insert(k, c);
                }
            }
        }
    }

    /// An empty attribution over the same queries (for a worker thread).
    pub fn fresh(&self) -> Attribution {
        Attribution { queries: self.queries.clone(), found: BTreeMap::new() }
    }

    /// Candidates per call, strongest evidence first, then nearest, then most flows.
    pub fn candidates(self) -> Vec<Candidate> {
        let mut v: Vec<Candidate> = self.found.into_values().collect();
        v.sort_by(|a, b| {
            (a.call, a.evidence, a.distance_s, std::cmp::Reverse(a.flows), &a.host).cmp(&(
                b.call,
                b.evidence,
                b.distance_s,
                std::cmp::Reverse(b.flows),
                &b.host,
            ))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat() -> NatGateway {
        NatGateway::parse_arg("198.51.100.7=10.0.0.220,eni-1235b8ca123456789").expect("nat")
    }

    fn q(time_s: i64, endpoints: Option<Vec<Cidr>>) -> Query {
        Query { call: 0, time_s, nat: nat(), endpoints }
    }

    #[test]
    fn default_v2_records_from_the_documentation() {
        // "Accepted traffic" and "No data" examples of the flow log record documentation.
        let text = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n\
                    2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA\n\
                    2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK\n\
                    garbage line\n";
        let mut flows = Vec::new();
        let mut c = FlowCounts::default();
        for_each_flow(text, &Format::default_v2(), &mut c, |f| flows.push(f.clone()));
        assert_eq!((c.records, c.empty, c.unreadable), (3, 1, 1));
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].srcaddr, parse_ip("172.31.16.139"));
        assert_eq!((flows[0].dstport, flows[0].protocol, flows[0].bytes), (Some(22), Some(6), 4249));
        assert_eq!((flows[0].start, flows[0].end, flows[0].accepted), (1418530010, 1418530070, true));
        assert!(!flows[1].accepted);
    }

    #[test]
    fn custom_formats_from_header_or_spec() {
        // The NAT gateway example: "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr"
        // plus the time fields attribution needs.
        let text = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr start end\n\
                    - eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5 100 160\n";
        let mut flows = Vec::new();
        for_each_flow(text, &Format::default_v2(), &mut FlowCounts::default(), |f| flows.push(f.clone()));
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].pkt_dstaddr, parse_ip("203.0.113.5"));
        assert_eq!(flows[0].instance_id, None);
        let spec = Format::from_fields("${srcaddr} ${dstaddr} ${start} ${end}").expect("spec");
        assert_eq!(parse_line(&spec, "10.0.1.5 52.216.1.2 1 2").expect("ok").map(|f| f.end), Some(2));
        assert!(Format::from_fields("${version}").is_err());
        assert!(Format::from_fields("srcaddr dstaddr").is_err(), "no time fields");
    }

    #[test]
    fn nat_args() {
        let n = nat();
        assert_eq!(n.private_ips, ["10.0.0.220"]);
        assert_eq!(n.interfaces, ["eni-1235b8ca123456789"]);
        assert!(NatGateway::parse_arg("10.0.0.1").is_err(), "the public side must be public");
        assert!(NatGateway::parse_arg("198.51.100.7=banana").is_err());
        assert!(NatGateway::parse_arg("198.51.100.7").is_ok());
    }

    #[test]
    fn nat_gateways_from_create_nat_gateway() {
        let resp = serde_json::json!({"CreateNatGatewayResponse":{"natGateway":{"natGatewayId":"nat-0abc",
            "natGatewayAddressSet":{"item":{"allocationId":"eipalloc-1","networkInterfaceId":"eni-0aa","privateIp":"10.0.0.220","publicIp":"198.51.100.7"}}}}});
        let found = nat_gateways_in(&resp, "CreateNatGateway");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].public_ip, "198.51.100.7");
        assert_eq!(found[0].nat_gateway_id.as_deref(), Some("nat-0abc"));
        assert_eq!(found[0].interfaces, ["eni-0aa"]);
        assert!(nat_gateways_in(&serde_json::json!({"x":[1,{"publicIp":"nope"}]}), "x").is_empty());
    }

    fn flow(iface: &str, src: &str, dst: &str, pkt_dst: Option<&str>, port: u16, start: i64, end: i64) -> Flow {
        Flow {
            interface_id: Some(iface.into()),
            srcaddr: parse_ip(src),
            dstaddr: parse_ip(dst),
            pkt_dstaddr: pkt_dst.and_then(parse_ip),
            dstport: Some(port),
            protocol: Some(6),
            bytes: 100,
            start,
            end,
            accepted: true,
            ..Flow::default()
        }
    }

    #[test]
    fn attribution_ranks_evidence_and_respects_windows() {
        let s3 = vec![Cidr::parse("52.216.0.0/15").expect("cidr")];
        let mut a = Attribution::new(vec![q(1000, Some(s3))]);
        // Through the NAT's interface to an S3 address: strongest.
        a.add(&flow("eni-1235b8ca123456789", "10.0.1.5", "10.0.0.220", Some("52.216.8.1"), 443, 990, 1050));
        // Through the NAT but to a non-endpoint destination: not this call.
        a.add(&flow("eni-1235b8ca123456789", "10.0.1.6", "10.0.0.220", Some("203.0.113.5"), 443, 990, 1050));
        // Host interface to S3: weaker.
        a.add(&flow("eni-0host", "10.0.2.9", "52.217.1.1", None, 443, 900, 960));
        // Outside the window (ends more than a minute before the call).
        a.add(&flow("eni-0host", "10.0.2.10", "52.217.1.1", None, 443, 100, 160));
        // Not HTTPS.
        a.add(&flow("eni-1235b8ca123456789", "10.0.1.7", "10.0.0.220", None, 22, 990, 1050));
        let c = a.candidates();
        let got: Vec<(&str, Evidence, i64)> = c.iter().map(|c| (c.host.as_str(), c.evidence, c.distance_s)).collect();
        assert_eq!(got, [("10.0.1.5", Evidence::NatToEndpoint, 0), ("10.0.2.9", Evidence::HostToEndpoint, 40)]);
    }

    #[test]
    fn the_nat_itself_is_never_a_host() {
        let mut q1 = q(1000, None);
        q1.nat = NatGateway::parse_arg("198.51.100.7=eni-1235b8ca123456789").expect("nat");
        let mut a = Attribution::new(vec![q1]);
        // Host → NAT (private side unknown, known by its interface), then the NAT's own leg out.
        a.add(&flow("eni-1235b8ca123456789", "10.0.1.5", "10.0.0.220", Some("52.216.8.1"), 443, 990, 1050));
        a.add(&flow("eni-1235b8ca123456789", "10.0.0.220", "52.216.8.1", Some("52.216.8.1"), 443, 990, 1050));
        let hosts: Vec<String> = a.candidates().into_iter().map(|c| c.host).collect();
        assert_eq!(hosts, ["10.0.1.5"]);
    }

    #[test]
    fn without_endpoint_ranges_only_the_nat_view_counts() {
        let mut a = Attribution::new(vec![q(1000, None)]);
        a.add(&flow("eni-1235b8ca123456789", "10.0.1.5", "10.0.0.220", None, 443, 990, 1050));
        a.add(&flow("eni-0host", "10.0.2.9", "52.217.1.1", None, 443, 990, 1050));
        let c = a.candidates();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].host.as_str(), c[0].evidence), ("10.0.1.5", Evidence::NatInterface));
    }

    #[test]
    fn ip_ranges_pick_the_service_and_region() {
        let doc = r#"{"prefixes":[
            {"ip_prefix":"52.216.0.0/15","region":"us-east-1","service":"S3"},
            {"ip_prefix":"52.216.0.0/15","region":"us-east-1","service":"AMAZON"},
            {"ip_prefix":"3.5.0.0/19","region":"eu-west-1","service":"S3"},
            {"ip_prefix":"52.94.0.0/22","region":"us-east-1","service":"AMAZON"},
            {"ip_prefix":"13.32.0.0/15","region":"GLOBAL","service":"AMAZON"}],
            "ipv6_prefixes":[{"ipv6_prefix":"2600:1f18::/33","region":"us-east-1","service":"AMAZON"}]}"#;
        let r = IpRanges::parse(doc).expect("parse");
        assert_eq!(r.endpoints("s3", Some("us-east-1")).len(), 1);
        assert_eq!(r.endpoints("ec2", Some("us-east-1")).len(), 4);
        assert_eq!(r.endpoints("ec2", Some("eu-west-1")).len(), 1, "only GLOBAL");
        assert_eq!(r.endpoints("iam", Some("eu-west-1")).len(), 4, "global service");
        assert!(IpRanges::parse("{}").is_err());
    }
}
