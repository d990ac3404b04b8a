//! Where logs come from: local files, directory trees, and `s3://bucket/prefix`.
//!
//! Inputs are resolved to a sorted list of [`Source`]s before any is read, so that every run
//! reads the same files in the same order (the order breaks ties between events of the same
//! second). A time range prunes whole folders and files without reading them, using the layout
//! AWS delivers to: `AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/` and the delivery
//! stamp in the file name (`…_CloudTrail_us-east-1_20181128T2305Z_….json.gz`); VPC flow logs use
//! the same layout under `vpcflowlogs/`. Folder and file dates are *delivery* times: an event is
//! always delivered after it happened, and within [`DELIVERY_LATENESS_MS`] of it, which is what
//! makes pruning safe.
//!
//! Directories are walked with `walkdir`, following symbolic links: a link back into a directory
//! above it is detected and not followed, a file reached twice (links, overlapping paths) is
//! read once, FIFOs, sockets and devices met in a directory are counted and never opened (they
//! could block or never end), and a directory that cannot be listed is reported and skipped.
//! A path named on the command line is read whatever it is (`<(zcat …)` is a FIFO).
//!
//! Reading is synchronous so that worker threads can decode files in parallel; S3 objects are
//! streamed by blocking on the runtime that listed them.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use ctguard_detector::time::{parse_rfc3339, Millis};
use walkdir::WalkDir;

use super::read::FileError;

/// How late CloudTrail (or a flow log) may deliver an event after it happened, for pruning.
/// AWS quotes about 5 minutes on average and gives no bound, so the margin is generous: it only
/// costs reading a few more files.
pub const DELIVERY_LATENESS_MS: Millis = 6 * 3_600_000;

const DAY_MS: Millis = 86_400_000;

/// An inclusive event-time range; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

impl TimeRange {
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// Whether an event at `t` lies inside the range.
    pub fn contains(&self, t: Millis) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    /// Whether files *delivered* between `lo` and `hi` may hold events inside the range.
    pub fn may_hold_delivered(&self, lo: Millis, hi: Millis) -> bool {
        self.since.is_none_or(|s| hi >= s) && self.until.is_none_or(|u| lo <= u + DELIVERY_LATENESS_MS)
    }
}

/// Why inputs could not be listed or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("`{0}` is not a time: use 2018-11-28T23:00:00Z or 2018-11-28")]
    BadTime(String),
    #[error("`{0}` names no bucket (expected s3://bucket/prefix)")]
    NoBucket(String),
    #[error("an empty path")]
    EmptyPath,
    /// A local file or directory (the path, and the system's message).
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// An S3 listing or read (the location, and the SDK's readable error).
    #[error("{location}: {message}")]
    S3 { location: String, message: String },
    #[error("no S3 client for bucket {0}")]
    NoClient(String),
    #[error("no runtime to read S3 with")]
    NoRuntime,
}

impl SourceError {
    fn io(path: &Path, e: &std::io::Error) -> SourceError {
        SourceError::Io { path: path.display().to_string(), message: e.to_string() }
    }
}

/// Parses `--since`/`--until`: RFC 3339 (`2018-11-28T23:00:00Z`) or a date (`2018-11-28`, UTC
/// midnight). `end_of_day` makes a bare date mean the last millisecond of that day.
pub fn parse_time_arg(s: &str, end_of_day: bool) -> Result<Millis, SourceError> {
    let t = s.trim();
    if let Some(ms) = parse_rfc3339(t) {
        return Ok(ms);
    }
    if t.len() == 10 {
        if let Some(ms) = parse_rfc3339(&format!("{t}T00:00:00Z")) {
            return Ok(if end_of_day { ms + DAY_MS - 1 } else { ms });
        }
    }
    Err(SourceError::BadTime(s.to_string()))
}

/// One readable unit: a file, an S3 object, or bytes compiled into the binary.
#[derive(Clone, Debug)]
pub struct Source {
    /// What the user would call it: a path or `s3://bucket/key`.
    pub name: String,
    pub kind: SourceKind,
    /// Size in bytes when known from the listing (0 otherwise).
    pub size: u64,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    /// A regular file (opened without blocking, and read only if it still is one).
    File(PathBuf),
    /// A path named on the command line that is not a regular file (a FIFO, a device): read as
    /// a stream, up to the decompressed-size limit.
    Stream(PathBuf),
    S3 {
        bucket: String,
        key: String,
    },
    Embedded(&'static [u8]),
}

/// A command-line input before listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://bucket/prefix` or a local path.
    pub fn parse(s: &str) -> Result<Location, SourceError> {
        match s.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(SourceError::NoBucket(s.to_string()));
                }
                Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
            }
            None if s.trim().is_empty() => Err(SourceError::EmptyPath),
            None => Ok(Location::Local(PathBuf::from(s))),
        }
    }
}

