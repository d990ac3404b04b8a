//! `ctguard install`: deploy the detector to the selected accounts × regions. Glue only: the
//! session resolves targets, [`ctguard_deploy::deploy::install`] observes, plans and deploys,
//! [`ctguard_deploy::autodeploy`] covers accounts that join later, and this file renders the results.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::args::TargetArgs;
use crate::args::{GlobalArgs, Output};
use crate::output::{self, Table};
use crate::{exit, progress};
use ctguard_deploy::deploy::{self, Outcome, PollOptions, RunOptions, RunReport};
use ctguard_deploy::org::Selection;
use ctguard_deploy::ownership::DeployWith;
use ctguard_deploy::plan::InstallConfig;
use ctguard_deploy::session;
use ctguard_deploy::stacksets::{CfnStackSets, Prefs, StackSetApi};
use ctguard_deploy::targets::Target;
use ctguard_deploy::{autodeploy, embedded};

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Give up waiting on one stack operation after this many seconds (the target then
    /// fails; a re-run resumes).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// Show what would be created, changed or removed per target, and change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Install even where no CloudTrail trail logs management events (the detector is blind there).
    #[arg(long)]
    pub allow_missing_trail: bool,
    /// Send alerts to this central SNS topic instead of one topic per account. Its policy must
    /// let the organization publish (aws:PrincipalOrgID) and its KMS key (if any) must be a
    /// customer managed key that allows the member accounts.
    #[arg(long)]
    pub alert_topic_arn: Option<String>,
    /// Subscribe this email address to each account's own alert topic.
    #[arg(long, conflicts_with = "alert_topic_arn")]
    pub alert_email: Option<String>,
    /// JSON allowlist policy file for the detector (CTGUARD_POLICY).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Retention of the detector's log group, in days.
    #[arg(long, default_value_t = 90)]
    pub log_retention_days: u32,
    /// How long a state record is kept when the session expiry is unknown, in hours.
    #[arg(long, default_value_t = 12)]
    pub default_ttl_hours: u32,
    /// Deploy automatically to accounts that join later (StackSets auto-deployment). On by
    /// default with --org; possible with --ou.
    #[arg(long, overrides_with = "no_auto_deploy")]
    pub auto_deploy: bool,
    /// Do not create the auto-deployment StackSets (implies --deploy-with direct).
    #[arg(long)]
    pub no_auto_deploy: bool,
    /// How member accounts get the detector: `stacksets` (service-managed StackSets over the
    /// root or the --ou's with automatic deployment, no role needed in members; the management
    /// account directly) or `direct` (a stack in every account through --role-name). Default
    /// with --org/--ou: the mode ctguard is already installed in, else stacksets.
    #[arg(long, value_enum, conflicts_with = "no_auto_deploy")]
    pub deploy_with: Option<DeployWithArg>,
    /// StackSets: percentage of accounts deployed at once per region.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub max_concurrent_percent: u8,
    /// StackSets: percentage of accounts per region that may fail before the operation stops.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub failure_tolerance_percent: u8,
    /// StackSets: deploy the regions in parallel or one after the other.
    #[arg(long, value_enum, default_value_t = RegionConcurrency::Parallel)]
    pub region_concurrency: RegionConcurrency,
}

/// `--deploy-with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeployWithArg {
    Direct,
    Stacksets,
}

/// `--region-concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegionConcurrency {
    Parallel,
    Sequential,
}

