//! The bytes of one source → decompressed bytes, streamed, with damage reported in line.
//!
//! A source is gzip (by its magic bytes, whatever its name) or plain. Gzip is read member by
//! member, so a concatenation of gzip files is read whole. Damage never stops the file:
//!
//! - data that does not inflate costs the rest of its member; reading resumes at the next gzip
//!   header found after it;
//! - a file cut inside a member keeps everything inflated before the cut;
//! - bytes after the last member that are not gzip are reported (zero padding is not damage);
//! - the decompressed size is capped per file ([`Limits::max_decompressed`]): past it the file
//!   is reported as too large and the run goes on;
//! - other compressions (zstd, bzip2, xz, zip) are named instead of being read as garbage.
//!
//! Everything is streamed through fixed buffers, so memory does not depend on the file's size.
//! [`decode_pipelined`] runs the inflating on a second thread, overlapping it with parsing.

use std::io::{self, BufRead, Read};
use std::sync::mpsc;

use super::loss::{Loss, LossKind};

/// gzip's magic bytes and the deflate method byte that follows them in every real header.
const GZIP_HEADER: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Size of the raw input buffer and of each decompressed chunk.
pub const CHUNK: usize = 256 << 10;

/// The default of [`Limits::max_decompressed`]: far above any CloudTrail file (tens of MB) and
/// large JSON-lines exports, low enough that a gzip bomb or an endless device ends in seconds.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 4 << 30;

/// Per-file limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes read from one file (plus bytes skipped as garbage); the rest of the
    /// file is reported as [`LossKind::TooLarge`].
    pub max_decompressed: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_decompressed: DEFAULT_MAX_DECOMPRESSED }
    }
}

/// What the decoder hands on, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// The next decompressed bytes.
    Data(&'a [u8]),
    /// Damage at the current decompressed offset. `breaks` tells whether the decompressed data
    /// that follows (if any) does not continue what came before (a hole in the stream).
    Damage { loss: Loss, breaks: bool },
}

/// Totals of one decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Raw (compressed) bytes consumed.
    pub raw: u64,
    /// Decompressed bytes handed on.
    pub decoded: u64,
    pub gzip: bool,
}

/// Buffers of [`CHUNK`] bytes kept per thread between files: a scan reads thousands of files,
/// and allocating (and zeroing) fresh buffers for each costs more than the small ones' reading.
mod pool {
    use std::cell::RefCell;

    thread_local! {
        static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// Buffers kept per thread.
    const KEPT: usize = 4;

    /// A zeroed-once buffer of at least `len` bytes (its content is whatever was left).
    pub fn take(len: usize) -> Vec<u8> {
        let mut v = FREE.with(|f| f.borrow_mut().pop()).unwrap_or_default();
        if v.len() < len {
            v.resize(len, 0);
        }
        v
    }

    /// Gives a buffer back for the next file on this thread.
    pub fn give(v: Vec<u8>) {
        // One large record must not leave megabytes held by an idle thread.
        if v.capacity() == 0 || v.capacity() > 4 * super::CHUNK {
            return;
        }
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEPT {
                f.push(v);
            }
        });
    }
}

pub(crate) use pool::{give as give_buffer, take as take_buffer};

/// A buffered reader that counts what it consumes and can look ahead a few bytes.
struct RawInput<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes consumed so far (the compressed offset).
    pos: u64,
    eof: bool,
    /// The last error of the underlying reader (to tell a read error from corrupt data).
    io_error: Option<String>,
}

impl<R: Read> RawInput<R> {
    fn new(inner: R) -> Self {
        RawInput { inner, buf: take_buffer(CHUNK), start: 0, end: 0, pos: 0, eof: false, io_error: None }
    }

    fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Reads until at least `n` bytes are buffered or the input ends.
    fn fill_at_least(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.start < n && !self.eof {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let Some(spare) = self.buf.get_mut(self.end..) else { break };
            match self.inner.read(spare) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.io_error = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl<R> Drop for RawInput<R> {
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.buf));
    }
}

impl<R: Read> Read for RawInput<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for RawInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.fill_at_least(1)?;
        }
        Ok(self.available())
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.pos += n as u64;
    }
}

/// Compressions recognised by their magic bytes but not read.
fn unsupported(head: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (b"PK\x03\x04", "zip"),
    ];
    MAGICS.iter().find(|(m, _)| head.starts_with(m)).map(|(_, name)| *name)
}

/// Hands decompressed bytes to the sink while keeping count and the size cap.
struct Out<'s> {
    sink: &'s mut dyn FnMut(Event<'_>),
    decoded: u64,
    /// Decompressed bytes plus garbage bytes skipped: what the size cap applies to.
    budget_used: u64,
    limits: Limits,
    stopped: bool,
}

