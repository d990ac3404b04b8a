//! From alert to action, on the emulated account: an alert becomes a Security Hub finding
//! (once, however often its event is delivered), a record `contain --alert ID` can find, and
//! messages every kind of subscriber can read; the detector's own alarms become health notices
//! on the same topic.
//!
//! Emulator notes: moto evaluates no alarm metrics, so the test sets the alarm's state
//! (`SetAlarmState`, which AWS offers for exactly this kind of test); the state change reaches
//! EventBridge through `scripts/moto_lambda.py`, which emits the "CloudWatch Alarm State Change"
//! event CloudWatch would. moto does not require Security Hub to be enabled before an import
//! (AWS answers InvalidAccessException): the test enables it anyway, as a user must.

use std::time::Duration;

use ctguard_tests::*;
use serde_json::{json, Value};

const ACCOUNT: &str = "210987654321";
const KEY: &str = "ASIAQ7EXAMPLEKEYABCD";

fn call(ip: &str, time: &str, id: &str) -> Value {
    json!({"eventVersion": "1.08", "eventID": id, "eventTime": time, "eventType": "AwsApiCall",
           "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
           "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0", "recipientAccountId": ACCOUNT, "readOnly": true,
           "userIdentity": {"type": "AssumedRole", "accessKeyId": KEY, "accountId": ACCOUNT,
               "principalId": "AROAEXAMPLE:deploy", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/deploy"),
               "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/app")},
                                  "attributes": {"creationDate": "2024-05-01T09:55:00Z"}}}})
}

