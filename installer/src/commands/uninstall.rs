//! `ctguard uninstall`: remove everything ctguard created in the selected accounts × regions
//! (StackSets and their instances, regional and account stacks, the state table unless
//! `--keep-state`, then the artifacts buckets with every object version), touching only what
//! carries ctguard's ownership tag; then list what is left and why, which must be nothing.
//!
//! The StackSets live in the installing account and read their code from its artifacts
//! buckets, so they go whenever those buckets go (the default with `--org` or with no
//! selection), whatever else is selected: removing the buckets alone would leave StackSets that
//! deploy a function whose code is gone. Before asking, every deletion is listed by name.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

use clap::Args;

use crate::args::GlobalArgs;
use crate::args::TargetArgs;
use crate::commands::install::render;
use crate::{exit, progress, prompt};
use ctguard_deploy::autodeploy::{self, Discovered};
use ctguard_deploy::deploy::{self, PollOptions, RemoveOptions, RunOptions, RunReport};
use ctguard_deploy::org::Selection;
use ctguard_deploy::plan::{Action, Step, TargetPlan};
use ctguard_deploy::session::{self, Session};
use ctguard_deploy::stacksets::{CfnStackSets, Prefs, StackSetApi};
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
    /// Retry a denied deletion (an object version protected by an SCP, a bucket policy or
    /// Object Lock) for this many seconds, then stop and report what is left and why.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub retry_denied: u64,
    /// Show what would be removed, and remove nothing.
    #[arg(long)]
    pub plan: bool,
    /// Also remove the artifacts buckets (and with them the StackSets, which read their code
    /// there) when only some accounts are selected (--accounts/--ou). With --org or the current
    /// account alone they are removed by default.
    #[arg(long, conflicts_with = "keep_artifacts")]
    pub remove_artifacts: bool,
    /// Keep the artifacts buckets (and the StackSets, unless --org).
    #[arg(long)]
    pub keep_artifacts: bool,
}

/// ctguard's StackSets as this run sees them.
struct StackSets {
    api: CfnStackSets,
    found: Discovered,
    /// The caller is the management account: StackSets that cannot be read are a failure
    /// there. Elsewhere (a member account that is not a delegated administrator) there are
    /// none to reach, and the run says so.
    management: bool,
}

impl StackSets {
    /// Whether the StackSets could be read (or need not be).
    fn readable(&self) -> bool {
        self.found.unreadable.is_none()
    }
}

