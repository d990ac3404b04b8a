//! `ctguard status`: per account × region, what is deployed and whether it is healthy
//! (deployed vs bundled version, stack states, trail, rule state, DLQ depth; from CloudWatch,
//! the last 24 h's errors, throttles, invocations and DLQ depth, and the state of the two
//! alarms), and how accounts joining later are covered. `--cost` adds the last 30 days' cost
//! estimate per target and per million events ([`ctguard_deploy::metrics`]). Exits
//! [`exit::FINDINGS`] when anything is unhealthy.

use clap::Args;
use serde::Serialize;

use crate::args::TargetArgs;
use crate::args::{GlobalArgs, Output};
use crate::exit;
use crate::output::{self, Table};
use ctguard_deploy::inspect::{self, Bundled, CoveredBy, TargetStatus};
use ctguard_deploy::metrics::{self, Cost, HealthMetrics, Prices};
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
    /// Also estimate the last 30 days' cost per target and per million events, from CloudWatch
    /// metrics and AWS's public us-east-1 list prices.
    #[arg(long)]
    pub cost: bool,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonLine<'a> {
    Target {
        #[serde(flatten)]
        status: &'a TargetStatus,
        owner: &'a ownership::Owner,
        /// With `--cost`, for targets whose metrics were read.
        #[serde(skip_serializing_if = "Option::is_none")]
        cost: Option<&'a Cost>,
    },
    Summary {
        targets: usize,
        unhealthy: usize,
        new_accounts_covered: bool,
        auto_deploy_stack_sets: Vec<&'a String>,
        api_calls: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        cost: Option<CostSummary>,
    },
}

/// The whole estimate, with the prices it used.
#[derive(Serialize)]
struct CostSummary {
    days: i64,
    total_usd: f64,
    events: f64,
    per_million_events_usd: Option<f64>,
    prices: Prices,
    memory_mb: u32,
    architecture: &'static str,
}

/// Dollars: cents, or four decimals below a cent so small estimates do not read as zero.
fn usd(x: f64) -> String {
    if x > 0.0 && x < 0.000_05 {
        "<$0.0001".into()
    } else if x > 0.0 && x < 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.2}")
    }
}

/// The summed cost of the lines whose item starts with `prefix`.
fn part(c: &Cost, prefix: &str) -> f64 {
    c.lines.iter().filter(|l| l.item.starts_with(prefix)).map(|l| l.usd).sum()
}

/// The last 24 h in one cell: invocations, errors, throttles, the DLQ's peak.
fn last_day(m: Option<&HealthMetrics>) -> String {
    let Some(m) = m else { return "-".into() };
    let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    if m.unreadable.iter().any(|u| u.starts_with("metrics")) {
        return "unreadable".into();
    }
    format!("inv {} err {} thr {} dlq≤{}", n(m.invocations), n(m.errors), n(m.throttles), n(m.dlq_depth_max))
}

