//! From raw bytes to parsed records: the one reading path `scan` and `trace` share.
//!
//! Decompression and layout detection are the detector's ([`ctguard_detector::reader`]), so the
//! Lambda and the forensics commands read exactly the same shapes. On top of it this module
//! rewrites Alibaba Cloud ActionTrail events ([`ctguard_detector::actiontrail`]) and counts
//! everything that is not a usable record, so nothing is dropped silently. Files are processed
//! on worker threads by [`process_parallel`], results merged on the calling thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use ctguard_detector::{actiontrail, reader, Record};
use serde::Serialize;

use super::sources::{Fetcher, Source};

/// Counts from reading, summed over files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    pub files: u64,
    /// Files that could not be read at all (I/O, S3, corrupt gzip, not text).
    pub failed_files: u64,
    /// Files skipped without parsing because they cannot mention what was asked for (`trace`).
    pub skipped_files: u64,
    pub bytes_read: u64,
    pub bytes_decoded: u64,
    /// Records handed out by the reader.
    pub records: u64,
    /// Lines or array elements that were not JSON objects.
    pub unreadable: u64,
    /// Objects that did not parse as a record.
    pub malformed: u64,
    /// Records rewritten from ActionTrail.
    pub actiontrail: u64,
}

impl ReadCounts {
    pub fn merge(&mut self, o: &ReadCounts) {
        self.files += o.files;
        self.failed_files += o.failed_files;
        self.skipped_files += o.skipped_files;
        self.bytes_read += o.bytes_read;
        self.bytes_decoded += o.bytes_decoded;
        self.records += o.records;
        self.unreadable += o.unreadable;
        self.malformed += o.malformed;
        self.actiontrail += o.actiontrail;
    }
}

/// A whole file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub source: String,
    pub error: String,
}

/// Where a record sits: file index in reading order and position in the file. Orders events
/// of the same millisecond deterministically.
pub type Seq = u64;

/// `Seq` of the `position`-th record of the `file`-th source.
pub fn seq(file: usize, position: usize) -> Seq {
    ((file as u64) << 32) | (position as u64 & 0xffff_ffff)
}

/// Which records to parse: all of them, or only those whose text mentions one of the needles.
/// A file that mentions none is not parsed at all, which is what makes `trace` fast.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub needles: Vec<String>,
}

impl Filter {
    fn matches(&self, text: &str) -> bool {
        self.needles.is_empty() || self.needles.iter().any(|n| text.contains(n.as_str()))
    }
}

/// Decodes one file and calls `f(record, envelope_source, seq)` for every record in it.
pub fn for_each_record(
    file: usize,
    raw: Vec<u8>,
    filter: &Filter,
    counts: &mut ReadCounts,
    mut f: impl FnMut(&Record, Option<&str>, Seq),
) -> Result<(), reader::ReadError> {
    counts.files += 1;
    counts.bytes_read += raw.len() as u64;
    let text = reader::to_text(raw)?;
    counts.bytes_decoded += text.len() as u64;
    if !filter.matches(&text) {
        counts.skipped_files += 1;
        return Ok(());
    }
    let mut local = ReadCounts::default();
    let (_, summary) = reader::for_each_record(&text, |rt| {
        if !filter.matches(&rt.json) {
            return;
        }
        let rewritten = if actiontrail::looks_like(&rt.json) { actiontrail::to_cloudtrail(&rt.json) } else { None };
        if rewritten.is_some() {
            local.actiontrail += 1;
        }
        let json = rewritten.as_deref().unwrap_or(&rt.json);
        match Record::parse(json) {
            Ok(r) => f(&r, rt.source.as_deref(), seq(file, rt.position)),
            Err(_) => local.malformed += 1,
        }
    });
    counts.records += summary.records;
    counts.unreadable += summary.unreadable.len() as u64;
    counts.malformed += local.malformed;
    counts.actiontrail += local.actiontrail;
    Ok(())
}