/// One line of `--json` output: a target's result, then a summary.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonLine<'a> {
    Plan(&'a ctguard_deploy::plan::TargetPlan),
    Result(&'a deploy::TargetResult),
    Summary {
        targets: usize,
        failed: usize,
        changes: usize,
        stopped: Option<&'a str>,
        api_calls: u64,
        calls_per_target: f64,
        elapsed_ms: u128,
    },
}

/// The detector policy to deploy: `--policy FILE` as compact JSON, or `{}`.
fn read_policy(path: Option<&PathBuf>) -> anyhow::Result<String> {
    let Some(p) = path else { return Ok("{}".to_string()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
    Ok(serde_json::to_string(&v)?)
}

pub async fn run(args: &InstallArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let zip = embedded::lambda_zip()?;
    let policy = read_policy(args.policy.as_ref())?;
    let s = session::open(&g.aws(), &args.targets.options()).await?;
    let auto = match (args.auto_deploy, args.no_auto_deploy, &s.selection) {
        (_, true, _) => false,
        (true, _, Selection::Org | Selection::Ous(_)) => true,
        (true, _, _) => {
            anyhow::bail!("--auto-deploy needs --org or --ou (it targets organizational units)")
        }
        (false, _, sel) => matches!(sel, Selection::Org),
    };
    let cfg = InstallConfig {
        version: env!("CARGO_PKG_VERSION").to_string(),
        code_hash: embedded::code_hash(zip),
        artifacts_account: s.caller_account.clone(),
        home_region: s.set.home_region.clone(),
        org_id: s.org.as_ref().map(|o| o.id.clone()),
        alert_topic_arn: args.alert_topic_arn.clone(),
        alert_email: args.alert_email.clone(),
        policy,
        log_retention_days: args.log_retention_days,
        default_ttl_hours: args.default_ttl_hours,
    };
    if let (Some(arn), Some(org)) = (&args.alert_topic_arn, &s.org) {
        if let Some(w) = central_topic_warning(s.connector.base(), arn, &org.id).await {
            eprintln!("warning: {w}");
        }
    }
    let opts = RunOptions {
        concurrency: g.concurrency as usize,
        plan_only: args.plan,
        allow_missing_trail: args.allow_missing_trail,
        poll: PollOptions { timeout: std::time::Duration::from_secs(args.wait_timeout), ..PollOptions::default() },
    };
    let mode = progress::resolve(std::io::stderr().is_terminal(), progress::is_ci());
    let rep = progress::reporter(mode);
    let mut auto_lines = Vec::new();
    let mut report = match (&s.org, &s.selection) {
        (Some(org), Selection::Org | Selection::Ous(_)) => {
            let ro = autodeploy::Rollout {
                ous: match &s.selection {
                    Selection::Ous(o) => o.clone(),
                    _ => vec![org.root_id.clone()],
                },
                management: org.management_account.clone(),
                asked: args.deploy_with.map(|d| match d {
                    DeployWithArg::Direct => DeployWith::Direct,
                    DeployWithArg::Stacksets => DeployWith::StackSets,
                }),
                auto_deploy: auto,
                org_wide: true,
                prefs: Prefs {
                    max_concurrent_percentage: args.max_concurrent_percent,
                    failure_tolerance_percentage: args.failure_tolerance_percent,
                    regions_parallel: args.region_concurrency == RegionConcurrency::Parallel,
                },
            };
            let home = Target::new(s.caller_account.clone(), s.set.home_region.clone());
            let ss = CfnStackSets::new(
                &ctguard_aws::in_region(s.connector.base(), &home.region),
                s.caller_account != org.management_account,
            );
            let r = autodeploy::rollout(&s.connector, &ss, &s.set, &cfg, zip, &opts, &ro, rep.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            auto_lines.extend(r.notes);
            let mut report = r.report;
            report.shared_calls += ss.calls();
            report
        }
        _ => {
            if args.deploy_with == Some(DeployWithArg::Stacksets) {
                anyhow::bail!("--deploy-with stacksets needs --org or --ou (StackSets target organizational units)");
            }
            deploy::install(&s.connector, &s.set, &cfg, zip, &opts, rep.as_ref()).await
        }
    };
    if !auto && !args.plan && args.deploy_with != Some(DeployWithArg::Stacksets) {
        auto_lines.push(
            "new accounts: NOT covered automatically (no --auto-deploy); re-run `ctguard install` when accounts join"
                .to_string(),
        );
    }
    report.shared_calls += s.setup_calls.get();
    drop(rep);
    render(g.output(), &report, &auto_lines, args.plan)?;
    Ok(exit_code(&report))
}

/// Checks that a central topic lets the organization publish (`aws:PrincipalOrgID`); `None`
/// when it does or when the topic cannot be read from here (another account's topic).
async fn central_topic_warning(base: &aws_config::SdkConfig, arn: &str, org_id: &str) -> Option<String> {
    let region = arn.split(':').nth(3)?;
    let sns = aws_sdk_sns::Client::new(&ctguard_aws::in_region(base, region));
    let attrs = sns.get_topic_attributes().topic_arn(arn).send().await.ok()?;
    let policy = attrs.attributes().and_then(|a| a.get("Policy")).cloned().unwrap_or_default();
    (!(policy.contains("aws:PrincipalOrgID") && policy.contains(org_id))).then(|| {
        format!(
            "the central topic {arn} has no policy statement scoped with aws:PrincipalOrgID = {org_id}: \
             detectors in member accounts will not be able to publish to it"
        )
    })
}

/// OK when every target succeeded; USAGE when a prerequisite stopped the run before any
/// change; PARTIAL when some targets failed.
pub fn exit_code(r: &RunReport) -> u8 {
    if r.stopped.is_some() {
        exit::USAGE
    } else if r.failed() > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::Failed { reason } => format!("FAILED: {reason}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
    }
}

/// Per-target table (or plan table), then the summary.
pub fn render(fmt: Output, r: &RunReport, notes: &[String], plan_only: bool) -> anyhow::Result<()> {
    let targets = r.results.len().max(1);
    let changes: usize = r.results.iter().map(|x| x.changes()).sum();
    if fmt == Output::Json {
        let mut lines: Vec<JsonLine> = Vec::new();
        if plan_only {
            lines.extend(r.plans.iter().map(JsonLine::Plan));
        }
        lines.extend(r.results.iter().map(JsonLine::Result));
        lines.push(JsonLine::Summary {
            targets: r.results.len(),
            failed: r.failed(),
            changes,
            stopped: r.stopped.as_deref(),
            api_calls: r.total_calls(),
            calls_per_target: r.total_calls() as f64 / targets as f64,
            elapsed_ms: r.elapsed_ms,
        });
        output::emit(fmt, &lines, &Table::default())?;
        return Ok(());
    }
    let table = if plan_only {
        let mut t = Table::new(["TARGET", "STACK/OBJECT", "ACTION"]);
        for p in &r.plans {
            for s in &p.steps {
                t.row([p.target.to_string(), s.what.clone(), s.action.to_string()]);
            }
        }
        t
    } else {
        let mut t = Table::new(["TARGET", "PHASE", "TRAIL", "CHANGES", "CALLS", "RESULT"]);
        for x in &r.results {
            let changed: Vec<String> =
                x.steps.iter().filter(|s| s.done).map(|s| format!("{} {}", s.what, s.action)).collect();
            t.row([
                x.target.to_string(),
                format!("{:?}", x.phase).to_lowercase(),
                x.trail.as_ref().map(|v| v.describe()).unwrap_or_else(|| "-".into()),
                if changed.is_empty() { "none".into() } else { changed.join("; ") },
                x.calls.to_string(),
                outcome_text(&x.outcome),
            ]);
        }
        t
    };
    output::emit::<()>(fmt, &[], &table)?;
    if plan_only {
        let trails: Vec<_> = r
            .results
            .iter()
            .filter_map(|x| x.trail.as_ref().filter(|t| !t.is_ok()).map(|t| format!("{}: {}", x.target, t.describe())))
            .collect();
        for t in trails {
            eprintln!("trail {t}");
        }
    }
    for n in notes {
        eprintln!("{n}");
    }
    if let Some(s) = &r.stopped {
        eprintln!("{}{s}", if plan_only { "" } else { "install stopped: " });
    }
    let verb = if plan_only { "planned" } else { "changed" };
    let changes = if plan_only { r.plans.iter().map(|p| p.changes()).sum() } else { changes };
    eprintln!(
        "{} targets, {} failed, {changes} {verb}; {} AWS API calls ({:.1} per target) in {:.1} s",
        r.results.len(),
        r.failed(),
        r.total_calls(),
        r.total_calls() as f64 / targets as f64,
        r.elapsed_ms as f64 / 1000.0
    );
    Ok(())
}
