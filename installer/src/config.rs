//! The checked-in configuration file (`ctguard.toml`): the desired state of an installation,
//! reviewed like any other infrastructure code. Flags override it; what neither states keeps the
//! value deployed in each target (see `ctguard_deploy::plan::Stated`).
//!
//! ```toml
//! [targets]
//! org = true                       # or: accounts = ["111111111111"], or: ou = ["ou-ab12-cdef3456"]
//! regions = ["us-east-1", "eu-west-1"]
//! home_region = "us-east-1"
//! role_name = "OrganizationAccountAccessRole"
//!
//! [alerts]
//! email = "security@example.com"   # or: topic_arn = "arn:aws:sns:us-east-1:111111111111:central"
//!
//! [detector]
//! policy = "allowlist.json"        # relative to this file
//! log_retention_days = 90
//! default_ttl_hours = 12
//! security_hub = false             # import alerts into Security Hub as findings
//! auto_contain = false             # contain opted-in roles' sessions automatically
//! auto_deploy = true
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The whole file. Unknown keys are refused: a typo must not silently fall back to a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub targets: FileTargets,
    #[serde(default)]
    pub alerts: FileAlerts,
    #[serde(default)]
    pub detector: FileDetector,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTargets {
    #[serde(default)]
    pub org: bool,
    #[serde(default)]
    pub accounts: Vec<String>,
    #[serde(default)]
    pub ou: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    pub home_region: Option<String>,
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAlerts {
    /// Own topic per account with this address subscribed (`""`: own topic, no subscription).
    pub email: Option<String>,
    /// A central topic instead of one per account.
    pub topic_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDetector {
    /// Allowlist policy file, relative to the configuration file.
    pub policy: Option<PathBuf>,
    pub log_retention_days: Option<u32>,
    pub default_ttl_hours: Option<u32>,
    pub security_hub: Option<bool>,
    pub auto_contain: Option<bool>,
    pub auto_deploy: Option<bool>,
}

impl FileConfig {
    /// Reads and checks a configuration file; relative paths in it are made relative to it.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut c =
            Self::parse(&text).with_context(|| format!("{} is not a valid ctguard configuration", path.display()))?;
        if let Some(p) = c.detector.policy.take() {
            let base = path.parent().unwrap_or(Path::new("."));
            c.detector.policy = Some(if p.is_relative() { base.join(p) } else { p });
        }
        Ok(c)
    }

    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        let c: FileConfig = toml::from_str(text)?;
        let t = &c.targets;
        let selections = usize::from(t.org) + usize::from(!t.accounts.is_empty()) + usize::from(!t.ou.is_empty());
        anyhow::ensure!(selections <= 1, "[targets]: choose one of org, accounts, ou");
        anyhow::ensure!(
            c.alerts.email.is_none() || c.alerts.topic_arn.is_none(),
            "[alerts]: email and topic_arn exclude each other (the email is subscribed to each account's own topic)"
        );
        Ok(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect();
        let c = FileConfig::parse(&doc).unwrap();
        assert!(c.targets.org);
        assert_eq!(c.targets.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(c.alerts.email.as_deref(), Some("security@example.com"));
        assert_eq!(c.detector.log_retention_days, Some(90));
        assert_eq!(c.detector.auto_deploy, Some(true));
    }

    #[test]
    fn typos_and_contradictions_are_refused() {
        assert!(FileConfig::parse("[detector]\nlog_retention = 30\n").is_err());
        assert!(FileConfig::parse("[targets]\norg = true\naccounts = [\"111111111111\"]\n").is_err());
        assert!(FileConfig::parse(
            "[alerts]\nemail = \"a@b.co\"\ntopic_arn = \"arn:aws:sns:us-east-1:111111111111:t\"\n"
        )
        .is_err());
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn policy_path_is_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("ctguard-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ctguard.toml");
        std::fs::write(&f, "[detector]\npolicy = \"allow.json\"\n").unwrap();
        assert_eq!(FileConfig::load(&f).unwrap().detector.policy, Some(dir.join("allow.json")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