/// Which files a directory walk picks up (files named on the command line are always read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// CloudTrail / ActionTrail: `.json`, `.jsonl`, `.ndjson`, `.gz`.
    Trail,
    /// VPC flow logs: `.log`, `.txt`, `.gz`.
    FlowLogs,
}

impl Kind {
    fn wants(self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        if n.starts_with('.') {
            return false;
        }
        let exts: &[&str] = match self {
            Kind::Trail => &[".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".gz"],
            Kind::FlowLogs => &[".log", ".txt", ".gz"],
        };
        exts.iter().any(|e| n.ends_with(e))
    }
}

/// What listing did, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    pub files: u64,
    pub bytes: u64,
    /// Folders and files skipped because their delivery dates fall outside the range.
    pub pruned: u64,
    /// Files in walked directories skipped for their extension (README, LICENSE, zips…).
    pub ignored: u64,
    /// FIFOs, sockets and devices in walked directories (also behind links): never opened.
    pub special: u64,
    /// Links back into a directory above them: not followed again.
    pub loops: u64,
    /// Files reached a second time (through links or overlapping paths): read once.
    pub duplicates: u64,
    /// Directories and entries that could not be listed (their files were not read).
    pub errors: Vec<FileError>,
}

impl Listing {
    pub fn merge(&mut self, o: Listing) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.pruned += o.pruned;
        self.ignored += o.ignored;
        self.special += o.special;
        self.loops += o.loops;
        self.duplicates += o.duplicates;
        self.errors.extend(o.errors);
    }
}

/// The files already listed, by identity (device and inode on Unix), so each is read once.
#[derive(Debug, Default)]
pub struct Seen(HashSet<String>);

impl Seen {
    /// Whether this is the first time the file is met.
    fn first(&mut self, meta: &Metadata, path: &Path) -> bool {
        self.0.insert(file_identity(meta, path))
    }
}

