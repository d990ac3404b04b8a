//! `ctguard verify`: per installed account × region, send a synthetic credential reuse through
//! the real pipeline and observe exactly one alert (see [`ctguard_deploy::verify`]). Exit 0 only when
//! every target passes.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::args::TargetArgs;
use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{emit, Table};
use ctguard_deploy::embedded;
use ctguard_deploy::session;
use ctguard_deploy::verify::{self, Cleanup, Options, Outcome, Place, VerifyApi, Via};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// How the synthetic events reach the detector.
    #[arg(long, value_enum, default_value_t = ViaArg::Eventbridge)]
    pub via: ViaArg,
    /// Seconds to wait, per target, for the alert.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub timeout: u64,
    /// With `--via invoke`: send the Invoke calls to this endpoint (e.g. a local Lambda runtime
    /// emulator running the shipped bootstrap) instead of the Lambda service.
    #[arg(long, requires = "via")]
    pub invoke_endpoint: Option<String>,
}

/// `--via`: how events reach the detector (the command-line form of [`Via`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViaArg {
    /// EventBridge PutEvents on the default bus: rule → Lambda → DynamoDB → SNS.
    Eventbridge,
    /// The Lambda Invoke API (for environments where EventBridge cannot reach Lambda).
    Invoke,
}

impl From<ViaArg> for Via {
    fn from(v: ViaArg) -> Via {
        match v {
            ViaArg::Eventbridge => Via::Eventbridge,
            ViaArg::Invoke => Via::Invoke,
        }
    }
}

pub async fn run(args: &VerifyArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let zip = embedded::lambda_zip()?;
    let (s, installed) = session::discover_installed(&g.aws(), &args.targets.options(), g.concurrency as usize).await?;
    let mut targets = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    for i in installed {
        match (&i.error, i.region_outputs()) {
            (Some(e), _) => outcomes.push(not_checked(&i.target, format!("cannot read the target: {e}"))),
            // A StackSet instance's stack has a generated name (`StackSet-ctguard-region-auto-…`):
            // the detector it deployed is recognised by its fixed function name.
            (None, None)
                if VerifyApi::function(&s.connector, &Place::new(&i.target.account, &i.target.region))
                    .await
                    .is_ok() =>
            {
                targets.push(i.target)
            }
            (None, None) => outcomes.push(not_checked(
                &i.target,
                "ctguard is not installed here (no ctguard-region stack, no ctguard-detector function)".into(),
            )),
            (None, Some(_)) => targets.push(i.target),
        }
    }
    let opts = Options {
        via: args.via.into(),
        timeout: Duration::from_secs(args.timeout),
        invoke_endpoint: args.invoke_endpoint.clone(),
        bundled_sha256_b64: embedded::code_sha256_base64(zip),
        bundled_version: ctguard_detector::VERSION.to_string(),
    };
    let cleanup = Cleanup::default();
    let tty = std::io::stderr().is_terminal();
    eprintln!("verifying {} target(s) via {:?} (timeout {} s each)", targets.len(), args.via, args.timeout);
    let base_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    let work = async {
        let sem = tokio::sync::Semaphore::new(g.concurrency as usize);
        let futs = targets.iter().enumerate().map(|(n, t)| {
            let (sem, opts, cleanup, conn) = (&sem, &opts, &cleanup, &s.connector);
            async move {
                let _permit = sem.acquire().await;
                let seed = base_seed.wrapping_add((n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let o = verify::verify_target(conn, t, opts, cleanup, seed).await;
                let mark = if o.pass { "PASS" } else { "FAIL" };
                if tty || g.output() == Output::Text {
                    eprintln!("  {mark} {t}");
                }
                o
            }
        });
        futures_util::future::join_all(futs).await
    };
    let results = tokio::select! {
        r = work => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    // Cleanup always runs: normal end, failure, or Ctrl-C.
    let left = cleanup.run(&s.connector).await;
    for l in &left {
        eprintln!("ctguard: warning: could not remove {l}");
    }
    let Some(done) = results else {
        eprintln!(
            "interrupted: everything verify created was removed{}",
            if left.is_empty() { "" } else { " except the above" }
        );
        return Ok(130);
    };
    outcomes.extend(done);
    let outcomes = verify::sorted(outcomes);
    let mut table = Table::new(["ACCOUNT", "REGION", "RESULT", "LATENCY", "REASON"]);
    for o in &outcomes {
        table.row([
            o.account.clone(),
            o.region.clone(),
            if o.pass { "PASS".to_string() } else { "FAIL".to_string() },
            o.latency_ms.map(|l| format!("{l} ms")).unwrap_or_else(|| "-".into()),
            o.reason.clone(),
        ]);
    }
    emit(g.output(), &outcomes, &table)?;
    eprintln!("{}", verify::summary(&outcomes, args.via.into()));
    let all_pass = !outcomes.is_empty() && outcomes.iter().all(|o| o.pass) && left.is_empty();
    Ok(if all_pass { exit::OK } else { exit::FINDINGS })
}

fn not_checked(t: &ctguard_deploy::targets::Target, reason: String) -> Outcome {
    Outcome {
        account: t.account.clone(),
        region: t.region.clone(),
        pass: false,
        latency_ms: None,
        reason,
        checks: Vec::new(),
    }
}
