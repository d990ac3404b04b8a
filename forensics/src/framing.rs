//! Decompressed log text → records, one at a time, losing one record per damage, not a file.
//!
//! The framer finds where each record (a JSON object) begins and ends without parsing it, as
//! the text streams through a buffer that holds at most one record plus one chunk. It knows the
//! shapes CloudTrail records come in, and any concatenation of them:
//!
//! - S3 delivery, `{"Records":[…]}` (the array is entered, never held whole);
//! - a JSON array of records, possibly nested;
//! - JSON lines, and a single object (an EventBridge envelope, say).
//!
//! Each framed record goes to a [`RecordSink`], which parses it and returns a [`Verdict`]. On
//! damage the framer resynchronises instead of giving up:
//!
//! - a record that does not parse is lost alone when its brackets balance; when it does not
//!   parse *and* holds the start of another record, the framing had drifted, and reading
//!   resumes at that start;
//! - unbalanced brackets, a record over [`MAX_RECORD_BYTES`], or bytes that are not JSON make it
//!   skip to the next place where a record certainly starts: a line that begins with `{"`
//!   (JSON lines), or, inside an array, `,{"<first key>"` where the first key is one the
//!   records of this file start with (`"eventVersion"` for CloudTrail, learned otherwise);
//! - a new line that begins with `{"` always starts a record, so a JSON-lines record that is
//!   never closed costs itself only (pretty-printed JSON never puts `{"` at a line start);
//! - the end of the data inside a record costs that record.
//!
//! Every loss goes to the sink with its kind and place (byte offset and line).

use memchr::memmem;

use super::loss::{Loss, LossKind};

/// The largest record the framer holds. CloudTrail records are a few KiB (AWS omits oversized
/// request and response elements); anything larger is damage, and the limit bounds memory.
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// One framed record: a JSON object's bytes, not yet validated.
#[derive(Debug)]
pub struct Framed<'a> {
    pub bytes: &'a [u8],
    /// 1-based number of the record in its file.
    pub ordinal: u64,
    /// Decompressed byte offset of its first byte.
    pub offset: u64,
}

/// What the sink made of a framed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Kept,
    Lost(LossKind, String),
}

/// Receives records and losses, in order.
pub trait RecordSink {
    fn record(&mut self, r: Framed<'_>) -> Verdict;
    fn loss(&mut self, loss: Loss);
}

/// Open brackets: plain object and array, a `{"Records":…}` wrapper, and an array of records.
const OBJ: u8 = 1;
const ARR: u8 = 2;
const WRAP: u8 = 3;
const RECS: u8 = 4;

/// First keys remembered per file for resynchronisation.
const MAX_KEYS: usize = 4;
/// Longest first key remembered.
const MAX_KEY_LEN: usize = 64;
/// Bytes kept before the scan position while skipping, to check what precedes a candidate.
const TAIL: usize = 256;
/// Bytes a candidate needs after its start before it can be judged.
const LOOKAHEAD: usize = 128;

/// Bytes that matter inside a record, outside strings.
static INTERESTING: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// Bytes that end a run of string content: the closing quote, an escape, a new line.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// Most strings of a record are short (keys, names): a plain loop finds their end sooner than
/// a vectorised search could start; longer ones get the vectorised search.
const SHORT_STRING: usize = 32;

/// The first byte of `rest` that ends string content.
fn string_stop(rest: &[u8]) -> Option<usize> {
    let head = rest.get(..SHORT_STRING).unwrap_or(rest);
    if let Some(k) = head.iter().position(|&b| STRING_STOP[usize::from(b)]) {
        return Some(k);
    }
    let tail = rest.get(SHORT_STRING..)?;
    memchr::memchr3(b'"', b'\\', b'\n', tail).map(|k| k + SHORT_STRING)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

/// Bytes that can sit between records without being a loss: whitespace, padding, punctuation.
fn is_filler(b: u8) -> bool {
    is_ws(b) || matches!(b, b',' | b':' | b'[' | b']' | b'{' | b'}')
}

#[derive(Debug, Clone, Copy)]
struct Open {
    start: u64,
    /// Stack depth outside the record (its `{` sits at this index).
    level: usize,
    /// Not a record (another value of a `{"Records":…}` wrapper): framed, then dropped.
    discard: bool,
}

#[derive(Debug, Clone, Copy)]
struct Elem {
    start: u64,
    line: u64,
    string: bool,
}

/// What a skip reports when it ends.
#[derive(Debug)]
enum Report {
    /// The skipped bytes, when they held anything but filler.
    Garbage,
    /// This loss (a record the skip continues), its length extended to the end of the skip.
    Extend(Loss),
    /// Nothing: the bytes belong to damage already reported (after a hole in the data).
    Quiet,
}

#[derive(Debug)]
struct Skip {
    start: u64,
    line: u64,
    meaningful: bool,
    report: Report,
    /// The brackets to restore when reading resumes at a record inside an array.
    context: Vec<u8>,
    /// The current position counts as the start of a line (after a hole in the data).
    line_start: bool,
}

#[derive(Debug)]
enum Mode {
    Top,
    Doc,
    Skip(Skip),
}

/// What must follow a lost record in an array for the framing to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suspect {
    /// Just after the lost record: `,` or `]` must follow.
    Record,
    /// After its `,`: the next record's `{` must follow.
    Comma,
    /// After the array's `]`: what closes or continues the container must follow.
    Close,
}

/// Where reading resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// A new top-level value.
    Top,
    /// A record inside the array the damage was in.
    Array,
}

