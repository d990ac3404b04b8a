//! Detector benchmarks; prints figures, asserts nothing about speed.
//!
//! 1. Decision-path throughput: parse + classify + decide (warm cache) on realistic CloudTrail
//!    events, next to plain `serde_json::Value` parsing of the same bytes (goal ≥ 1.0×).
//! 2. Store traffic per 1000 events on a realistic, heavy-tailed stream, next to its floor (one
//!    conditional write per distinct key + one publish per alert; goal ≤ 1.1× the floor) and
//!    the seed recipe (a GetItem per event plus the writes).
//! 3. The shipped bootstrap: init time (process start → first Runtime API request) and zip size.
//!
//! Run: `cargo bench -p ctguard-detector --bench engine`.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctguard_detector::{CollectingSink, Detector, MemoryStore, Policy};

/// A small deterministic PRNG (xorshift64*), so every run replays the same stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn key(i: u64) -> String {
    let mut k = String::from("ASIA");
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..16 {
        k.push(B32[(x % 32) as usize] as char);
        x /= 32;
        if x == 0 {
            x = i + 7;
        }
    }
    k
}

const APIS: &[(&str, &str)] = &[
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "PutObject"),
    ("dynamodb.amazonaws.com", "Query"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("kms.amazonaws.com", "Decrypt"),
    ("logs.amazonaws.com", "PutLogEvents"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("ec2.amazonaws.com", "DescribeInstances"),
];

/// One realistic event (~1.4 KB, the shape of a real eventVersion 1.08 record).
fn event(rng: &mut Rng, k: u64, ip: &str, t: u64, instance: bool) -> String {
    let (src, name) = APIS[rng.below(APIS.len() as u64) as usize];
    let session = if instance { format!("i-{:017x}", k & 0xffff_ffff_ffff) } else { format!("fn-{}", k % 50) };
    let ec2 = if instance { r#","ec2RoleDelivery":"2.0""# } else { "" };
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLEID{k}:{session}","arn":"arn:aws:sts::111122223333:assumed-role/app-{r}/{session}","accountId":"111122223333","accessKeyId":"{key}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLEID{k}","arn":"arn:aws:iam::111122223333:role/app-{r}","accountId":"111122223333","userName":"app-{r}"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2024-05-01T10:00:00Z","mfaAuthenticated":"false"}}{ec2}}}}},"eventTime":"2024-05-01T{h:02}:{m:02}:{s:02}Z","eventSource":"{src}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"{ip}","userAgent":"aws-sdk-java/2.20.162 Linux/5.10.205-195.807.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.9+8-LTS Java/17.0.9 vendor/Amazon.com_Inc. exec-env/AWS_ECS_EC2 io/sync http/Apache cfg/retry-mode/legacy","requestParameters":{{"bucketName":"data-{r}","key":"objects/{t}.json","Host":"data-{r}.s3.us-east-1.amazonaws.com"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"bWFueSBieXRlcyBvZiBvcGFxdWUgaWQ=","bytesTransferredOut":512}},"requestID":"{rid:016X}","eventID":"{eid:08x}-1b2c-4d5e-8f90-{eid2:012x}","readOnly":true,"resources":[{{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::data-{r}/objects/{t}.json"}}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","eventCategory":"Data","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"data-{r}.s3.us-east-1.amazonaws.com"}}}}"#,
        key = key(k),
        r = k % 40,
        h = 10 + (t / 3600) % 12,
        m = (t / 60) % 60,
        s = t % 60,
        rid = rng.next(),
        eid = rng.next() as u32,
        eid2 = rng.next() & 0xffff_ffff_ffff,
    )
}