impl Out<'_> {
    /// Hands on `data`; false once the cap is reached (the damage is already reported).
    fn data(&mut self, data: &[u8], compressed_at: u64) -> bool {
        let room = self.limits.max_decompressed.saturating_sub(self.budget_used);
        let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if take > 0 {
            if let Some(d) = data.get(..take) {
                (self.sink)(Event::Data(d));
            }
            self.decoded += take as u64;
            self.budget_used += take as u64;
        }
        if take < data.len() {
            self.too_large(compressed_at);
            return false;
        }
        true
    }

    fn too_large(&mut self, compressed_at: u64) {
        let loss = Loss::at(LossKind::TooLarge, self.decoded)
            .compressed_at(compressed_at)
            .detail(format!("limit {} bytes (--max-file-size)", self.limits.max_decompressed));
        self.damage(loss, true);
        self.stopped = true;
    }

    fn damage(&mut self, loss: Loss, breaks: bool) {
        (self.sink)(Event::Damage { loss, breaks });
    }
}

/// Decodes `input`, handing every decompressed byte and every damage to `sink` in order.
pub fn decode(input: impl Read, limits: Limits, sink: &mut dyn FnMut(Event<'_>)) -> Decoded {
    let mut raw = RawInput::new(input);
    let mut out = Out { sink, decoded: 0, budget_used: 0, limits, stopped: false };
    let gzip = match raw.fill_at_least(GZIP_HEADER.len().max(6)) {
        Err(e) => {
            out.damage(Loss::at(LossKind::ReadError, 0).compressed_at(0).detail(e.to_string()), true);
            return Decoded { raw: 0, decoded: 0, gzip: false };
        }
        Ok(()) => raw.available().starts_with(&GZIP_HEADER[..2]),
    };
    if gzip {
        inflate_members(&mut raw, &mut out);
    } else if let Some(name) = unsupported(raw.available()) {
        let loss = Loss::at(LossKind::Unsupported, 0)
            .compressed_at(0)
            .detail(format!("{name}-compressed: decompress it first (only gzip is read)"));
        out.damage(loss, true);
    } else {
        copy_plain(&mut raw, &mut out);
    }
    Decoded { raw: raw.pos, decoded: out.decoded, gzip }
}

fn copy_plain<R: Read>(raw: &mut RawInput<R>, out: &mut Out<'_>) {
    loop {
        let at = raw.pos;
        let n = match raw.fill_buf() {
            Ok([]) => return,
            Ok(chunk) => {
                let n = chunk.len();
                if !out.data(chunk, at) {
                    return;
                }
                n
            }
            Err(e) => {
                let loss = Loss::at(LossKind::ReadError, out.decoded).compressed_at(raw.pos).detail(e.to_string());
                out.damage(loss, true);
                return;
            }
        };
        raw.consume(n);
    }
}

/// Inflates gzip members one after the other, resynchronising on damage.
fn inflate_members<R: Read>(raw: &mut RawInput<R>, out: &mut Out<'_>) {
    let mut chunk = Chunk(take_buffer(CHUNK));
    let chunk = &mut chunk.0;
    loop {
        let member_at = raw.pos;
        let mut dec = flate2::bufread::GzDecoder::new(&mut *raw);
        let result = loop {
            match dec.read(chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    let at = dec.get_ref().pos;
                    if !out.data(chunk.get(..n).unwrap_or_default(), at) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        drop(dec);
        // After corrupt data the bytes skipped to the next member are the rest of the damaged
        // member, already reported.
        let report = !matches!(&result, Err(e) if !e.to_string().contains("checksum"));
        if let Err(e) = result {
            let at_end = raw.fill_at_least(1).is_err() || raw.available().is_empty();
            let (kind, breaks) = if let Some(io) = raw.io_error.take() {
                let loss = Loss::at(LossKind::ReadError, out.decoded).compressed_at(raw.pos).detail(io);
                out.damage(loss, true);
                return;
            } else if e.to_string().contains("checksum") {
                (LossKind::ChecksumMismatch, false)
            } else if at_end {
                (LossKind::TruncatedGzip, true)
            } else {
                (LossKind::CorruptGzip, true)
            };
            let loss = Loss::at(kind, out.decoded)
                .compressed_at(raw.pos)
                .detail(format!("in the gzip member starting at compressed byte {member_at}: {e}"));
            out.damage(loss, breaks);
            if kind == LossKind::TruncatedGzip {
                return;
            }
            // A header that fails at once must not be retried forever.
            if raw.pos == member_at {
                raw.consume(1);
            }
        }
        // Between members: the next header, the end, or bytes to skip until a header.
        match skip_to_member(raw, out, report) {
            Some(()) if !out.stopped => {}
            _ => return,
        }
    }
}

/// A pooled buffer, given back however the function returns.
struct Chunk(Vec<u8>);

impl Drop for Chunk {
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.0));
    }
}