#[cfg(unix)]
fn file_identity(meta: &Metadata, _path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_identity(_meta: &Metadata, path: &Path) -> String {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// The delivery-time window `[lo, hi]` that a path's date components allow, if it has any:
/// `…/CloudTrail/<region>/<yyyy>[/<mm>[/<dd>]]` (also `vpcflowlogs`, `CloudTrail-Insight`),
/// narrowed by a `_YYYYMMDDTHHMMZ_` delivery stamp in the last component.
pub fn delivery_window(components: &[&str]) -> Option<(Millis, Millis)> {
    let mut window = None;
    if let Some(i) = components.iter().position(|c| matches!(*c, "CloudTrail" | "vpcflowlogs" | "CloudTrail-Insight")) {
        let date: Vec<&str> = components.iter().skip(i + 2).take(3).copied().collect();
        window = date_window(&date);
    }
    if let Some(last) = components.last() {
        if let Some(t) = delivery_stamp(last) {
            return Some((t, t + 59_999));
        }
    }
    window
}

/// `[start, end]` of a `yyyy`, `yyyy/mm` or `yyyy/mm/dd` prefix (non-date parts are ignored).
fn date_window(parts: &[&str]) -> Option<(Millis, Millis)> {
    fn num(s: &str, len: usize) -> Option<&str> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
    }
    let y = num(parts.first()?, 4)?;
    let m = parts.get(1).and_then(|s| num(s, 2));
    let d = m.and(parts.get(2).and_then(|s| num(s, 2)));
    let start = parse_rfc3339(&format!("{y}-{}-{}T00:00:00Z", m.unwrap_or("01"), d.unwrap_or("01")))?;
    let end = match (m, d) {
        (Some(_), Some(_)) => start + DAY_MS,
        (Some(mm), None) => {
            let (ny, nm) = if mm == "12" {
                (y.parse::<i64>().ok()? + 1, 1)
            } else {
                (y.parse().ok()?, mm.parse::<i64>().ok()? + 1)
            };
            parse_rfc3339(&format!("{ny:04}-{nm:02}-01T00:00:00Z"))?
        }
        _ => parse_rfc3339(&format!("{:04}-01-01T00:00:00Z", y.parse::<i64>().ok()? + 1))?,
    };
    Some((start, end - 1))
}

/// The `YYYYMMDDTHHMMZ` delivery stamp in a CloudTrail or flow-log file name. Names are
/// anything a file system allows, so every part is checked as ASCII digits before use.
pub fn delivery_stamp(name: &str) -> Option<Millis> {
    name.split('_').find_map(|part| {
        let b = part.as_bytes();
        if b.len() != 14 || b.get(8) != Some(&b'T') || b.get(13) != Some(&b'Z') {
            return None;
        }
        let digits = |from: usize, to: usize| {
            b.get(from..to).filter(|d| d.iter().all(u8::is_ascii_digit)).and_then(|d| std::str::from_utf8(d).ok())
        };
        let iso =
            format!("{}-{}-{}T{}:{}:00Z", digits(0, 4)?, digits(4, 6)?, digits(6, 8)?, digits(9, 11)?, digits(11, 13)?);
        parse_rfc3339(&iso)
    })
}

/// Whether a path (as components) may hold events inside `range`.
fn in_range(components: &[&str], range: &TimeRange) -> bool {
    match delivery_window(components) {
        Some((lo, hi)) => range.may_hold_delivered(lo, hi),
        None => true,
    }
}

fn skip_dir(name: &str) -> bool {
    // Digest files are signatures of the logs, not records.
    name == "CloudTrail-Digest" || name.starts_with('.')
}

/// Lists a local file or directory tree (sorted, pruned, each file once).
pub fn list_local(
    path: &Path,
    kind: Kind,
    range: &TimeRange,
    listing: &mut Listing,
    seen: &mut Seen,
) -> Result<Vec<Source>, SourceError> {
    let meta = std::fs::metadata(path).map_err(|e| SourceError::io(path, &e))?;
    let mut out = Vec::new();
    if !meta.is_dir() {
        // Named on the command line: read whatever it is.
        if !seen.first(&meta, path) {
            listing.duplicates += 1;
            return Ok(out);
        }
        let kind =
            if meta.is_file() { SourceKind::File(path.to_path_buf()) } else { SourceKind::Stream(path.to_path_buf()) };
        let size = if meta.is_file() { meta.len() } else { 0 };
        listing.files += 1;
        listing.bytes += size;
        out.push(Source { name: path.display().to_string(), kind, size });
        return Ok(out);
    }
    let pruned = Cell::new(0u64);
    let walker = WalkDir::new(path).follow_links(true).sort_by_file_name().into_iter().filter_entry(|e| {
        if e.depth() == 0 || !e.file_type().is_dir() {
            return true;
        }
        if skip_dir(&e.file_name().to_string_lossy()) {
            return false;
        }
        let comps = components(e.path());
        if !range.is_open() && !in_range(&comps.iter().map(String::as_str).collect::<Vec<_>>(), range) {
            pruned.set(pruned.get() + 1);
            return false;
        }
        true
    });
    for entry in walker {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                if err.loop_ancestor().is_some() {
                    listing.loops += 1;
                    continue;
                }
                let p = err.path().unwrap_or(path);
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let dangling = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
                    && std::fs::metadata(p).is_err();
                if dangling && !kind.wants(&name) {
                    listing.ignored += 1;
                    continue;
                }
                let error = match err.io_error() {
                    Some(io) if dangling => format!("broken link: {io}"),
                    Some(io) => io.to_string(),
                    None => err.to_string(),
                };
                listing.errors.push(FileError { source: p.display().to_string(), error });
                continue;
            }
        };
        let ft = e.file_type();
        if ft.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy();
        if !ft.is_file() {
            if !name.starts_with('.') {
                listing.special += 1;
            }
            continue;
        }
        if !kind.wants(&name) {
            listing.ignored += 1;
            continue;
        }
        let comps = components(e.path());
        if !range.is_open() && !in_range(&comps.iter().map(String::as_str).collect::<Vec<_>>(), range) {
            listing.pruned += 1;
            continue;
        }
        let meta = match e.metadata() {
            Ok(m) => m,
            Err(err) => {
                listing.errors.push(FileError { source: e.path().display().to_string(), error: err.to_string() });
                continue;
            }
        };
        if !seen.first(&meta, e.path()) {
            listing.duplicates += 1;
            continue;
        }
        listing.files += 1;
        listing.bytes += meta.len();
        out.push(Source {
            name: e.path().display().to_string(),
            kind: SourceKind::File(e.path().to_path_buf()),
            size: meta.len(),
        });
    }
    listing.pruned += pruned.get();
    Ok(out)
}

