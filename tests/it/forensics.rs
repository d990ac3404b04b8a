//! `ctguard scan`, `trace` and `keys` end to end: the built binary on the shared data sets
//! (flaws2, Stratus Red Team, OTRF, Panther), on ActionTrail and VPC flow-log fixtures written
//! from the public format documentation, on S3 in moto, and `keys` against moto IAM and
//! Organizations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ctguard_detector::time::{format_rfc3339, parse_rfc3339};
use ctguard_tests::*;
use serde_json::{json, Value};

/// Exit code, stdout, stderr.
fn run(mut c: Command) -> (i32, String, String) {
    let out = c.output().expect("run ctguard");
    let code = out.status.code().unwrap_or(-1);
    let (so, se) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!se.contains("panicked"), "ctguard panicked:\n{se}");
    (code, so, se)
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Exit code, the alerts (the JSON lines before the closing summary line), stderr.
fn scan(args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut c = ctguard(None);
    c.arg("--json").arg("scan").args(args);
    let (code, out, err) = run(c);
    let mut lines = json_lines(&out);
    let summary = lines.pop().unwrap_or_default();
    assert_eq!(summary["kind"], "summary", "scan --json ends with its summary: {out}");
    (code, lines, err)
}

fn trace(key: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut c = ctguard(None);
    c.args(["--json", "trace", "--access-key", key]).args(args);
    let (code, out, err) = run(c);
    (code, json_lines(&out), err)
}

fn kind<'a>(lines: &'a [Value], k: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == k).collect()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctguard-it-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

const FLAWS_KEY: &str = "ASIAZQNB3KHGIGYQXVVG";

#[test]
fn scan_without_paths_runs_the_bundled_sample() {
    let (code, alerts, err) = scan(&[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["access_key_id"], "ASIAY34FZKBOKMUTVV7A");
    assert_eq!(alerts[0]["seen_identity"], "ip:203.0.113.66");
    assert!(err.contains("bundled sample"), "{err}");
    // Text mode prints a table a newcomer can read.
    let mut c = ctguard(None);
    c.arg("scan");
    let (code, out, _) = run(c);
    assert_eq!(code, 1);
    assert!(out.contains("203.0.113.66") && out.contains("54.210.33.17"), "{out}");
}

#[test]
fn scan_flaws2_raises_the_one_expected_alert() {
    let data = shared_data().join("flaws2-cloudtrail");
    let (code, alerts, err) = scan(&[&path_str(&data)]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["access_key_id"], FLAWS_KEY);
    assert_eq!(a["seen_identity"], "ip:104.102.221.250");
    assert_eq!(a["expected"][0]["identity"], "ip:34.234.236.212");
    assert_eq!(a["offending"]["event_time"], "2018-11-28T23:04:54Z");
    assert_eq!(a["offending"]["event_name"], "ListObjects");
    assert!(err.contains("8 files") && err.contains("37 records"), "{err}");
    // CSV for spreadsheets: a header and one row.
    let mut c = ctguard(None);
    c.args(["--output", "csv", "scan", &path_str(&data)]);
    let (_, csv, _) = run(c);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.starts_with("TIME,SEVERITY,ACCESS KEY"));
}

