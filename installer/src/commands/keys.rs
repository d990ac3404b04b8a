//! `ctguard keys --idle-days N [--org] [--disable --yes]`: IAM user access keys and their last use.
//!
//! Lists every IAM user access key with `GetAccessKeyLastUsed`, in the caller's account or in
//! every active account of the organisation (through `--role-name`), marks active keys
//! unused for N days as idle (never-used keys count from their creation), and with
//! `--disable --yes` deactivates them. `--disable` alone prints what would be deactivated.
//! Keys are never deleted. Exit codes: 0 no idle key, 1 idle keys found, 2 usage error,
//! 3 some accounts could not be inventoried.

use std::sync::Arc;

use clap::Args;
use ctguard_detector::time::{now_ms, Millis};

use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{emit, Table};
use ctguard_aws::{caller_account, load, DEFAULT_MEMBER_ROLE};
use ctguard_deploy::org;
use ctguard_deploy::stacks::{AwsConnector, CallCounter};
use ctguard_deploy::targets::US_EAST_1;
use ctguard_forensics::keys::{inventory, Action, IamDirectory, IamError, KeyRow};
use ctguard_forensics::sources::parse_time_arg;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// A key unused for at least this many days is idle (never-used keys count from creation).
    /// With `--disable --yes` at least 1: with 0 every active key would be idle, and every key
    /// of the organization would be turned off.
    #[arg(long, default_value_t = 90)]
    pub idle_days: u64,
    /// Every active account of the AWS Organization (run from the management account or a
    /// delegated administrator), through --role-name.
    #[arg(long)]
    pub org: bool,
    /// Role assumed in member accounts with --org. `--assume-role-name` is accepted too (the
    /// spelling this command used first).
    #[arg(long, alias = "assume-role-name", default_value = DEFAULT_MEMBER_ROLE)]
    pub role_name: String,
    /// Deactivate idle keys (never deletes them). Without --yes, only shows what would change.
    #[arg(long)]
    pub disable: bool,
    /// Confirm --disable.
    #[arg(long, requires = "disable")]
    pub yes: bool,
    /// Judge idleness as of this time instead of now (2024-06-01 or RFC 3339), for reproducible reports.
    #[arg(long)]
    pub as_of: Option<String>,
}

/// Rows to a table.
pub fn table(rows: &[KeyRow]) -> Table {
    let mut t = Table::new([
        "ACCOUNT",
        "USER",
        "ACCESS KEY",
        "STATUS",
        "CREATED",
        "LAST USED",
        "SERVICE",
        "REGION",
        "IDLE DAYS",
        "IDLE",
        "ACTION",
    ]);
    let o = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    for r in rows {
        t.row([
            r.account.clone(),
            r.user.clone(),
            r.access_key_id.clone(),
            r.status.clone(),
            o(&r.created),
            r.last_used.clone().unwrap_or_else(|| "never".into()),
            o(&r.last_used_service),
            o(&r.last_used_region),
            r.idle_days.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            if r.idle { "IDLE".into() } else { String::new() },
            r.action.clone(),
        ]);
    }
    t
}

/// The inventory of every account, `concurrency` at a time (each through the member role):
/// the rows of those that could be read, and the error of each that could not.
async fn inventory_accounts(
    base: &aws_config::SdkConfig,
    caller: &str,
    accounts: &[String],
    args: &KeysArgs,
    as_of: Millis,
    action: Action,
    concurrency: u16,
) -> anyhow::Result<(Vec<KeyRow>, Vec<(String, IamError)>)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency)));
    // The same role assumption as install/status: the caller's own account uses its credentials.
    let connector = Arc::new(AwsConnector::new(base.clone(), caller.to_string(), args.role_name.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, account) in accounts.iter().enumerate() {
        let (connector, account, limit) = (Arc::clone(&connector), account.clone(), Arc::clone(&limit));
        let idle_days = args.idle_days;
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let cfg = connector.account_config(&account).await;
            let dir = IamDirectory { client: aws_sdk_iam::Client::new(&cfg) };
            (i, account.clone(), inventory(&dir, &account, as_of, idle_days, action).await)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.push(r?);
    }
    results.sort_by_key(|(i, _, _)| *i);
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (_, account, r) in results {
        match r {
            Ok(mut v) => rows.append(&mut v),
            Err(e) => failed.push((account, e)),
        }
    }
    Ok((rows, failed))
}

pub async fn run(args: &KeysArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let as_of = match &args.as_of {
        Some(s) => parse_time_arg(s, false).map_err(anyhow::Error::msg)?,
        None => now_ms(),
    };
    let action = match (args.disable, args.yes) {
        (false, _) => Action::Report,
        (true, false) => Action::Plan,
        (true, true) => Action::Disable,
    };
    if action == Action::Disable {
        // Either would make keys in use look idle, and disable them: a report may look ahead,
        // a deactivation may not. A minute of slack covers clock skew for "now".
        anyhow::ensure!(args.idle_days >= 1, "--disable --yes needs --idle-days of at least 1");
        anyhow::ensure!(
            as_of <= now_ms().saturating_add(60_000),
            "--as-of {} is in the future: --disable --yes would deactivate keys that are in use",
            args.as_of.as_deref().unwrap_or("")
        );
    }
    let base = load(&g.aws()).await;
    let caller = caller_account(&base).await?;
    let accounts = if args.org {
        // Organizations is a global service answered in us-east-1.
        let directory = org::AwsOrg::new(&ctguard_aws::in_region(&base, US_EAST_1), &base, &CallCounter::default());
        org::all_accounts(&directory).await?
    } else {
        vec![caller.clone()]
    };

    let (rows, failed) = inventory_accounts(&base, &caller, &accounts, args, as_of, action, g.concurrency).await?;
    if g.output() == Output::Text && rows.is_empty() {
        println!("No IAM user access keys found.");
    } else {
        emit(g.output(), &rows, &table(&rows))?;
    }
    let idle = rows.iter().filter(|r| r.idle).count();
    let disabled = rows.iter().filter(|r| r.action == "disabled").count();
    let disable_failed = rows.iter().filter(|r| r.action.starts_with("disable-failed")).count();
    let unknown = rows.iter().filter(|r| r.action.starts_with("last-use-unknown")).count();
    eprintln!(
        "ctguard keys: {} accounts, {} keys, {} idle for ≥ {} days{}{}{}",
        accounts.len() - failed.len(),
        rows.len(),
        idle,
        args.idle_days,
        match action {
            Action::Report => String::new(),
            Action::Plan if idle > 0 => format!("; {idle} would be deactivated (add --yes)"),
            Action::Plan => String::new(),
            Action::Disable => format!("; {disabled} deactivated, {disable_failed} failed"),
        },
        if unknown > 0 { format!("; last use unknown for {unknown}") } else { String::new() },
        if failed.is_empty() { String::new() } else { format!("; {} accounts failed", failed.len()) },
    );
    for (account, e) in &failed {
        eprintln!("  {account}: {e}");
    }
    Ok(if !failed.is_empty() || disable_failed > 0 {
        exit::PARTIAL
    } else if idle > 0 {
        exit::FINDINGS
    } else {
        exit::OK
    })
}
