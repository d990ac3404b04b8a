//! `ctguard install`: deploy the detector to the selected accounts × regions. Glue only: the
//! session resolves targets, [`ctguard_deploy::deploy::install`] observes, plans and deploys,
//! [`ctguard_deploy::autodeploy`] covers accounts that join later, and this file renders the results.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::args::TargetArgs;
use crate::args::{GlobalArgs, Output};
use crate::config::FileConfig;
use crate::output::{self, Table};
use crate::{exit, progress};
use ctguard_deploy::deploy::{self, Outcome, PollOptions, Request, RunOptions, RunReport};
use ctguard_deploy::org::Selection;
use ctguard_deploy::ownership::DeployWith;
use ctguard_deploy::plan::{self, InstallConfig, StackKind, Stated, TargetPlan};
use ctguard_deploy::preflight::{self, AwsPreflight, Preflight, Verdict};
use ctguard_deploy::session;
use ctguard_deploy::stacks::{Connector, StackApi};
use ctguard_deploy::stacksets::{CfnStackSets, Prefs, StackSetApi};
use ctguard_deploy::targets::Target;
use ctguard_deploy::{autodeploy, embedded, validate};

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// The desired state, checked in (TOML, see the README): targets, regions, alerts, policy,
    /// retention, auto-deploy. Flags override it; what neither states keeps its deployed value.
    #[arg(long, env = "CTGUARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Give up waiting on one stack operation after this many seconds (the target then
    /// fails; a re-run resumes).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub wait_timeout: u64,
    /// Show every change per target (parameters old → new) and change nothing. Exits 0 when
    /// nothing would change, 4 when changes are pending.
    #[arg(long)]
    pub plan: bool,
    /// Apply changes that lower protection (deleting an alert topic, changing the alert
    /// address, turning auto-deploy off) without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Install even where no CloudTrail trail logs management events (the detector is blind there).
    #[arg(long)]
    pub allow_missing_trail: bool,
    /// Send alerts to this central SNS topic (a standard topic, not FIFO) instead of one topic
    /// per account. Its policy must let the organization's detector roles publish
    /// (aws:PrincipalOrgID). Leave it unencrypted if detectors in other accounts publish to it:
    /// their role has no KMS permission, so a KMS-encrypted topic only takes alerts from its own
    /// account. Default: as deployed.
    #[arg(long)]
    pub alert_topic_arn: Option<String>,
    /// Subscribe this email address to each account's own alert topic (`""`: own topic, no
    /// subscription). Default: as deployed.
    #[arg(long, conflicts_with = "alert_topic_arn")]
    pub alert_email: Option<String>,
    /// JSON allowlist policy file for the detector (CTGUARD_POLICY). Default: as deployed.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Retention of the detector's log group, in days (a CloudWatch Logs value: 1, 3, 5, 7, 14,
    /// 30, 60, 90, ...). Default: as deployed, 90 on a first install.
    #[arg(long)]
    pub log_retention_days: Option<u32>,
    /// How long a state record is kept when the session expiry is unknown, in hours.
    /// Default: as deployed, 12 on a first install.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=ctguard_detector::policy::MAX_DEFAULT_TTL_HOURS as i64))]
    pub default_ttl_hours: Option<u32>,
    /// Import every alert into AWS Security Hub as a finding (ASFF) of each account's default
    /// product, in the region that saw it; Security Hub must be enabled there. Default: as
    /// deployed, off on a first install.
    #[arg(long, conflicts_with = "no_security_hub")]
    pub security_hub: bool,
    /// Stop importing alerts into Security Hub.
    #[arg(long)]
    pub no_security_hub: bool,
    /// Let the detector contain by itself: on a HIGH alert of an EC2 instance's credentials,
    /// attach the deny policy of `ctguard contain` to the instance's role, only for roles
    /// tagged ctguard-auto-contain=true (the README explains the risk). Default: as deployed,
    /// off on a first install.
    #[arg(long, conflicts_with = "no_auto_contain")]
    pub auto_contain: bool,
    /// Stop containing automatically (the policies already attached stay: `ctguard release`).
    #[arg(long)]
    pub no_auto_contain: bool,
    /// Deploy automatically to accounts that join later (StackSets auto-deployment). Default:
    /// as deployed; on for a first install with --org or --ou (off with --ou --deploy-with direct).
    #[arg(long, conflicts_with = "no_auto_deploy")]
    pub auto_deploy: bool,
    /// Do not deploy to accounts that join later (removes the direct mode's auto-deployment
    /// StackSets; refused when the StackSets own the member accounts). Implies --deploy-with direct.
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

