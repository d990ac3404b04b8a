//! From a source's bytes to parsed records: the one reading path `scan` and `trace` share.
//!
//! Bytes stream through [`super::decode`] (gzip or plain, damage reported in line) and
//! [`super::framing`] (records split out one by one, damage resynchronised). Each framed record
//! is checked here: UTF-8, an EventBridge envelope unwrapped, Alibaba Cloud ActionTrail
//! rewritten ([`ctguard_detector::actiontrail`]), parsed once with [`Record::parse`]. Whatever
//! cannot be used is counted in [`ReadCounts::lost`] with its reason and place, so nothing is
//! dropped silently, and one bad byte costs one record. Files are processed on worker threads by
//! [`process_parallel`], results merged on the calling thread.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, LazyLock};

use ctguard_detector::{actiontrail, Record};
use memchr::memmem;
use serde::Serialize;

use super::decode::{self, Event, Limits};
use super::framing::{Framed, Framer, RecordSink, Verdict};
use super::loss::{Loss, LossKind, Losses};
use super::sources::{Fetcher, Input, Source};

/// Counts from reading, summed over files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    pub files: u64,
    /// Files of which nothing could be read (cannot be opened, unsupported compression…).
    pub failed_files: u64,
    /// Files read only in part (see `lost`).
    pub damaged_files: u64,
    /// Files in which no record mentions what `trace` looks for (framed, never parsed).
    pub skipped_files: u64,
    pub bytes_read: u64,
    pub bytes_decoded: u64,
    /// CloudTrail or ActionTrail records read.
    pub records: u64,
    /// JSON objects that are not log records (neither `eventName` nor `eventSource`).
    pub other_objects: u64,
    /// Records rewritten from ActionTrail.
    pub actiontrail: u64,
    /// What could not be read: by kind, and the first places.
    pub lost: Losses,
}

impl ReadCounts {
    pub fn merge(&mut self, o: ReadCounts) {
        self.files += o.files;
        self.failed_files += o.failed_files;
        self.damaged_files += o.damaged_files;
        self.skipped_files += o.skipped_files;
        self.bytes_read += o.bytes_read;
        self.bytes_decoded += o.bytes_decoded;
        self.records += o.records;
        self.other_objects += o.other_objects;
        self.actiontrail += o.actiontrail;
        self.lost.merge(o.lost);
    }

    /// Whether every byte of every file was read.
    pub fn complete(&self) -> bool {
        self.failed_files == 0 && self.lost.is_empty()
    }
}

/// A whole file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub source: String,
    pub error: String,
}

/// Where a record sits: file index in reading order and record number in the file. Orders
/// events of the same millisecond deterministically.
pub type Seq = u64;

/// `Seq` of the `position`-th record of the `file`-th source.
pub fn seq(file: usize, position: u64) -> Seq {
    ((file as u64) << 32) | position.min(u64::from(u32::MAX))
}

/// Which records to parse: all of them, or only those whose text mentions one of the needles.
/// The others are framed and checked, never parsed, which is what makes `trace` fast.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub needles: Vec<String>,
}

impl Filter {
    fn matches(&self, text: &str) -> bool {
        self.needles.is_empty() || self.needles.iter().any(|n| text.contains(n.as_str()))
    }
}

/// How files are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    pub limits: Limits,
    /// Inflate on a second thread, overlapping parsing (worth it when cores would idle).
    pub pipeline: bool,
}

/// Substring searchers built once: every record is checked for both.
static DETAIL_TYPE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"detail-type\""));
static ACS_REGION: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"acsRegion"));
static EVENT_NAME: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"eventName\""));
static EVENT_SOURCE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\"eventSource\""));

/// If `json` is an EventBridge envelope, its `detail` and `source`.
fn unwrap_envelope(json: &str) -> (&str, Option<String>) {
    // Cheap pre-check: a CloudTrail record never has a `detail-type` key.
    if DETAIL_TYPE.find(json.as_bytes()).is_some() {
        if let Some(found) = ctguard_detector::reader::envelope(json) {
            return found;
        }
    }
    (json, None)
}

fn is_log_record(r: &Record) -> bool {
    r.event_name.get().is_some() || r.event_source.get().is_some()
}