#[test]
fn trace_flaws2_last_use_is_the_attackers_layer_download() {
    let data = shared_data().join("flaws2-cloudtrail");
    let (code, lines, err) = trace(FLAWS_KEY, &[&path_str(&data)]);
    assert_eq!(code, 1, "reuse and high-risk calls are findings: {err}");
    let last = &kind(&lines, "last_use")[0]["event"];
    assert_eq!(last["event_name"], "GetDownloadUrlForLayer");
    assert_eq!(last["time"], "2018-11-28T23:06:33Z");
    assert_eq!(last["source_ip"], "104.102.221.250");
    assert_eq!(last["event_source"], "ecr.amazonaws.com");
    assert_eq!(last["region"], "us-east-1");
    assert!(last["user_agent"].as_str().is_some_and(|u| u.contains("aws-cli/1.16.19")));
    assert!(last["principal_arn"].as_str().is_some_and(|p| p.ends_with(":assumed-role/level1/level1")));
    let sources: BTreeMap<String, (u64, String)> = kind(&lines, "source")
        .iter()
        .map(|s| {
            (
                s["source"]["network"].as_str().unwrap_or("").to_string(),
                (s["source"]["calls"].as_u64().unwrap_or(0), s["source"]["verdict"].as_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    assert_eq!(sources.get("34.234.236.212"), Some(&(5, "trusted".to_string())));
    assert_eq!(sources.get("104.102.221.250"), Some(&(4, "reuse-alert".to_string())));
    let policy = &kind(&lines, "policy")[0]["policy"];
    assert_eq!(policy["statement"]["Condition"]["NotIpAddressIfExists"]["aws:SourceIp"], json!(["34.234.236.212/32"]));
    assert_eq!(policy["attach_to"], "arn:aws:iam::653711331788:role/service-role/level1");
    let risky: BTreeSet<&str> =
        kind(&lines, "high_risk").iter().filter_map(|e| e["event"]["event_name"].as_str()).collect();
    assert_eq!(risky, BTreeSet::from(["BatchGetImage", "GetDownloadUrlForLayer"]));
    let issued = kind(&lines, "issued_by");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["event"]["event_name"], "AssumeRole");
    assert_eq!(kind(&lines, "event").len(), 10, "9 uses and the AssumeRole that minted the key");

    // A time window keeps only the legitimate Lambda calls: no finding then.
    let (code, lines, _) = trace(FLAWS_KEY, &["--until", "2018-11-28T23:04:00Z", &path_str(&data)]);
    assert_eq!(code, 0, "CreateLogStream is not high-risk and nothing was reused");
    let summary = &kind(&lines, "summary")[0];
    assert_eq!(summary["calls"], 5);
    assert_eq!(summary["alerts"], 0);
}

#[test]
fn trace_text_output_names_every_section() {
    let data = shared_data().join("flaws2-cloudtrail");
    let mut c = ctguard(None);
    c.args(["trace", "--access-key", FLAWS_KEY, &path_str(&data)]);
    let (_, out, err) = run(c);
    for section in [
        "LAST USE",
        "SOURCES",
        "ALLOWLIST POLICY STATEMENT",
        "HIGH-RISK OPERATIONS (2)",
        "ISSUED BY",
        "TIMELINE",
        "REUSE ALERT",
    ] {
        assert!(out.contains(section), "{section} missing:\n{out}");
    }
    assert!(err.contains("without the key"), "{err}");
}

/// (technique file, event name that must be reported as high-risk)
const STRATUS: &[(&str, &str)] = &[
    ("aws.credential-access.ec2-get-password-data", "GetPasswordData"),
    ("aws.credential-access.ec2-steal-instance-credentials", "SendCommand"),
    ("aws.credential-access.secretsmanager-batch-retrieve-secrets", "BatchGetSecretValue"),
    ("aws.credential-access.secretsmanager-retrieve-secrets", "GetSecretValue"),
    ("aws.credential-access.ssm-retrieve-securestring-parameters", "GetParameters"),
    ("aws.defense-evasion.cloudtrail-delete", "DeleteTrail"),
    ("aws.defense-evasion.cloudtrail-event-selectors", "PutEventSelectors"),
    ("aws.defense-evasion.cloudtrail-stop", "StopLogging"),
    ("aws.defense-evasion.dns-delete-logs", "DeleteResolverQueryLogConfig"),
    ("aws.defense-evasion.organizations-leave", "LeaveOrganization"),
    ("aws.defense-evasion.vpc-remove-flow-logs", "DeleteFlowLogs"),
    ("aws.discovery.ec2-download-user-data", "DescribeInstanceAttribute"),
    ("aws.execution.ec2-launch-unusual-instances", "RunInstances"),
    ("aws.execution.ec2-user-data", "ModifyInstanceAttribute"),
    ("aws.execution.ssm-send-command", "SendCommand"),
    ("aws.execution.ssm-start-session", "StartSession"),
    ("aws.exfiltration.ec2-security-group-open-port-22-ingress", "AuthorizeSecurityGroupIngress"),
    ("aws.exfiltration.ec2-share-ami", "ModifyImageAttribute"),
    ("aws.exfiltration.ec2-share-ebs-snapshot", "ModifySnapshotAttribute"),
    ("aws.exfiltration.rds-share-snapshot", "ModifyDBSnapshotAttribute"),
    ("aws.impact.bedrock-invoke-model", "InvokeModel"),
    ("aws.lateral-movement.ec2-instance-connect", "SendSSHPublicKey"),
    ("aws.lateral-movement.ec2-serial-console-send-ssh-public-key", "SendSerialConsoleSSHPublicKey"),
    ("aws.persistence.iam-backdoor-role", "UpdateAssumeRolePolicy"),
    ("aws.persistence.iam-backdoor-user", "CreateAccessKey"),
    ("aws.persistence.iam-create-admin-user", "AttachUserPolicy"),
    ("aws.persistence.iam-create-backdoor-role", "CreateRole"),
    ("aws.persistence.iam-create-user-login-profile", "CreateLoginProfile"),
    ("aws.persistence.lambda-backdoor-function", "AddPermission20150331v2"),
    ("aws.persistence.lambda-layer-extension", "UpdateFunctionConfiguration20150331v2"),
    ("aws.persistence.lambda-overwrite-code", "UpdateFunctionCode20150331v2"),
    ("aws.persistence.rolesanywhere-create-trust-anchor", "CreateTrustAnchor"),
    ("aws.persistence.sts-federation-token", "GetFederationToken"),
    ("aws.privilege-escalation.iam-update-user-login-profile", "UpdateLoginProfile"),
];

#[test]
fn trace_reports_the_stratus_techniques_high_risk_operations() {
    let dir = shared_data().join("stratus-red-team-detonation-logs");
    for (technique, op) in STRATUS {
        let file = dir.join(format!("{technique}.json"));
        let events: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json array");
        let key = events
            .iter()
            .find(|e| e["eventName"] == *op)
            .and_then(|e| e["userIdentity"]["accessKeyId"].as_str())
            .unwrap_or_else(|| panic!("{technique}: no {op} with a key"))
            .to_string();
        let (code, lines, err) = trace(&key, &[&path_str(&file)]);
        assert_eq!(code, 1, "{technique}: {err}");
        let risky: Vec<&Value> = kind(&lines, "high_risk");
        let names: BTreeSet<&str> = risky.iter().filter_map(|e| e["event"]["event_name"].as_str()).collect();
        assert!(names.contains(op), "{technique}: {op} not in {names:?}");
        assert!(risky
            .iter()
            .all(|e| e["event"]["risk"]["category"].is_string() && e["event"]["risk"]["why"].is_string()));
        // Discovery calls are context, not high-risk.
        for benign in [
            "DescribeInstanceInformation",
            "GetCommandInvocation",
            "DescribeInstances",
            "ListSecrets",
            "GetCallerIdentity",
        ] {
            assert!(!names.contains(benign), "{technique}: {benign} flagged");
        }
    }
}

#[test]
fn otrf_jsonl_without_event_time_is_timed_from_at_timestamp() {
    let file = shared_data().join("otrf-aws-cloud-breach-s3/ec2_proxy_s3_exfiltration_2020-09-14011940.json");
    let text = std::fs::read_to_string(&file).expect("read");
    let key = "ASIA5FLZVX4OPVKKVBMX";
    let mine: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["userIdentity"]["accessKeyId"] == key)
        .collect();
    assert!(mine.iter().all(|v| v.get("eventTime").is_none()), "the data set has no eventTime");
    let latest =
        mine.iter().filter_map(|v| v["@timestamp"].as_str().and_then(parse_rfc3339)).max().expect("timestamps");
    let (code, lines, err) = trace(key, &[&path_str(&file)]);
    assert!(code == 0 || code == 1, "{err}");
    let summary = &kind(&lines, "summary")[0];
    assert_eq!(summary["calls"].as_u64(), Some(mine.len() as u64), "{err}");
    assert_eq!(summary["last_use"], format_rfc3339(latest));
    assert!(kind(&lines, "event").iter().all(|e| e["event"]["time"].is_string()), "every event placed in time");
    // The whole file scans without a crash; the stolen key is only seen from one (anonymised)
    // address, so there is nothing to alert on.
    let (code, alerts, err) = scan(&[&path_str(&file)]);
    assert_eq!(code, 0, "{err}");
    assert!(alerts.is_empty());
    assert!(err.contains("103 records"), "{err}");
}

#[test]
fn panther_fixtures_odd_shapes_never_crash() {
    let file = shared_data().join("panther-cloudtrail-rule-tests/events.jsonl");
    let (code, _, err) = scan(&[&path_str(&file)]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(err.contains("464 records"), "{err}");
    assert!(err.contains("uses from non-IP sources"), "odd sourceIPAddress values are counted: {err}");
    // Every string key traces, and the count of calls is the count of distinct events with it.
    let text = std::fs::read_to_string(&file).expect("read");
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if let Some(k) = v["userIdentity"]["accessKeyId"].as_str().map(str::trim).filter(|k| !k.is_empty()) {
            let id = v["eventID"].as_str().map(str::to_string).unwrap_or_else(|| format!("line{i}"));
            by_key.entry(k.to_string()).or_default().insert(id);
        }
    }
    let mut traced = 0;
    for (key, ids) in &by_key {
        if !(12..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            // ctguard refuses it as a usage error, which is tested elsewhere.
            continue;
        }
        let (code, lines, err) = trace(key, &[&path_str(&file)]);
        assert!(code == 0 || code == 1, "{key}: {err}");
        assert_eq!(kind(&lines, "summary")[0]["calls"].as_u64(), Some(ids.len() as u64), "{key}");
        traced += 1;
    }
    assert!(traced >= 30, "only {traced} keys traced");
}

/// ActionTrail events as the documentation shows them (an assumed-role STS token, a RAM user),
/// delivered to OSS as a JSON array and exported from SLS with the event as a JSON string.
fn actiontrail_fixture(dir: &Path) {
    let ev = |id: &str, time: &str, ip: &str, service: &str, name: &str| {
        json!({"eventId": id, "eventVersion": 1, "eventType": "ApiCall", "eventName": name,
            "eventSource": format!("{service}.aliyuncs.com"), "serviceName": service, "acsRegion": "cn-hangzhou",
            "eventTime": time, "sourceIpAddress": ip, "requestId": id, "apiVersion": "2014-05-26",
            "userAgent": "AlibabaCloud (Linux; amd64) Python/3.10.12 Core/2.13.36 python-requests/2.31.0",
            "userIdentity": {"type": "assumed-role", "accountId": "1594986938260000", "principalId": "343597926003930000:app",
                "accessKeyId": "STS.NUQNP4PiGyckMsNiGELCsABCD", "userName": "app-role:app",
                "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": "2024-02-01T07:59:00Z"}}},
            "requestParameters": {"RegionId": "cn-hangzhou"}, "errorCode": "", "errorMessage": ""})
    };
    let oss = json!([
        ev("E1", "2024-02-01T08:00:00Z", "47.96.1.20", "ecs", "DescribeInstances"),
        ev("E2", "2024-02-01T08:05:00Z", "47.96.1.20", "oss", "GetBucketInfo"),
        ev("E3", "2024-02-01T09:00:00Z", "185.220.101.4", "ram", "CreateAccessKey"),
    ]);
    std::fs::write(dir.join("actiontrail-oss.json"), oss.to_string()).expect("write");
    let sls_event = json!({"eventId": "E9", "eventVersion": 1, "eventType": "ApiCall", "eventName": "StopLogging",
        "eventSource": "actiontrail.cn-hangzhou.aliyuncs.com", "serviceName": "Actiontrail", "acsRegion": "cn-hangzhou",
        "eventTime": "2024-02-01T09:30:00Z", "sourceIpAddress": "185.220.101.4",
        "userIdentity": {"type": "ram-user", "accountId": "1594986938260000", "userName": "ops", "accessKeyId": "LTAI5tQWERTYUIOPASDF"}});
    let row = json!({"__topic__": "actiontrail_event", "__source__": "actiontrail", "event": sls_event.to_string()});
    std::fs::write(dir.join("actiontrail-sls.jsonl"), format!("{row}\n")).expect("write");
}

