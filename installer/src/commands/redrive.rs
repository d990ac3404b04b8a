//! `ctguard redrive`: replay each installed target's dead-letter queue through the deployed
//! detector, deleting a message only after the detector succeeded (see
//! [`ctguard_deploy::redrive`]). `--plan` only counts what waits.

use clap::Args;

use crate::args::{GlobalArgs, TargetArgs};
use crate::exit;
use crate::output::{emit, Table};
use ctguard_deploy::redrive::{self, Options, Report};
use ctguard_deploy::session;

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Only show how many messages wait in each dead-letter queue; replay nothing.
    #[arg(long)]
    pub plan: bool,
    /// Replay at most this many messages per target.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max: u64,
}

pub async fn run(args: &RedriveArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let (s, installed) = session::discover_installed(&g.aws(), &args.targets.options(), g.concurrency as usize).await?;
    let opts = Options { plan: args.plan, max: args.max };
    let sem = tokio::sync::Semaphore::new(g.concurrency as usize);
    let futs = installed.iter().map(|i| {
        let (sem, conn) = (&sem, &s.connector);
        async move {
            let _permit = sem.acquire().await;
            let out = |k: &str| i.region_outputs().and_then(|o| o.get(k)).cloned();
            let failed = |why: String| Report {
                account: i.target.account.clone(),
                region: i.target.region.clone(),
                error: Some(why),
                ..Report::default()
            };
            match (&i.error, out("DlqUrl"), out("FunctionArn")) {
                (Some(e), _, _) => Some(failed(format!("cannot read the target: {e}"))),
                // Not installed here: nothing to redrive (status says so).
                (None, None, None) => None,
                (None, Some(url), Some(f)) => Some(redrive::redrive_target(conn, &i.target, &url, &f, opts).await),
                (None, _, _) => Some(failed("the ctguard-region stack has no DlqUrl/FunctionArn output".into())),
            }
        }
    });
    let reports: Vec<Report> = futures_util::future::join_all(futs).await.into_iter().flatten().collect();
    let mut table = Table::new(["ACCOUNT", "REGION", "WAITING", "IN FLIGHT", "REPLAYED", "LEFT", "WHY"]);
    for r in &reports {
        let why: Vec<&str> =
            r.failed.iter().chain(&r.unrecognized).map(String::as_str).chain(r.error.as_deref()).collect();
        table.row([
            r.account.clone(),
            r.region.clone(),
            r.depth.map_or("-".into(), |d| d.to_string()),
            r.in_flight.map_or("-".into(), |d| d.to_string()),
            if args.plan { "-".into() } else { r.redriven.to_string() },
            r.remaining.map_or("?".into(), |d| d.to_string()),
            if why.is_empty() { "-".into() } else { why.join("; ") },
        ]);
    }
    emit(g.output(), &reports, &table)?;
    let (queued, replayed, left) = reports.iter().fold((0, 0, 0), |(w, p, l), r| {
        (w + r.depth.unwrap_or(0) + r.in_flight.unwrap_or(0), p + r.redriven, l + r.remaining.unwrap_or(0))
    });
    if args.plan {
        eprintln!("{} target(s): {queued} message(s) in the queues; nothing replayed (--plan)", reports.len());
        return Ok(if reports.iter().any(|r| r.error.is_some()) { exit::PARTIAL } else { exit::OK });
    }
    eprintln!(
        "{} target(s): {replayed} message(s) replayed and deleted; about {left} still in the queues{}",
        reports.len(),
        if left > 0 { " (messages in flight are waiting again within 2 minutes)" } else { "" }
    );
    Ok(if reports.iter().all(Report::clean) { exit::OK } else { exit::PARTIAL })
}
