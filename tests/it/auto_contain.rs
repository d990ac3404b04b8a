//! The detector's opt-in automatic containment, on the emulated account with the shipped
//! bootstrap: a HIGH alert of an EC2 instance's credentials gets the deny policy on its role
//! when the role carries `ctguard-auto-contain=true`, and nothing else is written; the alert
//! says what was done and how to undo it; `ctguard release` undoes it.
//!
//! Emulator notes: moto evaluates no IAM policy, so the grant's `aws:ResourceTag` condition is
//! not enforced here; what keeps the untagged role untouched in this test is the detector's
//! own check of the tag on `GetRole`'s answer. The condition itself is checked structurally
//! (`tests/it/install.rs`, `scripts/moto_check_templates.py`). moto's IAM is global to the
//! emulator as AWS's is: the function reaches it through `AWS_ENDPOINT_URL`. On a stack update
//! moto keeps a resource whose Condition turned false, so the grant's removal with
//! `--no-auto-contain` is checked on the template, not here.

use std::time::Duration;

use ctguard_tests::*;
use serde_json::{json, Value};

const ACCOUNT: &str = "310987654321";

/// A call by `role`'s session `session` with `key` from `ip`.
fn call(role: &str, session: &str, key: &str, ip: &str, time: &str, id: &str) -> Value {
    json!({"eventVersion": "1.08", "eventID": id, "eventTime": time, "eventType": "AwsApiCall",
           "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
           "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0", "recipientAccountId": ACCOUNT, "readOnly": true,
           "userIdentity": {"type": "AssumedRole", "accessKeyId": key, "accountId": ACCOUNT,
               "principalId": format!("AROAEXAMPLE:{session}"),
               "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
               "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}")},
                                  "attributes": {"creationDate": "2024-05-01T09:55:00Z"}}}})
}