pub async fn run(args: &UninstallArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    if !args.yes && !args.plan && !std::io::stdin().is_terminal() {
        eprintln!("ctguard: refusing to uninstall without --yes (stdin is not a terminal, so nobody can confirm)");
        return Ok(exit::USAGE);
    }
    let s = session::open(&g.aws(), &args.targets.options()).await?;
    let mut remove_artifacts =
        !args.keep_artifacts && (args.remove_artifacts || matches!(s.selection, Selection::Org | Selection::Current));
    let home = Target::new(s.caller_account.clone(), s.set.home_region.clone());
    let stacksets = stacksets(&s, &home, remove_artifacts).await;
    let opts = RunOptions {
        concurrency: g.concurrency as usize,
        plan_only: args.plan,
        allow_missing_trail: true,
        poll: PollOptions {
            timeout: std::time::Duration::from_secs(args.wait_timeout),
            denied_retry: std::time::Duration::from_secs(args.retry_denied),
            ..PollOptions::default()
        },
    };
    let mut notes = Vec::new();
    if let Some(ss) = stacksets.as_ref().filter(|ss| !ss.readable()) {
        let why = ss.found.unreadable.clone().unwrap_or_default();
        if ss.management {
            // Their buckets must stay while StackSets may still deploy from them.
            remove_artifacts = false;
            notes.push(format!("StackSets could not be read ({why}): artifacts buckets kept"));
        } else {
            notes.push(format!("StackSets not checked (this account is not the management account or a delegated administrator): {why}"));
        }
    }
    // Accounts whose detector the StackSets own: their instances go with the StackSets.
    let owned: BTreeSet<String> = stacksets.as_ref().map(|ss| ss.found.stackset_accounts()).unwrap_or_default();
    let direct = TargetSet {
        accounts: s.set.accounts.iter().filter(|a| !owned.contains(*a)).cloned().collect(),
        ..s.set.clone()
    };
    let ropts = RemoveOptions { keep_state: args.keep_state, remove_artifacts };

    if args.plan || !args.yes {
        let plan_opts = RunOptions { plan_only: true, ..opts };
        let quiet = |_: &deploy::DeployEvent| {};
        let mut planned = if direct.accounts.is_empty() {
            RunReport::default()
        } else {
            deploy::uninstall(&s.connector, &direct, &s.caller_account, &ropts, &plan_opts, &quiet).await
        };
        if let Some(ss) = stacksets.as_ref().filter(|ss| ss.readable() && !ss.found.sets.is_empty()) {
            planned.plans.insert(0, stackset_plan(&home, &ss.found));
        }
        if args.plan {
            planned.shared_calls += s.setup_calls.get();
            if !remove_artifacts {
                notes.push(kept_note(&s.selection));
            }
            render(g.output(), &planned, &notes, true)?;
            return Ok(if planned.failed() > 0 { exit::PARTIAL } else { exit::OK });
        }
        let list = deletions(&planned.plans);
        let kept = if remove_artifacts { String::new() } else { format!("\n{}", kept_note(&s.selection)) };
        let what = if list.is_empty() {
            format!("Nothing of ctguard's was found to delete (a run checks again and lists what is left).{kept}")
        } else {
            format!("This deletes:\n{}{kept}", list.join("\n"))
        };
        if !prompt::confirm(&what)? {
            eprintln!("nothing removed");
            return Ok(exit::USAGE);
        }
    }

    let mode = progress::resolve(std::io::stderr().is_terminal(), progress::is_ci());
    let rep = progress::reporter(mode);
    // StackSets first: their instances are stacks in accounts we may not even select, and the
    // buckets they read from go last.
    let mut auto_result = None;
    // `--ou`: only the instances listed under those OUs (an `--ou` install's).
    let only = match &s.selection {
        Selection::Ous(ous) => Some(ous.as_slice()),
        _ => None,
    };
    if let Some(ss) = stacksets.as_ref().filter(|ss| ss.readable()) {
        let (mut r, _) = autodeploy::remove(&ss.api, only, &Prefs::default(), &opts.poll, rep.as_ref(), &home).await;
        r.calls = ss.api.calls();
        auto_result = Some(r);
    }
    let ropts = RemoveOptions {
        // A StackSet still there may deploy from the buckets: keep them.
        remove_artifacts: ropts.remove_artifacts && !auto_result.as_ref().is_some_and(|r| r.failed()),
        ..ropts
    };
    let mut report = if direct.accounts.is_empty() {
        RunReport::default()
    } else {
        deploy::uninstall(&s.connector, &direct, &s.caller_account, &ropts, &opts, rep.as_ref()).await
    };
    if let Some(r) = auto_result {
        // No StackSet found and nothing failed: no row to show (its calls still count).
        if r.failed() || !r.steps.is_empty() {
            if r.failed() {
                report.leftovers.entry(home.to_string()).or_default().push("ctguard's StackSets".to_string());
            }
            report.results.insert(0, r);
        } else {
            report.shared_calls += r.calls;
        }
    }
    report.shared_calls += s.setup_calls.get();
    drop(rep);
    notes.extend(left_notes(&report, args.keep_state, ropts.remove_artifacts, &s.selection));
    render(g.output(), &report, &notes, false)?;
    Ok(if report.failed() > 0 || !report.leftovers.is_empty() { exit::LEFT_BEHIND } else { exit::OK })
}

/// The StackSets to remove: only when the artifacts buckets go, with `--org`, or with `--ou`
/// (the instances under those OUs), and only in an organization. Read once here so the
/// confirmation can name them.
async fn stacksets(s: &Session, _home: &Target, remove_artifacts: bool) -> Option<StackSets> {
    let org = s.org.as_ref()?;
    if !(remove_artifacts || matches!(s.selection, Selection::Org | Selection::Ous(_))) {
        return None;
    }
    let management = s.caller_account == org.management_account;
    // As the management account (CallAs SELF) or as a delegated administrator.
    let api: CfnStackSets = s.stack_sets();
    let found = autodeploy::discover(&api).await;
    Some(StackSets { api, found, management })
}

/// The StackSets as plan rows of the installing account's home region.
fn stackset_plan(home: &Target, d: &Discovered) -> TargetPlan {
    let steps = d
        .sets
        .iter()
        .map(|(name, info)| {
            let inst = d.instances.get(name).map(Vec::as_slice).unwrap_or_default();
            let accounts: BTreeSet<&str> = inst.iter().map(|i| i.account.as_str()).collect();
            let regions: BTreeSet<&str> = inst.iter().map(|i| i.region.as_str()).collect();
            let what = if inst.is_empty() {
                format!("StackSet {name} (no instances)")
            } else {
                format!(
                    "StackSet {name} and its {} instances (accounts {}; regions {})",
                    inst.len(),
                    accounts.into_iter().collect::<Vec<_>>().join(","),
                    regions.into_iter().collect::<Vec<_>>().join(",")
                )
            };
            let owned = info.tags.get(ctguard_deploy::plan::OWNER_TAG).map(String::as_str)
                == Some(ctguard_deploy::plan::OWNER_VALUE);
            Step {
                what,
                kind: None,
                action: if owned { Action::Delete } else { Action::LeaveForeign },
                spec: None,
                diff: Vec::new(),
            }
        })
        .collect();
    TargetPlan { target: home.clone(), steps }
}

