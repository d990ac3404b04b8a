//! Benchmark: `ctguard install` into an emulated organization on moto server, by default 50
//! accounts (the management account + 49 members) × 3 regions = 150 targets. Reports wall
//! time and AWS API calls per target (every HTTP attempt, counted by the installer's SDK
//! interceptor) for a first install, a no-op re-run, and the same re-run without parallelism.
//!
//! Run: `cargo bench -p ctguard-deploy --bench install` (needs `.venv/bin/moto_server`).
//! Knobs: `CTGUARD_BENCH_ACCOUNTS` (50), `CTGUARD_BENCH_REGIONS` (us-east-1,us-west-2,eu-west-1),
//! `CTGUARD_BENCH_CONCURRENCY` (16).
//!
//! The code deployed is a tiny stored zip holding a `bootstrap` script, not the 4.6 MB
//! detector: moto keeps every function's code in memory, and the installer's calls and timing
//! do not depend on the zip's size (one PutObject per region either way).
//! Auto-deployment is off: moto's StackSets do not honour AccountFilterType (see
//! `tests/it/install.rs`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use ctguard_deploy::deploy::{self, DeployEvent, PollOptions, RunOptions, RunReport};
use ctguard_deploy::plan::InstallConfig;
use ctguard_deploy::stacks::AwsConnector;
use ctguard_deploy::targets;

const MGMT: &str = "123456789012";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Result<(Moto, String), String> {
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new(&exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {} ({e}); run scripts/setup.sh", exe.display()))?;
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("moto_server did not listen within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((moto, format!("http://127.0.0.1:{port}")))
}

/// Through the loader (not `SdkConfig::builder`): assuming roles needs the time source and
/// sleep implementation it sets up.
async fn config(endpoint: &str, region: &str, key: &str, secret: &str, token: Option<&str>) -> SdkConfig {
    let creds = aws_credential_types::Credentials::new(key, secret, token.map(str::to_string), None, "bench");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .http_client(ctguard_aws::http_client())
        .load()
        .await
}

/// A minimal zip (one stored entry, `bootstrap`), APPNOTE 4.3.
fn tiny_zip() -> Vec<u8> {
    let name = b"bootstrap";
    let data = b"#!/bin/sh\necho ctguard bench\n";
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let crc = crc.sum();
    let mut z = Vec::new();
    let u16le = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&x.to_le_bytes());
    let u32le = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_le_bytes());
    // Local file header.
    u32le(&mut z, 0x0403_4b50);
    for x in [20u16, 0, 0, 0, 0] {
        u16le(&mut z, x);
    }
    u32le(&mut z, crc);
    u32le(&mut z, data.len() as u32);
    u32le(&mut z, data.len() as u32);
    u16le(&mut z, name.len() as u16);
    u16le(&mut z, 0);
    z.extend_from_slice(name);
    z.extend_from_slice(data);
    let cd_start = z.len() as u32;
    // Central directory header (made by Unix, mode 0755).
    u32le(&mut z, 0x0201_4b50);
    for x in [0x031e_u16, 20, 0, 0, 0, 0] {
        u16le(&mut z, x);
    }
    u32le(&mut z, crc);
    u32le(&mut z, data.len() as u32);
    u32le(&mut z, data.len() as u32);
    for x in [name.len() as u16, 0, 0, 0, 0] {
        u16le(&mut z, x);
    }
    u32le(&mut z, 0o100755 << 16);
    u32le(&mut z, 0);
    z.extend_from_slice(name);
    let cd_len = z.len() as u32 - cd_start;
    // End of central directory.
    u32le(&mut z, 0x0605_4b50);
    for x in [0u16, 0, 1, 1] {
        u16le(&mut z, x);
    }
    u32le(&mut z, cd_len);
    u32le(&mut z, cd_start);
    u16le(&mut z, 0);
    z
}