/// What turning auto-deployment off does, for the confirmation and the plan.
const AUTO_OFF: &str = "auto-deployment StackSets: remove (accounts joining later will NOT be covered)";

/// Retention values CloudWatch Logs accepts (the regional template's AllowedValues).
const RETENTION_DAYS: [u32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// What this run asks for, from the configuration file and the flags (flags win), validated.
/// `None` everywhere means "keep what is deployed".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub targets: TargetArgs,
    /// `Some((topic, email))` when alert routing is stated.
    pub alert: Option<(Option<String>, Option<String>)>,
    pub policy: Option<String>,
    pub log_retention_days: Option<u32>,
    pub default_ttl_hours: Option<u32>,
    pub security_hub: Option<bool>,
    pub auto_contain: Option<bool>,
    pub auto_deploy: Option<bool>,
}

impl Wanted {
    /// Merges the file (if any) under the flags and checks every value.
    pub fn resolve(args: &InstallArgs) -> anyhow::Result<Wanted> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let mut t = args.targets.clone();
        let flag_selects = t.org || !t.accounts.is_empty() || !t.ou.is_empty();
        if !flag_selects {
            t.org = file.targets.org;
            t.accounts = file.targets.accounts.clone();
            t.ou = file.targets.ou.clone();
        }
        if t.regions.is_empty() {
            t.regions = file.targets.regions.clone();
        }
        t.home_region = t.home_region.or(file.targets.home_region.clone());
        t.role_name = t.role_name.or(file.targets.role_name.clone());
        let alert = match (&args.alert_topic_arn, &args.alert_email, &file.alerts.topic_arn, &file.alerts.email) {
            (Some(topic), _, _, _) => Some((Some(topic.clone()), None)),
            (None, Some(email), _, _) => Some((None, Some(email.clone()))),
            (None, None, Some(topic), _) => Some((Some(topic.clone()), None)),
            (None, None, None, Some(email)) => Some((None, Some(email.clone()))),
            (None, None, None, None) => None,
        };
        if let Some((topic, email)) = &alert {
            if let Some(arn) = topic {
                validate::topic_arn(arn)?;
            }
            if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
                validate::email(e)?;
            }
        }
        let policy = match args.policy.as_ref().or(file.detector.policy.as_ref()) {
            None => None,
            Some(p) => Some(read_policy(p)?),
        };
        let log_retention_days = args.log_retention_days.or(file.detector.log_retention_days);
        if let Some(d) = log_retention_days {
            anyhow::ensure!(
                RETENTION_DAYS.contains(&d),
                "log retention {d} days is not a CloudWatch Logs value (one of {RETENTION_DAYS:?})"
            );
        }
        let default_ttl_hours = args.default_ttl_hours.or(file.detector.default_ttl_hours);
        anyhow::ensure!(
            default_ttl_hours
                .is_none_or(|h| (1..=ctguard_detector::policy::MAX_DEFAULT_TTL_HOURS).contains(&u64::from(h))),
            "default_ttl_hours must be 1..={}",
            ctguard_detector::policy::MAX_DEFAULT_TTL_HOURS
        );
        // `--x` / `--no-x` (clap refuses both), else the file, else unstated.
        let switch = |on: bool, off: bool, file: Option<bool>| match (on, off) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => file,
        };
        let auto_deploy = switch(args.auto_deploy, args.no_auto_deploy, file.detector.auto_deploy);
        let security_hub = switch(args.security_hub, args.no_security_hub, file.detector.security_hub);
        let auto_contain = switch(args.auto_contain, args.no_auto_contain, file.detector.auto_contain);
        Ok(Wanted {
            targets: t,
            alert,
            policy,
            log_retention_days,
            default_ttl_hours,
            security_hub,
            auto_contain,
            auto_deploy,
        })
    }

    /// Which settings are stated (the others keep each target's deployed values).
    pub fn stated(&self) -> Stated {
        Stated {
            alert: self.alert.is_some(),
            policy: self.policy.is_some(),
            log_retention_days: self.log_retention_days.is_some(),
            default_ttl_hours: self.default_ttl_hours.is_some(),
            security_hub: self.security_hub.is_some(),
            auto_contain: self.auto_contain.is_some(),
        }
    }
}