/// The records of one file, checked, parsed and handed to `f`.
struct Reader<'a, F> {
    file: usize,
    filter: &'a Filter,
    counts: ReadCounts,
    matched: bool,
    f: F,
}

impl<F: FnMut(&Record, Option<&str>, Seq)> RecordSink for Reader<'_, F> {
    fn record(&mut self, r: Framed<'_>) -> Verdict {
        let text = match std::str::from_utf8(r.bytes) {
            Ok(t) => t,
            Err(e) => {
                let why = format!("byte {} of the record is not UTF-8", e.valid_up_to());
                return Verdict::Lost(LossKind::InvalidUtf8, why);
            }
        };
        if !self.filter.matches(text) {
            // Not parsed, but checked: a record that is not JSON may be misframed.
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                return Verdict::Lost(LossKind::Malformed, e.to_string());
            }
            if EVENT_NAME.find(r.bytes).is_some() || EVENT_SOURCE.find(r.bytes).is_some() {
                self.counts.records += 1;
            } else {
                self.counts.other_objects += 1;
            }
            return Verdict::Kept;
        }
        self.matched = true;
        let (json, source) = unwrap_envelope(text);
        // `acsRegion` is the mark of ActionTrail ([`actiontrail::looks_like`]), found faster here.
        let rewritten =
            if ACS_REGION.find(json.as_bytes()).is_some() { actiontrail::to_cloudtrail(json) } else { None };
        if rewritten.is_some() {
            self.counts.actiontrail += 1;
        }
        match Record::parse(rewritten.as_deref().unwrap_or(json)) {
            Err(e) => Verdict::Lost(LossKind::Malformed, e.to_string()),
            Ok(rec) if !is_log_record(&rec) => {
                self.counts.other_objects += 1;
                Verdict::Kept
            }
            Ok(rec) => {
                self.counts.records += 1;
                (self.f)(&rec, source.as_deref(), seq(self.file, r.ordinal));
                Verdict::Kept
            }
        }
    }

    fn loss(&mut self, loss: Loss) {
        self.counts.lost.add(loss);
    }
}

/// Reads one source (`file` is its index in reading order, `name` what to call it) and calls
/// `f(record, envelope_source, seq)` for every log record in it. Damage never stops it: what
/// could not be read is added to `counts` with its reason and place.
pub fn for_each_record(
    file: usize,
    name: &str,
    input: impl Read + Send,
    opts: &ReadOptions,
    filter: &Filter,
    counts: &mut ReadCounts,
    f: impl FnMut(&Record, Option<&str>, Seq),
) {
    let mut reader = Reader { file, filter, counts: ReadCounts::default(), matched: false, f };
    let mut framer = Framer::new();
    let decoded = {
        let mut on_event = |ev: Event<'_>| match ev {
            Event::Data(d) => framer.feed(d, &mut reader),
            Event::Damage { loss, breaks } => framer.damage(loss, breaks, &mut reader),
        };
        decode::decode_with(input, opts.limits, opts.pipeline, &mut on_event)
    };
    framer.finish(&mut reader);
    let mut c = reader.counts;
    c.files = 1;
    c.bytes_read = decoded.raw;
    c.bytes_decoded = decoded.decoded;
    if !filter.needles.is_empty() && !reader.matched {
        c.skipped_files = 1;
    }
    (c.failed_files, c.damaged_files) = c.lost.file_outcome(decoded.decoded);
    c.lost.set_source(file, name);
    counts.merge(c);
}

