//! `ctguard template [NAME]`: print the bundled CloudFormation templates.

use clap::Args;

use crate::args::GlobalArgs;
use crate::exit;
use ctguard_deploy::embedded::TEMPLATES;

#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// Template to print (`artifacts`, `state`, `account`, `region`; `installer-policy`: the IAM
    /// policy the installing principal needs; `athena-policy`: the IAM policy for `--athena`);
    /// all the stack templates when omitted.
    pub name: Option<String>,
    /// Only list the template names.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: &TemplateArgs, _g: &GlobalArgs) -> anyhow::Result<u8> {
    if args.list {
        for t in TEMPLATES {
            println!("{}", t.name);
        }
        println!("installer-policy");
        println!("athena-policy");
        return Ok(exit::OK);
    }
    if args.name.as_deref() == Some("installer-policy") {
        // Not a stack: the installing principal's least-privilege IAM policy.
        print!("{}", ctguard_deploy::installer_policy::document());
        return Ok(exit::OK);
    }
    if args.name.as_deref() == Some("athena-policy") {
        // Not a stack: the IAM policy for `scan/trace --athena` (placeholders in capitals).
        print!("{}", ctguard_forensics::athena::POLICY);
        return Ok(exit::OK);
    }
    let chosen: Vec<_> = match &args.name {
        None => TEMPLATES.iter().collect(),
        Some(n) => {
            let want = format!("ctguard-{}.yaml", n.trim_start_matches("ctguard-").trim_end_matches(".yaml"));
            let found: Vec<_> = TEMPLATES.iter().filter(|t| t.name == want).collect();
            if found.is_empty() {
                let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
                anyhow::bail!("no template `{n}`; choose one of: {}", names.join(", "));
            }
            found
        }
    };
    for (i, t) in chosen.iter().enumerate() {
        if chosen.len() > 1 {
            if i > 0 {
                println!("---");
            }
            println!("# {}", t.name);
        }
        print!("{}", t.body);
    }
    Ok(exit::OK)
}