/// Fetches and processes `sources` on `threads` worker threads, calling `merge(index, result)`
/// on the calling thread as each file completes (in completion order). Workers hold one file at
/// a time, so memory is bounded by `threads` × the largest file, whatever the corpus size.
pub fn process_parallel<T: Send>(
    sources: &[Source],
    fetcher: &Fetcher,
    threads: usize,
    work: impl Fn(usize, &Source, Vec<u8>) -> T + Sync,
    mut merge: impl FnMut(usize, Result<T, FileError>),
) {
    let threads = threads.clamp(1, sources.len().max(1));
    let next = AtomicUsize::new(0);
    let run_one = |i: usize| -> Result<T, FileError> {
        let src = &sources[i];
        let raw = fetcher.fetch(src).map_err(|e| FileError { source: src.name.clone(), error: e.to_string() })?;
        Ok(work(i, src, raw))
    };
    if threads == 1 {
        for i in 0..sources.len() {
            merge(i, run_one(i));
        }
        return;
    }
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, run_one) = (&next, &run_one);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= sources.len() {
                    break;
                }
                if tx.send((i, run_one(i))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            merge(i, r);
        }
    });
}

/// Worker threads to use by default: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;

    fn collect(raw: &[u8], filter: &Filter) -> (Vec<String>, ReadCounts, Result<(), reader::ReadError>) {
        let mut names = Vec::new();
        let mut c = ReadCounts::default();
        let r = for_each_record(0, raw.to_vec(), filter, &mut c, |r, _, _| {
            names.push(r.event_name.get().unwrap_or("-").to_string())
        });
        (names, c, r)
    }

    #[test]
    fn counts_every_odd_shape() {
        let text = "{\"eventName\":\"A\"}\n[1]\n{\"eventName\":\"B\",\"eventTime\":{\"x\":1}}\nnot json\n{\"eventName\":\"C\",\"userIdentity\":{\"accessKeyId\":[]}}\n";
        let (names, c, r) = collect(text.as_bytes(), &Filter::default());
        assert!(r.is_ok());
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!((c.records, c.unreadable, c.malformed), (3, 2, 0));
    }

    #[test]
    fn actiontrail_is_rewritten_on_the_way() {
        let text = r#"[{"eventName":"DescribeInstances","acsRegion":"cn-hangzhou","eventTime":"2021-01-01T00:00:00Z",
            "sourceIpAddress":"47.96.1.20","userIdentity":{"type":"assumed-role","accessKeyId":"STS.abc"}}]"#;
        let mut keys = Vec::new();
        let mut c = ReadCounts::default();
        for_each_record(0, text.as_bytes().to_vec(), &Filter::default(), &mut c, |r, _, _| {
            keys.push((r.access_key_id().map(str::to_string), r.source_ip_address.get().map(str::to_string)))
        })
        .expect("read");
        assert_eq!(keys, [(Some("STS.abc".to_string()), Some("47.96.1.20".to_string()))]);
        assert_eq!(c.actiontrail, 1);
    }

    #[test]
    fn filters_skip_files_and_records() {
        let text = "{\"eventName\":\"A\",\"k\":\"KEY1\"}\n{\"eventName\":\"B\"}\n";
        let f = Filter { needles: vec!["KEY1".into()] };
        assert_eq!(collect(text.as_bytes(), &f).0, ["A"]);
        let none = Filter { needles: vec!["KEY9".into()] };
        let (names, c, _) = collect(text.as_bytes(), &none);
        assert!(names.is_empty());
        assert_eq!(c.skipped_files, 1);
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        let (_, _, r) = collect(&[0x1f, 0x8b, 8, 0, 1, 2], &Filter::default());
        assert!(r.is_err());
        let (_, _, r) = collect(&[b'{', 0xff, b'}'], &Filter::default());
        assert!(r.is_err());
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
                |i, _, raw| (i, raw.len()),
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
