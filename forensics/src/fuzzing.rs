//! Bodies of the fuzz targets over the forensics input layer, shared with deterministic
//! mutation tests so that the same code runs on every `cargo test`, where `cargo fuzz` (nightly)
//! is not available:
//!
//! - [`read_file`]: a file's bytes through decoding (plain, gzip, multi-member), framing,
//!   record checks and the scan fold, whole and in pieces;
//! - [`flow_logs`]: a format line and flow-log text through the flow reader and NAT attribution;
//! - [`layout`]: a directory tree built from the input (any file names, nesting, gzip, links,
//!   sockets) walked and read the way `scan` and `trace --flow-logs` do.
//!
//! Any panic is a bug; so is a framer holding more than one record and one piece.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::decode::Limits;
use crate::flowlogs::{self, Attribution, FlowCounts, Format, NatGateway, Query};
use crate::framing::{Framed, Framer, RecordSink, Verdict, MAX_RECORD_BYTES};
use crate::loss::Loss;
use crate::read::{self, Filter, ReadCounts, ReadOptions};
use crate::scan::{Fold, ScanOptions};
use crate::sources::{list_local, Fetcher, Kind, Listing, Seen, TimeRange};

/// A small limit, so that bombs in the corpus stay quick.
const LIMITS: Limits = Limits { max_decompressed: 1 << 20 };

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Keeps what parses as a JSON object.
struct Parse;

impl RecordSink for Parse {
    fn record(&mut self, r: Framed<'_>) -> Verdict {
        match serde_json::from_slice::<serde::de::IgnoredAny>(r.bytes) {
            Ok(_) => Verdict::Kept,
            Err(e) => Verdict::Lost(crate::loss::LossKind::Malformed, e.to_string()),
        }
    }
    fn loss(&mut self, _: Loss) {}
}

/// The first byte sets the piece size the framer is fed with; the rest is the file.
pub fn read_file(data: &[u8]) {
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s) + 1, rest),
        None => (1, data),
    };
    let opts = ReadOptions { limits: LIMITS, pipeline: false };
    let scan_opts = ScanOptions::default();
    let mut fold = Fold::default();
    let mut counts = ReadCounts::default();
    read::for_each_record(0, "fuzz", body, &opts, &Filter::default(), &mut counts, |r, s, q| {
        fold.add(r, s, q, &scan_opts)
    });
    assert!(counts.lost.places.len() as u64 <= counts.lost.total());
    let filter = Filter { needles: vec!["ASIA".into(), "CreateNatGateway".into()] };
    read::for_each_record(1, "fuzz", gzip(body).as_slice(), &opts, &filter, &mut counts, |_, _, _| {});
    let mut framer = Framer::new();
    for piece in body.chunks(step) {
        framer.feed(piece, &mut Parse);
        assert!(framer.held() <= MAX_RECORD_BYTES + 2 * step + 4096, "held {}", framer.held());
    }
    framer.finish(&mut Parse);
}

/// The first line is a `--flow-log-format` spec (or `--nat` mapping); the rest flow-log text.
pub fn flow_logs(data: &[u8]) {
    let (spec, body) = match data.iter().position(|&b| b == b'\n') {
        Some(k) => (data.get(..k).unwrap_or_default(), data.get(k + 1..).unwrap_or_default()),
        None => (&[][..], data),
    };
    let spec = String::from_utf8_lossy(spec);
    let fmt = Format::from_fields(&spec).unwrap_or_else(|_| Format::default_v2());
    let _ = NatGateway::parse_arg(&spec);
    let Ok(nat) = NatGateway::parse_arg("198.51.100.7=10.0.0.220,eni-0natgw00000000001") else { return };
    let queries = [i64::MIN, -1, 0, 1_700_000_000, i64::MAX]
        .iter()
        .enumerate()
        .map(|(call, &time_s)| Query { call, time_s, nat: nat.clone(), endpoints: None })
        .collect();
    let mut a = Attribution::new(queries);
    let opts = ReadOptions { limits: LIMITS, pipeline: false };
    let mut counts = FlowCounts::default();
    flowlogs::read_flows(0, "fuzz", body, &opts, &fmt, &mut counts, |f| a.add(f));
    flowlogs::read_flows(1, "fuzz", gzip(body).as_slice(), &opts, &fmt, &mut counts, |f| a.add(f));
    let _ = a.candidates();
}

static LAYOUTS: AtomicU64 = AtomicU64::new(0);

/// A fresh directory for one layout.
fn scratch() -> PathBuf {
    let n = LAYOUTS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ctguard-fuzz-layout-{}-{n}", std::process::id()))
}