enum Step {
    Again,
    Need,
}

/// The streaming framer of one file.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Absolute (decompressed) offset of `buf[0]`.
    base: u64,
    pos: usize,
    mode: Mode,
    stack: Vec<u8>,
    in_string: bool,
    string_start: u64,
    record: Option<Open>,
    elem: Option<Elem>,
    /// Just after a `"Records"` key directly inside a top-level object.
    records_key_end: Option<u64>,
    /// Quoted first keys of the records seen in arrays (`"eventVersion"`).
    keys: Vec<Vec<u8>>,
    /// Set after a lost record in an array, with the brackets at record level.
    suspect: Option<(Suspect, Vec<u8>, Loss)>,
    ordinal: u64,
    /// (absolute offset, newlines before it): a cursor for line numbers.
    lines: (u64, u64),
}

impl Drop for Framer {
    fn drop(&mut self) {
        crate::decode::give_buffer(std::mem::take(&mut self.buf));
    }
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl Framer {
    pub fn new() -> Framer {
        let mut buf = crate::decode::take_buffer(0);
        buf.clear();
        Framer {
            buf,
            base: 0,
            pos: 0,
            mode: Mode::Top,
            stack: Vec::new(),
            in_string: false,
            string_start: 0,
            record: None,
            elem: None,
            records_key_end: None,
            keys: vec![b"\"eventVersion\"".to_vec()],
            suspect: None,
            ordinal: 0,
            lines: (0, 0),
        }
    }

    /// Records framed so far (kept or lost).
    pub fn records(&self) -> u64 {
        self.ordinal
    }

    /// Bytes currently held (for tests of the memory bound).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// The next decompressed bytes.
    pub fn feed(&mut self, data: &[u8], sink: &mut dyn RecordSink) {
        self.compact();
        self.buf.extend_from_slice(data);
        self.run(false, sink);
    }

    /// Damage reported by the decoder at the current end of the data. When it `breaks` the
    /// stream, the open record is lost with the hole and reading resumes at the next record.
    pub fn damage(&mut self, mut loss: Loss, breaks: bool, sink: &mut dyn RecordSink) {
        let end = self.abs(self.buf.len());
        loss.line = self.line_at(end);
        self.flush_suspect(sink);
        sink.loss(loss);
        if !breaks {
            return;
        }
        let context = match &self.mode {
            Mode::Skip(s) => s.context.clone(),
            Mode::Top => Vec::new(),
            Mode::Doc => match self.record {
                Some(r) => self.stack.get(..r.level).unwrap_or_default().to_vec(),
                None => self.stack.clone(),
            },
        };
        if matches!(self.mode, Mode::Skip(_)) {
            let len = self.buf.len();
            self.end_skip(len, sink);
        }
        self.record = None;
        self.elem = None;
        self.in_string = false;
        let len = self.buf.len();
        self.enter_skip(len, context, true);
        if let Mode::Skip(s) = &mut self.mode {
            s.report = Report::Quiet;
        }
    }

    /// The end of the data: an open record is lost as truncated.
    pub fn finish(&mut self, sink: &mut dyn RecordSink) {
        self.run(true, sink);
        self.flush_suspect(sink);
        let len = self.buf.len();
        if let Mode::Skip(_) = self.mode {
            self.end_skip(len, sink);
            self.mode = Mode::Top;
        }
        if let Some(r) = self.record.take() {
            if !r.discard {
                let n = self.abs(len).saturating_sub(r.start);
                self.lose(LossKind::Truncated, r.start, n, "the data ends inside this record".into(), sink);
            }
        }
        if let Some(e) = self.elem.take() {
            if !e.string || self.in_string {
                let n = self.abs(len).saturating_sub(e.start);
                sink.loss(Loss::at(LossKind::NotObject, e.start).bytes(n).with_line(e.line));
            }
        }
        self.pos = len;
    }

    fn abs(&self, i: usize) -> u64 {
        self.base + i as u64
    }

    fn idx(&self, abs: u64) -> usize {
        usize::try_from(abs.saturating_sub(self.base)).unwrap_or(usize::MAX).min(self.buf.len())
    }

    /// 1-based line of an absolute offset (at or after `base`).
    fn line_at(&mut self, abs: u64) -> u64 {
        let (at, before) = self.lines;
        let (from, to) = (self.idx(at.max(self.base)), self.idx(abs));
        if to >= from {
            let n = memchr::memchr_iter(b'\n', self.buf.get(from..to).unwrap_or_default()).count() as u64;
            self.lines = (abs.max(self.base), before + n);
            before + n + 1
        } else {
            let n = memchr::memchr_iter(b'\n', self.buf.get(to..from).unwrap_or_default()).count() as u64;
            before.saturating_sub(n) + 1
        }
    }

    /// Drops bytes that are no longer needed.
    fn compact(&mut self) {
        let keep = match (&self.mode, self.record) {
            (Mode::Skip(_), _) => self.pos.saturating_sub(TAIL),
            (_, Some(r)) if !r.discard => self.idx(r.start).min(self.pos),
            _ => self.pos.saturating_sub(TAIL.min(self.pos)),
        };
        if keep == 0 || keep < self.buf.len() / 2 {
            return;
        }
        let new_base = self.abs(keep);
        if self.lines.0 < new_base {
            self.line_at(new_base);
        }
        self.buf.drain(..keep);
        self.base = new_base;
        self.pos -= keep;
    }

    fn run(&mut self, eof: bool, sink: &mut dyn RecordSink) {
        loop {
            let step = match self.mode {
                Mode::Top => self.scan_top(eof),
                Mode::Doc => self.scan_doc(eof, sink),
                Mode::Skip(_) => self.scan_skip(eof, sink),
            };
            match step {
                Step::Again => {}
                Step::Need => {
                    if let (Mode::Doc, Some(r)) = (&self.mode, self.record) {
                        let len = self.buf.len();
                        if !r.discard && self.abs(len).saturating_sub(r.start) > MAX_RECORD_BYTES as u64 {
                            self.anomaly(len, LossKind::RecordTooLarge, "larger than the record limit", sink);
                            continue;
                        }
                    }
                    return;
                }
            }
        }
    }

    fn scan_top(&mut self, eof: bool) -> Step {
        // Zero padding can be gigabytes (a preallocated file, a device): skip it in blocks.
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        self.pos += rest.chunks_exact(16).take_while(|c| c.iter().all(|&b| b == 0)).count() * 16;
        while let Some(&b) = self.buf.get(self.pos) {
            let i = self.pos;
            match b {
                _ if is_ws(b) => self.pos += 1,
                // Stray separators between documents hold nothing.
                b',' | b']' | b'}' => self.pos += 1,
                0xEF => {
                    if self.buf.len() < i + 3 && !eof {
                        return Step::Need;
                    }
                    if self.buf.get(i..i + 3) == Some(&[0xEF, 0xBB, 0xBF][..]) {
                        self.pos += 3;
                    } else {
                        self.enter_skip(i, Vec::new(), false);
                        return Step::Again;
                    }
                }
                b'{' => {
                    self.stack.clear();
                    self.stack.push(OBJ);
                    self.record = Some(Open { start: self.abs(i), level: 0, discard: false });
                    self.records_key_end = None;
                    self.pos = i + 1;
                    self.mode = Mode::Doc;
                    return Step::Again;
                }
                b'[' => {
                    self.stack.clear();
                    self.stack.push(RECS);
                    self.pos = i + 1;
                    self.mode = Mode::Doc;
                    return Step::Again;
                }
                _ => {
                    self.enter_skip(i, Vec::new(), false);
                    return Step::Again;
                }
            }
        }
        Step::Need
    }

    fn scan_doc(&mut self, eof: bool, sink: &mut dyn RecordSink) -> Step {
        loop {
            let len = self.buf.len();
            if self.pos >= len {
                return Step::Need;
            }
            if self.in_string {
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                let Some(k) = string_stop(rest) else {
                    self.pos = len;
                    return Step::Need;
                };
                let i = self.pos + k;
                match self.buf.get(i) {
                    Some(b'\\') => {
                        if i + 1 >= len {
                            self.pos = if eof { len } else { i };
                            return Step::Need;
                        }
                        self.pos = i + 2;
                    }
                    Some(b'"') => {
                        self.in_string = false;
                        self.pos = i + 1;
                        self.string_closed(i, sink);
                    }
                    _ => match self.line_starts_record(i + 1, eof) {
                        Some(true) => {
                            self.cut_at_line(i + 1, sink);
                            return Step::Again;
                        }
                        Some(false) => self.pos = i + 1,
                        None => {
                            self.pos = i;
                            return Step::Need;
                        }
                    },
                }
                continue;
            }
            if self.record.is_some() {
                let rest = self.buf.get(self.pos..).unwrap_or_default();
                self.pos += rest.iter().position(|&b| INTERESTING[usize::from(b)]).unwrap_or(rest.len());
                if self.pos >= len {
                    return Step::Need;
                }
            }
            let i = self.pos;
            let Some(&b) = self.buf.get(i) else { return Step::Need };
            if self.record.is_none() && self.suspect.is_some() && !self.check_suspect(i, b, sink) {
                return Step::Again;
            }
            self.pos = i + 1;
            match b {
                b'"' => {
                    self.in_string = true;
                    self.string_start = self.abs(i);
                    if self.record.is_none() && self.stack.last() == Some(&RECS) {
                        self.end_scalar(i, sink);
                        let line = self.line_at(self.abs(i));
                        self.elem = Some(Elem { start: self.abs(i), line, string: true });
                    }
                }
                b'{' => self.open_object(i, sink),
                b'[' => self.open_array(i, sink),
                b'}' | b']' => {
                    if let Some(step) = self.close(i, b, sink) {
                        return step;
                    }
                }
                b'\n' if self.record.is_some() => match self.line_starts_record(i + 1, eof) {
                    Some(true) => {
                        self.cut_at_line(i + 1, sink);
                        return Step::Again;
                    }
                    Some(false) => {}
                    None => {
                        self.pos = i;
                        return Step::Need;
                    }
                },
                _ if self.record.is_none() => self.between(i, b, sink),
                _ => {}
            }
        }
    }

    fn string_closed(&mut self, i: usize, sink: &mut dyn RecordSink) {
        match self.record {
            Some(r) if r.level == 0 && !r.discard && self.stack.len() == 1 => {
                let s = self.idx(self.string_start) + 1;
                self.records_key_end = (self.buf.get(s..i) == Some(&b"Records"[..])).then(|| self.abs(i + 1));
            }
            None => {
                if let Some(e) = self.elem.filter(|e| e.string) {
                    self.elem = None;
                    let n = self.abs(i + 1).saturating_sub(e.start);
                    sink.loss(Loss::at(LossKind::NotObject, e.start).bytes(n).with_line(e.line).detail("a string"));
                }
            }
            _ => {}
        }
    }

    fn open_object(&mut self, i: usize, sink: &mut dyn RecordSink) {
        if self.record.is_none() {
            let discard = self.stack.last() != Some(&RECS);
            if !discard {
                self.end_scalar(i, sink);
            }
            self.record = Some(Open { start: self.abs(i), level: self.stack.len(), discard });
        }
        self.stack.push(OBJ);
    }

    fn open_array(&mut self, i: usize, sink: &mut dyn RecordSink) {
        match self.record {
            Some(r) if r.level == 0 && !r.discard && self.stack.len() == 1 && self.records_key_follows(i) => {
                // `{"Records":[`: the array holds the records; the object is only a wrapper.
                self.stack = vec![WRAP, RECS];
                self.record = None;
                self.records_key_end = None;
            }
            Some(_) => self.stack.push(ARR),
            None if self.stack.last() == Some(&RECS) => {
                self.end_scalar(i, sink);
                self.stack.push(RECS);
            }
            None => {
                self.record = Some(Open { start: self.abs(i), level: self.stack.len(), discard: true });
                self.stack.push(ARR);
            }
        }
    }

    fn records_key_follows(&self, i: usize) -> bool {
        let Some(end) = self.records_key_end else { return false };
        let between = self.buf.get(self.idx(end)..i).unwrap_or_default();
        between.iter().filter(|b| !is_ws(**b)).eq(b":".iter())
    }

    fn close(&mut self, i: usize, b: u8, sink: &mut dyn RecordSink) -> Option<Step> {
        let fits = matches!((b, self.stack.last()), (b'}', Some(&OBJ | &WRAP)) | (b']', Some(&ARR | &RECS)));
        if !fits {
            self.anomaly(i, LossKind::Malformed, "unbalanced brackets", sink);
            return Some(Step::Again);
        }
        if self.record.is_none() && self.stack.last() == Some(&RECS) {
            self.end_scalar(i, sink);
        }
        self.stack.pop();
        if let Some(r) = self.record {
            if self.stack.len() == r.level {
                return self.complete(r, i, sink);
            }
        }
        if self.stack.is_empty() {
            self.flush_suspect(sink);
            self.mode = Mode::Top;
            return Some(Step::Again);
        }
        None
    }

    /// A record's closing bracket at `i`: hand it over, recover when it was misframed.
    fn complete(&mut self, r: Open, i: usize, sink: &mut dyn RecordSink) -> Option<Step> {
        self.record = None;
        if !r.discard {
            let (s, e) = (self.idx(r.start), i + 1);
            self.ordinal += 1;
            let verdict = if e - s > MAX_RECORD_BYTES {
                // Whether a record over the limit ends within the piece at hand or not must not
                // change what is kept.
                Verdict::Lost(LossKind::RecordTooLarge, "larger than the record limit".into())
            } else {
                let framed =
                    Framed { bytes: self.buf.get(s..e).unwrap_or_default(), ordinal: self.ordinal, offset: r.start };
                sink.record(framed)
            };
            match verdict {
                Verdict::Kept => {
                    if r.level > 0 {
                        self.learn_key(s, e);
                    }
                }
                Verdict::Lost(kind, why) => {
                    let context = self.stack.clone();
                    if let Some((c, resync)) = self.find_resync(s + 1, e, &context) {
                        let n = (c - s) as u64;
                        let why = format!("{why}; it holds the start of the next record, where reading resumes");
                        self.lose(kind, r.start, n, why, sink);
                        self.resume(c, resync, context);
                        return Some(Step::Again);
                    }
                    if r.level > 0 {
                        // Its brackets balanced, but the framing may have drifted (a lost quote
                        // turns strings inside out): check that what follows is a separator
                        // before reporting it (a drift extends the loss to the next record).
                        let line = self.line_at(r.start.max(self.base));
                        let loss = Loss::at(kind, r.start).bytes((e - s) as u64).with_line(line).detail(why);
                        self.flush_suspect(sink);
                        self.suspect = Some((Suspect::Record, context, loss));
                    } else {
                        self.lose(kind, r.start, (e - s) as u64, why, sink);
                    }
                }
            }
        }
        if self.stack.is_empty() {
            self.mode = Mode::Top;
            return Some(Step::Again);
        }
        None
    }

    /// After a lost record inside an array, whether byte `b` at `i` is what follows a record
    /// there. If not, the framing drifted: skip to the next record start in that array.
    fn check_suspect(&mut self, i: usize, b: u8, sink: &mut dyn RecordSink) -> bool {
        let Some((state, _, _)) = &self.suspect else { return true };
        let next = match (state, b) {
            (_, b) if is_ws(b) => return true,
            (Suspect::Record, b',') => Some(Suspect::Comma),
            (Suspect::Record | Suspect::Comma, b']') => Some(Suspect::Close),
            (Suspect::Comma, b'{') => None,
            (Suspect::Close, b'}' | b',') if self.stack.last() == Some(&WRAP) => None,
            (Suspect::Close, b',' | b']') if self.stack.last() == Some(&RECS) => None,
            _ => {
                let Some((_, context, loss)) = self.suspect.take() else { return true };
                self.enter_skip(i, context, false);
                if let Mode::Skip(s) = &mut self.mode {
                    s.report = Report::Extend(loss);
                }
                return false;
            }
        };
        match (next, &mut self.suspect) {
            (Some(n), Some((state, _, _))) => *state = n,
            _ => self.flush_suspect(sink),
        }
        true
    }

    /// Reports the lost record a suspicion was about.
    fn flush_suspect(&mut self, sink: &mut dyn RecordSink) {
        if let Some((_, _, loss)) = self.suspect.take() {
            sink.loss(loss);
        }
    }

    /// A byte between records inside an array: separators, or a value that is not an object.
    fn between(&mut self, i: usize, b: u8, sink: &mut dyn RecordSink) {
        if self.stack.last() != Some(&RECS) {
            return;
        }
        if b == b',' || is_ws(b) {
            self.end_scalar(i, sink);
        } else if self.elem.is_none() {
            let line = self.line_at(self.abs(i));
            self.elem = Some(Elem { start: self.abs(i), line, string: false });
        }
    }

    fn end_scalar(&mut self, i: usize, sink: &mut dyn RecordSink) {
        if let Some(e) = self.elem.filter(|e| !e.string) {
            self.elem = None;
            let n = self.abs(i).saturating_sub(e.start);
            sink.loss(Loss::at(LossKind::NotObject, e.start).bytes(n).with_line(e.line));
        }
    }

    /// Whether a record starts at `p`, the first byte of a line: `{` then `"` (spaces allowed).
    /// `None` when more data is needed to tell.
    fn line_starts_record(&self, p: usize, eof: bool) -> Option<bool> {
        let need = if eof { Some(false) } else { None };
        match self.buf.get(p) {
            None => need,
            Some(b'{') => {
                let rest = self.buf.get(p + 1..).unwrap_or_default();
                match rest.iter().take(8).position(|&b| b != b' ' && b != b'\t') {
                    Some(k) => Some(rest.get(k) == Some(&b'"')),
                    None if rest.len() >= 8 => Some(false),
                    None => need,
                }
            }
            Some(_) => Some(false),
        }
    }

    /// A line starting at `c` begins a record while the previous one is still open: the open
    /// one (if a record) is lost, reading goes on at the top level.
    fn cut_at_line(&mut self, c: usize, sink: &mut dyn RecordSink) {
        if let Some(r) = self.record.filter(|r| !r.discard) {
            let n = self.abs(c).saturating_sub(r.start);
            self.lose(LossKind::Malformed, r.start, n, "not closed before the record on the next line".into(), sink);
        } else if let Some(e) = self.elem {
            let n = self.abs(c).saturating_sub(e.start);
            sink.loss(Loss::at(LossKind::NotObject, e.start).bytes(n).with_line(e.line).detail("an unclosed string"));
        }
        self.resume(c, Resync::Top, Vec::new());
    }

    /// Structural damage at `i`: lose the open record (unless it holds the next record's start)
    /// and skip to the next place a record certainly starts.
    fn anomaly(&mut self, i: usize, kind: LossKind, why: &str, sink: &mut dyn RecordSink) {
        let context = match self.record.take() {
            Some(r) => {
                let context = self.stack.get(..r.level).unwrap_or_default().to_vec();
                if !r.discard {
                    let s = self.idx(r.start);
                    if let Some((c, resync)) = self.find_resync(s + 1, i.max(s + 1), &context) {
                        let why = format!("{why}; reading resumes at the next record");
                        self.lose(LossKind::Malformed, r.start, (c - s) as u64, why, sink);
                        self.resume(c, resync, context);
                        return;
                    }
                    let line = self.line_at(r.start.max(self.base));
                    let loss = Loss::at(kind, r.start).with_line(line).detail(why);
                    self.enter_skip(i, context, false);
                    if let Mode::Skip(s) = &mut self.mode {
                        s.report = Report::Extend(loss);
                    }
                    return;
                }
                context
            }
            None => self.stack.clone(),
        };
        self.enter_skip(i, context, false);
    }

    fn resume(&mut self, c: usize, resync: Resync, context: Vec<u8>) {
        self.in_string = false;
        self.record = None;
        self.elem = None;
        self.records_key_end = None;
        self.pos = c;
        match resync {
            Resync::Top => {
                self.stack.clear();
                self.mode = Mode::Top;
            }
            Resync::Array => {
                self.stack = context;
                self.mode = Mode::Doc;
            }
        }
    }

    fn enter_skip(&mut self, i: usize, context: Vec<u8>, line_start: bool) {
        let start = self.abs(i);
        let line = self.line_at(start);
        self.record = None;
        self.elem = None;
        self.in_string = false;
        self.pos = i;
        self.mode = Mode::Skip(Skip { start, line, meaningful: false, report: Report::Garbage, context, line_start });
    }

    fn scan_skip(&mut self, eof: bool, sink: &mut dyn RecordSink) -> Step {
        let len = self.buf.len();
        let (line_start, context) = match &mut self.mode {
            Mode::Skip(s) => (s.line_start, std::mem::take(&mut s.context)),
            _ => return Step::Again,
        };
        let put_back = |me: &mut Framer, context: Vec<u8>| {
            if let Mode::Skip(s) = &mut me.mode {
                s.context = context;
            }
        };
        if line_start {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            match rest.iter().position(|&b| !is_ws(b)) {
                None => {
                    self.pos = len;
                    put_back(self, context);
                    if eof {
                        self.end_skip(len, sink);
                        self.mode = Mode::Top;
                    }
                    return Step::Need;
                }
                Some(k) => {
                    let c = self.pos + k;
                    if matches!(self.buf.get(c), Some(b'{' | b'[')) {
                        self.end_skip(c, sink);
                        self.resume(c, Resync::Top, Vec::new());
                        return Step::Again;
                    }
                    if let Mode::Skip(s) = &mut self.mode {
                        s.line_start = false;
                    }
                }
            }
        }
        let limit = if eof { len } else { len.saturating_sub(LOOKAHEAD) };
        if self.pos < limit {
            if let Some((c, resync)) = self.find_resync(self.pos, limit, &context) {
                self.note_meaningful(self.pos, c);
                self.end_skip(c, sink);
                self.resume(c, resync, context);
                return Step::Again;
            }
            self.note_meaningful(self.pos, limit);
            self.pos = limit;
        }
        put_back(self, context);
        if eof {
            self.end_skip(len, sink);
            self.mode = Mode::Top;
            self.pos = len;
        }
        Step::Need
    }

    fn note_meaningful(&mut self, from: usize, to: usize) {
        let Mode::Skip(s) = &mut self.mode else { return };
        if s.meaningful {
            return;
        }
        let bytes = self.buf.get(from..to).unwrap_or_default();
        // Zero padding is the common filler of damaged files: check it eight bytes at a time.
        let mut chunks = bytes.chunks_exact(8);
        s.meaningful = chunks.any(|c| c != [0u8; 8] && c.iter().any(|&b| !is_filler(b)))
            || chunks.remainder().iter().any(|&b| !is_filler(b));
    }

    /// Ends a skip at `c`: the skipped bytes are a loss when they held anything but filler, or
    /// extend the loss of the record they continue.
    fn end_skip(&mut self, c: usize, sink: &mut dyn RecordSink) {
        let end = self.abs(c);
        if let Mode::Skip(s) = &mut self.mode {
            let (start, line, meaningful) = (s.start, s.line, s.meaningful);
            let report = std::mem::replace(&mut s.report, Report::Garbage);
            s.meaningful = false;
            s.start = end;
            match report {
                Report::Extend(loss) => {
                    let n = end.saturating_sub(loss.offset);
                    sink.loss(loss.bytes(n));
                }
                Report::Garbage if meaningful && end > start => {
                    sink.loss(Loss::at(LossKind::Garbage, start).bytes(end - start).with_line(line));
                }
                _ => {}
            }
        }
    }

    /// The earliest place in `[from, to)` where a record certainly starts: a line beginning
    /// with `{` or `[`, or (inside an array of records) `,{"<known first key>"`.
    fn find_resync(&self, from: usize, to: usize, context: &[u8]) -> Option<(usize, Resync)> {
        let hay = self.buf.get(..to.min(self.buf.len()))?;
        let mut best: Option<(usize, Resync)> = None;
        let line = memchr::memchr_iter(b'\n', hay.get(from.saturating_sub(1)..)?).find_map(|k| {
            let c = from.saturating_sub(1) + k + 1;
            let next = self.buf.get(c)?;
            match next {
                b'[' => Some(c),
                b'{' => {
                    let after = self.buf.get(c + 1..).unwrap_or_default();
                    let f = after.iter().position(|&b| b != b' ' && b != b'\t')?;
                    matches!(after.get(f), Some(b'"' | b'\n' | b'\r' | b'}')).then_some(c)
                }
                _ => None,
            }
        });
        if let Some(c) = line.filter(|&c| c >= from && c < to) {
            best = Some((c, Resync::Top));
        }
        if context.last() == Some(&RECS) {
            let end = (to + LOOKAHEAD).min(self.buf.len());
            let window = self.buf.get(from..end).unwrap_or_default();
            for key in &self.keys {
                let found = memmem::find_iter(window, key)
                    .filter_map(|m| self.key_candidate(from + m, key.len()))
                    .find(|&c| c >= from && c < to);
                if let Some(c) = found {
                    if best.is_none_or(|(b, _)| c < b) {
                        best = Some((c, Resync::Array));
                    }
                }
            }
        }
        best
    }

    /// For a first key found at `m`: the `{` before it when the shape is `[,] {  "key" :`.
    fn key_candidate(&self, m: usize, key_len: usize) -> Option<usize> {
        let before = self.buf.get(..m)?;
        let j = before.iter().rposition(|&b| !is_ws(b))?;
        if before.get(j) != Some(&b'{') {
            return None;
        }
        let k = before.get(..j)?.iter().rposition(|&b| !is_ws(b))?;
        if !matches!(before.get(k), Some(b',' | b'[')) {
            return None;
        }
        let after = self.buf.get(m + key_len..)?;
        let f = after.iter().position(|&b| !is_ws(b))?;
        (after.get(f) == Some(&b':')).then_some(j)
    }

    /// Remembers the first key of a record kept from an array, for resynchronisation.
    fn learn_key(&mut self, s: usize, e: usize) {
        if self.keys.len() >= MAX_KEYS {
            return;
        }
        let Some(rec) = self.buf.get(s + 1..e) else { return };
        let Some(q) = rec.iter().position(|&b| !is_ws(b)) else { return };
        if rec.get(q) != Some(&b'"') {
            return;
        }
        let body = rec.get(q + 1..).unwrap_or_default();
        let Some(end) = body.iter().take(MAX_KEY_LEN).position(|&b| b == b'"' || b == b'\\') else { return };
        if body.get(end) != Some(&b'"') || end == 0 {
            return;
        }
        let Some(key) = rec.get(q..q + end + 2) else { return };
        if !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_vec());
        }
    }

    fn lose(&mut self, kind: LossKind, start: u64, bytes: u64, why: String, sink: &mut dyn RecordSink) {
        let line = self.line_at(start.max(self.base));
        sink.loss(Loss::at(kind, start).bytes(bytes).with_line(line).detail(why));
    }
}

