//! What could not be read, where, and why: the account behind honest results.
//!
//! Reading never stops at damage. The decoder ([`super::decode`]) and the record framer
//! ([`super::framing`]) keep every record they can and report each loss here, with its reason and
//! its place (file, decompressed byte offset and line, or compressed byte offset for gzip
//! damage). `scan` and `trace` print the account and pick an exit code from it, so that a CI
//! gate cannot mistake "could not read" for "clean".

use std::collections::BTreeMap;

use serde::Serialize;

/// Why part of the input could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// A record holding bytes that are not UTF-8.
    InvalidUtf8,
    /// A record that is not valid JSON, or whose brackets do not balance.
    Malformed,
    /// A JSON value other than an object where a record belongs (`[1]`, `"text"`).
    NotObject,
    /// A record cut off by the end of the data.
    Truncated,
    /// A record larger than the record limit ([`super::framing::MAX_RECORD_BYTES`]).
    RecordTooLarge,
    /// Bytes between records that are not JSON.
    Garbage,
    /// A flow-log line that does not match the flow-log format.
    BadFlowLine,
    /// Compressed data that does not decompress: the rest of that gzip member is lost.
    CorruptGzip,
    /// The data ends inside a gzip member: what follows the cut is lost.
    TruncatedGzip,
    /// A gzip member whose checksum does not match: its content is damaged somewhere.
    ChecksumMismatch,
    /// Bytes after (or between) gzip members that are not gzip.
    TrailingGarbage,
    /// The file decompresses to more than the per-file limit: the rest was not read.
    TooLarge,
    /// Compressed with something other than gzip: nothing was read.
    Unsupported,
    /// A read error (disk, network) in the middle of the data: the rest was not read.
    ReadError,
}

impl LossKind {
    /// Whether the loss is one record (or line), as opposed to a stretch of bytes.
    pub fn is_record(self) -> bool {
        matches!(
            self,
            LossKind::InvalidUtf8
                | LossKind::Malformed
                | LossKind::NotObject
                | LossKind::Truncated
                | LossKind::RecordTooLarge
                | LossKind::BadFlowLine
        )
    }

    /// How people read it.
    pub fn describe(self) -> &'static str {
        match self {
            LossKind::InvalidUtf8 => "record with invalid UTF-8",
            LossKind::Malformed => "malformed record",
            LossKind::NotObject => "JSON value that is not a record",
            LossKind::Truncated => "record cut off by the end of the data",
            LossKind::RecordTooLarge => "record over the size limit",
            LossKind::Garbage => "bytes that are not JSON",
            LossKind::BadFlowLine => "flow-log line not in the flow-log format",
            LossKind::CorruptGzip => "corrupt gzip data (rest of the member lost)",
            LossKind::TruncatedGzip => "gzip data cut short",
            LossKind::ChecksumMismatch => "gzip checksum mismatch (content damaged)",
            LossKind::TrailingGarbage => "bytes after gzip data that are not gzip",
            LossKind::TooLarge => "file over the decompressed-size limit (rest not read)",
            LossKind::Unsupported => "unsupported compression (not read)",
            LossKind::ReadError => "read error (rest not read)",
        }
    }

    /// The kebab-case name used in JSON.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// One loss and its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Loss {
    /// The file or object (`s3://…`) it happened in.
    pub source: String,
    /// Index of the source in reading order (orders the listed places deterministically).
    #[serde(skip)]
    pub file: usize,
    pub kind: LossKind,
    /// Offset in the decompressed data where the lost part starts.
    pub offset: u64,
    /// 1-based line of `offset`.
    pub line: u64,
    /// Length of the lost part in decompressed bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Offset in the compressed file, for gzip-level damage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Loss {
    /// A loss at a decompressed offset (line filled in by whoever knows it).
    pub fn at(kind: LossKind, offset: u64) -> Loss {
        Loss {
            source: String::new(),
            file: 0,
            kind,
            offset,
            line: 0,
            bytes: None,
            compressed_offset: None,
            detail: None,
        }
    }

    pub fn bytes(mut self, n: u64) -> Loss {
        self.bytes = Some(n);
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Loss {
        self.detail = Some(d.into());
        self
    }

    pub fn compressed_at(mut self, c: u64) -> Loss {
        self.compressed_offset = Some(c);
        self
    }

    /// "line 12 (byte 3400)", or "compressed byte 77" for gzip damage.
    pub fn place(&self) -> String {
        let mut s = match self.compressed_offset {
            Some(c) => format!("compressed byte {c}, decompressed byte {}", self.offset),
            None => format!("line {} (byte {})", self.line, self.offset),
        };
        if let Some(n) = self.bytes {
            s.push_str(&format!(", {n} bytes"));
        }
        s
    }
}