fn components(p: &Path) -> Vec<String> {
    p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect()
}

/// An S3 client for `cfg`, with path-style addressing when an endpoint override (an emulator)
/// is configured, since emulators rarely resolve `bucket.host` names.
pub fn s3_client(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(cfg).force_path_style(cfg.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A client in the bucket's own region (S3 refuses cross-region requests with a redirect).
pub async fn s3_client_for_bucket(cfg: &SdkConfig, bucket: &str) -> aws_sdk_s3::Client {
    let client = s3_client(cfg);
    let Ok(loc) = client.get_bucket_location().bucket(bucket).send().await else {
        return client;
    };
    let region = match loc.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    };
    if cfg.region().map(|r| r.as_ref()) == Some(region.as_str()) {
        return client;
    }
    s3_client(&ctguard_aws::in_region(cfg, &region))
}

/// Lists `s3://bucket/prefix`: one paged listing when the range is open; otherwise a descent by
/// `/` that skips every year, month and day folder outside the range without listing it.
pub async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    range: &TimeRange,
    listing: &mut Listing,
) -> Result<Vec<Source>, SourceError> {
    let mut out = Vec::new();
    let mut stack = vec![prefix.to_string()];
    while let Some(p) = stack.pop() {
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&p)
            .set_delimiter((!range.is_open()).then(|| "/".to_string()))
            .into_paginator()
            .send();
        let mut children = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SourceError::S3 {
                location: format!("s3://{bucket}/{p}"),
                message: ctguard_aws::err_text(&e),
            })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let comps: Vec<&str> = key.split('/').collect();
                if key.ends_with('/') || comps.contains(&"CloudTrail-Digest") {
                    continue;
                }
                if !range.is_open() && !in_range(&comps, range) {
                    listing.pruned += 1;
                    continue;
                }
                let size = o.size().unwrap_or(0).max(0) as u64;
                listing.files += 1;
                listing.bytes += size;
                out.push(Source {
                    name: format!("s3://{bucket}/{key}"),
                    kind: SourceKind::S3 { bucket: bucket.to_string(), key: key.to_string() },
                    size,
                });
            }
            for cp in page.common_prefixes() {
                let Some(child) = cp.prefix() else { continue };
                let comps: Vec<&str> = child.trim_end_matches('/').split('/').collect();
                if comps.last().is_some_and(|c| skip_dir(c)) {
                    continue;
                }
                if !in_range(&comps, range) {
                    listing.pruned += 1;
                    continue;
                }
                children.push(child.to_string());
            }
        }
        // Depth-first, in key order.
        children.sort();
        stack.extend(children.into_iter().rev());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads sources: files directly, S3 objects by blocking on the runtime that owns the client.
pub struct Fetcher {
    s3: Vec<(String, aws_sdk_s3::Client)>,
    handle: Option<tokio::runtime::Handle>,
}

impl Fetcher {
    /// A fetcher for local files and embedded bytes only.
    pub fn local() -> Fetcher {
        Fetcher { s3: Vec::new(), handle: None }
    }

    /// A fetcher that can also read the given buckets (each with its own client).
    pub fn with_s3(clients: Vec<(String, aws_sdk_s3::Client)>, handle: tokio::runtime::Handle) -> Fetcher {
        Fetcher { s3: clients, handle: Some(handle) }
    }

    /// A stream of the raw bytes of one source (still compressed if it was). Must not be called
    /// from a runtime worker thread when reading S3.
    pub fn open(&self, src: &Source) -> Result<Input<'_>, SourceError> {
        match &src.kind {
            SourceKind::File(p) => {
                open_regular(p).map(|f| Box::new(f) as Input<'_>).map_err(|e| SourceError::io(p, &e))
            }
            SourceKind::Stream(p) => {
                File::open(p).map(|f| Box::new(f) as Input<'_>).map_err(|e| SourceError::io(p, &e))
            }
            SourceKind::Embedded(b) => Ok(Box::new(*b)),
            SourceKind::S3 { bucket, key } => {
                let client = self
                    .s3
                    .iter()
                    .find(|(b, _)| b == bucket)
                    .map(|(_, c)| c)
                    .ok_or_else(|| SourceError::NoClient(bucket.clone()))?;
                let handle = self.handle.as_ref().ok_or(SourceError::NoRuntime)?;
                let out =
                    handle.block_on(async {
                        client.get_object().bucket(bucket).key(key).send().await.map_err(|e| SourceError::S3 {
                            location: src.name.clone(),
                            message: ctguard_aws::err_text(&e),
                        })
                    })?;
                Ok(Box::new(S3Body { body: out.body, handle, chunk: bytes::Bytes::new() }))
            }
        }
    }
}

/// The bytes of a source, streamed.
pub type Input<'a> = Box<dyn Read + Send + 'a>;

/// Opens a file found by walking: without blocking (were it swapped for a FIFO since the
/// listing, opening it normally would wait for a writer forever), and only if it still is a
/// regular file.
fn open_regular(p: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    let f = o.open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    Ok(f)
}

/// An S3 object body read as a blocking stream, one network chunk at a time.
struct S3Body<'a> {
    body: aws_sdk_s3::primitives::ByteStream,
    handle: &'a tokio::runtime::Handle,
    chunk: bytes::Bytes,
}