/// Both alarms in one cell.
fn alarms(m: Option<&HealthMetrics>) -> String {
    match m {
        Some(m) if !m.alarms.is_empty() => m
            .alarms
            .iter()
            .map(|(n, st)| format!("{}={st}", n.trim_start_matches("ctguard-detector-")))
            .collect::<Vec<_>>()
            .join(" "),
        Some(_) => "unreadable".into(),
        None => "-".into(),
    }
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
    // CloudWatch: the last 24 h of every directly deployed target (and, with --cost, 30 days).
    let now = ctguard_detector::time::now_ms() / 1000;
    let (costs, metric_calls) =
        metrics::collect(&s.connector, &s.set, &mut statuses, args.cost, now, g.concurrency as usize).await;
    let calls = calls + metric_calls + ss.calls() + s.setup_calls.get() + s.connector.shared_calls();
    let cost_of =
        |t: &ctguard_deploy::targets::Target| costs.iter().find(|c| c.account == t.account && c.region == t.region);
    let (cost_total, cost_events, cost_per_million) = metrics::totals(&costs);
    let unhealthy = statuses.iter().filter(|x| !x.healthy()).count();
    let covered = coverage.new_accounts_covered();

    if g.output() == Output::Json {
        let mut lines: Vec<JsonLine> = statuses
            .iter()
            .zip(&owners)
            .map(|(status, owner)| JsonLine::Target { status, owner, cost: cost_of(&status.target) })
            .collect();
        lines.push(JsonLine::Summary {
            targets: statuses.len(),
            unhealthy,
            new_accounts_covered: covered,
            auto_deploy_stack_sets: coverage.sets.keys().collect(),
            api_calls: calls,
            cost: args.cost.then_some(CostSummary {
                days: metrics::COST_DAYS,
                total_usd: cost_total,
                events: cost_events,
                per_million_events_usd: cost_per_million,
                prices: metrics::PRICES,
                memory_mb: metrics::LAMBDA_MEMORY_MB,
                architecture: metrics::LAMBDA_ARCHITECTURE,
            }),
        });
        output::emit(Output::Json, &lines, &Table::default())?;
    } else {
        // CSV is one table: with --cost, the cost goes into each target's row (plain numbers)
        // instead of a second table in the same stream.
        let csv_cost = args.cost && g.output() == Output::Csv;
        let mut header =
            vec!["TARGET", "OWNER", "VERSION", "STACKS", "TRAIL", "RULE", "DLQ", "LAST 24H", "ALARMS", "HEALTH"];
        let status_columns = header.len();
        if csv_cost {
            header.extend(["EVENTS 30D", "COST 30D USD", "ACCOUNT-WIDE 30D USD", "PER 1M EVENTS USD"]);
        }
        let mut t = Table::new(header);
        for (x, owner) in statuses.iter().zip(&owners) {
            let version = match (&x.deployed_version, x.code_current) {
                (Some(v), Some(true)) => format!("{v} (current)"),
                (Some(v), _) => format!("{v} (bundled {})", x.bundled_version),
                (None, _) => "-".into(),
            };
            let stacks: Vec<String> =
                x.stacks.iter().map(|(n, st)| format!("{}={st}", n.trim_start_matches("ctguard-"))).collect();
            let mut row = vec![
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
                last_day(x.metrics.as_ref()),
                alarms(x.metrics.as_ref()),
                if x.healthy() { "healthy".into() } else { format!("UNHEALTHY: {}", x.problems.join("; ")) },
            ];
            if csv_cost {
                // The target's own items; the account-wide ones (home target) in their own column.
                match cost_of(&x.target) {
                    Some(c) if c.unreadable.is_none() => {
                        let wide = c.account_wide_usd();
                        row.extend([
                            format!("{:.0}", c.usage.invocations),
                            format!("{:.6}", c.total_usd - wide),
                            if c.home { format!("{wide:.6}") } else { String::new() },
                            c.per_million_events_usd.map(|p| format!("{p:.6}")).unwrap_or_default(),
                        ])
                    }
                    Some(c) => row.extend([
                        String::new(),
                        format!("unreadable: {}", c.unreadable.as_deref().unwrap_or("")),
                        String::new(),
                        String::new(),
                    ]),
                    // Not read: StackSet-owned, or not deployed.
                    None => row.extend([String::new(), String::new(), String::new(), String::new()]),
                }
            }
            t.row(row);
        }
        if csv_cost {
            // The status columns are empty on the total row.
            let mut total = vec!["total".to_string()];
            total.extend(std::iter::repeat_n(String::new(), status_columns - 1));
            total.extend([
                format!("{cost_events:.0}"),
                format!("{cost_total:.6}"),
                String::new(),
                cost_per_million.map(|p| format!("{p:.6}")).unwrap_or_default(),
            ]);
            t.row(total);
        }
        output::emit::<()>(g.output(), &[], &t)?;
        for x in &statuses {
            for w in &x.warnings {
                eprintln!("warning: {}: {w}", x.target);
            }
        }
        if args.cost && !csv_cost {
            let mut c = Table::new([
                "TARGET",
                "EVENTS (30 D)",
                "LAMBDA",
                "LOGS",
                "DYNAMODB",
                "SNS",
                "EVENTBRIDGE",
                "TOTAL",
                "PER 1M EVENTS",
            ]);
            let per = |p: Option<f64>| p.map_or("-".to_string(), usd);
            for x in &costs {
                let target = format!("{}/{}", x.account, x.region);
                if let Some(why) = &x.unreadable {
                    c.row([target, format!("unreadable: {why}")]);
                    continue;
                }
                let home_only = |v: f64| if x.home { usd(v) } else { "(home)".into() };
                c.row([
                    target,
                    format!("{:.0}", x.usage.invocations),
                    usd(part(x, "lambda")),
                    usd(part(x, "logs")),
                    home_only(part(x, "dynamodb")),
                    home_only(part(x, "sns")),
                    "free".into(),
                    usd(x.total_usd),
                    per(x.per_million_events_usd),
                ]);
            }
            c.row([
                "total".to_string(),
                format!("{cost_events:.0}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                usd(cost_total),
                per(cost_per_million),
            ]);
            println!();
            output::emit::<()>(g.output(), &[], &c)?;
            let p = metrics::PRICES;
            eprintln!(
                "cost: the last {} days from CloudWatch, at AWS's public {} list prices read {} (other regions \
                 differ; free tiers and discounts not applied): Lambda ${:.2}/1M requests + ${}/GB-s ({} MB, {}), \
                 DynamoDB on-demand ${:.3}/1M writes + ${:.3}/1M reads and SNS ${:.2}/1M publishes (once per \
                 account, in its home region), CloudWatch Logs ${:.2}/GB ingested; EventBridge: AWS service events \
                 on the default bus are free; a target's PER 1M EVENTS counts its own items, the total's counts \
                 the account-wide ones too",
                metrics::COST_DAYS,
                p.region,
                p.as_of,
                p.lambda_requests_per_million,
                p.lambda_gb_second_x86,
                metrics::LAMBDA_MEMORY_MB,
                metrics::LAMBDA_ARCHITECTURE,
                p.dynamodb_writes_per_million,
                p.dynamodb_reads_per_million,
                p.sns_publishes_per_million,
                p.logs_ingested_per_gb
            );
        }
        let owned_targets = statuses.iter().filter(|x| x.covered_by == CoveredBy::AutoDeploy).count();
        if owned_targets > 0 {
            eprintln!(
                "{owned_targets} target(s) deployed by StackSets: judged from their instances, without a role in \
                 the account, so their CloudWatch metrics{} are not read",
                if args.cost { " and cost" } else { "" }
            );
        }
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

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn small_amounts_stay_visible() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.000_001), "<$0.0001");
        assert_eq!(usd(0.000_81), "$0.0008");
        assert_eq!(usd(0.81), "$0.81");
        assert_eq!(usd(1234.5), "$1234.50");
    }
}
