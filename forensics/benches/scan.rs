//! `cargo bench -p ctguard-forensics --bench scan`: scan throughput on gzip CloudTrail, next to `zcat`.
//!
//! Generates a large corpus of S3-delivered CloudTrail files (`{"Records":[…]}`, gzip) in a
//! temporary `AWSLogs/…/CloudTrail/<region>/<yyyy>/<mm>/<dd>/` tree, from the shapes of real
//! events (the shared data sets when present, else the bundled sample): every template keeps its
//! fields and nesting, only times, ids, keys and addresses are rewritten, and a few keys are
//! "stolen" (used from a second address) so the engine does real work. Then it times:
//!
//! - `zcat FILES > /dev/null` (one process, one core): the decompression floor;
//! - the scan library path (`fold_sources` + ordered `replay`) on one thread;
//! - the same with inflating overlapped on a second thread;
//! - the same on every available core;
//!
//! side by side, interleaved over several rounds, and prints medians: MB/s (compressed and
//! decompressed), the ratios to zcat (wall, and CPU time per core, which other load on the
//! machine does not skew), and the peak resident memory of each scan (`VmHWM`, reset before
//! each run through `/proc/self/clear_refs`). Then it scans single large inputs — a 1 GiB
//! JSON-lines file, a gzip bomb, `/dev/zero` — to show that memory does not follow file size.
//!
//! Keys are used as in a live account: [`ACTIVE_SESSIONS`] sessions are alive at any moment,
//! each with its own temporary key and home address, and each session's key is replaced every
//! [`KEY_LIFE_MS`] of log time (AssumeRole's default hour), so a key is used hundreds of times
//! while it lives. At the generator's pace (about 50 calls a second) a 256 MiB corpus holds
//! about 500 keys. `CTGUARD_BENCH_SESSIONS` changes the number of live sessions: 20000 gives the
//! worst case for the engine's caches (almost every call a key's first use).
//!
//! `CTGUARD_BENCH_MB` sets the decompressed corpus size (default 256), `CTGUARD_BENCH_ROUNDS`
//! the rounds (default 5), `CTGUARD_BENCH_BIG_MB` the large inputs (default 1024);
//! `CTGUARD_BENCH_KEEP=1` keeps the corpus directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ctguard_detector::Policy;
use ctguard_forensics::read::{default_threads, ReadOptions};
use ctguard_forensics::scan::{fold_sources, replay, ScanOptions, ScanReport};
use ctguard_forensics::sources::{list_local, Fetcher, Kind, Listing, Seen, Source, SourceKind, TimeRange};
use serde_json::Value;

/// Decompressed bytes per generated file (CloudTrail files range from kilobytes to tens of MB).
const FILE_BYTES: usize = 4 << 20;
/// Sessions alive at any moment (default of `CTGUARD_BENCH_SESSIONS`).
const ACTIVE_SESSIONS: usize = 200;
/// How long a session keeps one key, in log time: AssumeRole's default session of an hour.
const KEY_LIFE_MS: i64 = 3_600_000;
/// One record in this many is a credential move or delivery (see `RecordGen::signals`).
const SIGNAL_EVERY: u64 = 1_000;
/// One use in this many comes from a thief's address.
const THEFT_EVERY: u64 = 5_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Real record shapes: every record of the shared data sets (or the bundled sample).
fn templates() -> Vec<Value> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let mut out = Vec::new();
    let mut texts = Vec::new();
    for dir in ["flaws2-cloudtrail", "stratus-red-team-detonation-logs", "otrf-aws-cloud-breach-s3"] {
        let mut stack = vec![data.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".json") || p.to_string_lossy().ends_with(".json.gz") {
                    if let Ok(raw) = std::fs::read(&p) {
                        if let Ok(t) = ctguard_detector::reader::to_text(raw) {
                            texts.push(t);
                        }
                    }
                }
            }
        }
    }
    if texts.is_empty() {
        texts.push(String::from_utf8_lossy(ctguard_forensics::SAMPLE_CLOUDTRAIL).into_owned());
    }
    for t in &texts {
        ctguard_detector::reader::for_each_record(t, |r| {
            if let Ok(v) = serde_json::from_str::<Value>(&r.json) {
                out.push(v);
            }
        });
    }
    out
}

