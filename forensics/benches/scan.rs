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
//! - the same on every available core.
//!
//! and prints MB/s (compressed and decompressed), the ratios to zcat, the scaling, and the peak
//! resident memory of each scan (`VmHWM`, reset before each run through `/proc/self/clear_refs`)
//! next to the corpus size, to show the scan streams rather than loading the corpus.
//!
//! `CTGUARD_BENCH_MB` sets the decompressed corpus size (default 256); `CTGUARD_BENCH_KEEP=1`
//! keeps the corpus directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ctguard_detector::Policy;
use ctguard_forensics::read::default_threads;
use ctguard_forensics::scan::{fold_sources, replay, ScanOptions, ScanReport};
use ctguard_forensics::sources::{list_local, Fetcher, Kind, Listing, Source, TimeRange};
use serde_json::Value;

/// Decompressed bytes per generated file (CloudTrail files range from kilobytes to tens of MB).
const FILE_BYTES: usize = 4 << 20;
/// Distinct temporary keys in the corpus, each with its home address.
const KEYS: usize = 20_000;
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

/// Writes the corpus; returns (files, decompressed bytes, compressed bytes, injected thefts).
fn generate(dir: &Path, total: usize) -> (Vec<PathBuf>, u64, u64, u64) {
    let templates = templates();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = ctguard_detector::time::parse_rfc3339("2024-05-01T00:00:00Z").unwrap_or(0);
    let mut t = start;
    let (mut raw_total, mut gz_total, mut thefts, mut n) = (0u64, 0u64, 0u64, 0u64);
    let mut files = Vec::new();
    let mut written = 0usize;
    let mut file_no = 0usize;
    while written < total {
        let mut records: Vec<String> = Vec::new();
        let mut size = 0usize;
        while size < FILE_BYTES {
            let mut v = templates[rng.below(templates.len() as u64) as usize].clone();
            n += 1;
            t += 1 + rng.below(40) as i64;
            let Some(o) = v.as_object_mut() else { continue };
            o.remove("@timestamp");
            o.remove("@version");
            o.insert("eventTime".into(), Value::String(format_time(t)));
            o.insert("eventID".into(), Value::String(format!("{:016x}-{:08x}", rng.next(), n)));
            let k = rng.below(KEYS as u64) as usize;
            let has_key = o
                .get("userIdentity")
                .and_then(|u| u.get("accessKeyId"))
                .and_then(Value::as_str)
                .map(|s| s.starts_with("ASIA"));
            if let Some(temporary) = has_key {
                let id = if temporary { key_id("ASIA", k) } else { key_id("AKIA", k % 500) };
                if let Some(u) = o.get_mut("userIdentity").and_then(Value::as_object_mut) {
                    u.insert("accessKeyId".into(), Value::String(id));
                    // One session per key, as in life: the templates' instance sessions would
                    // otherwise put thousands of keys into a handful of instance scopes.
                    if temporary {
                        let arn = format!("arn:aws:sts::111122223333:assumed-role/bench-role-{}/session-{k}", k % 97);
                        u.insert("arn".into(), Value::String(arn));
                    }
                    u.remove("sessionContext");
                }
                let thief = temporary && rng.below(THEFT_EVERY) == 0;
                thefts += u64::from(thief);
                let ip = if thief { format!("198.51.100.{}", 1 + k % 250) } else { home_ip(k) };
                o.insert("sourceIPAddress".into(), Value::String(ip));
                o.remove("vpcEndpointId");
            }
            let line = v.to_string();
            size += line.len() + 1;
            records.push(line);
        }
        // Records inside a delivered file are not in time order.
        for i in (1..records.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            records.swap(i, j);
        }
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        let day = format_time(t);
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
    (files, raw_total, gz_total, thefts)
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
fn scan(sources: &[Source], threads: usize) -> (ScanReport, f64, f64, f64, f64) {
    let opts = ScanOptions { threads, ..ScanOptions::default() };
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

fn main() {
    let mb: usize = std::env::var("CTGUARD_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
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

    // zcat floor: one process decompressing every file to /dev/null. Run twice, keep the best
    // (the first run also warms the page cache for everyone).
    let mut zcat_secs = f64::INFINITY;
    let mut zcat_cpu = f64::INFINITY;
    for _ in 0..2 {
        let started = Instant::now();
        let child0 = cpu_seconds().1;
        let status = Command::new("zcat").args(&files).stdout(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => {
                zcat_secs = zcat_secs.min(started.elapsed().as_secs_f64());
                zcat_cpu = zcat_cpu.min(cpu_seconds().1 - child0);
            }
            other => {
                println!("zcat unavailable ({other:?}); no baseline");
                break;
            }
        }
    }

    let load = load_average();
    let mut listing = Listing::default();
    let sources = match list_local(&dir, Kind::Trail, &TimeRange::default(), &mut listing) {
        Ok(s) => s,
        Err(e) => panic!("listing the corpus: {e}"),
    };
    let cores = default_threads();
    let mut results = Vec::new();
    for threads in [1, cores] {
        reset_peak();
        let mut best: Option<(ScanReport, f64, f64, f64, f64)> = None;
        for _ in 0..2 {
            let run = scan(&sources, threads);
            if best.as_ref().is_none_or(|b| run.1 < b.1) {
                best = Some(run);
            }
        }
        let peak = peak_rss_mib();
        if let Some(b) = best {
            results.push((threads, b, peak));
        }
        if cores == 1 {
            break;
        }
    }

    println!("\nload average before the runs: {load}; {cores} cores available");
    println!(
        "{:<26} {:>8} {:>9} {:>12} {:>12} {:>12} {:>9} {:>10}",
        "run", "wall s", "CPU s", "MB/s gzip", "MB/s json", "MB/s/core", "x zcat", "peak RSS"
    );
    let mbs = |b: u64, s: f64| b as f64 / 1e6 / s;
    if zcat_secs.is_finite() {
        println!(
            "{:<26} {:>8.2} {:>9.2} {:>12.1} {:>12.1} {:>12.1} {:>9} {:>10}",
            "zcat > /dev/null",
            zcat_secs,
            zcat_cpu,
            mbs(gz, zcat_secs),
            mbs(raw, zcat_secs),
            mbs(raw, zcat_cpu),
            "1.00",
            "-"
        );
    }
    for (threads, (_, secs, cpu, _, _), peak) in &results {
        let ratio = if zcat_secs.is_finite() { format!("{:.2}", zcat_secs / secs) } else { "-".into() };
        println!(
            "{:<26} {:>8.2} {:>9.2} {:>12.1} {:>12.1} {:>12.1} {:>9} {:>6.0} MiB",
            format!("ctguard scan, {threads} thread{}", if *threads == 1 { "" } else { "s" }),
            secs,
            cpu,
            mbs(gz, *secs),
            mbs(raw, *secs),
            mbs(raw, *cpu),
            ratio,
            peak
        );
    }
    if zcat_cpu.is_finite() {
        if let Some((_, (_, _, cpu, _, _), _)) = results.first() {
            println!("\nper core (CPU time, robust to other load): scan {:.2}x zcat", zcat_cpu / cpu);
        }
    }
    if let (Some(one), Some(all)) = (results.first(), results.get(1)) {
        println!(
            "scaling: {:.2}x on {} threads (wall), {:.0}% parallel efficiency",
            one.1 .1 / all.1 .1,
            all.0,
            100.0 * one.1 .1 / all.1 .1 / all.0 as f64
        );
    }
    for (threads, (_, secs, _, fold, replay), _) in &results {
        println!("  {threads} thread(s): fold {fold:.2}s + ordered replay {replay:.2}s = {secs:.2}s");
    }
    if let Some((_, (r, ..), _)) = results.last() {
        let s = &r.summary;
        println!(
            "engine: {} records, {} uses of temporary keys folded to {} (key, identity) pairs, {} alerts ({} stolen-key uses injected); corpus {:.0} MiB decompressed",
            s.read.records, s.fold.uses, s.distinct_uses, s.alerts, thefts, mib(raw)
        );
        assert!(s.alerts > 0 || thefts == 0, "injected thefts must raise alerts");
        assert_eq!(s.read.failed_files, 0);
    }
    if std::env::var_os("CTGUARD_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("corpus kept in {}", dir.display());
    }
}
