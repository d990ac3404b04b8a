//! `ctguard status`: per account × region, what is deployed and whether it is healthy
//! (deployed vs bundled version, stack states, trail, rule state, DLQ depth), and how accounts
//! joining later are covered. Exits [`exit::FINDINGS`] when anything is unhealthy.

use clap::Args;
use serde::Serialize;

use crate::args::TargetArgs;
use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{self, Table};
use ctguard_deploy::inspect::{self, Bundled, CoveredBy, TargetStatus};
use ctguard_deploy::plan::InstallConfig;
use ctguard_deploy::session;
use ctguard_deploy::stacks::Connector;
use ctguard_deploy::stacksets::StackSetApi;
use ctguard_deploy::targets::TargetSet;
use ctguard_deploy::{autodeploy, embedded, ownership};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonLine<'a> {
    Target {
        #[serde(flatten)]
        status: &'a TargetStatus,
        owner: &'a ownership::Owner,
    },
    Summary {
        targets: usize,
        unhealthy: usize,
        new_accounts_covered: bool,
        auto_deploy_stack_sets: Vec<&'a String>,
        api_calls: u64,
    },
}

pub async fn run(args: &StatusArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let s = session::open(&g.aws(), &args.targets.options()).await?;
    // What this binary would deploy (the version and the content-addressed code key).
    let code_key = match embedded::lambda_zip() {
        Ok(z) => InstallConfig::code_key_for(&embedded::code_hash(z)),
        Err(_) => String::new(),
    };
    let bundled = Bundled { version: env!("CARGO_PKG_VERSION").to_string(), code_key };
    let ss = s.stack_sets();
    let coverage = autodeploy::discover(&ss).await;
    // Accounts a StackSet owns are judged from their instances (no role needed there); the
    // others are read in the account.
    let owned = coverage.stackset_accounts();
    let by_instance = ownership::instance_owners(&coverage.instances);
    let direct_set = TargetSet {
        accounts: s.set.accounts.iter().filter(|a| !owned.contains(*a)).cloned().collect(),
        ..s.set.clone()
    };
    let (mut statuses, calls) = if direct_set.accounts.is_empty() {
        (Vec::new(), 0)
    } else {
        inspect::inspect(&s.connector, &direct_set, &bundled, &owned, g.concurrency as usize).await
    };
    for t in s.set.targets().into_iter().filter(|t| owned.contains(&t.account)) {
        let sets = by_instance.get(&t).cloned().unwrap_or_default();
        let mut st = inspect::judge_instances(&t, &sets, &bundled);
        if sets.is_empty() {
            st.problems.push("no StackSet instance in this region".into());
        }
        statuses.push(st);
    }
    statuses.sort_by(|a, b| a.target.cmp(&b.target));
    let owners: Vec<ownership::Owner> =
        statuses.iter().map(|x| ownership::owner(&x.target, x.covered_by == CoveredBy::Direct, &by_instance)).collect();
    for (x, o) in statuses.iter_mut().zip(&owners) {
        if matches!(o, ownership::Owner::Both { .. }) {
            x.problems.push(o.describe());
        }
    }
    let calls = calls + ss.calls() + s.setup_calls.get() + s.connector.shared_calls();
    let unhealthy = statuses.iter().filter(|x| !x.healthy()).count();
    let covered = coverage.new_accounts_covered();

    if g.output() == Output::Json {
        let mut lines: Vec<JsonLine> =
            statuses.iter().zip(&owners).map(|(status, owner)| JsonLine::Target { status, owner }).collect();
        lines.push(JsonLine::Summary {
            targets: statuses.len(),
            unhealthy,
            new_accounts_covered: covered,
            auto_deploy_stack_sets: coverage.sets.keys().collect(),
            api_calls: calls,
        });
        output::emit(Output::Json, &lines, &Table::default())?;
    } else {
        let mut t = Table::new(["TARGET", "OWNER", "VERSION", "STACKS", "TRAIL", "RULE", "DLQ", "HEALTH"]);
        for (x, owner) in statuses.iter().zip(&owners) {
            let version = match (&x.deployed_version, x.code_current) {
                (Some(v), Some(true)) => format!("{v} (current)"),
                (Some(v), _) => format!("{v} (bundled {})", x.bundled_version),
                (None, _) => "-".into(),
            };
            let stacks: Vec<String> =
                x.stacks.iter().map(|(n, st)| format!("{}={st}", n.trim_start_matches("ctguard-"))).collect();
            t.row([
                x.target.to_string(),
                match owner {
                    ownership::Owner::None => "NO".to_string(),
                    o => o.describe(),
                },
                version,
                if stacks.is_empty() { "-".into() } else { stacks.join(" ") },
                x.trail.as_ref().map(|v| v.describe()).unwrap_or_else(|| "?".into()),
                x.health.rule_state.clone().unwrap_or_else(|| "-".into()),
                x.health.dlq_depth.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                if x.healthy() { "healthy".into() } else { format!("UNHEALTHY: {}", x.problems.join("; ")) },
            ]);
        }
        output::emit::<()>(g.output(), &[], &t)?;
        if covered {
            eprintln!(
                "new accounts: covered by StackSets auto-deployment ({})",
                coverage.sets.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        } else {
            eprintln!("new accounts: NOT covered automatically; run `ctguard install --org` (auto-deploy is on by default) or re-run install when accounts join");
        }
        if let Some(e) = &coverage.unreadable {
            eprintln!("auto-deployment coverage could not be read: {e}");
        }
        eprintln!("{} targets, {unhealthy} unhealthy; {calls} AWS API calls", statuses.len());
    }
    Ok(if unhealthy > 0 { exit::FINDINGS } else { exit::OK })
}
