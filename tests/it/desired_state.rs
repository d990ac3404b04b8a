//! Issue 11 end to end: desired state never drifts by omission, the configuration file equals
//! the flags, `--plan` shows old → new and exits 4 when changes are pending, changes that lower
//! protection need `--yes`, and bad input is refused before anything is touched.
//!
//! One account (moto's default, 123456789012) and one region keep these runs short; the
//! multi-account paths share the same planner (see `install.rs`). moto does not emulate
//! `account:ListRegions`, so region names are checked against the published list here.

use std::path::PathBuf;
use std::process::Output;

use ctguard_tests::*;
use serde_json::Value;

const ACCOUNT: &str = "123456789012";

fn run_in(ep: &str, args: &[&str]) -> Output {
    ctguard(Some(ep)).args(args).output().expect("run ctguard")
}

fn text(o: &Output) -> String {
    output_text(o)
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Every parameter change a `--plan --json` run lists, as "stack.Name: old -> new".
fn planned_changes(o: &Output) -> Vec<String> {
    let mut v = Vec::new();
    for l in json_lines(o).iter().filter(|l| l["type"] == "plan") {
        for s in l["steps"].as_array().into_iter().flatten() {
            for d in s["diff"].as_array().into_iter().flatten() {
                v.push(format!(
                    "{}.{}: {} -> {}",
                    s["what"].as_str().unwrap_or(""),
                    d["name"].as_str().unwrap_or(""),
                    d["old"],
                    d["new"]
                ));
            }
            if s["action"] != "no_change" {
                v.push(format!("{} {}", s["what"].as_str().unwrap_or(""), s["action"]));
            }
        }
    }
    v
}

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("ctguard-i11-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("tmp dir");
        Dir(d)
    }
    fn write(&self, name: &str, body: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, body).expect("write");
        p.to_string_lossy().into_owned()
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const BASE: [&str; 4] = ["--regions", "us-east-1", "--allow-missing-trail", "--json"];

fn install(ep: &str, extra: &[&str]) -> Output {
    run_in(ep, &[&["install"], &BASE[..], extra].concat())
}

#[test]
fn a_run_without_flags_keeps_settings_and_the_config_file_equals_the_flags() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = Dir::new("keep");
    let pol = dir.write(
        "pol.json",
        r#"{"allow_cidrs": ["198.51.100.0/24"], "roles": [{"role": "arn:aws:iam::123456789012:role/ci", "cidrs": ["203.0.113.0/24"]}]}"#,
    );

    let out = install(&ep, &["--alert-email", "sec@example.com", "--policy", &pol, "--log-retention-days", "30"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Item 1 of the issue: a plain re-run planned to undo the email, the policy and the retention.
    let out = install(&ep, &["--plan"]);
    assert_eq!(out.status.code(), Some(0), "no change pending means exit 0:\n{}", text(&out));
    assert_eq!(planned_changes(&out), Vec::<String>::new(), "{}", text(&out));
    let out = install(&ep, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let summary = json_lines(&out).into_iter().find(|l| l["type"] == "summary").expect("summary");
    assert_eq!(summary["changes"], 0, "a run without settings changes nothing:\n{}", text(&out));

    // The same settings from a checked-in file: nothing to change either.
    let cfg = dir.write(
        "ctguard.toml",
        "[targets]\nregions = [\"us-east-1\"]\n[alerts]\nemail = \"sec@example.com\"\n\
         [detector]\npolicy = \"pol.json\"\nlog_retention_days = 30\n",
    );
    let out = run_in(&ep, &["install", "--config", &cfg, "--allow-missing-trail", "--json", "--plan"]);
    assert_eq!(out.status.code(), Some(0), "config file equal to the flags plans nothing:\n{}", text(&out));

    // A flag overrides the file; the plan names the parameter old -> new and exits 4.
    let out = run_in(
        &ep,
        &["install", "--config", &cfg, "--allow-missing-trail", "--json", "--plan", "--log-retention-days", "60"],
    );
    assert_eq!(out.status.code(), Some(4), "changes pending means exit 4:\n{}", text(&out));
    let changes = planned_changes(&out);
    assert!(changes.contains(&"ctguard-region.LogRetentionDays: \"30\" -> \"60\"".to_string()), "{changes:?}");
    assert!(!changes.iter().any(|c| c.contains("Policy") || c.contains("AlertEmail")), "{changes:?}");
    let out =
        run_in(&ep, &["install", "--config", &cfg, "--allow-missing-trail", "--plan", "--log-retention-days", "60"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("LogRetentionDays: \"30\" → \"60\""), "{}", text(&out));

    // Lowering protection (deleting the account's topic for a central one) needs --yes.
    let central = format!("arn:aws:sns:us-east-1:{ACCOUNT}:central");
    let out = install(&ep, &["--alert-topic-arn", &central]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("lower protection") && all.contains("ctguard-account"), "{all}");
    let out = install(&ep, &["--plan"]);
    assert_eq!(out.status.code(), Some(0), "the refused run changed nothing:\n{}", text(&out));
    let out = install(&ep, &["--alert-topic-arn", &central, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // And the central topic is now what a plain run keeps.
    let out = install(&ep, &["--plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn bad_input_is_refused_before_anything_is_touched() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let cases: [(&[&str], &str); 8] = [
        (&["install", "--regions", "us-east-1", "--alert-topic-arn", "foo"], "not an SNS topic ARN"),
        (&["install", "--regions", "us-east-1", "--alert-email", "not-an-email"], "not an email address"),
        (&["install", "--regions", "us-east-1,us-east-42"], "us-east-42"),
        (&["status", "--regions", "us-east-42"], "us-east-42"),
        (&["install", "--regions", "us-east-1", "--auto-deploy", "--no-auto-deploy"], "cannot be used with"),
        (&["install", "--regions", "us-east-1", "--log-retention-days", "31"], "not a CloudWatch Logs value"),
        (&["keys", "--idle-days", "0", "--disable", "--yes"], "idle-days"),
        (&["keys", "--as-of", "2999-01-01", "--disable", "--yes"], "in the future"),
    ];
    for (args, why) in cases {
        let out = run_in(&ep, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{args:?} should say {why:?}:\n{}", text(&out));
    }
    // Nothing was created by any of them.
    let cfn = aws_sdk_cloudformation::Client::new(&moto.config("us-east-1"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stacks = rt.block_on(cfn.list_stacks().send()).expect("list stacks");
    assert!(stacks.stack_summaries().is_empty(), "{:?}", stacks.stack_summaries());
}

#[test]
fn an_explicit_profile_wins_over_environment_keys_as_in_aws_cli() {
    let moto = Moto::start();
    let dir = Dir::new("profile");
    let creds = dir.write("credentials", "[other]\naws_access_key_id = testing\naws_secret_access_key = testing\n");
    let out = ctguard(Some(&moto.endpoint()))
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .args(["status", "--regions", "us-east-1", "--profile", "nosuch"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing profile is an error even with AWS_ACCESS_KEY_ID set:\n{}",
        text(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"), "{}", text(&out));
    let out = ctguard(Some(&moto.endpoint()))
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .args(["status", "--regions", "us-east-1", "--profile", "other"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(2), "an existing profile works:\n{}", text(&out));
}