/// A record that can carry a rotation or move signal (what the engine and the Athena query
/// treat as one): STS AssumeRole made by EC2, or an EC2 address/interface/start call.
fn is_signal(v: &Value) -> bool {
    let get = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let by_ec2 = get("sourceIPAddress") == "ec2.amazonaws.com"
        || v.get("userIdentity").and_then(|u| u.get("invokedBy")).and_then(Value::as_str) == Some("ec2.amazonaws.com");
    (get("eventSource") == "sts.amazonaws.com" && get("eventName") == "AssumeRole" && by_ec2)
        || (get("eventSource") == "ec2.amazonaws.com"
            && matches!(get("eventName"), "AssociateAddress" | "AttachNetworkInterface" | "StartInstances"))
}

fn key_id(prefix: &str, i: usize) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut s = String::from(prefix);
    let mut n = i as u64 * 2_654_435_761 + 12_345;
    for _ in 0..16 {
        s.push(B32[(n % 32) as usize] as char);
        n /= 32;
        n += 7;
    }
    s
}

fn home_ip(i: usize) -> String {
    format!("{}.{}.{}.{}", 3 + (i >> 16) % 50, (i >> 8) & 255, i & 255, 10 + i % 200)
}

fn format_time(ms: i64) -> String {
    ctguard_detector::time::format_rfc3339(ms)
}

/// Real-shaped records, one after the other, with a few stolen-key uses.
struct RecordGen {
    templates: Vec<Value>,
    /// Templates of the calls that move or mint credentials (instance credential delivery,
    /// address and interface moves): rare in life (about one per instance and hour), so drawn
    /// once in [`SIGNAL_EVERY`] records, not as often as the data sets (attack detonations)
    /// hold them.
    signals: Vec<Value>,
    sessions: usize,
    rng: Rng,
    t: i64,
    n: u64,
    thefts: u64,
}