/// Fetches and processes `sources` on `threads` worker threads, calling `merge(index, result)`
/// on the calling thread as each file completes (in completion order). Workers stream one file
/// at a time, so memory is bounded by `threads` × (one record + a few chunks), whatever the size
/// of the files or of the corpus.
pub fn process_parallel<T: Send>(
    sources: &[Source],
    fetcher: &Fetcher,
    threads: usize,
    work: impl Fn(usize, &Source, Input<'_>) -> T + Sync,
    merge: impl FnMut(usize, Result<T, FileError>),
) {
    process_parallel_with(sources, fetcher, threads, || (), |_, i, src, input| work(i, src, input), merge);
}

/// [`process_parallel`] with a state per worker thread, built by `init` and handed to `work`
/// for every file the worker processes; returns the workers' states (one per worker). What is
/// accumulated across files (a scan's fold) is then built and merged once per worker, not once
/// per file.
pub fn process_parallel_with<W: Send, T: Send>(
    sources: &[Source],
    fetcher: &Fetcher,
    threads: usize,
    init: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, usize, &Source, Input<'_>) -> T + Sync,
    mut merge: impl FnMut(usize, Result<T, FileError>),
) -> Vec<W> {
    let threads = threads.clamp(1, sources.len().max(1));
    let next = AtomicUsize::new(0);
    let run_one = |state: &mut W, i: usize| -> Result<T, FileError> {
        let src = &sources[i];
        let input = fetcher.open(src).map_err(|e| FileError { source: src.name.clone(), error: e.to_string() })?;
        Ok(work(state, i, src, input))
    };
    if threads == 1 {
        let mut state = init();
        for i in 0..sources.len() {
            merge(i, run_one(&mut state, i));
        }
        return vec![state];
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, run_one, init) = (&next, &run_one, &init);
            handles.push(s.spawn(move || {
                let mut state = init();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sources.len() {
                        break;
                    }
                    if tx.send((i, run_one(&mut state, i))).is_err() {
                        break;
                    }
                }
                state
            }));
        }
        drop(tx);
        for (i, r) in rx {
            merge(i, r);
        }
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

