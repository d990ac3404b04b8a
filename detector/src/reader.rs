//! One reader for every shape CloudTrail records arrive in.
//!
//! - S3 delivery: `{"Records":[…]}`, gzip or plain;
//! - a bare JSON array of records (Stratus Red Team, `aws cloudtrail lookup-events` exports);
//! - JSON lines (Logstash / OTRF, Panther fixtures);
//! - EventBridge envelopes (`{"detail-type":…, "detail":{…}}`) in any of the above.
//!
//! Records are handed out as borrowed JSON text (plus the envelope `source` when there was
//! one), so the caller parses each exactly once with [`crate::event::Record::parse`]. A record
//! that is not JSON is reported to the caller, never a reason to stop reading the rest.

use std::borrow::Cow;
use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One record out of a log file.
#[derive(Debug)]
pub struct RecordText<'a> {
    /// The record's JSON text (an owned copy only when it had to be rewritten).
    pub json: Cow<'a, str>,
    /// The EventBridge `source` when the record came in an envelope.
    pub source: Option<String>,
    /// 1-based position of the record in its file (line number for JSON lines).
    pub position: usize,
}

/// What a file turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Records,
    Array,
    Lines,
    Single,
    Empty,
}

/// Counts from reading one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub records: u64,
    /// Lines or elements that were not JSON objects (position, reason).
    pub unreadable: Vec<(usize, String)>,
}

/// A whole-file failure: the file could not be decompressed or decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot decompress: {0}")]
    Gzip(std::io::Error),
    #[error("not UTF-8 text at byte {0}")]
    NotUtf8(usize),
}

/// gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses gzip (by magic bytes, whatever the file name) or returns the bytes as they are.
pub fn decompress(raw: Vec<u8>) -> Result<Vec<u8>, ReadError> {
    if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(raw.len() * 8);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(ReadError::Gzip)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

#[derive(Deserialize)]
struct Records<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EnvelopeProbe<'a> {
    #[serde(borrow, default, rename = "detail-type")]
    detail_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

/// Calls `f` for every record in `text`; returns the layout found and the counts.
pub fn for_each_record<'a>(text: &'a str, mut f: impl FnMut(RecordText<'a>)) -> (Layout, ReadSummary) {
    let mut sum = ReadSummary::default();
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return (Layout::Empty, sum);
    }
    let mut emit = |raw: &'a str, pos: usize, sum: &mut ReadSummary| {
        let t = raw.trim();
        if !t.starts_with('{') {
            sum.unreadable.push((pos, "not a JSON object".into()));
            return;
        }
        sum.records += 1;
        f(unwrap_envelope(t, pos));
    };
    if trimmed.starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            for (i, r) in items.iter().enumerate() {
                emit(r.get(), i + 1, &mut sum);
            }
            return (Layout::Array, sum);
        }
    } else if let Ok(recs) = serde_json::from_str::<Records>(trimmed) {
        for (i, r) in recs.records.iter().enumerate() {
            emit(r.get(), i + 1, &mut sum);
        }
        return (Layout::Records, sum);
    } else if serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        emit(trimmed, 1, &mut sum);
        return (Layout::Single, sum);
    }
    // JSON lines: one value per line; a broken line is reported and skipped.
    for (i, line) in trimmed.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        match serde_json::from_str::<&RawValue>(l) {
            Ok(_) => emit(l, i + 1, &mut sum),
            Err(e) => sum.unreadable.push((i + 1, e.to_string())),
        }
    }
    (Layout::Lines, sum)
}

/// If `json` is an EventBridge envelope, returns its `detail` with the `source`.
fn unwrap_envelope(json: &str, position: usize) -> RecordText<'_> {
    // Cheap pre-check: a CloudTrail record never has a `detail-type` key.
    if json.contains("\"detail-type\"") {
        if let Some((detail, source)) = envelope(json) {
            return RecordText { json: Cow::Borrowed(detail), source, position };
        }
    }
    RecordText { json: Cow::Borrowed(json), source: None, position }
}

/// The `detail` and `source` of an EventBridge envelope (`detail-type` and `detail` present);
/// `None` for anything else. Callers on a hot path check for `"detail-type"` first, as a
/// CloudTrail record never has that key.
pub fn envelope(json: &str) -> Option<(&str, Option<String>)> {
    let p = serde_json::from_str::<EnvelopeProbe>(json).ok()?;
    match (p.detail_type, p.detail) {
        (Some(_), Some(d)) => Some((d.get(), p.source.map(Cow::into_owned))),
        _ => None,
    }
}

/// Decodes bytes (gzip or plain) as UTF-8 text.
pub fn to_text(raw: Vec<u8>) -> Result<String, ReadError> {
    let bytes = decompress(raw)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> (Layout, Vec<String>, ReadSummary) {
        let mut v = Vec::new();
        let (l, s) = for_each_record(text, |r| v.push(r.json.into_owned()));
        (l, v, s)
    }

    #[test]
    fn reads_every_layout() {
        let (l, v, _) = collect(r#"{"Records":[{"a":1},{"a":2}]}"#);
        assert_eq!((l, v.len()), (Layout::Records, 2));
        let (l, v, _) = collect(r#"[{"a":1},{"a":2},{"a":3}]"#);
        assert_eq!((l, v.len()), (Layout::Array, 3));
        let (l, v, s) = collect("{\"a\":1}\n\n{\"a\":2}\n{broken\n");
        assert_eq!((l, v.len()), (Layout::Lines, 2));
        assert_eq!(s.unreadable.len(), 1);
        assert_eq!(s.unreadable[0].0, 4);
        let (l, v, _) = collect(r#"{"eventName":"X"}"#);
        assert_eq!((l, v.len()), (Layout::Single, 1));
        assert_eq!(collect("  ").0, Layout::Empty);
    }

    #[test]
    fn unwraps_envelopes() {
        let text = r#"[{"detail-type":"AWS API Call via CloudTrail","source":"aws.s3","detail":{"eventName":"X"}}]"#;
        let mut got = Vec::new();
        for_each_record(text, |r| got.push((r.json.into_owned(), r.source)));
        assert_eq!(got, vec![(r#"{"eventName":"X"}"#.to_string(), Some("aws.s3".to_string()))]);
    }

    #[test]
    fn gzip_by_magic() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(br#"{"Records":[]}"#).expect("write");
        let gz = enc.finish().expect("finish");
        assert_eq!(to_text(gz).expect("text"), r#"{"Records":[]}"#);
        assert!(matches!(to_text(vec![0x1f, 0x8b, 0, 1]), Err(ReadError::Gzip(_))));
        assert!(matches!(to_text(vec![b'a', 0xff]), Err(ReadError::NotUtf8(1))));
    }
}