/// The organization: `n - 1` members, each with a multi-region trail (as in the e2e tests).
async fn organization(endpoint: &str, n: usize) -> Result<Vec<String>, String> {
    use aws_sdk_cloudtrail::types::{EventSelector, ReadWriteType};
    let mgmt = config(endpoint, "us-east-1", "testing", "testing", None).await;
    let org = aws_sdk_organizations::Client::new(&mgmt);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .map_err(|e| format!("create organization: {e:?}"))?;
    let mut accounts = vec![MGMT.to_string()];
    for i in 1..n {
        let st = org
            .create_account()
            .email(format!("bench{i}@example.com"))
            .account_name(format!("bench{i}"))
            .send()
            .await
            .map_err(|e| format!("create account: {e:?}"))?;
        accounts.extend(st.create_account_status().and_then(|s| s.account_id()).map(str::to_string));
    }
    let sts = aws_sdk_sts::Client::new(&mgmt);
    for a in &accounts {
        let cfg = if a == MGMT {
            mgmt.clone()
        } else {
            let c = sts
                .assume_role()
                .role_arn(format!("arn:aws:iam::{a}:role/OrganizationAccountAccessRole"))
                .role_session_name("bench-setup")
                .send()
                .await
                .map_err(|e| format!("assume role: {e:?}"))?;
            let c = c.credentials().ok_or("no credentials")?;
            config(endpoint, "us-east-1", c.access_key_id(), c.secret_access_key(), Some(c.session_token())).await
        };
        let bucket = format!("trail-logs-{a}");
        aws_sdk_s3::Client::new(&cfg).create_bucket().bucket(&bucket).send().await.map_err(|e| format!("{e:?}"))?;
        let ct = aws_sdk_cloudtrail::Client::new(&cfg);
        ct.create_trail()
            .name("audit")
            .s3_bucket_name(&bucket)
            .is_multi_region_trail(true)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        ct.put_event_selectors()
            .trail_name("audit")
            .event_selectors(
                EventSelector::builder().read_write_type(ReadWriteType::All).include_management_events(true).build(),
            )
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        ct.start_logging().name("audit").send().await.map_err(|e| format!("{e:?}"))?;
    }
    Ok(accounts)
}

fn line(label: &str, r: &RunReport, wall: Duration, targets: usize) {
    let per: Vec<u64> = r.results.iter().map(|x| x.calls).collect();
    let max = per.iter().copied().max().unwrap_or(0);
    let changes: usize = r.results.iter().map(|x| x.changes()).sum();
    println!(
        "{label:<34} wall {:>6.1} s  calls {:>5} total = {:>4.1} per target (max {max} in one target; {} shared: AssumeRole etc.)  changes {changes:>3}  failed {}",
        wall.as_secs_f64(),
        r.total_calls(),
        r.total_calls() as f64 / targets as f64,
        r.shared_calls,
        r.failed()
    );
}

fn main() -> Result<(), String> {
    let n: usize = std::env::var("CTGUARD_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let regions: Vec<String> = std::env::var("CTGUARD_BENCH_REGIONS")
        .unwrap_or_else(|_| "us-east-1,us-west-2,eu-west-1".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let concurrency: usize = std::env::var("CTGUARD_BENCH_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (_moto, endpoint) = start_moto()?;
        let t0 = Instant::now();
        let accounts = organization(&endpoint, n).await?;
        println!("setup: organization of {} accounts with trails in {:.1} s", accounts.len(), t0.elapsed().as_secs_f64());

        let set = targets::expand(&accounts, &regions, "us-east-1", false).map_err(|e| e.to_string())?;
        let zip: &'static [u8] = Box::leak(tiny_zip().into_boxed_slice());
        let cfg = InstallConfig {
            version: env!("CARGO_PKG_VERSION").to_string(),
            code_hash: ctguard_deploy::embedded::code_hash(zip),
            artifacts_account: MGMT.to_string(),
            home_region: "us-east-1".into(),
            org_id: None,
            alert_topic_arn: None,
            alert_email: None,
            policy: "{}".into(),
            log_retention_days: 90,
            default_ttl_hours: 12,
            security_hub: false,
            auto_contain: false,
        };
        let quiet = |_: &DeployEvent| {};
        let poll = PollOptions { first_delay: Duration::from_millis(200), ..PollOptions::default() };
        let targets_n = set.targets().len() + regions.len();
        println!(
            "ctguard install on moto: {} accounts x {} regions = {} targets (+{} artifacts regions), concurrency {concurrency}",
            accounts.len(),
            regions.len(),
            set.targets().len(),
            regions.len()
        );
        let base = config(&endpoint, "us-east-1", "testing", "testing", None).await;
        for (label, conc) in [("first install", concurrency), ("no-op re-run", concurrency), ("no-op re-run, concurrency 1", 1)] {
            // A fresh connector per run: assumed roles are not reused across runs, as for a
            // new process.
            let c = AwsConnector::new(base.clone(), MGMT.to_string(), "OrganizationAccountAccessRole".into());
            let opts = RunOptions { concurrency: conc, plan_only: false, allow_missing_trail: false, poll };
            let t = Instant::now();
            let r = deploy::install(&c, &set, &cfg, zip, &opts, &quiet).await;
            line(label, &r, t.elapsed(), targets_n);
            if let Some(s) = &r.stopped {
                return Err(format!("install stopped: {s}"));
            }
            if let Some(f) = r.results.iter().find(|x| x.failed()) {
                return Err(format!("{} failed: {:?}", f.target, f.outcome));
            }
        }
        Ok(())
    })
}