/// Worker threads to use by default: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;

    fn collect_with(raw: &[u8], filter: &Filter, opts: &ReadOptions) -> (Vec<String>, ReadCounts) {
        let mut names = Vec::new();
        let mut c = ReadCounts::default();
        for_each_record(0, "mem", raw, opts, filter, &mut c, |r, _, _| {
            names.push(r.event_name.get().unwrap_or("-").to_string())
        });
        (names, c)
    }

    fn collect(raw: &[u8], filter: &Filter) -> (Vec<String>, ReadCounts) {
        let plain = collect_with(raw, filter, &ReadOptions::default());
        let piped = collect_with(raw, filter, &ReadOptions { pipeline: true, ..ReadOptions::default() });
        assert_eq!(plain, piped, "pipelined reading differs");
        plain
    }

    fn kinds(c: &ReadCounts) -> Vec<(LossKind, u64)> {
        c.lost.by_kind.iter().map(|(k, n)| (*k, *n)).collect()
    }

    #[test]
    fn counts_every_odd_shape() {
        let text = "{\"eventName\":\"A\"}\n[1]\n{\"eventName\":\"B\",\"eventTime\":{\"x\":1}}\nnot json\n{\"eventName\":\"C\",\"userIdentity\":{\"accessKeyId\":[]}}\n{\"a\":1}\n";
        let (names, c) = collect(text.as_bytes(), &Filter::default());
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!((c.records, c.other_objects), (3, 1));
        assert_eq!(kinds(&c), [(LossKind::NotObject, 1), (LossKind::Garbage, 1)]);
        assert_eq!((c.damaged_files, c.failed_files), (1, 0));
        let places: Vec<(u64, &str)> = c.lost.places.iter().map(|l| (l.line, l.source.as_str())).collect();
        assert_eq!(places, [(2, "mem"), (4, "mem")]);
    }

    #[test]
    fn invalid_utf8_costs_its_record_only() {
        let mut text = b"{\"eventName\":\"A\"}\n{\"eventName\":\"B\xff\"}\n{\"eventName\":\"C\"}\n".to_vec();
        let (names, c) = collect(&text, &Filter::default());
        assert_eq!(names, ["A", "C"]);
        assert_eq!(kinds(&c), [(LossKind::InvalidUtf8, 1)]);
        assert_eq!(c.lost.places[0].line, 2);
        // Also inside a Records array, and in gzip.
        text = b"{\"Records\":[{\"eventName\":\"A\"},{\"eventName\":\"\xc3\"},{\"eventName\":\"C\"}]}".to_vec();
        let gz = crate::decode::tests::gz(&text);
        let (names, c) = collect(&gz, &Filter::default());
        assert_eq!(names, ["A", "C"]);
        assert_eq!(kinds(&c), [(LossKind::InvalidUtf8, 1)]);
    }

    #[test]
    fn actiontrail_is_rewritten_on_the_way() {
        let text = r#"[{"eventName":"DescribeInstances","acsRegion":"cn-hangzhou","eventTime":"2021-01-01T00:00:00Z",
            "sourceIpAddress":"47.96.1.20","userIdentity":{"type":"assumed-role","accessKeyId":"STS.abc"}}]"#;
        let mut keys = Vec::new();
        let mut c = ReadCounts::default();
        for_each_record(0, "m", text.as_bytes(), &ReadOptions::default(), &Filter::default(), &mut c, |r, _, _| {
            keys.push((r.access_key_id().map(str::to_string), r.source_ip_address.get().map(str::to_string)))
        });
        assert_eq!(keys, [(Some("STS.abc".to_string()), Some("47.96.1.20".to_string()))]);
        assert_eq!(c.actiontrail, 1);
    }

    #[test]
    fn envelopes_are_unwrapped() {
        let text = r#"[{"detail-type":"AWS API Call via CloudTrail","source":"aws.s3","detail":{"eventName":"X"}}]"#;
        let mut got = Vec::new();
        let mut c = ReadCounts::default();
        for_each_record(0, "m", text.as_bytes(), &ReadOptions::default(), &Filter::default(), &mut c, |r, s, _| {
            got.push((r.event_name.get().map(str::to_string), s.map(str::to_string)))
        });
        assert_eq!(got, [(Some("X".to_string()), Some("aws.s3".to_string()))]);
    }

    #[test]
    fn filters_skip_files_and_records_but_still_check_them() {
        let text = "{\"eventName\":\"A\",\"k\":\"KEY1\"}\n{\"eventName\":\"B\"}\n{\"eventName\":\"x\",,}\n";
        let f = Filter { needles: vec!["KEY1".into()] };
        let (names, c) = collect(text.as_bytes(), &f);
        assert_eq!(names, ["A"]);
        assert_eq!(c.records, 2);
        assert_eq!(kinds(&c), [(LossKind::Malformed, 1)], "unparsed records are still validated");
        let none = Filter { needles: vec!["KEY9".into()] };
        let (names, c) = collect(text.as_bytes(), &none);
        assert!(names.is_empty());
        assert_eq!(c.skipped_files, 1);
    }

    #[test]
    fn broken_files_are_losses_not_panics() {
        let (_, c) = collect(&[0x1f, 0x8b, 8, 0, 1, 2], &Filter::default());
        assert_eq!((c.failed_files, kinds(&c)), (1, vec![(LossKind::TruncatedGzip, 1)]));
        let (_, c) = collect(&[b'{', 0xff, b'}'], &Filter::default());
        assert_eq!(kinds(&c), [(LossKind::InvalidUtf8, 1)]);
        let (_, c) = collect(b"not a log at all\n", &Filter::default());
        assert_eq!((c.records, kinds(&c)), (0, vec![(LossKind::Garbage, 1)]));
    }

    #[test]
    fn parallel_processing_sees_every_file_once() {
        let sources: Vec<Source> = (0..37)
            .map(|i| Source { name: format!("s{i}"), kind: SourceKind::Embedded(b"{}"), size: 2 })
            .chain(std::iter::once(Source {
                name: "missing".into(),
                kind: SourceKind::File("/nonexistent/ctguard".into()),
                size: 0,
            }))
            .collect();
        for threads in [1, 4] {
            let mut seen = vec![0; sources.len()];
            let mut errors = 0;
            process_parallel(
                &sources,
                &Fetcher::local(),
                threads,
                |i, _, mut input| {
                    let mut v = Vec::new();
                    input.read_to_end(&mut v).map(|_| (i, v.len())).unwrap_or((i, 0))
                },
                |i, r| match r {
                    Ok((j, len)) => {
                        assert_eq!((i, len), (j, 2));
                        seen[i] += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.source, "missing");
                        errors += 1;
                    }
                },
            );
            assert_eq!(errors, 1);
            assert_eq!(seen.iter().filter(|&&n| n == 1).count(), 37);
        }
    }
}