/// Skips to the next gzip header; `None` at the end of the input. Skipped bytes that are not all
/// zero (padding) are reported.
fn skip_to_member<R: Read>(raw: &mut RawInput<R>, out: &mut Out<'_>, report: bool) -> Option<()> {
    let from = raw.pos;
    let mut nonzero = false;
    loop {
        if raw.fill_at_least(GZIP_HEADER.len()).is_err() {
            if let Some(io) = raw.io_error.take() {
                let loss = Loss::at(LossKind::ReadError, out.decoded).compressed_at(raw.pos).detail(io);
                out.damage(loss, true);
            }
            return None;
        }
        let avail = raw.available();
        if avail.starts_with(&GZIP_HEADER) {
            report_skipped(raw.pos - from, nonzero && report, from, out);
            return Some(());
        }
        if avail.len() < GZIP_HEADER.len() {
            // The end: what is left cannot hold a header.
            nonzero |= avail.iter().any(|&b| b != 0);
            let n = avail.len();
            raw.consume(n);
            report_skipped(raw.pos - from, nonzero && report, from, out);
            return None;
        }
        // Skip up to the next possible header start (keeping it), checking for padding.
        let next = memchr::memchr(GZIP_HEADER[0], avail.get(1..).unwrap_or_default()).map_or(avail.len(), |k| k + 1);
        let skipped = avail.get(..next).unwrap_or_default();
        nonzero |= skipped.iter().any(|&b| b != 0);
        raw.consume(next);
        out.budget_used += next as u64;
        if out.budget_used >= out.limits.max_decompressed {
            report_skipped(raw.pos - from, nonzero && report, from, out);
            out.too_large(raw.pos);
            return None;
        }
    }
}

fn report_skipped(n: u64, nonzero: bool, from: u64, out: &mut Out<'_>) {
    if n > 0 && nonzero {
        let loss = Loss::at(LossKind::TrailingGarbage, out.decoded)
            .compressed_at(from)
            .detail(format!("{n} bytes that are not gzip skipped"));
        out.damage(loss, false);
    }
}