#[test]
fn actiontrail_events_are_scanned_and_traced() {
    let dir = tempdir("actiontrail");
    actiontrail_fixture(&dir);
    let (code, alerts, err) = scan(&[&path_str(&dir)]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["access_key_id"], "STS.NUQNP4PiGyckMsNiGELCsABCD");
    assert_eq!(alerts[0]["seen_identity"], "ip:185.220.101.4");
    assert_eq!(alerts[0]["expected"][0]["identity"], "ip:47.96.1.20");
    assert_eq!(alerts[0]["role_arn"], "acs:ram::1594986938260000:role/app-role");
    assert!(err.contains("4 ActionTrail events"), "{err}");

    let (_, lines, _) = trace("STS.NUQNP4PiGyckMsNiGELCsABCD", &[&path_str(&dir)]);
    let last = &kind(&lines, "last_use")[0]["event"];
    assert_eq!((last["event_name"].as_str(), last["region"].as_str()), (Some("CreateAccessKey"), Some("cn-hangzhou")));
    let risky: Vec<&str> = kind(&lines, "high_risk").iter().filter_map(|e| e["event"]["event_name"].as_str()).collect();
    assert_eq!(risky, ["CreateAccessKey"]);
    // The long-term RAM user key from the SLS export, nested as a JSON string.
    let (code, lines, _) = trace("LTAI5tQWERTYUIOPASDF", &[&path_str(&dir)]);
    assert_eq!(code, 1);
    assert_eq!(kind(&lines, "high_risk")[0]["event"]["event_name"], "StopLogging");
    assert_eq!(kind(&lines, "last_use")[0]["event"]["principal_arn"], "acs:ram::1594986938260000:user/ops");
    let _ = std::fs::remove_dir_all(&dir);
}