/// A file name from fuzz bytes: any bytes but `/` and NUL (not UTF-8 where the OS allows it).
fn name_from(bytes: &[u8]) -> std::ffi::OsString {
    let clean: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'/' && b != 0).take(80).collect();
    if clean.is_empty() || clean == b"." || clean == b".." {
        return "x".into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        std::ffi::OsString::from_vec(clean)
    }
    #[cfg(not(unix))]
    {
        String::from_utf8_lossy(&clean).into_owned().into()
    }
}

/// Builds a tree from `data` (a list of operations), then lists and reads it both as
/// CloudTrail and as flow logs, with and without a time range.
pub fn layout(data: &[u8]) {
    let root = scratch();
    if std::fs::create_dir_all(&root).is_err() {
        return;
    }
    build(&root, data);
    let since = data.first().map(|&b| 1_500_000_000_000 + i64::from(b) * 7 * 86_400_000);
    for range in [TimeRange::default(), TimeRange { since, until: since.map(|s| s + 86_400_000) }] {
        for kind in [Kind::Trail, Kind::FlowLogs] {
            let mut listing = Listing::default();
            let Ok(sources) = list_local(&root, kind, &range, &mut listing, &mut Seen::default()) else { continue };
            let opts =
                ScanOptions { range, read: ReadOptions { limits: LIMITS, pipeline: false }, ..ScanOptions::default() };
            let fold = crate::scan::fold_sources(&sources, &Fetcher::local(), &opts, |_| {});
            assert_eq!(fold.read.files as usize + fold.errors.len(), sources.len());
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn build(root: &Path, data: &[u8]) {
    let mut cwd = root.to_path_buf();
    let mut last: Option<PathBuf> = None;
    let mut rest = data;
    let mut ops = 0;
    while let [op, n, tail @ ..] = rest {
        ops += 1;
        if ops > 32 {
            break;
        }
        let n = usize::from(*n % 48);
        let (name, tail) = tail.split_at(n.min(tail.len()));
        let (m, tail) = match tail.split_first() {
            Some((m, t)) => (usize::from(*m) * 4, t),
            None => (0, tail),
        };
        let (content, tail) = tail.split_at(m.min(tail.len()));
        rest = tail;
        let path = cwd.join(name_from(name));
        match op % 8 {
            0 => {
                let _ = std::fs::write(&path, content);
            }
            1 => {
                let _ = std::fs::write(&path, gzip(content));
            }
            2 => {
                if std::fs::create_dir_all(&path).is_ok() && path.starts_with(root) {
                    cwd = path.clone();
                }
            }
            3 => {
                if cwd != root {
                    cwd.pop();
                }
            }
            4 => link(
                match content.first().map(|b| b % 4) {
                    Some(0) => Path::new("."),
                    Some(1) => Path::new(".."),
                    Some(2) => Path::new("/dev/zero"),
                    _ => last.as_deref().unwrap_or(Path::new("missing")),
                },
                &path,
            ),
            5 => {
                #[cfg(unix)]
                {
                    let _ = std::os::unix::net::UnixListener::bind(&path);
                }
            }
            6 => {
                // A file named like a CloudTrail delivery, with the content as its records.
                let stamp =
                    format!("1_CloudTrail_us-east-1_20{:02}0{}1{}T1200Z_{}.json", op % 30, op % 9 + 1, n % 3, ops);
                let _ = std::fs::write(cwd.join(stamp), content);
            }
            _ => {
                let _ = std::fs::write(&path, [gzip(content), content.to_vec()].concat());
            }
        }
        last = Some(path);
    }
}

fn link(target: &Path, at: &Path) {
    #[cfg(unix)]
    {
        let _ = std::os::unix::fs::symlink(target, at);
    }
    #[cfg(not(unix))]
    {
        let _ = (target, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift, for mutations that are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Byte flips, insertions of structural bytes, truncations, splices and duplications.
    fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..(rng.next() % 8 + 1) {
            let i = (rng.next() as usize) % v.len().max(1);
            match rng.next() % 5 {
                0 if !v.is_empty() => v[i] = rng.next() as u8,
                1 => v.truncate(i),
                2 => {
                    const BYTES: &[u8] = b"{}[]\",:\\\n\x1f\x8b\xff\x00";
                    v.insert(i.min(v.len()), BYTES[(rng.next() % BYTES.len() as u64) as usize]);
                }
                3 => {
                    let j = (rng.next() as usize) % v.len().max(1);
                    let chunk = v.get(j.min(i)..j.max(i)).unwrap_or_default().to_vec();
                    v.extend_from_slice(&chunk);
                }
                _ => {
                    let j = (rng.next() as usize) % v.len().max(1);
                    let chunk = v.get(j.min(i)..j.max(i)).unwrap_or_default().to_vec();
                    let at = i.min(v.len());
                    v.splice(at..at, chunk);
                }
            }
        }
        v
    }

    fn record(key: &str, ip: &str) -> String {
        serde_json::json!({"eventVersion":"1.08","eventTime":"2024-05-01T10:00:00Z","eventName":"ListBuckets",
            "eventSource":"s3.amazonaws.com","sourceIPAddress":ip,"resources":[{"ARN":"a"},{"ARN":"b"}],
            "userIdentity":{"type":"AssumedRole","accessKeyId":key,"arn":"arn:aws:sts::1:assumed-role/r/s"}})
        .to_string()
    }

    fn file_seeds() -> Vec<Vec<u8>> {
        let (a, b) = (record("ASIAAAAAAAAAAAAAAAA1", "198.51.100.1"), record("ASIAAAAAAAAAAAAAAAA1", "203.0.113.9"));
        let recs = format!("{{\"Records\":[{a},{b},{a}]}}");
        let mut multi = gzip(recs.as_bytes());
        multi.extend(gzip(format!("{a}\n{b}\n").as_bytes()));
        vec![
            [&[7u8][..], recs.as_bytes()].concat(),
            [&[0u8][..], format!("[{a},\n{b}]\n{a}\n").as_bytes()].concat(),
            [
                &[3u8][..],
                format!("{a}\n{b}\n{{\"detail-type\":\"x\",\"source\":\"aws.s3\",\"detail\":{a}}}\n").as_bytes(),
            ]
            .concat(),
            [&[255u8][..], &multi].concat(),
            [&[1u8][..], &gzip(recs.as_bytes())].concat(),
        ]
    }

    #[test]
    fn mutated_files_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for seed in file_seeds() {
            read_file(&seed);
            for _ in 0..400 {
                read_file(&mutate(&seed, &mut rng));
            }
        }
    }

    #[test]
    fn mutated_flow_logs_never_panic() {
        let seeds: [&[u8]; 3] = [
            b"\n2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 443 6 20 4249 1418530010 1418530070 ACCEPT OK\n2 1 eni-1 - - - - - - - 1431280876 1431280934 - NODATA\n",
            b"${srcaddr} ${dstaddr} ${start} ${end}\n10.0.1.5 10.0.0.220 -9223372036854775808 9223372036854775807\n",
            b"198.51.100.7=10.0.0.220\nversion interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status pkt-srcaddr pkt-dstaddr\n5 eni-0natgw00000000001 10.0.1.5 10.0.0.220 49152 443 6 12 18446744073709551615 1700000000 1700000060 ACCEPT OK 10.0.1.5 52.216.10.20\n",
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for seed in seeds {
            flow_logs(seed);
            for _ in 0..2000 {
                flow_logs(&mutate(seed, &mut rng));
            }
        }
    }

    #[test]
    fn mutated_layouts_never_panic() {
        let rec = record("ASIAAAAAAAAAAAAAAAA1", "198.51.100.1");
        let n = rec.len() / 4;
        let mut seed = vec![2, 4];
        seed.extend_from_slice(b"AWSL");
        seed.push(0);
        // A CloudTrail-named file, a gzip one, a non-UTF-8 name with a delivery stamp inside, a
        // link to the parent, a socket, a link to /dev/zero.
        seed.extend_from_slice(&[6, 0, n as u8]);
        seed.extend_from_slice(rec.get(..n * 4).unwrap_or_default().as_bytes());
        seed.extend_from_slice(&[1, 6]);
        seed.extend_from_slice(b"a.json");
        seed.push(n as u8);
        seed.extend_from_slice(rec.get(..n * 4).unwrap_or_default().as_bytes());
        seed.extend_from_slice(&[0, 22]);
        seed.extend_from_slice(b"1_x_201\xc3\xa9128T2305Z_\xff.gz");
        seed.push(0);
        seed.extend_from_slice(&[4, 3, b'u', b'p', b'!', 1, 1]);
        seed.extend_from_slice(&[5, 6, b's', b'.', b'j', b's', b'o', b'n', 0]);
        seed.extend_from_slice(&[4, 6, b'z', b'.', b'j', b's', b'o', b'n', 1, 2]);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        layout(&seed);
        for _ in 0..60 {
            layout(&mutate(&seed, &mut rng));
        }
    }
}