/// Reads an allowlist policy file, which must be JSON; compacted so formatting is no change.
/// Reads the allowlist policy and checks it exactly as the deployed function will (a bad CIDR
/// or an unknown field would otherwise deploy a function that fails on every event).
fn read_policy(p: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
    let compact = serde_json::to_string(&v)?;
    ctguard_detector::Policy::from_json(&compact)
        .with_context(|| format!("{} is not a valid ctguard policy", p.display()))?;
    Ok(compact)
}

#[cfg(test)]
mod policy_tests {
    use super::read_policy;

    fn read(text: &str) -> anyhow::Result<String> {
        let dir = std::env::temp_dir().join(format!("ctguard-policy-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir)?;
        let p = dir.join("policy.json");
        std::fs::write(&p, text)?;
        let r = read_policy(&p);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn a_policy_the_function_would_refuse_is_refused_before_deploying() {
        assert!(read(r#"{"allow_cidrs": ["203.0.113.0/24"]}"#).is_ok());
        for bad in [
            r#"{"allow_cidrs": ["203.0.113.0/33"]}"#,
            r#"{"allow_cidrs": ["not-a-network"]}"#,
            r#"{"default_ttl_hours": 169}"#,
            r#"{"roles": [{"role": " ", "cidrs": []}]}"#,
            "[1, 2]",
        ] {
            let e = read(bad).expect_err(bad);
            assert!(format!("{e:#}").contains("policy") || format!("{e:#}").contains("JSON"), "{bad}: {e:#}");
        }
    }
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

/// The preflight section: one line per check on stderr (its fix below a warning or failure),
/// or one `{"type":"preflight",...}` line per check with `--json`.
fn render_preflight(fmt: Output, pf: &Preflight) -> anyhow::Result<()> {
    if fmt == Output::Json {
        #[derive(Serialize)]
        struct Line<'a> {
            r#type: &'static str,
            #[serde(flatten)]
            check: &'a preflight::Check,
        }
        let lines: Vec<Line> = pf.checks.iter().map(|c| Line { r#type: "preflight", check: c }).collect();
        output::emit(fmt, &lines, &Table::default())?;
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "preflight:")?;
    for c in &pf.checks {
        let v = match c.verdict {
            Verdict::Pass => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail if c.blocking => "FAIL",
            Verdict::Fail => "fail",
        };
        writeln!(err, "  {v} {}: {}", c.check, c.detail)?;
        if let Some(f) = &c.fix {
            writeln!(err, "       fix: {f}")?;
        }
    }
    Ok(())
}

/// Asks a person to confirm changes that lower protection; `--yes` confirms them up front.
fn confirm_exposure(lines: &[String], yes: bool) -> Result<(), String> {
    if lines.is_empty() || yes {
        return Ok(());
    }
    let list = lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n");
    if !std::io::stdin().is_terminal() {
        return Err(format!("these changes lower protection and need confirmation (pass --yes):\n{list}"));
    }
    match crate::prompt::confirm(&format!("These changes lower protection:\n{list}")) {
        Ok(true) => Ok(()),
        _ => Err("changes not confirmed".to_string()),
    }
}

pub async fn run(args: &InstallArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let want = Wanted::resolve(args)?;
    let zip = embedded::lambda_zip()?;
    let s = session::open(&g.aws(), &want.targets.options()).await?;
    let org_wide = matches!(s.selection, Selection::Org | Selection::Ous(_));
    if want.auto_deploy == Some(true) && !org_wide {
        anyhow::bail!("--auto-deploy needs --org or --ou (it targets organizational units)");
    }
    let (topic, email) = want.alert.clone().unwrap_or((None, None));
    let defaults = InstallConfig {
        version: env!("CARGO_PKG_VERSION").to_string(),
        code_hash: embedded::code_hash(zip),
        artifacts_account: s.caller_account.clone(),
        home_region: s.set.home_region.clone(),
        org_id: s.org.as_ref().map(|o| o.id.clone()),
        alert_topic_arn: topic,
        alert_email: email.filter(|e| !e.is_empty()),
        policy: want.policy.clone().unwrap_or_else(|| "{}".to_string()),
        log_retention_days: want.log_retention_days.unwrap_or(90),
        default_ttl_hours: want.default_ttl_hours.unwrap_or(12),
        security_hub: want.security_hub.unwrap_or(false),
        auto_contain: want.auto_contain.unwrap_or(false),
    };
    let home = Target::new(s.caller_account.clone(), s.set.home_region.clone());
    let ss = s.stack_sets();
    let stated = want.stated();
    // The StackSets carry one configuration for every account: the caller's own deployed
    // values stand in for what this run does not state.
    let (cfg, stack_sets_exist, stacksets_own_members) = if org_wide {
        let api = s.connector.connect(&home).await?;
        let mut seen = std::collections::BTreeMap::new();
        for k in [StackKind::Account, StackKind::Region] {
            if let Ok(Some(st)) = api.describe(k.stack_name()).await {
                seen.insert(k, st);
            }
        }
        let cov = autodeploy::discover(&ss).await;
        if cov.mode() == Some(DeployWith::StackSets) && want.auto_deploy == Some(false) {
            anyhow::bail!(
                "the StackSets own the member accounts here (--deploy-with stacksets): turning automatic \
                 deployment off would remove their detector; run `ctguard uninstall` to remove ctguard"
            );
        }
        let own = cov.mode() == Some(DeployWith::StackSets) || args.deploy_with == Some(DeployWithArg::Stacksets);
        (defaults.keeping(stated, &seen), !cov.sets.is_empty(), own)
    } else {
        (defaults.clone(), false, false)
    };
    // Automatic deployment (and so the StackSets mode) is the default for --org and for --ou:
    // joining accounts are covered and no member role is needed. `--ou --deploy-with direct`
    // keeps the direct mode's own default (no auto-deployment) unless --auto-deploy is given.
    let direct_asked = args.deploy_with == Some(DeployWithArg::Direct);
    let auto_default = stack_sets_exist
        || match s.selection {
            Selection::Org => true,
            Selection::Ous(_) => !direct_asked,
            _ => false,
        };
    let auto = want.auto_deploy.unwrap_or(auto_default) && org_wide;
    let turning_off = !auto && stack_sets_exist;
    if let (Some(arn), Some(org)) = (&cfg.alert_topic_arn, &s.org) {
        if let Some(w) = central_topic_warning(s.connector.base(), arn, &org.id).await {
            eprintln!("warning: {w}");
        }
    }
    // Before any change: what the run needs from AWS, each failure with its fix.
    let assume_in: Vec<String> = if stacksets_own_members {
        Vec::new()
    } else {
        s.set.accounts.iter().filter(|a| **a != s.caller_account).cloned().collect()
    };
    let role_name = want.targets.options().role_name;
    let pf = preflight::check(
        &AwsPreflight::new(&s.connector),
        &preflight::Inputs {
            caller_account: &s.caller_account,
            org: s.org.as_ref(),
            org_wide,
            stacksets: auto || stacksets_own_members,
            set: &s.set,
            assume_in: &assume_in,
            role_name: &role_name,
            concurrency: g.concurrency as usize,
        },
    )
    .await;
    render_preflight(g.output(), &pf)?;
    if !pf.blocking().is_empty() && !args.plan {
        eprintln!("ctguard: preflight failed (see above); nothing was changed");
        return Ok(exit::USAGE);
    }
    let opts = RunOptions {
        concurrency: g.concurrency as usize,
        plan_only: args.plan,
        allow_missing_trail: args.allow_missing_trail,
        poll: PollOptions { timeout: std::time::Duration::from_secs(args.wait_timeout), ..PollOptions::default() },
    };
    let mode = progress::resolve(std::io::stderr().is_terminal(), progress::is_ci());
    let rep = progress::reporter(mode);
    let gate = |plans: &[TargetPlan]| {
        let mut lines = plan::exposure_changes(plans);
        if turning_off {
            lines.push(AUTO_OFF.to_string());
        }
        confirm_exposure(&lines, args.yes)
    };
    let req = Request { cfg: &defaults, stated, gate: &gate };
    let mut auto_lines = Vec::new();
    let mut auto_changes = 0;
    let mut report = match (&s.org, org_wide) {
        (Some(org), true) => {
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
            let r = autodeploy::rollout(&s.connector, &ss, &s.set, &cfg, &req, zip, &opts, &ro, rep.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            if s.delegated_admin() {
                auto_lines.push(format!(
                    "StackSets: called as a delegated administrator (CallAs DELEGATED_ADMIN) from {}; the management \
                     account {} gets its stacks directly, through --role-name",
                    s.caller_account, org.management_account
                ));
            }
            auto_lines.extend(r.notes);
            auto_changes = r.pending;
            let mut report = r.report;
            report.shared_calls += ss.calls();
            report
        }
        _ => {
            if args.deploy_with == Some(DeployWithArg::Stacksets) {
                anyhow::bail!("--deploy-with stacksets needs --org or --ou (StackSets target organizational units)");
            }
            deploy::install_with(&s.connector, &s.set, &req, zip, &opts, rep.as_ref()).await
        }
    };
    if turning_off && report.stopped.is_none() {
        auto_lines.extend(auto_deploy_off(&s, &ss, args.plan, &opts, rep.as_ref(), &mut report).await?);
        if args.plan {
            auto_changes += 1;
        }
    } else if !auto && !args.plan && args.deploy_with != Some(DeployWithArg::Stacksets) {
        auto_lines.push(
            "new accounts: NOT covered automatically (no --auto-deploy); re-run `ctguard install` when accounts join"
                .to_string(),
        );
    }
    if args.plan {
        for l in plan::exposure_changes(&report.plans) {
            auto_lines.push(format!("lowers protection (needs confirmation or --yes): {l}"));
        }
    }
    report.shared_calls += s.setup_calls.get();
    drop(rep);
    render(g.output(), &report, &auto_lines, args.plan)?;
    let pending = report.plans.iter().map(TargetPlan::changes).sum::<usize>() + auto_changes;
    if !pf.blocking().is_empty() {
        eprintln!("ctguard: preflight failed (see above): install would change nothing");
        return Ok(exit::USAGE);
    }
    Ok(if args.plan && report.stopped.is_none() && report.failed() == 0 && pending > 0 {
        exit::CHANGES_PENDING
    } else {
        exit_code(&report)
    })
}

/// Turning auto-deployment off (the run confirmed it through the gate): removes the StackSets,
/// or with `--plan` says it would.
async fn auto_deploy_off(
    s: &session::Session,
    ss: &CfnStackSets,
    plan_only: bool,
    opts: &RunOptions,
    rep: &dyn deploy::Reporter,
    report: &mut RunReport,
) -> anyhow::Result<Vec<String>> {
    if plan_only {
        return Ok(vec![format!("{AUTO_OFF} (needs confirmation or --yes)")]);
    }
    let home = Target::new(s.caller_account.clone(), s.set.home_region.clone());
    let before = ss.calls();
    let (mut r, _) = autodeploy::remove(ss, None, &Prefs::default(), &opts.poll, rep, &home).await;
    r.calls = ss.calls() - before;
    report.results.push(r);
    Ok(Vec::new())
}

/// Checks that a central topic lets the organization publish (`aws:PrincipalOrgID`); `None`
/// when it does or when the topic cannot be read from here (another account's topic).
async fn central_topic_warning(base: &aws_config::SdkConfig, arn: &str, org_id: &str) -> Option<String> {
    let region = arn.split(':').nth(3)?;
    let sns = ctguard_aws::client!(aws_sdk_sns, &ctguard_aws::in_region(base, region));
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

/// A parameter value for the plan table: quoted, and long ones (policies) cut with their size
/// and a hash prefix so that two different long values never look alike (`--json` has them whole).
fn shorten(v: &str) -> String {
    const SHOWN: usize = 60;
    if v.chars().count() <= SHOWN {
        return format!("{v:?}");
    }
    let head: String = v.chars().take(SHOWN).collect();
    let hash = embedded::code_hash(v.as_bytes());
    format!("{head:?}… ({} bytes, sha256 {})", v.len(), hash.get(..12).unwrap_or(&hash))
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
                for d in &s.diff {
                    let old = d.old.as_deref().map(shorten).unwrap_or_else(|| "(new)".into());
                    t.row([String::new(), String::new(), format!("  {}: {old} → {}", d.name, shorten(&d.new))]);
                }
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