fn findings(emu: &Emulator, creds: &(String, String, String)) -> Vec<Value> {
    let got = boto3(
        &emu.endpoint,
        creds,
        "us-east-1",
        "print(json.dumps(client('securityhub').get_findings(MaxResults=100)['Findings'], default=str))",
    );
    got.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_is_one_finding_a_record_and_readable_messages_and_alarms_are_health_notices() {
    let emu = Emulator::start();
    let creds = account_credentials(&emu.endpoint, ACCOUNT).await;
    let cfg = sdk_config(&emu.endpoint, "us-east-1", &creds.0, &creds.1, Some(&creds.2));
    logging_trail(&cfg).await;
    boto3(&emu.endpoint, &creds, "us-east-1", "client('securityhub').enable_security_hub(); print('{}')");
    install_ctguard_with(&emu.endpoint, Some(&creds), &["us-east-1"], &["--security-hub"]);
    let product = format!("arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default");
    assert_eq!(function_env(&cfg).await.get("CTGUARD_SECURITY_HUB_PRODUCT"), Some(&product));
    // A re-run that does not mention it keeps it on.
    install_ctguard(&emu.endpoint, Some(&creds), &["us-east-1"]);
    assert_eq!(
        function_env(&cfg).await.get("CTGUARD_SECURITY_HUB_PRODUCT"),
        Some(&product),
        "a re-run must not undo it"
    );

    let topic = format!("arn:aws:sns:us-east-1:{ACCOUNT}:ctguard-alerts");
    let queue = subscribe_queue(&cfg, &topic, "soc").await;
    let first = call("203.0.113.10", "2024-05-01T10:00:00Z", "e-1");
    let thief = call("198.51.100.66", "2024-05-01T10:03:00Z", "e-2");
    let sent = emu.deliver_cloudtrail(&[first.clone(), thief.clone()], None, None);
    assert_eq!(sent["delivered"], 2, "{sent}");
    assert!(emu.drain(Duration::from_secs(120)), "{}", emu.log());
    // The same events delivered again (EventBridge delivers at least once).
    emu.deliver_cloudtrail(&[first, thief], None, None);
    assert!(emu.drain(Duration::from_secs(120)), "{}", emu.log());

    let messages = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 1, "one alert: {messages:#?}\n{}", emu.log());
    let alert = alert_of(&messages[0]);
    assert_eq!(alert["access_key_id"], KEY);
    assert_eq!(alert["seen_identity"], "ip:198.51.100.66");
    let id = alert["id"].as_str().expect("alert id").to_string();

    // Security Hub: exactly one finding, the alert's, with what a responder needs.
    let all = findings(&emu, &creds);
    assert_eq!(all.len(), 1, "{all:#?}\n{}", emu.log());
    let f = &all[0];
    assert_eq!(f["Id"], id.as_str());
    assert_eq!(f["ProductArn"], product.as_str());
    assert_eq!(f["AwsAccountId"], ACCOUNT);
    assert_eq!(f["Severity"]["Label"], alert["severity"]);
    assert_eq!(f["Types"][0], "TTPs/Credential Access");
    assert_eq!(f["CreatedAt"], "2024-05-01T10:03:00Z");
    assert_eq!(f["ProductFields"]["ctguard/seen_identity"], "ip:198.51.100.66");
    assert_eq!(f["ProductFields"]["ctguard/expected_identities"], "ip:203.0.113.10");
    assert_eq!(f["Network"]["SourceIpV4"], "198.51.100.66");
    let resources: Vec<&str> =
        f["Resources"].as_array().expect("resources").iter().filter_map(|r| r["Type"].as_str()).collect();
    assert!(resources.contains(&"AwsIamRole") && resources.contains(&"AwsIamAccessKey"), "{resources:?}");
    assert!(f["Remediation"]["Recommendation"]["Text"].as_str().unwrap_or("").contains("ctguard contain"));

    // The alert's record, for `contain --alert ID`.
    let (recorded, item) = alert_record(&cfg, &id).await;
    assert_eq!(recorded, alert);
    assert!(item["ttl"].as_n().expect("ttl").parse::<i64>().expect("number") > 0);

    // The same alert handled again after a publish whose acknowledgement was lost (the claim
    // left unconfirmed and its lease over, as a killed invocation leaves it): the retry
    // re-imports, and Security Hub still holds one finding for the alert, updated.
    // (Written here as the test's own principal: AWS would refuse it, the state table's policy
    // lets only the detector roles write items, and moto does not evaluate resource policies.)
    aws_sdk_dynamodb::Client::new(&cfg)
        .update_item()
        .table_name("ctguard-state")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("A#{KEY}#ip:198.51.100.66")))
        .update_expression("SET sent = :f, claimed_at = :zero")
        .expression_attribute_values(":f", aws_sdk_dynamodb::types::AttributeValue::Bool(false))
        .expression_attribute_values(":zero", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .send()
        .await
        .expect("reset the claim");
    // A killed invocation's environment is gone with it (and its in-memory cache): a
    // configuration change makes the emulator start a fresh one, as Lambda does.
    let mut vars = function_env(&cfg).await;
    vars.insert("CTGUARD_TEST_FRESH_ENVIRONMENT".into(), "1".into());
    aws_sdk_lambda::Client::new(&cfg)
        .update_function_configuration()
        .function_name(FUNCTION_NAME)
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await
        .expect("update the function's configuration");
    std::thread::sleep(Duration::from_millis(1100));
    emu.deliver_cloudtrail(&[call("198.51.100.66", "2024-05-01T10:03:00Z", "e-2")], None, None);
    assert!(emu.drain(Duration::from_secs(120)), "{}", emu.log());
    let again = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(again.len(), 1, "the unconfirmed alert is published again (at least once): {again:#?}");
    assert_eq!(alert_of(&again[0])["id"], id.as_str());
    let all = findings(&emu, &creds);
    assert_eq!(all.len(), 1, "re-imported, not duplicated: {all:#?}");
    assert!(
        all[0]["UpdatedAt"].as_str() > f["UpdatedAt"].as_str(),
        "updated: {} then {}",
        f["UpdatedAt"],
        all[0]["UpdatedAt"]
    );

    // The detector's health: the DLQ alarm fires, the subscriber is told, as a notice, not an alert.
    let alarms = boto3(
        &emu.endpoint,
        &creds,
        "us-east-1",
        "print(json.dumps(sorted(a['AlarmName'] for a in client('cloudwatch').describe_alarms(AlarmNamePrefix='ctguard-')['MetricAlarms'])))",
    );
    assert_eq!(alarms, json!(["ctguard-detector-dlq", "ctguard-detector-errors", "ctguard-detector-side-effects"]));
    boto3(
        &emu.endpoint,
        &creds,
        "us-east-1",
        "client('cloudwatch').set_alarm_state(AlarmName='ctguard-detector-dlq', StateValue='ALARM', \
         StateReason='Threshold Crossed: 1 datapoint [2.0] was greater than the threshold (0.0).'); print('{}')",
    );
    assert!(emu.drain(Duration::from_secs(60)), "{}", emu.log());
    let notices = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(notices.len(), 1, "{notices:#?}\n{}", emu.log());
    let envelope: Value = serde_json::from_str(notices[0].body().unwrap_or("")).expect("SNS envelope");
    assert_eq!(envelope["MessageAttributes"]["kind"]["Value"], "health", "{envelope}");
    assert!(envelope["Subject"].as_str().unwrap_or("").starts_with("[ctguard health] ALARM ctguard-detector-dlq"));
    let notice: Value = serde_json::from_str(envelope["Message"].as_str().expect("message")).expect("notice JSON");
    assert_eq!(notice["schema"], "ctguard.health/v1");
    assert_eq!((notice["account"].as_str(), notice["region"].as_str()), (Some(ACCOUNT), Some("us-east-1")));
    assert!(notice["next_steps"].to_string().contains("ctguard redrive"), "{notice}");
    // Back to OK: one more notice; the same state again: none.
    let set = |state: &str| {
        boto3(
            &emu.endpoint,
            &creds,
            "us-east-1",
            &format!("client('cloudwatch').set_alarm_state(AlarmName='ctguard-detector-dlq', StateValue='{state}', StateReason='x'); print('{{}}')"),
        )
    };
    set("OK");
    set("OK");
    assert!(emu.drain(Duration::from_secs(60)));
    let more = receive_all(&cfg, &queue, Duration::from_secs(3)).await;
    assert_eq!(more.len(), 1, "{more:#?}");
    // Still exactly one finding.
    assert_eq!(findings(&emu, &creds).len(), 1);
}
