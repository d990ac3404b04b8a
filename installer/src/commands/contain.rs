//! `ctguard contain` / `ctguard release`: block a compromised role session everywhere except
//! its trusted identities, and lift the block.
//!
//! The session is named by an alert (`--alert-file`, the JSON an SQS/Lambda subscriber
//! received; or `--alert ID --account A`, the record the detector keeps of every alert in the
//! account's state table) or by flags (`--account --role --session --allow-ip/--allow-vpce`,
//! exactly as the alert's email prints them). Both commands show what they will change and ask; without a
//! terminal they need `--yes`. `--plan` shows the policy `contain` would attach and what
//! `release` would remove, and changes nothing. The policy itself is built and explained in
//! [`ctguard_deploy::contain`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ctguard_aws::{caller_account, load, DEFAULT_MEMBER_ROLE};
use ctguard_deploy::contain::{
    self, cidr, AlertRecords, Containment, DynamoAlertRecords, IamRolePolicies, RolePolicies,
};
use ctguard_deploy::stacks::{AwsConnector, TABLE_NAME};
use ctguard_deploy::targets::US_EAST_1;
use ctguard_detector::Alert;

use crate::args::GlobalArgs;
use crate::exit;

/// Which session, in which account.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// The alert JSON (as delivered to SQS/Lambda/HTTP subscribers, or the SNS envelope around it).
    #[arg(long, value_name = "FILE")]
    pub alert_file: Option<PathBuf>,
    /// The alert's id (`ctguard-…`: its `id`, the SNS attribute `alert_id`), read from the
    /// state table of --account (in --home-region), where the detector keeps every alert it
    /// published for as long as the credential's state.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with_all = ["alert_file", "access_key", "role", "session"],
        requires = "account"
    )]
    pub alert: Option<String>,
    /// Region of the account's state table: `install`'s --home-region [default: us-east-1].
    #[arg(long, value_name = "REGION", requires = "alert")]
    pub home_region: Option<String>,
    /// The compromised access key (recorded; the deny covers its whole session).
    #[arg(long, value_name = "KEY")]
    pub access_key: Option<String>,
    /// The account of the role.
    #[arg(long)]
    pub account: Option<String>,
    /// The role's name.
    #[arg(long)]
    pub role: Option<String>,
    /// The role session name (an EC2 instance's sessions are named after the instance id).
    #[arg(long)]
    pub session: Option<String>,
    /// Role assumed in the account when it is not the caller's.
    #[arg(long, default_value = DEFAULT_MEMBER_ROLE)]
    pub assume_role_name: String,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long, conflicts_with = "plan")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ContainArgs {
    #[command(flatten)]
    pub who: SessionArgs,
    /// A trusted public address or CIDR the session may keep calling from (repeatable).
    #[arg(long, value_name = "IP")]
    pub allow_ip: Vec<String>,
    /// A trusted VPC endpoint the session may keep calling through (repeatable).
    #[arg(long, value_name = "VPCE")]
    pub allow_vpce: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub who: SessionArgs,
}

/// Reads an alert: the alert itself, or an SNS envelope whose `Message` is the alert.
fn read_alert(path: &Path) -> anyhow::Result<Alert> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let v = match v.get("Message").and_then(|m| m.as_str()) {
        Some(inner) => serde_json::from_str(inner).with_context(|| "the envelope's Message is not an alert")?,
        None => v,
    };
    serde_json::from_value(v).with_context(|| format!("{} is not a ctguard alert", path.display()))
}

/// The alert the arguments name, from its file or from the account's state table; `None`
/// when the session is named by flags.
async fn named_alert(g: &GlobalArgs, w: &SessionArgs) -> anyhow::Result<Option<Alert>> {
    if let Some(p) = &w.alert_file {
        return Ok(Some(read_alert(p)?));
    }
    let Some(id) = &w.alert else { return Ok(None) };
    let id = contain::alert_id(id)?;
    let account = w.account.clone().ok_or_else(|| anyhow::anyhow!("--alert needs --account"))?;
    if !ctguard_aws::is_account_id(&account) {
        anyhow::bail!("--account `{account}` is not a 12-digit AWS account id");
    }
    let region = w.home_region.clone().unwrap_or_else(|| US_EAST_1.to_string());
    if !ctguard_aws::is_region(&region) {
        anyhow::bail!("--home-region `{region}` is not an AWS region name");
    }
    let cfg = ctguard_aws::in_region(&account_config(g, w, &account).await?, &region);
    let records = DynamoAlertRecords {
        client: aws_sdk_dynamodb::Client::new(&cfg),
        table: TABLE_NAME.to_string(),
        account: account.clone(),
        region,
    };
    let alert = contain::alert_by_id(&records, &id).await?;
    if let Some(other) = alert.account.as_deref().filter(|a| *a != account) {
        anyhow::bail!("the record of alert {id} in account {account} names account {other}: refusing to act on it");
    }
    // The role lives in the account of the session's ARN, which is not always the account the
    // calls were made against (a session of another account's role).
    let role_account = alert.principal_arn.as_deref().and_then(|p| p.split(':').nth(4)).filter(|a| !a.is_empty());
    if let Some(other) = role_account.filter(|a| *a != account) {
        anyhow::bail!(
            "alert {id}'s session belongs to a role of account {other}, not {account}: the deny must go on that role; \
             save the alert's JSON and run `ctguard contain --alert-file FILE` (it acts in account {other})"
        );
    }
    eprintln!("alert {id}: read from the {}", records.describe());
    Ok(Some(alert))
}

