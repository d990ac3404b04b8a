//! `ctguard uninstall`: remove everything ctguard created in the selected accounts × regions
//! (StackSets and their instances, regional and account stacks, the state table unless
//! `--keep-state`, then the artifacts buckets with every object version), touching only what
//! carries ctguard's ownership tag; then list what is left, which must be nothing.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use crate::args::GlobalArgs;
use crate::args::TargetArgs;
use crate::commands::install::render;
use crate::{exit, progress};
use ctguard_deploy::autodeploy;
use ctguard_deploy::deploy::{self, PollOptions, RemoveOptions, RunOptions};
use ctguard_deploy::org::Selection;
use ctguard_deploy::session;
use ctguard_deploy::stacksets::{Prefs, StackSetApi};
use ctguard_deploy::targets::{Target, TargetSet};

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Keep each account's state table (ctguard-state) and its data.
    #[arg(long)]
    pub keep_state: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Give up waiting on one stack operation after this many seconds (the target then
    /// fails; a re-run resumes).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// Show what would be removed, and remove nothing.
    #[arg(long)]
    pub plan: bool,
    /// Also remove the artifacts buckets when only some accounts are selected (--accounts/--ou).
    /// With --org or the current account alone they are removed by default.
    #[arg(long, conflicts_with = "keep_artifacts")]
    pub remove_artifacts: bool,
    /// Keep the artifacts buckets.
    #[arg(long)]
    pub keep_artifacts: bool,
}

/// Shows `what` and asks for `yes` on the terminal.
pub fn confirm(what: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr().lock();
    write!(err, "{what}\nType `yes` to continue: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

pub async fn run(args: &UninstallArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    if !args.yes && !args.plan && !std::io::stdin().is_terminal() {
        eprintln!("ctguard: refusing to uninstall without --yes (stdin is not a terminal, so nobody can confirm)");
        return Ok(exit::USAGE);
    }
    let s = session::open(&g.aws(), &args.targets.options()).await?;
    let remove_artifacts =
        !args.keep_artifacts && (args.remove_artifacts || matches!(s.selection, Selection::Org | Selection::Current));
    if !args.yes && !args.plan {
        let what = format!(
            "This removes ctguard from {} accounts × {} regions{}{}.",
            s.set.accounts.len(),
            s.set.regions.len(),
            if args.keep_state { " (keeping the state tables)" } else { ", state tables included" },
            if remove_artifacts { ", and the artifacts buckets" } else { "" }
        );
        if !confirm(&what)? {
            eprintln!("nothing removed");
            return Ok(exit::USAGE);
        }
    }
    let opts = RunOptions {
        concurrency: g.concurrency as usize,
        plan_only: args.plan,
        allow_missing_trail: true,
        poll: PollOptions { timeout: std::time::Duration::from_secs(args.wait_timeout), ..PollOptions::default() },
    };
    let mode = progress::resolve(std::io::stderr().is_terminal(), progress::is_ci());
    let rep = progress::reporter(mode);

    // StackSets first: their instances are stacks in accounts we may not even select. The
    // accounts they owned have nothing else of ctguard's, so no role is needed there.
    let mut auto_result = None;
    let mut stackset_accounts = std::collections::BTreeSet::new();
    // `--ou`: only the instances listed under those OUs (an `--ou` install's).
    let only = match &s.selection {
        Selection::Ous(ous) => Some(ous.as_slice()),
        _ => None,
    };
    let org_wide = matches!(s.selection, Selection::Org | Selection::Ous(_));
    if let (Some(_), false, true) = (&s.org, args.plan, org_wide) {
        let home = Target::new(s.caller_account.clone(), s.set.home_region.clone());
        let ss = s.stack_sets();
        let (mut r, owned) = autodeploy::remove(&ss, only, &Prefs::default(), &opts.poll, rep.as_ref(), &home).await;
        r.calls = ss.calls();
        stackset_accounts = owned;
        auto_result = Some(r);
    }
    let direct = TargetSet {
        accounts: s.set.accounts.iter().filter(|a| !stackset_accounts.contains(*a)).cloned().collect(),
        ..s.set.clone()
    };
    let ropts = RemoveOptions { keep_state: args.keep_state, remove_artifacts };
    let mut report = if direct.accounts.is_empty() {
        deploy::RunReport::default()
    } else {
        deploy::uninstall(&s.connector, &direct, &s.caller_account, &ropts, &opts, rep.as_ref()).await
    };
    if let Some(r) = auto_result {
        // No StackSet found and nothing failed: no row to show (its calls still count).
        if r.failed() || !r.steps.is_empty() {
            report.results.insert(0, r);
        } else {
            report.shared_calls += r.calls;
        }
    }
    report.shared_calls += s.setup_calls.get();
    drop(rep);
    let mut notes = Vec::new();
    if !args.plan {
        if report.leftovers.is_empty() {
            notes.push(format!(
                "left: nothing{}{}",
                if args.keep_state { " (state tables kept on request)" } else { "" },
                if remove_artifacts {
                    ""
                } else {
                    " (artifacts buckets kept: other accounts may still use them; --remove-artifacts)"
                }
            ));
        } else {
            for (t, l) in &report.leftovers {
                notes.push(format!("left in {t}: {}", l.join(", ")));
            }
        }
    }
    render(g.output(), &report, &notes, args.plan)?;
    Ok(if report.failed() > 0 {
        exit::PARTIAL
    } else if !report.leftovers.is_empty() && !args.plan {
        exit::FINDINGS
    } else {
        exit::OK
    })
}