/// A heavy-tailed stream: key popularity follows a Zipf-like law, 30% of keys are EC2
/// instance credentials, and a few keys are reused from a thief's address.
fn stream(n_events: usize, n_keys: u64) -> (Vec<String>, u64) {
    let mut rng = Rng(0x5eed);
    let mut out = Vec::with_capacity(n_events);
    let mut thefts = 0;
    for i in 0..n_events {
        // Inverse-power sampling: small ids are hot, the tail is long.
        let u = (rng.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
        let k = ((n_keys as f64).powf(u) as u64).saturating_sub(1).min(n_keys - 1);
        let instance = k % 10 < 3;
        let home = format!("203.0.{}.{}", (k / 250) % 250, k % 250 + 1);
        let stolen = k % 97 == 5 && rng.below(20) == 0;
        let ip = if stolen {
            thefts += 1;
            "198.51.100.66".to_string()
        } else {
            home
        };
        out.push(event(&mut rng, k, &ip, i as u64 / 10, instance));
    }
    (out, thefts)
}

fn main() {
    let (events, _) = stream(200_000, 20_000);
    let bytes: usize = events.iter().map(String::len).sum();
    println!("ctguard detector benchmarks");
    println!("stream: {} events, {:.1} MB, {} distinct keys max", events.len(), bytes as f64 / 1e6, 20_000);

    // --- 1. decision path vs plain serde_json parse -----------------------------------------
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let best = |f: &mut dyn FnMut() -> usize| {
        let mut best = Duration::MAX;
        let mut sink = 0;
        for _ in 0..5 {
            let t = Instant::now();
            sink += f();
            best = best.min(t.elapsed());
        }
        std::hint::black_box(sink);
        best
    };
    let parse = best(&mut || events.iter().filter(|e| serde_json::from_str::<serde_json::Value>(e).is_ok()).count());
    let det = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "bench");
    // Warm the cache once, as a warm Lambda would be; then time the steady state.
    rt.block_on(async {
        for e in &events {
            let _ = det.process_json(e, None).await;
        }
    });
    let decide = best(&mut || {
        rt.block_on(async {
            let mut n = 0;
            for e in &events {
                if det.process_json(e, None).await.is_ok() {
                    n += 1;
                }
            }
            n
        })
    });
    let eps = |d: Duration| events.len() as f64 / d.as_secs_f64();
    println!("\n[1] decision path (warm cache), best of 5");
    println!(
        "  serde_json::Value parse : {:>10.0} events/s  ({:.0} MB/s)",
        eps(parse),
        bytes as f64 / parse.as_secs_f64() / 1e6
    );
    println!(
        "  ctguard decide          : {:>10.0} events/s  ({:.0} MB/s)",
        eps(decide),
        bytes as f64 / decide.as_secs_f64() / 1e6
    );
    println!("  ratio decide/parse      : {:>10.2}x   (goal >= 1.00x)", eps(decide) / eps(parse));

    // --- 2. store traffic on a cold start ------------------------------------------------------
    let det = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "bench");
    rt.block_on(async {
        for e in &events {
            let _ = det.process_json(e, None).await;
        }
    });
    let calls = det.store().calls();
    let alerts = det.sink().alerts().len() as u64;
    let scopes = det.store().scope_count() as u64;
    let distinct_keys: std::collections::HashSet<&str> =
        events.iter().filter_map(|e| e.split("\"accessKeyId\":\"").nth(1).and_then(|r| r.get(..20))).collect();
    let floor = distinct_keys.len() as u64 + alerts;
    let actual = calls.total() + alerts;
    let seed = events.len() as u64 + distinct_keys.len() as u64 + alerts;
    let per_k = |x: u64| x as f64 * 1000.0 / events.len() as f64;
    println!("\n[2] DynamoDB + SNS calls per 1000 events (cold start, one environment)");
    println!("  distinct keys {}, trust scopes {}, alerts {}", distinct_keys.len(), scopes, alerts);
    println!("  ctguard                 : {:>8.2}  ({} store calls: {:?})", per_k(actual), calls.total(), calls);
    println!("  floor (1 write/key + 1 publish/alert): {:>8.2}", per_k(floor));
    println!("  ratio to floor          : {:>8.2}x  (goal <= 1.10x)", actual as f64 / floor as f64);
    println!(
        "  seed recipe (GetItem per event + writes): {:>8.2}  ({:.1}x ctguard)",
        per_k(seed),
        seed as f64 / actual as f64
    );

    // --- 3. the shipped bootstrap -------------------------------------------------------------
    println!("\n[3] shipped bootstrap");
    match bundled_zip() {
        Some(zip) => {
            let size = std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0);
            println!("  zip: {} ({:.2} MB; goal <= 5 MB)", zip.display(), size as f64 / 1e6);
            match init_time(&zip) {
                Ok(times) => {
                    let mut t = times;
                    t.sort();
                    println!(
                        "  init (exec -> first /next request), {} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
                        t.len(),
                        t[t.len() / 2].as_secs_f64() * 1e3,
                        t[0].as_secs_f64() * 1e3,
                        t[t.len() - 1].as_secs_f64() * 1e3
                    );
                }
                Err(e) => println!("  init time not measured: {e}"),
            }
        }
        None => println!("  no zip found (run scripts/setup.sh): zip size and init time not measured"),
    }
}

fn bundled_zip() -> Option<PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("lambda/bootstrap/bootstrap.zip");
    p.is_file().then_some(p)
}

/// Extracts the bootstrap and times, over 7 runs, from spawn to its first Runtime API request.
fn init_time(zip: &std::path::Path) -> Result<Vec<Duration>, String> {
    let dir = std::env::temp_dir().join(format!("ctguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let st = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(&dir)
        .status()
        .map_err(|e| format!("python3 -m zipfile: {e}"))?;
    if !st.success() {
        return Err("cannot extract the zip".into());
    }
    let bin = dir.join("bootstrap");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755));
    }
    let mut out = Vec::new();
    for _ in 0..7 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut child = Command::new(&bin)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "ctguard-detector")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("CTGUARD_TABLE", "ctguard-state")
            .env("CTGUARD_TOPIC_ARN", "arn:aws:sns:us-east-1:111122223333:ctguard-alerts")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (mut s, _) = l.accept().map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
        out.push(t0.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}