impl Loss {
    /// Sets the line.
    pub fn with_line(mut self, line: u64) -> Loss {
        self.line = line;
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Keeps records that parse as JSON objects, loses the others as malformed.
    #[derive(Default)]
    pub(crate) struct Collect {
        pub kept: Vec<String>,
        pub losses: Vec<Loss>,
    }

    impl RecordSink for Collect {
        fn record(&mut self, r: Framed<'_>) -> Verdict {
            let Ok(text) = std::str::from_utf8(r.bytes) else {
                return Verdict::Lost(LossKind::InvalidUtf8, "not UTF-8".into());
            };
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) if v.is_object() => {
                    self.kept.push(v.get("n").map(|n| n.to_string()).unwrap_or_else(|| text.to_string()));
                    Verdict::Kept
                }
                Ok(_) => Verdict::Lost(LossKind::NotObject, "not an object".into()),
                Err(e) => Verdict::Lost(LossKind::Malformed, e.to_string()),
            }
        }
        fn loss(&mut self, loss: Loss) {
            self.losses.push(loss);
        }
    }

    /// Frames `text` fed in pieces of `step` bytes.
    pub(crate) fn frame(text: &[u8], step: usize) -> Collect {
        let mut f = Framer::new();
        let mut c = Collect::default();
        for piece in text.chunks(step.max(1)) {
            f.feed(piece, &mut c);
        }
        f.finish(&mut c);
        c
    }

    /// Same result whatever the piece size.
    fn check(text: &str) -> (Vec<String>, Vec<LossKind>) {
        let whole = frame(text.as_bytes(), usize::MAX);
        for step in [1, 2, 3, 7, 64] {
            let c = frame(text.as_bytes(), step);
            assert_eq!(c.kept, whole.kept, "step {step}: {text}");
            assert_eq!(c.losses, whole.losses, "step {step}: {text}");
        }
        (whole.kept, whole.losses.iter().map(|l| l.kind).collect())
    }

    fn ct(n: u32) -> String {
        format!(r#"{{"eventVersion":"1.08","n":{n},"resources":[{{"ARN":"a"}},{{"ARN":"b"}}],"p":"}}]{{["}}"#)
    }

    fn ns(v: &[u32]) -> Vec<String> {
        v.iter().map(u32::to_string).collect()
    }

    #[test]
    fn every_layout_and_their_concatenation() {
        let recs = format!(r#"{{"Records":[{},{}]}}"#, ct(1), ct(2));
        assert_eq!(check(&recs), (ns(&[1, 2]), vec![]));
        let arr = format!("[\n  {},\n  {}\n]\n", ct(3), ct(4));
        assert_eq!(check(&arr), (ns(&[3, 4]), vec![]));
        let lines = format!("{}\n{}\r\n\n{}", ct(5), ct(6), ct(7));
        assert_eq!(check(&lines), (ns(&[5, 6, 7]), vec![]));
        let all = format!("\u{feff}{recs}{arr}{lines}");
        assert_eq!(check(&all), (ns(&[1, 2, 3, 4, 5, 6, 7]), vec![]));
        // Wrapper keys around the records, and nested arrays of records.
        let odd = format!(r#"{{"v":{{"x":[1]}},"Records":[[{}],{}],"next":[{{"a":1}}]}}"#, ct(8), ct(9));
        assert_eq!(check(&odd), (ns(&[8, 9]), vec![]));
        assert_eq!(check("  \n"), (vec![], vec![]));
        assert_eq!(check(r#"{"Records":[]}"#), (vec![], vec![]));
    }

    #[test]
    fn pretty_printed_records_are_not_cut_at_lines() {
        let v: serde_json::Value = serde_json::from_str(&ct(1)).expect("json");
        let pretty = serde_json::to_string_pretty(&serde_json::json!({"Records":[v.clone(), v]})).expect("pretty");
        assert_eq!(check(&pretty), (ns(&[1, 1]), vec![]));
    }

    #[test]
    fn a_broken_record_in_a_records_array_costs_itself() {
        let t = format!(r#"{{"Records":[{},{},{{broken}}]}}"#, ct(1), ct(2));
        assert_eq!(check(&t), (ns(&[1, 2]), vec![LossKind::Malformed]));
        // Unbalanced: a lost `}` would swallow the next records without resynchronisation.
        let t = format!(r#"{{"Records":[{},{{"eventVersion":"1","x":{{"y":1}},{},{}]}}"#, ct(1), ct(3), ct(4));
        assert_eq!(check(&t), (ns(&[1, 3, 4]), vec![LossKind::Malformed]));
        // A quote lost inverts strings until the next record start.
        let bad = ct(2).replacen(r#""n""#, r#""n"#, 1);
        let t = format!(r#"{{"Records":[{},{},{},{}]}}"#, ct(1), bad, ct(3), ct(4));
        let (kept, lost) = check(&t);
        assert_eq!(kept, ns(&[1, 3, 4]), "{lost:?}");
        assert_eq!(lost.len(), 1, "{lost:?}");
        // An extra `]` inside a record.
        let bad = ct(2).replacen(r#""n""#, r#"]"n""#, 1);
        let t = format!(r#"{{"Records":[{},{},{}]}}"#, ct(1), bad, ct(3));
        assert_eq!(check(&t).0, ns(&[1, 3]));
    }

    #[test]
    fn truncation_keeps_every_complete_record() {
        let t = format!(r#"{{"Records":[{},{},{{"eventVersion":"1.0"#, ct(1), ct(2));
        assert_eq!(check(&t), (ns(&[1, 2]), vec![LossKind::Truncated]));
        let t = format!("{}\n{}\n{{\"eventVersion\":\"1.0", ct(1), ct(2));
        assert_eq!(check(&t), (ns(&[1, 2]), vec![LossKind::Truncated]));
        let t = format!(r#"{{"Records":[{},{}"#, ct(1), ct(2));
        assert_eq!(check(&t), (ns(&[1, 2]), vec![]), "the records are whole");
    }

    #[test]
    fn json_lines_lose_one_line_per_damage() {
        let t = format!(
            "{}\n{{\"n\":9,\"x\":{{\"y\":1}}\n{}\n{{\"n\":\"unclosed}}\n{}\nnot json at all\n[1, {}]\n{}",
            ct(1),
            ct(2),
            ct(3),
            ct(4),
            ct(5)
        );
        let (kept, lost) = check(&t);
        assert_eq!(kept, ns(&[1, 2, 3, 4, 5]));
        assert_eq!(lost, [LossKind::Malformed, LossKind::Malformed, LossKind::Garbage, LossKind::NotObject]);
    }

    #[test]
    fn garbage_between_and_around_documents() {
        let t = format!("garbage\n{}\n\u{0}\u{0}\u{0}\n{}\n]]}}\n", ct(1), ct(2));
        assert_eq!(check(&t), (ns(&[1, 2]), vec![LossKind::Garbage]), "padding and stray brackets are not losses");
        // Garbage inside an array, with a record start to resume at.
        let t = format!(r#"{{"Records":[{},}}}}xx"yy,{},{}]}}"#, ct(1), ct(2), ct(3));
        let (kept, lost) = check(&t);
        assert_eq!(kept, ns(&[1, 2, 3]));
        assert!(!lost.is_empty());
    }

    #[test]
    fn oversized_records_are_skipped_with_bounded_memory() {
        let huge = format!(r#"{{"eventVersion":"1","n":0,"x":"{}"}}"#, "a".repeat(MAX_RECORD_BYTES + 10));
        let t = format!(r#"{{"Records":[{},{},{}]}}"#, ct(1), huge, ct(2));
        let mut f = Framer::new();
        let mut c = Collect::default();
        let mut peak = 0;
        for piece in t.as_bytes().chunks(64 << 10) {
            f.feed(piece, &mut c);
            peak = peak.max(f.held());
        }
        f.finish(&mut c);
        assert_eq!(c.kept, ns(&[1, 2]));
        assert_eq!(c.losses.iter().map(|l| l.kind).collect::<Vec<_>>(), [LossKind::RecordTooLarge]);
        assert!(peak < MAX_RECORD_BYTES + (1 << 20), "held {peak} bytes");
    }

    #[test]
    fn losses_carry_their_place() {
        let t = format!("{}\n{}\n{{\"n\":3,\n{}\n", ct(1), ct(2), ct(4));
        let c = frame(t.as_bytes(), 5);
        assert_eq!(c.losses.len(), 1);
        let l = &c.losses[0];
        assert_eq!((l.kind, l.line), (LossKind::Malformed, 3));
        assert_eq!(l.offset as usize, t.find("{\"n\":3").expect("offset"));
    }

    #[test]
    fn holes_in_the_data_resume_at_the_next_record() {
        let mut f = Framer::new();
        let mut c = Collect::default();
        let a = format!(r#"{{"Records":[{},{{"eventVersion":"1","n":"cut"#, ct(1));
        f.feed(a.as_bytes(), &mut c);
        f.damage(Loss::at(LossKind::CorruptGzip, a.len() as u64), true, &mut c);
        let b = format!(r#"tail of the lost part"}},{},{}]}}"#, ct(2), ct(3));
        f.feed(b.as_bytes(), &mut c);
        f.finish(&mut c);
        assert_eq!(c.kept, ns(&[1, 2, 3]));
        assert_eq!(
            c.losses.iter().map(|l| l.kind).collect::<Vec<_>>(),
            [LossKind::CorruptGzip],
            "the cut record is the hole's"
        );
        // A hole followed by a fresh document.
        let mut f = Framer::new();
        let mut c = Collect::default();
        f.feed(b"{\"n\":1", &mut c);
        f.damage(Loss::at(LossKind::CorruptGzip, 6), true, &mut c);
        f.feed(format!("  {}", ct(2)).as_bytes(), &mut c);
        f.finish(&mut c);
        assert_eq!(c.kept, ns(&[2]));
        assert_eq!(c.losses.len(), 1);
    }
}