/// The role's inline policies, name → document.
fn inline_policies(emu: &Emulator, creds: &(String, String, String), role: &str) -> Value {
    boto3(
        &emu.endpoint,
        creds,
        "us-east-1",
        &format!(
            "from urllib.parse import unquote\n\
             iam = client('iam')\n\
             names = iam.list_role_policies(RoleName='{role}')['PolicyNames']\n\
             out = {{}}\n\
             for n in names:\n    d = iam.get_role_policy(RoleName='{role}', PolicyName=n)['PolicyDocument']\n    \
             out[n] = json.loads(unquote(d)) if isinstance(d, str) else d\n\
             print(json.dumps(out))"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opted_in_instance_role_is_contained_by_the_detector_and_nothing_else_is_touched() {
    let emu = Emulator::start();
    let creds = account_credentials(&emu.endpoint, ACCOUNT).await;
    let cfg = sdk_config(&emu.endpoint, "us-east-1", &creds.0, &creds.1, Some(&creds.2));
    logging_trail(&cfg).await;
    // Two workload roles, trusted by EC2: `app` opted in, `batch` not.
    let ids = boto3(
        &emu.endpoint,
        &creds,
        "us-east-1",
        "trust = json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', \
         'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]})\n\
         iam = client('iam')\n\
         app = iam.create_role(RoleName='app', AssumeRolePolicyDocument=trust, \
             Tags=[{'Key': 'ctguard-auto-contain', 'Value': 'true'}])['Role']['RoleId']\n\
         batch = iam.create_role(RoleName='batch', AssumeRolePolicyDocument=trust, \
             Tags=[{'Key': 'ctguard-auto-contain', 'Value': 'false'}])['Role']['RoleId']\n\
         print(json.dumps({'app': app, 'batch': batch}))",
    );
    let app_id = ids["app"].as_str().expect("app role id").to_string();

    install_ctguard_with(&emu.endpoint, Some(&creds), &["us-east-1"], &["--auto-contain"]);
    let on = |vars: std::collections::HashMap<String, String>| {
        (vars.get("CTGUARD_AUTO_CONTAIN").cloned(), vars.get("CTGUARD_ACCOUNT").cloned())
    };
    assert_eq!(on(function_env(&cfg).await), (Some("true".into()), Some(ACCOUNT.into())));
    // A re-run that does not mention it keeps it on.
    install_ctguard(&emu.endpoint, Some(&creds), &["us-east-1"]);
    assert_eq!(on(function_env(&cfg).await), (Some("true".into()), Some(ACCOUNT.into())), "a re-run must not undo it");

    let topic = format!("arn:aws:sns:us-east-1:{ACCOUNT}:ctguard-alerts");
    let queue = subscribe_queue(&cfg, &topic, "soc").await;
    const APP_I: &str = "i-0aaaaaaaaaaaaaaa1";
    const BATCH_I: &str = "i-0bbbbbbbbbbbbbbb2";
    let events = [
        // app's instance: trusted from .10, reused from .66 (HIGH, instance scope, opted in).
        call("app", APP_I, "ASIAQ7EXAMPLEAPPAAAB", "203.0.113.10", "2024-05-01T10:00:00Z", "a-1"),
        call("app", APP_I, "ASIAQ7EXAMPLEAPPAAAB", "198.51.100.66", "2024-05-01T10:03:00Z", "a-2"),
        // batch's instance: the same story, but the role is not opted in.
        call("batch", BATCH_I, "ASIAQ7EXAMPLEBATAAAC", "203.0.113.20", "2024-05-01T10:00:00Z", "b-1"),
        call("batch", BATCH_I, "ASIAQ7EXAMPLEBATAAAC", "198.51.100.77", "2024-05-01T10:03:00Z", "b-2"),
        // A person's session of app (key scope): never contained automatically.
        call("app", "alice", "ASIAQ7EXAMPLEPPLAAAD", "203.0.113.30", "2024-05-01T10:00:00Z", "p-1"),
        call("app", "alice", "ASIAQ7EXAMPLEPPLAAAD", "198.51.100.88", "2024-05-01T10:03:00Z", "p-2"),
        // An instance of a role IAM does not know (deleted since): containment fails, the
        // alert still goes out, and the failure is counted for the side-effects alarm.
        call("ghost", "i-0ccccccccccccccc3", "ASIAQ7EXAMPLEGHSAAAE", "203.0.113.40", "2024-05-01T10:00:00Z", "g-1"),
        call("ghost", "i-0ccccccccccccccc3", "ASIAQ7EXAMPLEGHSAAAE", "198.51.100.44", "2024-05-01T10:03:00Z", "g-2"),
    ];
    let sent = emu.deliver_cloudtrail(&events, None, None);
    assert_eq!(sent["delivered"], 8, "{sent}");
    assert!(emu.drain(Duration::from_secs(120)), "{}", emu.log());
    let messages = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 4, "four alerts: {messages:#?}\n{}", emu.log());
    let by_key = |key: &str| {
        messages
            .iter()
            .map(alert_of)
            .find(|a| a["access_key_id"] == key)
            .unwrap_or_else(|| panic!("no alert for {key}"))
    };

    let app = by_key("ASIAQ7EXAMPLEAPPAAAB");
    assert_eq!((app["severity"].as_str(), app["scope"].as_str()), (Some("HIGH"), Some("instance")), "{app}");
    let c = &app["containment"];
    assert_eq!(c["status"], "applied", "{app}\n{}", emu.log());
    assert_eq!(c["role"], "app");
    assert_eq!(c["policy"], format!("ctguard-contain-{APP_I}"));
    let release = c["release"].as_str().expect("the undo command").to_string();
    assert_eq!(release, format!("ctguard release --account {ACCOUNT} --role app --session {APP_I}"));
    // The policy on the role: the session denied except from where it was first used.
    let policies = inline_policies(&emu, &creds, "app");
    let names: Vec<&String> = policies.as_object().expect("policies").keys().collect();
    assert_eq!(names, [&format!("ctguard-contain-{APP_I}")], "only the instance session's containment: {policies}");
    let st = &policies[format!("ctguard-contain-{APP_I}")]["Statement"][0];
    assert_eq!((st["Effect"].as_str(), st["Action"].as_str()), (Some("Deny"), Some("*")), "{st}");
    assert_eq!(st["Condition"]["StringEquals"]["aws:userid"], format!("{app_id}:{APP_I}"));
    assert_eq!(st["Condition"]["NotIpAddress"]["aws:SourceIp"], json!(["203.0.113.10/32"]));
    assert_eq!(st["Condition"]["BoolIfExists"]["aws:ViaAWSService"], "false");
    // Over the internet only: the account's own VPC endpoints are trusted without being
    // recorded, so calls through any endpoint are left alone.
    assert_eq!(st["Condition"]["Null"]["aws:SourceVpce"], "true", "{st}");
    assert!(st["Condition"].get("StringNotEqualsIfExists").is_none(), "{st}");

    let batch = by_key("ASIAQ7EXAMPLEBATAAAC");
    assert_eq!(batch["containment"]["status"], "not-opted-in", "{batch}");
    assert_eq!(inline_policies(&emu, &creds, "batch"), json!({}), "the untagged role is never written");

    let person = by_key("ASIAQ7EXAMPLEPPLAAAD");
    assert_eq!(person["scope"], "key");
    assert_eq!(person["containment"]["status"], "not-eligible", "{person}");

    let ghost = by_key("ASIAQ7EXAMPLEGHSAAAE");
    assert_eq!(ghost["containment"]["status"], "failed", "{ghost}");
    assert!(ghost["containment"]["detail"].as_str().unwrap_or("").contains("NoSuchEntity"), "{ghost}");
    // Counted once, in the embedded metric format, in the function's log group.
    let counted = boto3(
        &emu.endpoint,
        &creds,
        "us-east-1",
        "ev = client('logs').filter_log_events(logGroupName='/aws/lambda/ctguard-detector')['events']\n\
         print(json.dumps([json.loads(e['message']) for e in ev if 'AlertSideEffectFailures' in e['message']]))",
    );
    let counted = counted.as_array().cloned().unwrap_or_default();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(
        (counted[0]["Step"].as_str(), counted[0]["AlertSideEffectFailures"].as_u64()),
        (Some("containment"), Some(1))
    );
    assert_eq!(counted[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "ctguard");

    // The alert's record carries the outcome too (what `contain --alert` and a responder read).
    let id = app["id"].as_str().expect("id");
    let (recorded, _) = alert_record(&cfg, id).await;
    assert_eq!(recorded["containment"]["status"], "applied");

    // Undo, as the alert says; then --no-auto-contain turns it off for the next alerts.
    let mut cmd = ctguard(Some(&emu.endpoint));
    cmd.env("AWS_ACCESS_KEY_ID", &creds.0).env("AWS_SECRET_ACCESS_KEY", &creds.1).env("AWS_SESSION_TOKEN", &creds.2);
    let args: Vec<&str> = release.split(' ').skip(1).chain(["--yes"]).collect();
    let out = cmd.args(&args).output().expect("run release");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(inline_policies(&emu, &creds, "app"), json!({}), "released");
    install_ctguard_with(&emu.endpoint, Some(&creds), &["us-east-1"], &["--no-auto-contain"]);
    assert_eq!(on(function_env(&cfg).await).0.as_deref(), Some("false"));
    // AWS deletes the grant with the option (its Condition turns false); moto keeps a resource
    // whose Condition turns false on update, so that is checked on the template instead
    // (tests/it/install.rs, scripts/moto_check_templates.py, which deploys both branches).
    emu.deliver_cloudtrail(
        &[call("app", APP_I, "ASIAQ7EXAMPLEAPPAAAB", "198.51.100.99", "2024-05-01T10:05:00Z", "a-3")],
        None,
        None,
    );
    assert!(emu.drain(Duration::from_secs(120)), "{}", emu.log());
    let later = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(later.len(), 1, "{later:#?}");
    assert!(alert_of(&later[0]).get("containment").is_none(), "off: no containment field");
    assert_eq!(inline_policies(&emu, &creds, "app"), json!({}), "off: nothing attached");
}