/// Places listed per account; the rest are counted only, so a file of garbage cannot flood
/// the report (or memory).
pub const MAX_PLACES: usize = 50;

/// Losses by kind, and the first [`MAX_PLACES`] of them with their place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Losses {
    pub by_kind: BTreeMap<LossKind, u64>,
    pub places: Vec<Loss>,
    /// Losses counted in `by_kind` but not listed in `places`.
    pub unlisted: u64,
}

impl Losses {
    pub fn add(&mut self, loss: Loss) {
        *self.by_kind.entry(loss.kind).or_default() += 1;
        if self.places.len() < MAX_PLACES {
            self.places.push(loss);
        } else {
            self.unlisted += 1;
        }
    }

    /// Counts `n` losses whose places are not known (rows of a query, say).
    pub fn count(&mut self, kind: LossKind, n: u64) {
        if n > 0 {
            *self.by_kind.entry(kind).or_default() += n;
            self.unlisted += n;
        }
    }

    /// Adds another account; the listed places stay the first ones in reading order.
    pub fn merge(&mut self, other: Losses) {
        for (k, n) in other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
        }
        self.unlisted += other.unlisted;
        self.places.extend(other.places);
        if self.places.len() > MAX_PLACES {
            self.places.sort_by_key(|l| (l.file, l.offset, l.compressed_offset));
            self.unlisted += (self.places.len() - MAX_PLACES) as u64;
            self.places.truncate(MAX_PLACES);
        }
    }

    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }

    /// Records (or lines) lost.
    pub fn records(&self) -> u64 {
        self.by_kind.iter().filter(|(k, _)| k.is_record()).map(|(_, n)| n).sum()
    }

    /// Stretches of data lost (gzip damage, garbage, the rest of an over-large file…).
    pub fn regions(&self) -> u64 {
        self.total() - self.records()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    /// "2 records with invalid UTF-8, 1 gzip data cut short".
    pub fn summary(&self) -> String {
        self.by_kind.iter().map(|(k, n)| format!("{n} {}", k.describe())).collect::<Vec<_>>().join(", ")
    }

    /// (failed, damaged) file counts for a file with these losses of which `decoded` bytes were
    /// read: nothing read is a failed file, something read a damaged one.
    pub fn file_outcome(&self, decoded: u64) -> (u64, u64) {
        match (self.is_empty(), decoded) {
            (true, _) => (0, 0),
            (false, 0) => (1, 0),
            (false, _) => (0, 1),
        }
    }

    /// Sets the source of every listed place (the reader knows it, the framer does not).
    pub fn set_source(&mut self, file: usize, name: &str) {
        for l in &mut self.places {
            l.file = file;
            l.source = name.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_loss_and_lists_the_first_in_reading_order() {
        let mut a = Losses::default();
        let mut b = Losses::default();
        for i in 0..40 {
            a.add(Loss::at(LossKind::InvalidUtf8, i));
            b.add(Loss::at(LossKind::CorruptGzip, i).compressed_at(i));
        }
        a.set_source(1, "a");
        b.set_source(0, "b");
        a.merge(b);
        assert_eq!(a.total(), 80);
        assert_eq!((a.records(), a.regions()), (40, 40));
        assert_eq!(a.places.len(), MAX_PLACES);
        assert_eq!(a.unlisted, 30);
        assert!(a.places.iter().take(40).all(|l| l.source == "b"), "file 0 comes first");
        assert!(a.summary().contains("40 record with invalid UTF-8"), "{}", a.summary());
        assert_eq!(LossKind::TruncatedGzip.name(), "truncated-gzip");
    }
}