fn epoch(t: &str) -> i64 {
    parse_rfc3339(t).expect("time") / 1000
}

/// A NAT gateway created in the logs, a key used through it, and flow logs of both views: the
/// NAT interface with `pkt-*` fields (header line, plain text) and host interfaces in the
/// default v2 format (gzip).
fn nat_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let trail = dir.join("trail");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&trail).expect("mkdir");
    std::fs::create_dir_all(&flows).expect("mkdir");
    let key = "ASIAQNATQNATQNATQNAT";
    let call = |t: &str, source: &str, name: &str| {
        json!({"eventVersion": "1.09", "eventTime": t, "eventType": "AwsApiCall", "eventSource": source, "eventName": name,
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7", "userAgent": "Boto3/1.34.0", "eventID": format!("ev-{t}"),
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "AssumedRole", "accessKeyId": key, "arn": "arn:aws:sts::111122223333:assumed-role/batch/job",
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111122223333:role/batch"}}}})
    };
    let create = json!({"eventVersion": "1.09", "eventTime": "2024-06-01T09:00:00Z", "eventType": "AwsApiCall",
        "eventSource": "ec2.amazonaws.com", "eventName": "CreateNatGateway", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10", "eventID": "nat-create", "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAADMINADMINADMIN1"},
        "requestParameters": {"CreateNatGatewayRequest": {"SubnetId": "subnet-0pub", "AllocationId": "eipalloc-0nat"}},
        "responseElements": {"CreateNatGatewayResponse": {"natGateway": {"natGatewayId": "nat-0abc", "subnetId": "subnet-0pub",
            "natGatewayAddressSet": {"item": {"allocationId": "eipalloc-0nat", "networkInterfaceId": "eni-0natgw00000000001",
                "privateIp": "10.0.0.220", "publicIp": "198.51.100.7"}}}}}});
    let records = json!({"Records": [call("2024-06-01T10:20:00Z", "s3.amazonaws.com", "ListObjects"), create,
        call("2024-06-01T10:00:05Z", "s3.amazonaws.com", "ListBuckets")]});
    std::fs::write(trail.join("111122223333_CloudTrail_us-east-1_20240601T1025Z_nat.json"), records.to_string())
        .expect("write");

    let t = epoch("2024-06-01T10:00:00Z");
    let nat_lines = [
        "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status pkt-srcaddr pkt-dstaddr".to_string(),
        // The host behind the first call: through the NAT to an S3 address.
        format!("5 eni-0natgw00000000001 10.0.1.5 10.0.0.220 49152 443 6 12 5200 {} {} ACCEPT OK 10.0.1.5 52.216.10.20", t - 20, t + 40),
        // The NAT's own leg out to S3 (its private address as source): not a host.
        format!("5 eni-0natgw00000000001 10.0.0.220 52.216.10.20 49152 443 6 12 5200 {} {} ACCEPT OK 10.0.0.220 52.216.10.20", t - 20, t + 40),
        // Another host, same NAT, same time, but to GitHub: not the AWS call.
        format!("5 eni-0natgw00000000001 10.0.1.7 10.0.0.220 40000 443 6 9 3000 {} {} ACCEPT OK 10.0.1.7 140.82.112.3", t - 20, t + 40),
        // A host talking to S3 through the NAT an hour later: outside every call's window.
        format!("5 eni-0natgw00000000001 10.0.1.9 10.0.0.220 40001 443 6 9 3000 {} {} ACCEPT OK 10.0.1.9 52.216.10.20", t + 3600, t + 3660),
        format!("5 eni-0natgw00000000001 - - - - - - - {} {} - NODATA - -", t, t + 60),
    ];
    std::fs::write(
        flows.join("111122223333_vpcflowlogs_us-east-1_fl-0nat_20240601T1010Z_a1.log"),
        nat_lines.join("\n") + "\n",
    )
    .expect("write");
    let t2 = epoch("2024-06-01T10:20:00Z");
    let host_lines = [
        format!(
            "2 111122223333 eni-0host00000000044 10.0.2.44 52.216.99.1 50000 443 6 30 90000 {} {} ACCEPT OK",
            t2 - 30,
            t2 + 30
        ),
        format!(
            "2 111122223333 eni-0host00000000045 10.0.2.45 10.0.2.1 50001 53 17 2 120 {} {} ACCEPT OK",
            t2 - 30,
            t2 + 30
        ),
    ];
    let plain = flows.join("111122223333_vpcflowlogs_us-east-1_fl-0hosts_20240601T1030Z_b2.log");
    std::fs::write(&plain, host_lines.join("\n") + "\n").expect("write");
    let st = Command::new("gzip").arg("-f").arg(&plain).status().expect("gzip");
    assert!(st.success());
    (trail, flows)
}

#[test]
fn trace_names_the_private_hosts_behind_a_nat_gateway() {
    let dir = tempdir("nat");
    let (trail, flows) = nat_fixture(&dir);
    let key = "ASIAQNATQNATQNATQNAT";
    let (code, lines, err) =
        trace(key, &[&path_str(&trail), "--flow-logs", &path_str(&flows), "--endpoint-cidr", "52.216.0.0/15"]);
    assert_eq!(code, 0, "no reuse, no risky call: {err}");
    let hosts: Vec<(String, String, String)> = kind(&lines, "nat_host")
        .iter()
        .map(|h| {
            (
                h["call_time"].as_str().unwrap_or("").to_string(),
                h["candidate"]["host"].as_str().unwrap_or("").to_string(),
                h["candidate"]["evidence"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("2024-06-01T10:00:05Z".to_string(), "10.0.1.5".to_string(), "nat-to-endpoint".to_string()),
            ("2024-06-01T10:20:00Z".to_string(), "10.0.2.44".to_string(), "host-to-endpoint".to_string()),
        ],
        "{err}"
    );
    assert!(err.contains("flow logs: 2 files") && err.contains("1 empty"), "{err}");

    // Without endpoint ranges only the NAT's own interface counts, and without a NAT mapping
    // (no CreateNatGateway in the logs read, no --nat) nothing is attributed.
    let (_, lines, _) = trace(key, &[&path_str(&trail), "--flow-logs", &path_str(&flows)]);
    let hosts: BTreeSet<&str> =
        kind(&lines, "nat_host").iter().filter_map(|h| h["candidate"]["host"].as_str()).collect();
    assert_eq!(hosts, BTreeSet::from(["10.0.1.5", "10.0.1.7"]));
    let only_calls = dir.join("calls-only.json");
    let text =
        std::fs::read_to_string(trail.join("111122223333_CloudTrail_us-east-1_20240601T1025Z_nat.json")).expect("read");
    let mut v: Value = serde_json::from_str(&text).expect("json");
    v["Records"].as_array_mut().expect("records").retain(|r| r["eventName"] != "CreateNatGateway");
    std::fs::write(&only_calls, v.to_string()).expect("write");
    let mut c = ctguard(None);
    c.args(["trace", "--access-key", key, &path_str(&only_calls), "--flow-logs", &path_str(&flows)]);
    let (_, out, _) = run(c);
    assert!(out.contains("No call came from a known NAT gateway address"), "{out}");
    let (_, lines, _) = trace(
        key,
        &[&path_str(&only_calls), "--flow-logs", &path_str(&flows), "--nat", "198.51.100.7=eni-0natgw00000000001"],
    );
    assert_eq!(kind(&lines, "nat_host").len(), 2, "the ENI alone names the NAT's side");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["trace", "--access-key", "x'; rm", "."],
        vec!["trace", "--access-key", "ASIAZQNB3KHGIGYQXVVG", "--nat", "10.0.0.1", "."],
        vec!["trace", "--access-key", "ASIAZQNB3KHGIGYQXVVG", "--since", "tomorrow"],
        vec!["scan", "/nonexistent/ctguard/logs"],
        vec!["scan", "--since", "2024-02-02", "--until", "2024-02-01"],
        vec!["keys", "--yes"],
    ] {
        let mut c = ctguard(None);
        c.args(&args);
        let (code, _, err) = run(c);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty());
    }
    // A directory with nothing readable is a usage error too, not a silent success.
    let dir = tempdir("empty");
    std::fs::write(dir.join("README.md"), "hi").expect("write");
    let mut c = ctguard(None);
    c.args(["scan", &path_str(&dir)]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no log files found"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_files_make_a_partial_result() {
    let dir = tempdir("partial");
    std::fs::write(dir.join("broken.json.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).expect("write");
    std::fs::copy(
        shared_data().join("stratus-red-team-detonation-logs/aws.defense-evasion.cloudtrail-stop.json"),
        dir.join("ok.json"),
    )
    .expect("copy");
    let (code, alerts, err) = scan(&[&path_str(&dir)]);
    assert_eq!(code, 3, "{err}");
    assert!(alerts.is_empty());
    assert!(err.contains("broken.json.gz"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn s3_client(moto: &Moto) -> aws_sdk_s3::Client {
    let cfg = moto.config("us-east-1");
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&cfg).force_path_style(true).build())
}

#[tokio::test]
async fn scan_and_trace_read_s3_with_date_pruning() {
    let moto = Moto::start();
    let s3 = s3_client(&moto);
    s3.create_bucket().bucket("trail-logs").send().await.expect("bucket");
    let root = shared_data().join("flaws2-cloudtrail");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().to_string_lossy().ends_with(".json.gz") {
                files.push(e.path());
            }
        }
    }
    assert_eq!(files.len(), 8);
    for f in &files {
        let key = f.strip_prefix(&root).expect("prefix").to_string_lossy().into_owned();
        let body = std::fs::read(f).expect("read");
        s3.put_object().bucket("trail-logs").key(format!("org/{key}")).body(body.into()).send().await.expect("put");
    }
    // An older day with a copy of one file, and a digest folder that is never read.
    let old = "org/AWSLogs/653711331788/CloudTrail/us-east-1/2018/11/20/653711331788_CloudTrail_us-east-1_20181120T0000Z_old.json.gz";
    s3.put_object()
        .bucket("trail-logs")
        .key(old)
        .body(std::fs::read(&files[0]).expect("read").into())
        .send()
        .await
        .expect("put");
    let digest = "org/AWSLogs/653711331788/CloudTrail-Digest/us-east-1/2018/11/28/digest.json.gz";
    s3.put_object().bucket("trail-logs").key(digest).body(b"{}".to_vec().into()).send().await.expect("put");

    let endpoint = moto.endpoint();
    let mut c = ctguard(Some(&endpoint));
    c.args(["--json", "scan", "s3://trail-logs/org/"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{err}\n{}", moto.log());
    let alerts: Vec<Value> = json_lines(&out).into_iter().filter(|l| l["kind"] != "summary").collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["seen_identity"], "ip:104.102.221.250");
    assert!(err.contains("9 files"), "{err}");

    let mut c = ctguard(Some(&endpoint));
    c.args(["--json", "scan", "--since", "2018-11-28T23:00:00Z", "s3://trail-logs/org/"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("7 files"), "the 20th and the 22:35 delivery are pruned: {err}");
    assert!(err.contains("2 files/folders pruned by date"), "{err}");

    let mut c = ctguard(Some(&endpoint));
    c.args(["--json", "trace", "--access-key", FLAWS_KEY, "--since", "2018-11-28", "s3://trail-logs/org/AWSLogs/"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 1, "{err}");
    let lines = json_lines(&out);
    assert_eq!(kind(&lines, "last_use")[0]["event"]["time"], "2018-11-28T23:06:33Z");
    assert_eq!(kind(&lines, "summary")[0]["calls"], 9);

    let mut c = ctguard(Some(&endpoint));
    c.args(["scan", "s3://no-such-bucket/x"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
}

async fn iam_keys(iam: &aws_sdk_iam::Client, user: &str, n: usize) -> Vec<(String, String)> {
    iam.create_user().user_name(user).send().await.expect("user");
    let mut out = Vec::new();
    for _ in 0..n {
        let k = iam.create_access_key().user_name(user).send().await.expect("key");
        let k = k.access_key.expect("access key");
        out.push((k.access_key_id, k.secret_access_key));
    }
    out
}

fn ms(dt: &aws_sdk_iam::primitives::DateTime) -> i64 {
    dt.secs() * 1000 + i64::from(dt.subsec_nanos() / 1_000_000)
}

fn keys_rows(endpoint: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut c = ctguard(Some(endpoint));
    c.args(["--json", "keys"]).args(args);
    let (code, out, err) = run(c);
    (code, json_lines(&out), err)
}

fn by_key(rows: &[Value]) -> BTreeMap<String, Value> {
    rows.iter().map(|r| (r["access_key_id"].as_str().unwrap_or("").to_string(), r.clone())).collect()
}

#[tokio::test]
async fn keys_lists_last_use_and_disables_idle_keys() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let iam = aws_sdk_iam::Client::new(&moto.config("us-east-1"));
    let bob = iam_keys(&iam, "bob", 1).await;
    let carol = iam_keys(&iam, "carol", 2).await;
    let alice = iam_keys(&iam, "alice", 1).await;
    // Let the clock move on, then use alice's key and carol's first key: moto stamps
    // LastUsedDate with the time of any request signed with a key.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for (id, secret) in [&alice[0], &carol[0]] {
        let cfg = sdk_config(&endpoint, "us-east-1", id, secret, None);
        aws_sdk_sts::Client::new(&cfg).get_caller_identity().send().await.expect("signed call");
    }
    let last = |id: String| {
        let iam = iam.clone();
        async move {
            let out = iam.get_access_key_last_used().access_key_id(id).send().await.expect("last used");
            out.access_key_last_used.and_then(|l| l.last_used_date).map(|d| ms(&d))
        }
    };
    let used_at =
        last(alice[0].0.clone()).await.expect("alice used").min(last(carol[0].0.clone()).await.expect("carol used"));
    assert!(last(bob[0].0.clone()).await.is_none(), "bob's key was never used");
    assert!(last(carol[1].0.clone()).await.is_none(), "carol's second key was never used");
    let mut never_created = Vec::new();
    for user in ["bob", "carol"] {
        let listed = iam.list_access_keys().user_name(user).send().await.expect("list");
        for m in listed.access_key_metadata {
            if Some(m.access_key_id.as_deref().unwrap_or("")) != Some(carol[0].0.as_str()) {
                never_created.push(m.create_date.as_ref().map(ms).expect("create date"));
            }
        }
    }
    let created = never_created.into_iter().max().expect("dates");
    // One day after the never-used keys were created, but less than one day after the uses.
    let as_of = format_rfc3339(created + 86_400_000 + 1000);
    assert!(parse_rfc3339(&as_of).expect("t") < used_at + 86_400_000, "clock: {created} {used_at}");

    let (code, rows, err) = keys_rows(&endpoint, &["--idle-days", "1", "--as-of", &as_of]);
    assert_eq!(code, 1, "idle keys are findings: {err}");
    let rows = by_key(&rows);
    assert_eq!(rows.len(), 4);
    let idle: BTreeSet<&str> = rows.iter().filter(|(_, r)| r["idle"] == true).map(|(k, _)| k.as_str()).collect();
    assert_eq!(idle, BTreeSet::from([bob[0].0.as_str(), carol[1].0.as_str()]), "{rows:#?}");
    assert!(rows[&alice[0].0]["last_used"].is_string());
    assert_eq!(rows[&alice[0].0]["last_used_service"], "sts");
    assert!(rows[&bob[0].0]["last_used"].is_null());
    assert_eq!(rows[&bob[0].0]["idle_days"], 1);
    let text = serde_json::to_string(&rows).expect("json");
    for (_, secret) in bob.iter().chain(&carol).chain(&alice) {
        assert!(!text.contains(secret.as_str()), "a secret was printed");
    }

    // --disable alone is a plan: nothing changes.
    let (code, rows, err) = keys_rows(&endpoint, &["--idle-days", "1", "--as-of", &as_of, "--disable"]);
    assert_eq!(code, 1);
    assert_eq!(rows.iter().filter(|r| r["action"] == "would-disable").count(), 2);
    assert!(err.contains("would be deactivated"), "{err}");
    let status = |user: &'static str| {
        let iam = iam.clone();
        async move {
            let out = iam.list_access_keys().user_name(user).send().await.expect("list");
            out.access_key_metadata
                .into_iter()
                .map(|m| {
                    (m.access_key_id.unwrap_or_default(), m.status.map(|s| s.as_str().to_string()).unwrap_or_default())
                })
                .collect::<BTreeMap<_, _>>()
        }
    };
    assert_eq!(status("bob").await[&bob[0].0], "Active");

    // Deactivating as of a future time is refused (it would disable keys in use); the
    // deactivation itself is covered with a fake directory in forensics/src/keys.rs, since no
    // key here can be a day old by the real clock.
    let (code, _, err) = keys_rows(&endpoint, &["--idle-days", "1", "--as-of", &as_of, "--disable", "--yes"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in the future"), "{err}");
    assert_eq!(status("bob").await[&bob[0].0], "Active", "nothing was deactivated");
    assert_eq!(status("alice").await[&alice[0].0], "Active");

    let (code, _, _) = keys_rows(&endpoint, &[]);
    assert_eq!(code, 0);
    // The human table.
    let mut c = ctguard(Some(&endpoint));
    c.args(["keys", "--idle-days", "0"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 1);
    assert!(out.contains("ACCESS KEY") && out.contains("never") && out.contains("IDLE"), "{out}");
}

#[tokio::test]
async fn keys_org_wide_through_the_member_role() {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let cfg = moto.config("us-east-1");
    let org = aws_sdk_organizations::Client::new(&cfg);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("organization");
    let created =
        org.create_account().email("member@example.com").account_name("member").send().await.expect("account");
    let member = created.create_account_status.and_then(|s| s.account_id).expect("member account id");
    let creds = aws_sdk_sts::Client::new(&cfg)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{member}:role/OrganizationAccountAccessRole"))
        .role_session_name("fixture")
        .send()
        .await
        .expect("assume role")
        .credentials
        .expect("credentials");
    let member_cfg =
        sdk_config(&endpoint, "us-east-1", &creds.access_key_id, &creds.secret_access_key, Some(&creds.session_token));
    let member_iam = aws_sdk_iam::Client::new(&member_cfg);
    let member_keys = iam_keys(&member_iam, "member-user", 1).await;
    let mgmt_keys = iam_keys(&aws_sdk_iam::Client::new(&cfg), "mgmt-user", 1).await;

    let (code, rows, err) = keys_rows(&endpoint, &["--org", "--idle-days", "0"]);
    assert_eq!(code, 1, "{err}");
    let rows = by_key(&rows);
    let m = &rows[&member_keys[0].0];
    assert_eq!((m["account"].as_str(), m["user"].as_str()), (Some(member.as_str()), Some("member-user")), "{rows:#?}");
    assert!(rows.contains_key(&mgmt_keys[0].0));
    assert!(err.contains("2 accounts"), "{err}");
    // A role that does not exist in the member account makes that account fail, not the run.
    let (code, _, err) = keys_rows(&endpoint, &["--org", "--idle-days", "0", "--assume-role-name", "NoSuchRole"]);
    assert!(code == 1 || code == 3, "{err}");
}