impl RecordGen {
    fn new() -> RecordGen {
        let start = ctguard_detector::time::parse_rfc3339("2024-05-01T00:00:00Z").unwrap_or(0);
        let sessions =
            std::env::var("CTGUARD_BENCH_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(ACTIVE_SESSIONS).max(1);
        let (signals, templates): (Vec<Value>, Vec<Value>) = templates().into_iter().partition(is_signal);
        RecordGen { templates, signals, sessions, rng: Rng(0x9e37_79b9_7f4a_7c15), t: start, n: 0, thefts: 0 }
    }

    fn next(&mut self) -> String {
        let rng = &mut self.rng;
        let signal = !self.signals.is_empty() && (self.templates.is_empty() || rng.below(SIGNAL_EVERY) == 0);
        let pool = if signal { &self.signals } else { &self.templates };
        let mut v = pool[rng.below(pool.len() as u64) as usize].clone();
        self.n += 1;
        self.t += 1 + rng.below(40) as i64;
        let Some(o) = v.as_object_mut() else { return v.to_string() };
        o.remove("@timestamp");
        o.remove("@version");
        o.insert("eventTime".into(), Value::String(format_time(self.t)));
        o.insert("eventID".into(), Value::String(format!("{:016x}-{:08x}", rng.next(), self.n)));
        // A live session, and the key it holds now: sessions renew at staggered times.
        let slot = rng.below(self.sessions as u64) as usize;
        let phase = slot as i64 * KEY_LIFE_MS / self.sessions as i64;
        let k = slot + self.sessions * ((self.t + phase).div_euclid(KEY_LIFE_MS) as usize);
        let has_key = o
            .get("userIdentity")
            .and_then(|u| u.get("accessKeyId"))
            .and_then(Value::as_str)
            .map(|s| s.starts_with("ASIA"));
        if let Some(temporary) = has_key {
            let id = if temporary { key_id("ASIA", k) } else { key_id("AKIA", slot % 500) };
            if temporary {
                // The corpus is one account's trail, and a session is the same on each of its
                // calls: its account, an API caller (not a console session), API calls.
                o.insert("recipientAccountId".into(), Value::String("111122223333".into()));
                o.insert("eventType".into(), Value::String("AwsApiCall".into()));
                o.remove("sessionCredentialFromConsole");
                // Console user agents (the data sets' console detonations) belong to console
                // sessions, not to a workload's key: an SDK's agent instead.
                let ua = o.get("userAgent").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
                if ua.contains("console") || ua.contains("signin") {
                    o.insert("userAgent".into(), Value::String("aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22".into()));
                }
            }
            if let Some(u) = o.get_mut("userIdentity").and_then(Value::as_object_mut) {
                u.insert("accessKeyId".into(), Value::String(id));
                if temporary {
                    u.insert("type".into(), Value::String("AssumedRole".into()));
                    u.insert("accountId".into(), Value::String("111122223333".into()));
                }
                // One session per key, as in life: the templates' instance sessions would
                // otherwise put thousands of keys into a handful of instance scopes.
                if temporary {
                    let arn = format!("arn:aws:sts::111122223333:assumed-role/bench-role-{}/session-{k}", slot % 97);
                    u.insert("arn".into(), Value::String(arn));
                }
                u.remove("sessionContext");
            }
            let thief = temporary && rng.below(THEFT_EVERY) == 0;
            self.thefts += u64::from(thief);
            let ip = if thief { format!("198.51.100.{}", 1 + k % 250) } else { home_ip(slot) };
            o.insert("sourceIPAddress".into(), Value::String(ip));
            o.remove("vpcEndpointId");
        }
        v.to_string()
    }
}

/// Writes the corpus; returns (files, decompressed bytes, compressed bytes, injected thefts).
fn generate(dir: &Path, total: usize) -> (Vec<PathBuf>, u64, u64, u64) {
    let mut gen = RecordGen::new();
    let (mut raw_total, mut gz_total) = (0u64, 0u64);
    let mut files = Vec::new();
    let mut written = 0usize;
    let mut file_no = 0usize;
    while written < total {
        let mut records: Vec<String> = Vec::new();
        let mut size = 0usize;
        while size < FILE_BYTES {
            let line = gen.next();
            size += line.len() + 1;
            records.push(line);
        }
        // Records inside a delivered file are not in time order.
        for i in (1..records.len()).rev() {
            let j = gen.rng.below(i as u64 + 1) as usize;
            records.swap(i, j);
        }
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        let day = format_time(gen.t);
        let sub = dir.join(format!(
            "AWSLogs/111122223333/CloudTrail/us-east-1/{}/{}/{}",
            &day[0..4],
            &day[5..7],
            &day[8..10]
        ));
        if std::fs::create_dir_all(&sub).is_err() {
            break;
        }
        let stamp = format!("{}{}{}T{}{}Z", &day[0..4], &day[5..7], &day[8..10], &day[11..13], &day[14..16]);
        let path = sub.join(format!("111122223333_CloudTrail_us-east-1_{stamp}_{file_no:06}.json.gz"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        if enc.write_all(text.as_bytes()).is_err() {
            break;
        }
        let Ok(gz) = enc.finish() else { break };
        if std::fs::write(&path, &gz).is_err() {
            break;
        }
        raw_total += text.len() as u64;
        gz_total += gz.len() as u64;
        written += text.len();
        file_no += 1;
        files.push(path);
    }
    (files, raw_total, gz_total, gen.thefts)
}

/// One JSON-lines file of `total` bytes; returns (bytes, injected thefts).
fn generate_jsonl(path: &Path, total: u64) -> (u64, u64) {
    let mut gen = RecordGen::new();
    let Ok(f) = std::fs::File::create(path) else { return (0, 0) };
    let mut w = std::io::BufWriter::new(f);
    let mut written = 0u64;
    while written < total {
        let line = gen.next();
        if writeln!(w, "{line}").is_err() {
            break;
        }
        written += line.len() as u64 + 1;
    }
    let _ = w.flush();
    (written, gen.thefts)
}

/// A gzip bomb: `members` copies of one member inflating to 64 MiB of zeros.
fn generate_bomb(path: &Path, members: usize) -> u64 {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        if enc.write_all(&zeros).is_err() {
            return 0;
        }
    }
    let Ok(member) = enc.finish() else { return 0 };
    let bomb: Vec<u8> = std::iter::repeat_n(member.as_slice(), members).flatten().copied().collect();
    let _ = std::fs::write(path, &bomb);
    bomb.len() as u64
}

/// CPU seconds used so far by this process and by its waited-for children (`/proc/self/stat`
/// utime+stime and cutime+cstime, in clock ticks of 1/100 s on Linux).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    let tick = 100.0;
    let get = |i: usize| f.get(i - 3).copied().unwrap_or(0.0);
    ((get(14) + get(15)) / tick, (get(16) + get(17)) / tick)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Peak resident set since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One scan: (report, wall seconds, CPU seconds, fold seconds, replay seconds).
fn scan(sources: &[Source], threads: usize, read: ReadOptions) -> (ScanReport, f64, f64, f64, f64) {
    let opts = ScanOptions { threads, read, ..ScanOptions::default() };
    let rt = tokio::runtime::Builder::new_current_thread().build();
    let Ok(rt) = rt else { panic!("no runtime") };
    let cpu0 = cpu_seconds().0;
    let started = Instant::now();
    let fold = fold_sources(sources, &Fetcher::local(), &opts, |_| {});
    let folded = started.elapsed().as_secs_f64();
    let report = rt.block_on(replay(fold, Policy::default()));
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().0 - cpu0;
    match report {
        Ok(r) => (r, secs, cpu, folded, secs - folded),
        Err(e) => panic!("scan failed: {e:#}"),
    }
}

/// `zcat FILES > /dev/null`: (wall seconds, CPU seconds of the child).
fn zcat(files: &[PathBuf]) -> Option<(f64, f64)> {
    let started = Instant::now();
    let child0 = cpu_seconds().1;
    let status = Command::new("zcat").args(files).stdout(Stdio::null()).status();
    match status {
        Ok(s) if s.success() => Some((started.elapsed().as_secs_f64(), cpu_seconds().1 - child0)),
        other => {
            println!("zcat unavailable ({other:?}); no baseline");
            None
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians of repeated runs of one kind.
#[derive(Default)]
struct Runs {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    peak: f64,
    last: Option<ScanReport>,
}

impl Runs {
    fn add(&mut self, r: (ScanReport, f64, f64, f64, f64), peak: f64) {
        self.wall.push(r.1);
        self.cpu.push(r.2);
        self.peak = self.peak.max(peak);
        self.last = Some(r.0);
    }
}

fn main() {
    let mb: usize = std::env::var("CTGUARD_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let rounds: usize = std::env::var("CTGUARD_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let big_mb: u64 = std::env::var("CTGUARD_BENCH_BIG_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("ctguard-bench-scan-{}", std::process::id()));
    let gen_started = Instant::now();
    let (files, raw, gz, thefts) = generate(&dir, mb << 20);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "corpus: {} gzip CloudTrail files, {:.0} MiB decompressed, {:.0} MiB compressed ({:.1}x), {} stolen-key uses injected, generated in {:.1}s",
        files.len(),
        mib(raw),
        mib(gz),
        raw as f64 / gz.max(1) as f64,
        thefts,
        gen_started.elapsed().as_secs_f64()
    );

    let load = load_average();
    let mut listing = Listing::default();
    let sources = match list_local(&dir, Kind::Trail, &TimeRange::default(), &mut listing, &mut Seen::default()) {
        Ok(s) => s,
        Err(e) => panic!("listing the corpus: {e}"),
    };
    let cores = default_threads();
    let plain = ReadOptions::default();
    let piped = ReadOptions { pipeline: true, ..plain };
    // Side by side in one run, interleaved so that load changes hit every kind alike; the first
    // zcat also warms the page cache.
    let _ = zcat(&files);
    let (mut z_wall, mut z_cpu) = (Vec::new(), Vec::new());
    let (mut one, mut one_piped, mut all) = (Runs::default(), Runs::default(), Runs::default());
    for _ in 0..rounds {
        if let Some((w, c)) = zcat(&files) {
            z_wall.push(w);
            z_cpu.push(c);
        }
        reset_peak();
        one.add(scan(&sources, 1, plain), peak_rss_mib());
        reset_peak();
        one_piped.add(scan(&sources, 1, piped), peak_rss_mib());
        if cores > 1 {
            reset_peak();
            all.add(scan(&sources, cores, plain), peak_rss_mib());
        }
    }

    println!("\nload average before the runs: {load}; {cores} cores available; medians of {rounds} interleaved rounds");
    println!(
        "{:<34} {:>8} {:>9} {:>12} {:>12} {:>12} {:>9} {:>10}",
        "run", "wall s", "CPU s", "MB/s gzip", "MB/s json", "MB/s/core", "x zcat", "peak RSS"
    );
    let mbs = |b: u64, s: f64| b as f64 / 1e6 / s;
    let (zw, zc) = (median(&z_wall), median(&z_cpu));
    if zw.is_finite() {
        println!(
            "{:<34} {:>8.2} {:>9.2} {:>12.1} {:>12.1} {:>12.1} {:>9} {:>10}",
            "zcat > /dev/null",
            zw,
            zc,
            mbs(gz, zw),
            mbs(raw, zw),
            mbs(raw, zc),
            "1.00",
            "-"
        );
    }
    let label_one = "ctguard scan, 1 thread".to_string();
    let label_piped = "ctguard scan, 1 thread + inflater".to_string();
    let label_all = format!("ctguard scan, {cores} threads");
    for (label, runs) in [(&label_one, &one), (&label_piped, &one_piped), (&label_all, &all)] {
        if runs.wall.is_empty() {
            continue;
        }
        let (w, c) = (median(&runs.wall), median(&runs.cpu));
        let ratio = if zw.is_finite() { format!("{:.2}", zw / w) } else { "-".into() };
        println!(
            "{:<34} {:>8.2} {:>9.2} {:>12.1} {:>12.1} {:>12.1} {:>9} {:>6.0} MiB",
            label,
            w,
            c,
            mbs(gz, w),
            mbs(raw, w),
            mbs(raw, c),
            ratio,
            runs.peak
        );
    }
    if zc.is_finite() && !one.cpu.is_empty() {
        println!(
            "\nper core (CPU time, robust to other load): scan {:.2}x zcat (median CPU {:.2}s vs {:.2}s; rounds: scan {:?}, zcat {:?})",
            zc / median(&one.cpu),
            median(&one.cpu),
            zc,
            one.cpu.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>(),
            z_cpu.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>(),
        );
        println!(
            "wall, one worker: scan {:.2}x zcat alone, {:.2}x with inflating overlapped on a second thread",
            zw / median(&one.wall),
            zw / median(&one_piped.wall)
        );
    }
    if let Some(r) = all.last.as_ref().or(one.last.as_ref()) {
        let s = &r.summary;
        println!(
            "engine: {} records, {} uses of temporary keys folded to {} (key, identity) pairs, {} alerts ({} stolen-key uses injected); corpus {:.0} MiB decompressed",
            s.read.records, s.fold.uses, s.distinct_uses, s.alerts, thefts, mib(raw)
        );
        assert!(s.alerts > 0 || thefts == 0, "injected thefts must raise alerts");
        assert!(s.complete(), "the corpus is read whole: {:?}", s.read.lost);
    }
    if std::env::var_os("CTGUARD_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("corpus kept in {}", dir.display());
    }

    // Memory on single large inputs: peak RSS must not follow the size of a file.
    if big_mb == 0 {
        return;
    }
    println!("\npeak memory on single large inputs (goal: <= 256 MiB whatever the size):");
    let big_dir = std::env::temp_dir().join(format!("ctguard-bench-big-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&big_dir);
    let jsonl = big_dir.join("big.jsonl");
    let (jsonl_bytes, jsonl_thefts) = generate_jsonl(&jsonl, big_mb << 20);
    let bomb = big_dir.join("bomb.json.gz");
    let bomb_bytes = generate_bomb(&bomb, (big_mb / 64).max(1) as usize);
    let file = |p: &Path, stream: bool| Source {
        name: p.display().to_string(),
        kind: if stream { SourceKind::Stream(p.to_path_buf()) } else { SourceKind::File(p.to_path_buf()) },
        size: 0,
    };
    let cases = [
        (format!("JSON lines, {:.0} MiB, {cores} threads", mib(jsonl_bytes)), file(&jsonl, false), cores),
        (format!("JSON lines, {:.0} MiB, 1 thread", mib(jsonl_bytes)), file(&jsonl, false), 1),
        (format!("gzip bomb, {:.1} MiB -> {} MiB of zeros", mib(bomb_bytes), big_mb), file(&bomb, false), cores),
        ("/dev/zero named as input (4 GiB cap)".to_string(), file(Path::new("/dev/zero"), true), cores),
    ];
    println!("{:<48} {:>8} {:>12} {:>10} {:>9}  unread", "input", "wall s", "MB/s json", "peak RSS", "records");
    for (label, src, threads) in cases {
        reset_peak();
        let (r, w, ..) = scan(std::slice::from_ref(&src), threads, plain);
        let peak = peak_rss_mib();
        let s = &r.summary;
        println!(
            "{:<48} {:>8.2} {:>12.1} {:>6.0} MiB {:>9}  {}",
            label,
            w,
            mbs(s.read.bytes_decoded, w),
            peak,
            s.read.records,
            if s.read.lost.is_empty() { "none".to_string() } else { s.read.lost.summary() }
        );
        if label.starts_with("JSON") {
            assert!(s.alerts > 0 || jsonl_thefts == 0, "injected thefts must raise alerts");
        }
    }
    let _ = std::fs::remove_dir_all(&big_dir);
}