/// [`decode`], or [`decode_pipelined`] when `pipeline`.
pub fn decode_with(
    input: impl Read + Send,
    limits: Limits,
    pipeline: bool,
    sink: &mut dyn FnMut(Event<'_>),
) -> Decoded {
    if pipeline {
        decode_pipelined(input, limits, sink)
    } else {
        decode(input, limits, sink)
    }
}

/// An owned [`Event`], to cross threads.
enum Piece {
    Data(Vec<u8>),
    Damage { loss: Loss, breaks: bool },
}

/// Chunks in flight between the inflating thread and the parsing one.
const PIPELINE_DEPTH: usize = 4;

/// Like [`decode`], but inflates on a second thread while `sink` runs on the calling one.
/// Memory stays bounded: at most [`PIPELINE_DEPTH`] chunks are in flight.
pub fn decode_pipelined(input: impl Read + Send, limits: Limits, sink: &mut dyn FnMut(Event<'_>)) -> Decoded {
    let (tx, rx) = mpsc::sync_channel::<Piece>(PIPELINE_DEPTH);
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
            let send = |p: Piece| tx.send(p).is_ok();
            let mut ok = true;
            let decoded = decode(input, limits, &mut |ev| {
                if !ok {
                    return;
                }
                match ev {
                    Event::Data(d) => {
                        pending.extend_from_slice(d);
                        if pending.len() >= CHUNK {
                            let fresh = back_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                            ok = send(Piece::Data(std::mem::replace(&mut pending, fresh)));
                        }
                    }
                    Event::Damage { loss, breaks } => {
                        if !pending.is_empty() {
                            ok = send(Piece::Data(std::mem::take(&mut pending)));
                        }
                        ok = ok && send(Piece::Damage { loss, breaks });
                    }
                }
            });
            if ok && !pending.is_empty() {
                send(Piece::Data(pending));
            }
            decoded
        });
        for piece in rx {
            match piece {
                Piece::Data(mut d) => {
                    sink(Event::Data(&d));
                    d.clear();
                    let _ = back_tx.send(d);
                }
                Piece::Damage { loss, breaks } => sink(Event::Damage { loss, breaks }),
            }
        }
        match producer.join() {
            Ok(d) => d,
            // A panic while inflating is a bug: let it surface, as it would without the thread.
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).expect("write");
        enc.finish().expect("finish")
    }

    fn run(input: &[u8], limits: Limits, pipelined: bool) -> (Vec<u8>, Vec<(LossKind, bool)>, Decoded) {
        let mut data = Vec::new();
        let mut damage = Vec::new();
        let mut sink = |ev: Event<'_>| match ev {
            Event::Data(d) => data.extend_from_slice(d),
            Event::Damage { loss, breaks } => damage.push((loss.kind, breaks)),
        };
        let d = if pipelined { decode_pipelined(input, limits, &mut sink) } else { decode(input, limits, &mut sink) };
        (data, damage, d)
    }

    fn both(input: &[u8], limits: Limits) -> (Vec<u8>, Vec<(LossKind, bool)>) {
        let (a, da, _) = run(input, limits, false);
        let (b, db, _) = run(input, limits, true);
        assert_eq!((&a, &da), (&b, &db), "pipelined decoding differs");
        (a, da)
    }

    #[test]
    fn plain_and_multi_member_gzip() {
        assert_eq!(both(b"hello", Limits::default()), (b"hello".to_vec(), vec![]));
        let mut two = gz(b"first ");
        two.extend(gz(b"second"));
        assert_eq!(both(&two, Limits::default()), (b"first second".to_vec(), vec![]));
        assert_eq!(both(b"", Limits::default()), (Vec::new(), vec![]));
    }

    #[test]
    fn junk_after_a_member_keeps_the_member() {
        let mut v = gz(b"kept");
        v.extend_from_slice(b"junk junk");
        assert_eq!(both(&v, Limits::default()), (b"kept".to_vec(), vec![(LossKind::TrailingGarbage, false)]));
        // Zero padding is not damage.
        let mut v = gz(b"kept");
        v.extend_from_slice(&[0; 100]);
        assert_eq!(both(&v, Limits::default()), (b"kept".to_vec(), vec![]));
        // Junk between members: both members are read.
        let mut v = gz(b"one ");
        v.extend_from_slice(b"\x1fjunk");
        v.extend(gz(b"two"));
        assert_eq!(both(&v, Limits::default()), (b"one two".to_vec(), vec![(LossKind::TrailingGarbage, false)]));
    }

    #[test]
    fn a_truncated_member_keeps_what_came_before_the_cut() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let v = gz(&text);
        let cut = v.get(..v.len() / 2).expect("half");
        let (data, dmg) = both(cut, Limits::default());
        assert!(data.len() > text.len() / 4, "{} bytes kept", data.len());
        assert!(text.starts_with(&data));
        assert_eq!(dmg, vec![(LossKind::TruncatedGzip, true)]);
    }

    #[test]
    fn corrupt_data_costs_its_member_and_reading_resumes_at_the_next() {
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let mut first = gz(&text);
        let mid = first.len() / 2;
        for b in first.get_mut(mid..mid + 64).expect("range") {
            *b = !*b;
        }
        first.extend(gz(b"after"));
        let (data, dmg) = both(&first, Limits::default());
        assert!(data.ends_with(b"after"), "the next member is read");
        assert!(
            dmg.first().is_some_and(|(k, b)| matches!(k, LossKind::CorruptGzip | LossKind::ChecksumMismatch)
                && (*b || *k == LossKind::ChecksumMismatch)),
            "{dmg:?}"
        );
    }

    #[test]
    fn the_size_cap_stops_a_bomb() {
        let bomb = gz(&vec![0u8; 8 << 20]);
        let (data, dmg) = both(&bomb, Limits { max_decompressed: 1 << 20 });
        assert_eq!(data.len(), 1 << 20);
        assert_eq!(dmg, vec![(LossKind::TooLarge, true)]);
        let (data, dmg) = both(&vec![b'x'; 3 << 20], Limits { max_decompressed: 1 << 20 });
        assert_eq!((data.len(), dmg), (1 << 20, vec![(LossKind::TooLarge, true)]));
    }

    #[test]
    fn other_compressions_are_named() {
        let (data, dmg) = both(&[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3], Limits::default());
        assert!(data.is_empty());
        assert_eq!(dmg, vec![(LossKind::Unsupported, true)]);
        assert_eq!(both(&[0x1f, 0x8b, 8, 0, 1, 2, 3], Limits::default()).1, vec![(LossKind::TruncatedGzip, true)]);
    }

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = self.0.min(out.len()).min(7);
            out.get_mut(..n).into_iter().flatten().for_each(|b| *b = b'a');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_errors_keep_what_was_read() {
        let mut data = Vec::new();
        let mut dmg = Vec::new();
        decode(Failing(20), Limits::default(), &mut |ev| match ev {
            Event::Data(d) => data.extend_from_slice(d),
            Event::Damage { loss, .. } => dmg.push(loss),
        });
        assert_eq!(data.len(), 20);
        assert_eq!(dmg.len(), 1);
        assert_eq!(dmg[0].kind, LossKind::ReadError);
        assert!(dmg[0].detail.as_deref().is_some_and(|d| d.contains("disk on fire")));
    }
}