impl Read for S3Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.body.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.chunk.len());
        let head = self.chunk.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&head);
        }
        Ok(n)
    }
}

/// Objects fetched at once from S3: fetching is latency-bound, so S3 inputs get this many
/// workers even on a small machine (each holds one object at a time).
pub const S3_FETCHES: usize = 16;

/// Worker threads for `sources`: `threads` for local files, at least [`S3_FETCHES`] with S3.
pub fn workers_for(sources: &[Source], threads: usize) -> usize {
    if sources.iter().any(|s| matches!(s.kind, SourceKind::S3 { .. })) {
        threads.max(S3_FETCHES)
    } else {
        threads
    }
}

/// Resolved inputs: sources in reading order and a fetcher able to read them all.
pub struct Inputs {
    pub sources: Vec<Source>,
    pub fetcher: Fetcher,
    pub listing: Listing,
}

/// Lists every path (local or `s3://`), loading AWS configuration only when S3 is involved.
pub async fn resolve(
    paths: &[String],
    kind: Kind,
    range: &TimeRange,
    g: &ctguard_aws::AwsOptions,
) -> Result<Inputs, SourceError> {
    let mut listing = Listing::default();
    let mut seen = Seen::default();
    let mut sources = Vec::new();
    let mut clients: Vec<(String, aws_sdk_s3::Client)> = Vec::new();
    let mut cfg: Option<SdkConfig> = None;
    for p in paths {
        match Location::parse(p)? {
            Location::Local(path) => sources.extend(list_local(&path, kind, range, &mut listing, &mut seen)?),
            Location::S3 { bucket, prefix } => {
                if cfg.is_none() {
                    cfg = Some(ctguard_aws::load(g).await);
                }
                let Some(c) = cfg.as_ref() else { continue };
                if !clients.iter().any(|(b, _)| b == &bucket) {
                    let client = s3_client_for_bucket(c, &bucket).await;
                    clients.push((bucket.clone(), client));
                }
                let client = clients
                    .iter()
                    .find(|(b, _)| b == &bucket)
                    .map(|(_, c)| c.clone())
                    .ok_or(SourceError::NoClient(bucket.clone()))?;
                sources.extend(list_s3(&client, &bucket, &prefix, range, &mut listing).await?);
            }
        }
    }
    let fetcher = if clients.is_empty() {
        Fetcher::local()
    } else {
        Fetcher::with_s3(clients, tokio::runtime::Handle::current())
    };
    Ok(Inputs { sources, fetcher, listing })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("time")
    }

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("s3://b/AWSLogs/1/").expect("s3"),
            Location::S3 { bucket: "b".into(), prefix: "AWSLogs/1/".into() }
        );
        assert_eq!(Location::parse("s3://b").expect("s3"), Location::S3 { bucket: "b".into(), prefix: "".into() });
        assert!(Location::parse("s3:///x").is_err());
        assert_eq!(Location::parse("logs").expect("local"), Location::Local("logs".into()));
    }

    #[test]
    fn time_args() {
        assert_eq!(parse_time_arg("2018-11-28T23:00:00Z", false), Ok(t("2018-11-28T23:00:00Z")));
        assert_eq!(parse_time_arg("2018-11-28", false), Ok(t("2018-11-28T00:00:00Z")));
        assert_eq!(parse_time_arg("2018-11-28", true), Ok(t("2018-11-29T00:00:00Z") - 1));
        assert!(parse_time_arg("yesterday", false).is_err());
    }

    #[test]
    fn delivery_windows_from_the_layout() {
        let p: Vec<&str> = "AWSLogs/653711331788/CloudTrail/us-east-1/2018/11/28".split('/').collect();
        assert_eq!(delivery_window(&p), Some((t("2018-11-28T00:00:00Z"), t("2018-11-29T00:00:00Z") - 1)));
        let p: Vec<&str> = "x/AWSLogs/o-1/1/CloudTrail/eu-west-1/2018/12".split('/').collect();
        assert_eq!(delivery_window(&p), Some((t("2018-12-01T00:00:00Z"), t("2019-01-01T00:00:00Z") - 1)));
        let p: Vec<&str> = "AWSLogs/1/CloudTrail/us-east-1/2018".split('/').collect();
        assert_eq!(delivery_window(&p), Some((t("2018-01-01T00:00:00Z"), t("2019-01-01T00:00:00Z") - 1)));
        let f = "653711331788_CloudTrail_us-east-1_20181128T2305Z_zKlMhON7EpHala9u.json.gz";
        assert_eq!(delivery_window(&[f]), Some((t("2018-11-28T23:05:00Z"), t("2018-11-28T23:05:59Z") + 999)));
        assert_eq!(delivery_window(&["logs", "stratus.json"]), None);
        assert_eq!(delivery_window(&["CloudTrail", "us-east-1", "latest"]), None);
    }

    #[test]
    fn pruning_keeps_late_deliveries() {
        let r = TimeRange { since: Some(t("2018-11-28T23:00:00Z")), until: Some(t("2018-11-28T23:10:00Z")) };
        let day = |d: &str| -> Vec<String> {
            format!("AWSLogs/1/CloudTrail/us-east-1/2018/11/{d}").split('/').map(str::to_string).collect()
        };
        let keep = |d: &str| in_range(&day(d).iter().map(String::as_str).collect::<Vec<_>>(), &r);
        assert!(keep("28"));
        assert!(keep("29"), "events of 23:10 may be delivered after midnight");
        assert!(!keep("27"), "nothing delivered the day before happened after 23:00");
        assert!(!keep("30"));
        let file = |s: &str| in_range(&[s], &r);
        assert!(!file("1_CloudTrail_us-east-1_20181128T2255Z_a.json.gz"));
        assert!(file("1_CloudTrail_us-east-1_20181128T2305Z_a.json.gz"));
        assert!(file("1_CloudTrail_us-east-1_20181129T0300Z_a.json.gz"));
        assert!(!file("1_CloudTrail_us-east-1_20181129T0600Z_a.json.gz"));
    }

    #[test]
    fn walks_sorted_and_filters_extensions() {
        let dir = std::env::temp_dir().join(format!("ctguard-sources-{}", std::process::id()));
        let ct = dir.join("AWSLogs/1/CloudTrail/us-east-1/2018/11");
        for d in ["27", "28"] {
            std::fs::create_dir_all(ct.join(d)).expect("mkdir");
            std::fs::write(ct.join(d).join("b.json.gz"), b"x").expect("write");
            std::fs::write(ct.join(d).join("a.json"), b"x").expect("write");
        }
        std::fs::create_dir_all(dir.join("AWSLogs/1/CloudTrail-Digest")).expect("mkdir");
        std::fs::write(dir.join("AWSLogs/1/CloudTrail-Digest/d.json.gz"), b"x").expect("write");
        std::fs::write(dir.join("README.txt"), b"x").expect("write");
        let mut l = Listing::default();
        let all = list_local(&dir, Kind::Trail, &TimeRange::default(), &mut l, &mut Seen::default()).expect("list");
        let names: Vec<String> =
            all.iter().map(|s| s.name.trim_start_matches(&dir.display().to_string()).to_string()).collect();
        assert_eq!(
            names,
            [
                "/AWSLogs/1/CloudTrail/us-east-1/2018/11/27/a.json",
                "/AWSLogs/1/CloudTrail/us-east-1/2018/11/27/b.json.gz",
                "/AWSLogs/1/CloudTrail/us-east-1/2018/11/28/a.json",
                "/AWSLogs/1/CloudTrail/us-east-1/2018/11/28/b.json.gz",
            ]
        );
        assert_eq!((l.files, l.ignored), (4, 1));
        let mut l = Listing::default();
        let r = TimeRange { since: Some(t("2018-11-28T12:00:00Z")), until: None };
        assert_eq!(list_local(&dir, Kind::Trail, &r, &mut l, &mut Seen::default()).expect("list").len(), 2);
        assert_eq!(l.pruned, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