/// Every deletion of the plans, one line each, by name.
fn deletions(plans: &[TargetPlan]) -> Vec<String> {
    plans
        .iter()
        .flat_map(|p| {
            p.steps
                .iter()
                .filter(|s| s.action.changes())
                .map(move |s| format!("  {}  {}: {}", p.target, s.what, s.action))
        })
        .collect()
}

fn kept_note(sel: &Selection) -> String {
    let stacksets = if matches!(sel, Selection::Org) { "" } else { " and the StackSets" };
    format!("kept: the artifacts buckets{stacksets} (other accounts may still use them; --remove-artifacts)")
}

/// What is left, target by target, and why: the failure of that target's step, or the reason
/// a step left something alone.
fn left_notes(r: &RunReport, keep_state: bool, removed_artifacts: bool, sel: &Selection) -> Vec<String> {
    if r.leftovers.is_empty() && r.failed() == 0 {
        let mut n = format!("left: nothing{}", if keep_state { " (state tables kept on request)" } else { "" });
        if !removed_artifacts {
            n.push_str(&format!(" ({})", kept_note(sel)));
        }
        return vec![n];
    }
    let mut why: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for x in &r.results {
        let w = why.entry(x.target.to_string()).or_default();
        if let deploy::Outcome::Failed { reason } = &x.outcome {
            w.push(reason.clone());
        }
        w.extend(
            x.steps.iter().filter(|s| s.action.starts_with("left alone")).map(|s| format!("{} {}", s.what, s.action)),
        );
    }
    let mut notes = Vec::new();
    let mut targets: BTreeSet<&String> = r.leftovers.keys().collect();
    targets.extend(why.iter().filter(|(_, w)| !w.is_empty()).map(|(t, _)| t));
    for t in targets {
        let left = r.leftovers.get(t).map(|l| l.join(", ")).unwrap_or_else(|| "nothing found".into());
        let because =
            why.get(t).filter(|w| !w.is_empty()).map(|w| format!("; why: {}", w.join("; "))).unwrap_or_default();
        notes.push(format!("left in {t}: {left}{because}"));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctguard_deploy::stacksets::{Instance, SetInfo};

    fn step(what: &str, action: Action) -> Step {
        Step { what: what.into(), kind: None, action, spec: None, diff: Vec::new() }
    }

    #[test]
    fn the_confirmation_names_every_deletion_and_nothing_left_alone() {
        let home = Target::new("111111111111", "us-east-1");
        let mut d = Discovered::default();
        let tags = BTreeMap::from([("ctguard:owner".to_string(), "ctguard".to_string())]);
        let set = |name: &str, tags: BTreeMap<String, String>| SetInfo {
            name: name.into(),
            tags,
            auto_deploy: true,
            parameters: BTreeMap::new(),
        };
        d.sets.insert("ctguard-region-auto".into(), set("ctguard-region-auto", tags));
        // Not tagged as ctguard's: left alone, so not listed.
        d.sets.insert("ctguard-other-auto".into(), set("ctguard-other-auto", BTreeMap::new()));
        d.instances.insert(
            "ctguard-region-auto".into(),
            vec![Instance {
                account: "222222222222".into(),
                region: "eu-west-1".into(),
                ou: Some("ou-ab12-cdefgh12".into()),
                status: "CURRENT".into(),
                detailed: None,
                reason: None,
                overrides: BTreeMap::new(),
            }],
        );
        let plans = vec![
            stackset_plan(&home, &d),
            TargetPlan {
                target: home.clone(),
                steps: vec![
                    step("ctguard-region", Action::Delete),
                    step("s3://b", Action::LeaveBucket { reason: "no tag".into() }),
                    step("ctguard-state", Action::NoChange),
                ],
            },
        ];
        let lines = deletions(&plans);
        assert_eq!(
            lines,
            vec![
                "  111111111111/us-east-1  StackSet ctguard-region-auto and its 1 instances (accounts 222222222222; regions eu-west-1): delete",
                "  111111111111/us-east-1  ctguard-region: delete",
            ]
        );
    }
}
