//! `scan` and `trace` on damaged, hostile and odd input: one test per row of the table of issue
//! 9, each asserting what the user sees (the alerts still raised, the counts, the exit code) in
//! bounded time and memory. Every run goes through [`run_bounded`], which kills ctguard and fails
//! the test when it does not finish in time, so a hang fails instead of hanging CI.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctguard_tests::*;
use serde_json::{json, Value};

/// What one run of ctguard showed.
struct Outcome {
    code: i32,
    out: String,
    err: String,
    /// Peak resident memory (VmHWM), sampled while it ran.
    peak_mib: f64,
}

impl Outcome {
    fn json(&self) -> Vec<Value> {
        self.out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The summary line of `--json` output (scan and trace both end with one).
    fn summary(&self) -> Value {
        self.json().into_iter().find(|l| l["kind"] == "summary").unwrap_or_else(|| panic!("no summary: {}", self.out))
    }

    fn alerts(&self) -> Vec<Value> {
        self.json().into_iter().filter(|l| l["kind"] != "summary").collect()
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Runs ctguard, sampling its memory; kills it and fails after `limit`.
fn run_bounded(mut c: Command, limit: Duration) -> Outcome {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = c.spawn().expect("spawn ctguard");
    let pid = child.id();
    let drain = |s: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if let Some(k) = vm_hwm_kib(pid) {
            peak_kib = peak_kib.max(k);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctguard did not finish within {limit:?}: it hangs ({c:?})");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    assert!(!err.contains("panicked"), "ctguard panicked:\n{err}");
    assert!(peak_kib > 0, "memory was never sampled");
    Outcome { code: status.code().unwrap_or(-1), out, err, peak_mib: peak_kib as f64 / 1024.0 }
}

const MINUTE: Duration = Duration::from_secs(60);

fn scan(args: &[&str], json: bool) -> Outcome {
    let mut c = ctguard(None);
    if json {
        c.arg("--json");
    }
    c.arg("scan").args(args);
    run_bounded(c, MINUTE)
}

fn trace(key: &str, args: &[&str], json: bool) -> Outcome {
    let mut c = ctguard(None);
    if json {
        c.arg("--json");
    }
    c.args(["trace", "--access-key", key]).args(args);
    run_bounded(c, MINUTE)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctguard-it9-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

const KEY: &str = "ASIAROBUSTROBUSTROB1";
const OTHER: &str = "ASIAOTHEROTHEROTHER2";
const HOME: &str = "198.51.100.1";
const THIEF: &str = "203.0.113.9";

/// One CloudTrail call made with `key` from `ip` at minute `m` of 2024-05-01T10.
fn call(key: &str, ip: &str, m: u32) -> String {
    json!({"eventVersion":"1.08","eventTime":format!("2024-05-01T10:{m:02}:00Z"),"eventType":"AwsApiCall",
        "eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":ip,
        "recipientAccountId":"111122223333","eventID":format!("ev-{key}-{m}"),
        "userIdentity":{"type":"AssumedRole","accessKeyId":key,"arn":"arn:aws:sts::111122223333:assumed-role/web/fn",
          "sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/web"}}}})
    .to_string()
}

/// A key used from home, then from a thief's address: one alert.
fn theft() -> Vec<String> {
    vec![call(KEY, HOME, 0), call(KEY, HOME, 1), call(KEY, THIEF, 2)]
}

fn records(recs: &[String]) -> String {
    format!("{{\"Records\":[{}]}}", recs.join(","))
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn assert_theft_alert(o: &Outcome) {
    assert_eq!(o.code, 1, "the alert decides the exit code: {}", o.err);
    let alerts = o.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{}", o.err);
    assert_eq!(alerts[0]["access_key_id"], KEY);
    assert_eq!(alerts[0]["seen_identity"], format!("ip:{THIEF}"));
}

fn lost(s: &Value, kind: &str) -> u64 {
    s["read"]["lost"]["by_kind"][kind].as_u64().unwrap_or(0)
}

#[test]
fn invalid_utf8_costs_one_jsonl_line_and_the_alert_is_still_raised() {
    let dir = tempdir("utf8");
    let f = dir.join("events.jsonl");
    let mut text = Vec::new();
    for (i, line) in theft().into_iter().chain((3..9).map(|m| call(OTHER, HOME, m))).enumerate() {
        let mut l = line.into_bytes();
        if i == 4 {
            // A byte that is not UTF-8 inside a string of the fifth line.
            let at = String::from_utf8_lossy(&l).find("ListBuckets").expect("field") + 4;
            l[at] = 0xff;
        }
        text.extend_from_slice(&l);
        text.push(b'\n');
    }
    std::fs::write(&f, &text).expect("write");
    let o = scan(&[&p(&f)], true);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!(s["read"]["records"], 8);
    assert_eq!(lost(&s, "invalid-utf8"), 1);
    assert_eq!(s["read"]["lost"]["places"][0]["line"], 5);
    assert_eq!(s["complete"], false);
    let o = scan(&[&p(&f)], false);
    assert!(o.err.contains("UNREADABLE INPUT: 1 records lost"), "{}", o.err);
    assert!(o.err.contains("events.jsonl: line 5"), "{}", o.err);
    // trace sees the key's three calls, and says the input was not read whole.
    let o = trace(KEY, &[&p(&f)], true);
    assert_eq!(o.code, 1, "{}", o.err);
    assert_eq!((o.summary()["calls"].as_u64(), o.summary()["complete"].as_bool()), (Some(3), Some(false)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_record_or_a_truncated_file_loses_only_itself_and_says_so() {
    let dir = tempdir("broken");
    // {"Records":[good, good, {broken}]}: the alert in the good ones is raised.
    let mut recs = theft();
    recs.push("{broken}".into());
    let bad = dir.join("bad.json");
    std::fs::write(&bad, records(&recs)).expect("write");
    let o = scan(&[&p(&bad)], true);
    assert_theft_alert(&o);
    assert_eq!((o.summary()["read"]["records"].as_u64(), lost(&o.summary(), "malformed")), (Some(3), 1));

    // Without a theft the run is not "clean": exit 3 and a plain statement.
    let benign = dir.join("benign.json");
    std::fs::write(&benign, records(&[call(KEY, HOME, 0), call(KEY, HOME, 1), "{broken}".into()])).expect("write");
    let o = scan(&[&p(&benign)], false);
    assert_eq!(o.code, 3, "{}", o.err);
    assert!(o.out.contains("PART OF THE INPUT COULD NOT BE READ"), "{}", o.out);
    assert!(o.err.contains("1 malformed record"), "{}", o.err);

    // A plain file cut in its last record keeps the records before the cut.
    let whole = records(&[call(KEY, HOME, 0), call(KEY, HOME, 1), call(OTHER, THIEF, 2)]);
    let cut = dir.join("cut.json");
    std::fs::write(&cut, &whole[..whole.len() - 40]).expect("write");
    let o = scan(&[&p(&cut)], true);
    assert_eq!(o.code, 3, "{}", o.err);
    assert_eq!((o.summary()["read"]["records"].as_u64(), lost(&o.summary(), "truncated")), (Some(2), 1));
    // trace never says "no use" without saying what it could not read.
    let o = trace(OTHER, &[&p(&cut)], false);
    assert_eq!(o.code, 3, "{}", o.err);
    assert!(o.out.contains(&format!("No use of {OTHER} in the 2 records read.")), "{}", o.out);
    assert!(o.out.contains("PART OF THE INPUT COULD NOT BE READ"), "{}", o.out);
    assert!(o.err.contains("UNREADABLE INPUT"), "{}", o.err);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gzip_member_followed_by_junk_keeps_the_member() {
    let dir = tempdir("junk");
    let f = dir.join("trail.json.gz");
    let member = gz(records(&theft()).as_bytes());
    let mut data = member.clone();
    data.extend_from_slice(b"this is not gzip at all, a partial download appended garbage");
    std::fs::write(&f, &data).expect("write");
    let o = scan(&[&p(&f)], true);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!(lost(&s, "trailing-garbage"), 1);
    assert_eq!(s["read"]["lost"]["places"][0]["compressed_offset"], member.len() as u64);
    // A second member after the junk is read too.
    data.extend(gz(records(&[call(OTHER, HOME, 5)]).as_bytes()));
    std::fs::write(&f, &data).expect("write");
    let o = scan(&[&p(&f)], true);
    assert_eq!(o.summary()["read"]["records"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_gzip_keeps_the_records_before_the_cut() {
    let dir = tempdir("gzcut");
    let f = dir.join("trail.jsonl.gz");
    let mut lines: Vec<String> = theft();
    lines.extend((0..20_000u32).map(|i| call(&format!("ASIAFILLER{:010}", i), HOME, i % 60)));
    let data = gz((lines.join("\n") + "\n").as_bytes());
    std::fs::write(&f, &data[..data.len() * 6 / 10]).expect("write");
    let o = scan(&[&p(&f)], true);
    assert_theft_alert(&o);
    let s = o.summary();
    let n = s["read"]["records"].as_u64().unwrap_or(0);
    assert!(n > 5_000 && n < 20_003, "{n} records before the cut");
    assert_eq!(lost(&s, "truncated-gzip"), 1, "{s}");
    assert_eq!(s["read"]["lost"]["by_kind"].as_object().map(|o| o.len()), Some(1), "the cut record is the cut's: {s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn symlink_loops_fifos_and_sockets_never_hang() {
    use std::os::unix::fs::symlink;
    let dir = tempdir("loops");
    let logs = dir.join("logs");
    std::fs::create_dir_all(logs.join("sub")).expect("mkdir");
    std::fs::write(logs.join("a.json"), records(&theft())).expect("write");
    symlink(".", logs.join("loop1")).expect("link");
    symlink("..", logs.join("sub/loop2")).expect("link");
    mkfifo(&logs.join("pipe.json"));
    let _sock = std::os::unix::net::UnixListener::bind(logs.join("sock.json")).expect("socket");
    let o = scan(&[&p(&logs)], true);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!(s["read"]["files"], 1, "{s}");
    assert_eq!(s["listing"]["special"], 2, "{s}");
    assert!(s["listing"]["loops"].as_u64().unwrap_or(0) >= 2, "{s}");
    assert_eq!(s["complete"], true, "skipped FIFOs and loops lose no log: {s}");
    // A FIFO named on the command line is read, as `scan <(zcat …)` needs.
    let fifo = dir.join("named.fifo");
    mkfifo(&fifo);
    let (f2, body) = (fifo.clone(), records(&theft()));
    let writer = std::thread::spawn(move || {
        if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&f2) {
            let _ = w.write_all(body.as_bytes());
        }
    });
    let o = scan(&[&p(&fifo)], true);
    assert_theft_alert(&o);
    let _ = writer.join();
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn one_self_link_reads_each_file_once() {
    use std::os::unix::fs::symlink;
    let dir = tempdir("self");
    std::fs::write(dir.join("a.json"), records(&theft())).expect("write");
    std::fs::write(dir.join("b.json"), records(&[call(OTHER, HOME, 9)])).expect("write");
    symlink(".", dir.join("self")).expect("link");
    symlink("a.json", dir.join("alias.json")).expect("link");
    let o = scan(&[&p(&dir), &p(&dir.join("b.json"))], true);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!((s["read"]["files"].as_u64(), s["read"]["records"].as_u64()), (Some(2), Some(4)), "{s}");
    assert_eq!(s["fold"]["uses"], 4, "each use counted once: {s}");
    assert_eq!((s["listing"]["duplicates"].as_u64(), s["listing"]["loops"].as_u64()), (Some(2), Some(1)), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Memory allowed to a run on any input (the issue's goal).
const MEMORY_GOAL_MIB: f64 = 256.0;

#[cfg(unix)]
#[test]
fn dev_zero_and_gzip_bombs_stay_bounded() {
    use std::os::unix::fs::symlink;
    let dir = tempdir("bomb");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::write(logs.join("a.json"), records(&theft())).expect("write");
    symlink("/dev/zero", logs.join("x.json")).expect("link");
    let o = scan(&[&p(&logs)], true);
    assert_theft_alert(&o);
    assert_eq!(o.summary()["listing"]["special"], 1);
    assert!(o.peak_mib < MEMORY_GOAL_MIB, "{} MiB", o.peak_mib);

    // /dev/zero named on the command line: read up to the limit, then reported.
    let o = scan(&["/dev/zero", "--max-file-size", "64MiB"], true);
    assert_eq!(o.code, 5, "nothing but zeros: no record at all: {}", o.err);
    assert_eq!(lost(&o.summary(), "too-large"), 1);
    assert!(o.peak_mib < MEMORY_GOAL_MIB, "{} MiB", o.peak_mib);

    // A 1 GiB gzip bomb behind a real member: the records are kept, the rest is cut at the limit.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).expect("gzip");
    }
    let member = enc.finish().expect("gzip");
    let mut bomb = gz(records(&theft()).as_bytes());
    for _ in 0..16 {
        bomb.extend_from_slice(&member);
    }
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let f = dir.join("bomb.json.gz");
    std::fs::write(&f, &bomb).expect("write");
    // (The limit is low because this is a debug build, whose inflating is slow.)
    let mut c = ctguard(None);
    c.args(["--json", "scan", &p(&f), "--max-file-size", "32MiB"]);
    let o = run_bounded(c, 3 * MINUTE);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!(lost(&s, "too-large"), 1, "{s}");
    assert_eq!(s["read"]["bytes_decoded"], 32u64 << 20);
    assert!(o.peak_mib < MEMORY_GOAL_MIB, "{} MiB", o.peak_mib);
    assert!(o.err.contains("file over the decompressed-size limit"), "{}", o.err);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `ctguard` as an unprivileged user when the tests run as root (root reads any
/// directory), so that an unreadable directory really is unreadable.
#[cfg(unix)]
fn unprivileged(dir: &Path) -> Command {
    let uid = Command::new("id").arg("-u").output().expect("id");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return ctguard(None);
    }
    // The built binary sits under root's home, which others cannot enter: run it through a
    // link elsewhere (a copy when the file systems differ).
    let bin = dir.join("ctguard-copy");
    if !bin.exists() && std::fs::hard_link(ctguard_bin(), &bin).is_err() {
        std::fs::copy(ctguard_bin(), &bin).expect("copy ctguard");
    }
    let template = ctguard(None);
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&bin);
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(Stdio::null());
    c
}

#[cfg(unix)]
#[test]
fn an_unreadable_directory_is_reported_and_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("perm");
    let logs = dir.join("logs");
    for d in ["ok", "secret"] {
        std::fs::create_dir_all(logs.join(d)).expect("mkdir");
    }
    std::fs::write(logs.join("ok/a.json"), records(&theft())).expect("write");
    std::fs::write(logs.join("secret/b.json"), records(&[call(OTHER, HOME, 3)])).expect("write");
    std::fs::set_permissions(logs.join("secret"), std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut c = unprivileged(&dir);
    c.args(["--json", "scan", &p(&logs)]);
    let o = run_bounded(c, MINUTE);
    assert_theft_alert(&o);
    let s = o.summary();
    assert_eq!(s["complete"], false, "{s}");
    let errors = s["listing"]["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{s}");
    assert!(errors[0]["source"].as_str().is_some_and(|x| x.ends_with("secret")), "{s}");
    // Without the theft: exit 3, and the text says which directory.
    std::fs::remove_file(logs.join("ok/a.json")).expect("rm");
    std::fs::write(logs.join("ok/a.json"), records(&[call(KEY, HOME, 0)])).expect("write");
    let mut c = unprivileged(&dir);
    c.args(["scan", &p(&logs)]);
    let o = run_bounded(c, MINUTE);
    assert_eq!(o.code, 3, "{}", o.err);
    assert!(o.err.contains("secret: ") && o.err.contains("ermission denied"), "{}", o.err);
    std::fs::set_permissions(logs.join("secret"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key used through a NAT gateway (198.51.100.7 = 10.0.0.220) and flow-log lines.
fn nat_case(dir: &Path, trail_name: &str, flow_name: &str, flow_lines: &[String]) -> (PathBuf, PathBuf) {
    let trail = dir.join("trail");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&trail).expect("mkdir");
    std::fs::create_dir_all(&flows).expect("mkdir");
    std::fs::write(trail.join(trail_name), records(&[call(KEY, "198.51.100.7", 0), call(KEY, "198.51.100.7", 1)]))
        .expect("write");
    std::fs::write(flows.join(flow_name), flow_lines.join("\n") + "\n").expect("write");
    (trail, flows)
}

fn flow(src: &str, start: &str, end: &str) -> String {
    format!("2 111122223333 eni-0natgw00000000001 {src} 10.0.0.220 49152 443 6 12 5200 {start} {end} ACCEPT OK")
}

#[test]
fn non_ascii_file_names_with_since_and_flow_logs_never_panic() {
    let dir = tempdir("names");
    // 14 bytes shaped like a delivery stamp, with a two-byte character inside the date.
    let odd = "201é128T2305Z";
    assert_eq!(odd.len(), 14);
    let t = ctguard_detector::time::parse_rfc3339("2024-05-01T10:00:00Z").expect("time") / 1000;
    let (trail, flows) = nat_case(
        &dir,
        &format!("111122223333_CloudTrail_us-east-1_{odd}_ü.json"),
        &format!("111122223333_vpcflowlogs_us-east-1_fl-0_{odd}_ö.log"),
        &[flow("10.0.1.5", &(t - 10).to_string(), &(t + 50).to_string())],
    );
    let o = scan(&[&p(&trail), "--since", "2024-05-01"], true);
    assert_eq!((o.code, o.summary()["read"]["records"].as_u64()), (0, Some(2)), "{}", o.err);
    let nat = "198.51.100.7=10.0.0.220";
    let o = trace(KEY, &[&p(&trail), "--since", "2024-04-30", "--flow-logs", &p(&flows), "--nat", nat], true);
    assert_eq!(o.code, 0, "{}", o.err);
    let hosts: Vec<Value> = o.json().into_iter().filter(|l| l["kind"] == "nat_host").collect();
    assert_eq!(hosts.len(), 2, "both calls attributed through the odd names: {}", o.out);
    assert_eq!(hosts[0]["candidate"]["host"], "10.0.1.5");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flow_log_with_extreme_times_never_overflows() {
    let dir = tempdir("extreme");
    let (min, max) = (i64::MIN.to_string(), i64::MAX.to_string());
    let t = ctguard_detector::time::parse_rfc3339("2024-05-01T10:00:00Z").expect("time") / 1000;
    let lines = [
        flow("10.0.1.5", &min, &max),
        flow("10.0.1.6", &max, &max),
        flow("10.0.1.7", &min, &min),
        flow("10.0.1.8", &max, &min),
        flow("10.0.1.9", "99999999999999999999", "1"),
        flow("10.0.1.10", &(t - 10).to_string(), &(t + 50).to_string()),
    ];
    let (trail, flows) = nat_case(&dir, "trail.json", "flows.log", &lines);
    let o = trace(KEY, &[&p(&trail), "--flow-logs", &p(&flows), "--nat", "198.51.100.7=10.0.0.220"], true);
    let hosts: std::collections::BTreeSet<String> = o
        .json()
        .into_iter()
        .filter(|l| l["kind"] == "nat_host")
        .filter_map(|l| l["candidate"]["host"].as_str().map(str::to_string))
        .collect();
    assert!(hosts.contains("10.0.1.10") && hosts.contains("10.0.1.5"), "{hosts:?}");
    // The line whose start is not a 64-bit number is counted as unreadable, and said.
    let flow_read = &o.summary()["flow_logs"]["read"];
    assert_eq!((flow_read["records"].as_u64(), flow_read["unreadable"].as_u64()), (Some(5), Some(1)), "{}", o.out);
    assert_eq!(o.code, 3, "a flow line could not be read: {}", o.err);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn input_that_is_not_a_log_is_never_clean() {
    let dir = tempdir("notlog");
    let text = dir.join("hostname");
    std::fs::write(&text, "build-host-17\n").expect("write");
    let other = dir.join("package.json");
    std::fs::write(&other, r#"{"name":"left-pad","version":"1.3.0"}"#).expect("write");
    for f in [&text, &other] {
        let o = scan(&[&p(f)], false);
        assert_eq!(o.code, 5, "{}: {}", f.display(), o.err);
        assert!(o.out.contains("No CloudTrail or ActionTrail record in the input"), "{}", o.out);
        let o = trace(KEY, &[&p(f)], false);
        assert_eq!(o.code, 5, "{}", o.err);
        assert!(o.out.contains("holds no CloudTrail or ActionTrail record at all"), "{}", o.out);
    }
    let o = scan(&[&p(&other)], true);
    assert_eq!(
        (o.summary()["read"]["other_objects"].as_u64(), o.summary()["read"]["records"].as_u64()),
        (Some(1), Some(0))
    );
    let o = scan(&["/etc/hostname"], false);
    assert_eq!(o.code, 5, "{}", o.err);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_large_json_lines_file_streams_in_bounded_memory() {
    let dir = tempdir("large");
    let f = dir.join("big.jsonl");
    let target = 192u64 << 20;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&f).expect("create"));
        let filler: Vec<String> = (0..1000u32).map(|i| call(&format!("ASIAFILLER{:010}", i), HOME, i % 60)).collect();
        let mut written = 0u64;
        for l in theft().iter().take(2) {
            writeln!(w, "{l}").expect("write");
        }
        'fill: loop {
            for l in &filler {
                writeln!(w, "{l}").expect("write");
                written += l.len() as u64 + 1;
                if written >= target {
                    break 'fill;
                }
            }
        }
        writeln!(w, "{}", theft()[2]).expect("write");
        w.flush().expect("flush");
    }
    let mut c = ctguard(None);
    c.args(["--json", "scan", &p(&f)]);
    // A debug build on a loaded machine: generous, but still a bound.
    let o = run_bounded(c, 5 * MINUTE);
    assert_theft_alert(&o);
    assert!(o.summary()["read"]["bytes_decoded"].as_u64().unwrap_or(0) >= target);
    // Memory does not follow the file's size.
    assert!(o.peak_mib < 96.0, "peak {} MiB on a {} MiB file", o.peak_mib, target >> 20);
    let _ = std::fs::remove_dir_all(&dir);
}