/// The containment the arguments describe: the alert's, with flags overriding its fields.
fn containment(a: &ContainArgs, alert: Option<&Alert>) -> anyhow::Result<Containment> {
    let mut c = match alert {
        Some(alert) => Containment::from_alert(alert)?,
        None => Containment {
            account: String::new(),
            role: String::new(),
            session: String::new(),
            access_key: None,
            allow_ips: Vec::new(),
            allow_vpces: Vec::new(),
            public_only: false,
        },
    };
    let w = &a.who;
    let set = |field: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            *field = v.clone();
        }
    };
    set(&mut c.account, &w.account);
    set(&mut c.role, &w.role);
    set(&mut c.session, &w.session);
    if w.access_key.is_some() {
        c.access_key = w.access_key.clone();
    }
    for ip in &a.allow_ip {
        let net = cidr(ip).ok_or_else(|| anyhow::anyhow!("--allow-ip `{ip}` is not an address or CIDR"))?;
        if !c.allow_ips.contains(&net) {
            c.allow_ips.push(net);
        }
    }
    for v in &a.allow_vpce {
        if !c.allow_vpces.contains(v) {
            c.allow_vpces.push(v.clone());
        }
    }
    if alert.is_none() && (w.account.is_none() || w.role.is_none() || w.session.is_none()) {
        anyhow::bail!(
            "name the session: --alert-file FILE, --alert ID --account A, or --account, --role and --session"
        );
    }
    c.validate()?;
    Ok(c)
}

/// May the command change anything: `--yes`, or a person typed yes.
fn approved(who: &SessionArgs, what: &str) -> anyhow::Result<Option<u8>> {
    if who.yes {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "ctguard: refusing to change the role without --yes (stdin is not a terminal, so nobody can confirm)"
        );
        return Ok(Some(exit::USAGE));
    }
    if crate::prompt::confirm(what)? {
        Ok(None)
    } else {
        eprintln!("nothing changed");
        Ok(Some(exit::USAGE))
    }
}

/// The account's SDK configuration: the caller's own, or `--assume-role-name` assumed in it.
async fn account_config(g: &GlobalArgs, who: &SessionArgs, account: &str) -> anyhow::Result<aws_config::SdkConfig> {
    let base = load(&g.aws()).await;
    let me = caller_account(&base).await?;
    Ok(AwsConnector::new(base, me, who.assume_role_name.clone()).account_config(account).await)
}

async fn iam_for(g: &GlobalArgs, who: &SessionArgs, account: &str) -> anyhow::Result<IamRolePolicies> {
    Ok(IamRolePolicies { client: aws_sdk_iam::Client::new(&account_config(g, who, account).await?) })
}

pub async fn run_contain(args: &ContainArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let alert = named_alert(g, &args.who).await?;
    let c = containment(args, alert.as_ref())?;
    let iam = iam_for(g, &args.who, &c.account).await?;
    let role = iam.role(&c.role).await?;
    let doc = c.policy(&role.id);
    let name = c.policy_name();
    println!(
        "contain: attach inline policy {name} to role {} in {} (session {}{}):",
        c.role,
        c.account,
        c.session,
        c.access_key.as_deref().map(|k| format!(", key {k}")).unwrap_or_default()
    );
    println!("{}", serde_json::to_string_pretty(&doc)?);
    let release = format!("ctguard release --account {} --role {} --session {}", c.account, c.role, c.session);
    println!("release: delete inline policy {name} from role {} ({release})", c.role);
    if args.who.plan {
        return Ok(exit::OK);
    }
    if let Some(code) = approved(&args.who, "Attach this deny policy?")? {
        return Ok(code);
    }
    contain::contain(&iam, &c).await?;
    println!("contained: the session is denied except from its trusted identities; undo with `{release}`");
    Ok(exit::OK)
}

pub async fn run_release(args: &ReleaseArgs, g: &GlobalArgs) -> anyhow::Result<u8> {
    let w = &args.who;
    let (account, role, session) = match named_alert(g, w).await? {
        Some(alert) => {
            let c = Containment::from_alert(&alert)?;
            (
                w.account.clone().unwrap_or(c.account),
                w.role.clone().unwrap_or(c.role),
                w.session.clone().unwrap_or(c.session),
            )
        }
        None => match (&w.account, &w.role, &w.session) {
            (Some(a), Some(r), Some(s)) => (a.clone(), r.clone(), s.clone()),
            _ => anyhow::bail!(
                "name the session: --alert-file FILE, --alert ID --account A, or --account, --role and --session"
            ),
        },
    };
    let probe = Containment {
        account: account.clone(),
        role: role.clone(),
        session: session.clone(),
        access_key: None,
        allow_ips: vec!["0.0.0.0/32".into()],
        allow_vpces: Vec::new(),
        public_only: false,
    };
    probe.validate()?;
    let name = probe.policy_name();
    let iam = iam_for(g, w, &account).await?;
    match iam.get(&role, &name).await? {
        None => {
            println!("release: role {role} in {account} has no policy {name}: nothing to remove");
            return Ok(exit::OK);
        }
        Some(doc) => {
            println!("release: delete inline policy {name} from role {role} in {account}:");
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    if w.plan {
        return Ok(exit::OK);
    }
    if let Some(code) = approved(w, "Remove this deny policy?")? {
        return Ok(code);
    }
    let removed = contain::release(&iam, &role, &session).await?;
    println!("{}", if removed { "released" } else { "already released" });
    Ok(exit::OK)
}
