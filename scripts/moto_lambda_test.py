"""Tests of the local Lambda executor (scripts/moto_lambda.py), with small Python functions.

Run: .venv/bin/python scripts/moto_lambda_test.py   (scripts/test.sh does). The emulator runs
in-process on a free loopback port; each test uses its own account, so tests do not see each
other's resources.
"""

import io
import json
import os
import sys
import threading
import time
import unittest
import zipfile

os.environ["MOTO_LAMBDA_RETRY_SECONDS"] = "0.05"  # before the import: compressed retry waits

import boto3  # noqa: E402
import logging  # noqa: E402

import moto_lambda as ml  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.WARNING)
from moto.iam.models import get_account_id_from  # noqa: E402

# A custom runtime in a few lines: answers with its event and environment, or misbehaves on demand.
BOOTSTRAP = r"""#!/usr/bin/env python3
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
def post(path, body):
    urllib.request.urlopen(urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST"))
if os.environ.get("INIT_FAIL"):
    post("/init/error", {"errorType": "Init.Broken", "errorMessage": "cannot start"})
    sys.exit(1)
hoard = []
while True:
    r = urllib.request.urlopen(api + "/invocation/next")
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    ev = json.loads(r.read() or b"null")
    ask = ev if isinstance(ev, dict) else {}
    if ask.get("sleep"):
        time.sleep(ask["sleep"])
    if ask.get("exit"):
        sys.exit(ask["exit"])
    if ask.get("hoard_mb"):
        hoard.append(bytearray(ask["hoard_mb"] * 1024 * 1024))
        time.sleep(2)
    if ask.get("fail") or os.environ.get("ALWAYS_FAIL"):
        post("/invocation/" + rid + "/error", {"errorType": "Asked", "errorMessage": "failing as asked"})
        continue
    env = {k: os.environ.get(k) for k in ("AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "GREETING", "AWS_LAMBDA_RUNTIME_API")}
    post("/invocation/" + rid + "/response", {"event": ev, "env": env, "deadline": r.headers["Lambda-Runtime-Deadline-Ms"],
        "arn": r.headers["Lambda-Runtime-Invoked-Function-Arn"]})
"""


def code_zip(files=None, mode=0o755):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in (files or {"bootstrap": BOOTSTRAP}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16 if mode else 0
            z.writestr(info, text)
    return buf.getvalue()


EMU = None
_accounts = iter(range(100000000001, 100000000999))


def setUpModule():
    global EMU
    EMU = ml.Emulator().start()


def tearDownModule():
    EMU.stop()


class Account:
    """Clients acting in a fresh account (a role session there: moto maps it to the account)."""

    def __init__(self, region="us-east-1"):
        self.id = str(next(_accounts))
        base = dict(endpoint_url=EMU.endpoint, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
        c = boto3.client("sts", **base).assume_role(RoleArn=f"arn:aws:iam::{self.id}:role/admin", RoleSessionName="tests")["Credentials"]
        self.kw = dict(
            endpoint_url=EMU.endpoint,
            region_name=region,
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
        )
        self.region = region
        self.role = self.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]

    def client(self, service):
        return boto3.client(service, **self.kw)

    def function(self, name="f", code=None, env=None, timeout=3, memory=128, **extra):
        return self.client("lambda").create_function(
            FunctionName=name,
            Runtime="provided.al2023",
            Role=self.role,
            Handler="bootstrap",
            Code={"ZipFile": code or code_zip()},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": env or {}},
            **extra,
        )["FunctionArn"]

    def invoke(self, name, event, **kw):
        r = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)
        return r.get("FunctionError"), json.loads(r["Payload"].read() or b"null")

    def queue(self, name, policy=None):
        sqs = self.client("sqs")
        attrs = {"Policy": json.dumps(policy)} if policy else {}
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def messages(self, url, wait=1):
        got = self.client("sqs").receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, MessageAttributeNames=["All"]
        )
        return got.get("Messages", [])

    def trail(self):
        self.client("s3").create_bucket(Bucket=f"trail-{self.id}")
        ct = self.client("cloudtrail")
        ct.create_trail(Name="audit", S3BucketName=f"trail-{self.id}", IsMultiRegionTrail=True)
        ct.start_logging(Name="audit")

    def stats(self, name="f"):
        return ml.executor().stats.get(f"arn:aws:lambda:{self.region}:{self.id}:function:{name}", {})


class RuntimeApiTest(unittest.TestCase):
    def test_the_function_runs_with_its_configuration_as_its_role_in_its_account(self):
        a = Account("eu-west-1")
        arn = a.function(env={"GREETING": "hi"}, memory=192, timeout=7)
        err, out = a.invoke("f", {"n": 1})
        self.assertIsNone(err, out)
        self.assertEqual(out["event"], {"n": 1})
        env = out["env"]
        self.assertEqual(
            (env["AWS_REGION"], env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["GREETING"]),
            ("eu-west-1", "f", "192", "hi"),
        )
        self.assertTrue(env["AWS_ACCESS_KEY_ID"].startswith("ASIA") and env["AWS_SESSION_TOKEN"])
        self.assertEqual(get_account_id_from(env["AWS_ACCESS_KEY_ID"]), a.id, "the session acts in the function's account")
        self.assertEqual(env["AWS_ENDPOINT_URL"], EMU.endpoint)
        self.assertNotIn("://", env["AWS_LAMBDA_RUNTIME_API"], "host:port, as Lambda sets it")
        self.assertEqual(out["arn"], arn)
        self.assertAlmostEqual(int(out["deadline"]) / 1000, time.time() + 7, delta=3)
        # A warm environment serves the next invocation; a new configuration gets a new one.
        a.invoke("f", {"n": 2})
        self.assertEqual(a.stats()["instances"], 1)
        a.client("lambda").update_function_configuration(FunctionName="f", Environment={"Variables": {"GREETING": "yo"}})
        self.assertEqual(a.invoke("f", {})[1]["env"]["GREETING"], "yo")
        self.assertEqual(a.stats()["instances"], 2)

    def test_errors_timeouts_crashes_and_memory_are_lambdas(self):
        a = Account()
        a.function(timeout=1, memory=128)
        err, out = a.invoke("f", {"fail": True})
        self.assertEqual((err, out), ("Unhandled", {"errorType": "Asked", "errorMessage": "failing as asked"}))
        err, out = a.invoke("f", {"sleep": 3})
        self.assertEqual(err, "Unhandled")
        self.assertEqual(out["errorType"], "Sandbox.Timedout")
        self.assertIn("Task timed out after 1.00 seconds", out["errorMessage"])
        err, out = a.invoke("f", {"exit": 3})
        self.assertEqual(out["errorType"], "Runtime.ExitError")
        self.assertIn("exit status 3", out["errorMessage"])
        err, out = a.invoke("f", {"hoard_mb": 300})
        self.assertEqual(out["errorType"], "Runtime.OutOfMemory", out)
        # After each death a fresh environment answers.
        self.assertIsNone(a.invoke("f", {"ok": 1})[0])
        self.assertGreaterEqual(a.stats()["instances"], 4)

    def test_init_failures(self):
        a = Account()
        a.function("broken", env={"INIT_FAIL": "1"})
        self.assertEqual(a.invoke("broken", {})[1]["errorType"], "Init.Broken")
        a.function("noexec", code=code_zip(mode=0))
        self.assertEqual(a.invoke("noexec", {})[1]["errorType"], "Runtime.InvalidEntrypoint")
        a.function("empty", code=code_zip({"README": "no bootstrap here"}))
        self.assertIn("Couldn't find valid bootstrap", a.invoke("empty", {})[1]["errorMessage"])
        a.function("slip", code=code_zip({"../../evil": "x", "bootstrap": BOOTSTRAP}))
        err, out = a.invoke("slip", {})
        self.assertIn("escapes the task root", out["errorMessage"])
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(ml.executor().workdir), "evil")))

    def test_policy_evaluation(self):
        rule = "arn:aws:events:us-east-1:111122223333:rule/r"
        ctx = {"aws:SourceArn": rule, "aws:SourceAccount": "111122223333"}
        allow = {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction",
                 "Resource": "arn:aws:lambda:us-east-1:111122223333:function:f",
                 "Condition": {"ArnLike": {"AWS:SourceArn": rule}}}
        fn = "arn:aws:lambda:us-east-1:111122223333:function:f"
        self.assertTrue(ml.policy_allows([allow], "events.amazonaws.com", "lambda:InvokeFunction", fn, ctx))
        other = dict(ctx, **{"aws:SourceArn": rule + "x"})
        self.assertFalse(ml.policy_allows([allow], "events.amazonaws.com", "lambda:InvokeFunction", fn, other))
        self.assertFalse(ml.policy_allows([allow], "sns.amazonaws.com", "lambda:InvokeFunction", fn, ctx))
        self.assertFalse(ml.policy_allows([allow], "events.amazonaws.com", "lambda:GetFunction", fn, ctx))
        self.assertFalse(ml.policy_allows([allow], "events.amazonaws.com", "lambda:InvokeFunction", fn + "2", ctx))
        deny = {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}
        self.assertFalse(ml.policy_allows([allow, deny], "events.amazonaws.com", "lambda:InvokeFunction", fn, ctx))
        odd = dict(allow, Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
        self.assertFalse(ml.policy_allows([odd], "events.amazonaws.com", "lambda:InvokeFunction", fn, ctx))
        self.assertFalse(ml.policy_allows("garbage", "events.amazonaws.com", "lambda:InvokeFunction", fn, ctx))


class AsyncTest(unittest.TestCase):
    def test_failures_are_retried_then_sent_to_the_on_failure_destination(self):
        a = Account()
        a.function(env={"ALWAYS_FAIL": "1"})
        url, dlq = a.queue("on-failure")
        a.client("lambda").put_function_event_invoke_config(
            FunctionName="f", MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": dlq}}
        )
        r = a.client("lambda").invoke(FunctionName="f", InvocationType="Event", Payload=b'{"k": "v"}')
        self.assertEqual(r["StatusCode"], 202)
        self.assertTrue(ml.executor().drain(30))
        msgs = a.messages(url)
        self.assertEqual(len(msgs), 1, msgs)
        record = json.loads(msgs[0]["Body"])
        self.assertEqual(record["requestContext"]["condition"], "RetriesExhausted")
        self.assertEqual(record["requestContext"]["approximateInvokeCount"], 2)
        self.assertEqual(record["requestPayload"], {"k": "v"})
        self.assertEqual(record["responsePayload"]["errorType"], "Asked")
        self.assertEqual(a.stats()["invocations"], 2)

    def test_the_queue_keeps_order_per_function(self):
        a = Account()
        a.function()
        url, dest = a.queue("on-success")
        a.client("lambda").put_function_event_invoke_config(
            FunctionName="f", DestinationConfig={"OnSuccess": {"Destination": dest}}
        )
        for n in range(8):
            a.client("lambda").invoke(FunctionName="f", InvocationType="Event", Payload=json.dumps({"n": n}).encode())
        self.assertTrue(ml.executor().drain(30))
        seen = []
        while len(seen) < 8:
            batch = a.messages(url)
            self.assertTrue(batch, seen)
            seen += [json.loads(m["Body"])["responsePayload"]["event"]["n"] for m in batch]
        self.assertEqual(seen, list(range(8)))


class EventBridgeTest(unittest.TestCase):
    PATTERN = {"detail-type": ["AWS API Call via CloudTrail"], "source": [{"prefix": "aws."}, "custom.app"]}

    def rule(self, a, state="ENABLED", permission=True, dlq=None):
        arn = a.function()
        ev = a.client("events")
        rule_arn = ev.put_rule(Name="r", EventPattern=json.dumps(self.PATTERN), State=state)["RuleArn"]
        target = {"Id": "f", "Arn": arn}
        if dlq:
            target["DeadLetterConfig"] = {"Arn": dlq}
        ev.put_targets(Rule="r", Targets=[target])
        if permission:
            a.client("lambda").add_permission(
                FunctionName="f", StatementId="ev", Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com", SourceArn=rule_arn, SourceAccount=a.id,
            )
        url, dest = a.queue("seen")
        a.client("lambda").put_function_event_invoke_config(FunctionName="f", DestinationConfig={"OnSuccess": {"Destination": dest}})
        return rule_arn, url

    def put(self, a, source="custom.app", detail=None):
        return a.client("events").put_events(Entries=[{
            "Source": source, "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(detail or {"x": 1})}])

    def delivered(self, a, url):
        ml.executor().drain(30)
        return [json.loads(m["Body"])["requestPayload"] for m in a.messages(url)]

    def test_a_matching_event_reaches_the_function_as_eventbridge_sends_it(self):
        a = Account()
        _, url = self.rule(a)
        self.assertEqual(self.put(a)["FailedEntryCount"], 0)
        [event] = self.delivered(a, url)
        self.assertEqual((event["source"], event["account"], event["region"], event["detail"]), ("custom.app", a.id, "us-east-1", {"x": 1}))
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.put(a, source="other.app")
        self.assertEqual(self.delivered(a, url), [], "a non-matching event goes nowhere")

    def test_a_disabled_rule_delivers_nothing(self):
        a = Account()
        _, url = self.rule(a, state="DISABLED")
        self.put(a)
        self.assertEqual(self.delivered(a, url), [])

    def test_no_invoke_permission_sends_the_event_to_the_targets_dlq(self):
        a = Account()
        dlq_url, dlq = a.queue("dlq")
        rule_arn = f"arn:aws:events:us-east-1:{a.id}:rule/r"
        a.client("sqs").set_queue_attributes(QueueUrl=dlq_url, Attributes={"Policy": json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": dlq, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
        _, url = self.rule(a, permission=False, dlq=dlq)
        self.put(a)
        self.assertEqual(self.delivered(a, url), [])
        [m] = a.messages(dlq_url)
        attrs = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
        self.assertEqual((attrs["ERROR_CODE"], attrs["RULE_ARN"]), ("NO_PERMISSIONS", rule_arn))
        self.assertEqual(json.loads(m["Body"])["detail"], {"x": 1})
        # A DLQ whose policy does not admit the rule gets nothing (the event is lost, as on AWS).
        a.client("sqs").set_queue_attributes(QueueUrl=dlq_url, Attributes={"Policy": ""})
        self.put(a)
        self.assertEqual(a.messages(dlq_url), [])

    def test_aws_sources_only_through_cloudtrail_and_read_only_only_to_the_all_events_state(self):
        a = Account()
        _, url = self.rule(a, state="ENABLED")
        refused = self.put(a, source="aws.sts")
        self.assertEqual(refused["Entries"][0]["ErrorCode"], "NotAuthorizedForSourceException")
        record = {"eventType": "AwsApiCall", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
                  "readOnly": True, "recipientAccountId": a.id, "awsRegion": "us-east-1", "eventTime": "2024-05-01T10:00:00Z"}
        self.assertEqual(ml.deliver_cloudtrail([record], None, None), {"delivered": 0, "dropped": {"no_logging_trail": 1}})
        a.trail()
        write = dict(record, eventName="CreateRole", eventSource="iam.amazonaws.com", readOnly=False)
        self.assertEqual(ml.deliver_cloudtrail([record, write], None, None)["delivered"], 2)
        got = self.delivered(a, url)
        self.assertEqual([e["detail"]["eventName"] for e in got], ["CreateRole"], "ENABLED withholds read-only events")
        self.assertEqual((got[0]["source"], got[0]["time"]), ("aws.iam", "2024-05-01T10:00:00Z"))
        a.client("events").put_rule(Name="r", EventPattern=json.dumps(self.PATTERN), State=ml.ENABLED_ALL)
        ml.deliver_cloudtrail([record], None, None)
        self.assertEqual([e["detail"]["eventName"] for e in self.delivered(a, url)], ["GetCallerIdentity"])


class AlarmEventTest(unittest.TestCase):
    def test_an_alarm_state_change_reaches_eventbridge_as_cloudwatch_sends_it(self):
        a = Account()
        cw = a.client("cloudwatch")
        cw.put_metric_alarm(AlarmName="a1", Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible",
                            Statistic="Maximum", Period=300, EvaluationPeriods=1, Threshold=0,
                            ComparisonOperator="GreaterThanThreshold")
        [created] = cw.describe_alarms(AlarmNames=["a1"])["MetricAlarms"]
        # AWS starts an alarm in INSUFFICIENT_DATA, moto in OK: the event carries whichever it was.
        alarm_arn, initial = created["AlarmArn"], created["StateValue"]
        arn = a.function()
        ev = a.client("events")
        pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"], "resources": [alarm_arn]}
        rule_arn = ev.put_rule(Name="health", EventPattern=json.dumps(pattern))["RuleArn"]
        ev.put_targets(Rule="health", Targets=[{"Id": "f", "Arn": arn}])
        a.client("lambda").add_permission(FunctionName="f", StatementId="ev", Action="lambda:InvokeFunction",
                                          Principal="events.amazonaws.com", SourceArn=rule_arn, SourceAccount=a.id)
        url, dest = a.queue("seen")
        a.client("lambda").put_function_event_invoke_config(FunctionName="f", DestinationConfig={"OnSuccess": {"Destination": dest}})

        def delivered():
            ml.executor().drain(30)
            return [json.loads(m["Body"])["requestPayload"] for m in a.messages(url)]

        cw.set_alarm_state(AlarmName="a1", StateValue="ALARM", StateReason="Threshold Crossed")
        [event] = delivered()
        self.assertEqual((event["source"], event["detail-type"], event["account"], event["region"], event["resources"]),
                         ("aws.cloudwatch", "CloudWatch Alarm State Change", a.id, "us-east-1", [alarm_arn]))
        self.assertEqual((event["detail"]["alarmName"], event["detail"]["state"]["value"], event["detail"]["previousState"]["value"]),
                         ("a1", "ALARM", initial))
        self.assertRegex(event["detail"]["state"]["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
        cw.set_alarm_state(AlarmName="a1", StateValue="ALARM", StateReason="still")
        self.assertEqual(delivered(), [], "no change, no event")
        cw.set_alarm_state(AlarmName="a1", StateValue="OK", StateReason="fine")
        [back] = delivered()
        self.assertEqual((back["detail"]["state"]["value"], back["detail"]["previousState"]["value"]), ("OK", "ALARM"))


class CloudFormationGapTest(unittest.TestCase):
    def test_ttl_invoke_config_and_queue_policy_are_applied(self):
        a = Account()
        a.client("s3").create_bucket(Bucket=f"code-{a.id}")
        a.client("s3").put_object(Bucket=f"code-{a.id}", Key="f.zip", Body=code_zip())
        template = {"Resources": {
            "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "t", "BillingMode": "PAY_PER_REQUEST",
                  "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                  "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                  "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True}}},
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
            "P": {"Type": "AWS::SQS::QueuePolicy", "Properties": {"Queues": [{"Ref": "Q"}], "PolicyDocument": {
                  "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                 "Action": "sqs:SendMessage", "Resource": "*"}]}}},
            "F": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "cf", "Runtime": "provided.al2023",
                  "Handler": "bootstrap", "Role": a.role, "Code": {"S3Bucket": f"code-{a.id}", "S3Key": "f.zip"}}},
            "C": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {"FunctionName": {"Ref": "F"},
                  "Qualifier": "$LATEST", "MaximumRetryAttempts": 0,
                  "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Q", "Arn"]}}}}},
        }}
        a.client("cloudformation").create_stack(StackName="s", TemplateBody=json.dumps(template))
        ttl = a.client("dynamodb").describe_time_to_live(TableName="t")["TimeToLiveDescription"]
        self.assertEqual(ttl["TimeToLiveStatus"], "ENABLED")
        cfg = a.client("lambda").get_function_event_invoke_config(FunctionName="cf")
        self.assertEqual(cfg["MaximumRetryAttempts"], 0)
        url = a.client("sqs").get_queue_url(QueueName="q")["QueueUrl"]
        policy = json.loads(a.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
        self.assertEqual(policy["Statement"][0]["Principal"], {"Service": "events.amazonaws.com"})
        # The deployed function runs from the S3 code, and the config is honoured: no retry.
        self.assertIsNone(a.invoke("cf", {"n": 1})[0])
        a.client("lambda").invoke(FunctionName="cf", InvocationType="Event", Payload=b'{"fail": true}')
        self.assertTrue(ml.executor().drain(30))
        self.assertEqual(json.loads(a.messages(url)[0]["Body"])["requestContext"]["approximateInvokeCount"], 1)

    def test_a_metric_alarm_is_created_with_its_settings_and_deleted_with_its_stack(self):
        a = Account()
        template = {"Resources": {
            "A": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "AlarmName": "queue-depth", "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": "q"}], "Statistic": "Maximum", "Period": 300,
                "EvaluationPeriods": 1, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching", "Tags": [{"Key": "k", "Value": "v"}]}},
            "T": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["A", "Arn"]}]}]}}},
        }}
        cfn = a.client("cloudformation")
        cfn.create_stack(StackName="alarms", TemplateBody=json.dumps(template))
        [alarm] = a.client("cloudwatch").describe_alarms(AlarmNames=["queue-depth"])["MetricAlarms"]
        self.assertEqual(
            (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"], alarm["Statistic"], alarm["Period"],
             alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", [{"Name": "QueueName", "Value": "q"}], "Maximum", 300,
             0.0, "GreaterThanThreshold", "notBreaching"))
        self.assertEqual(alarm["AlarmArn"], f"arn:aws:cloudwatch:us-east-1:{a.id}:alarm:queue-depth")
        # Fn::GetAtt Arn resolves to the alarm's ARN (its last part names the topic here).
        topics = [t["TopicArn"] for t in a.client("sns").list_topics()["Topics"]]
        self.assertIn(f"arn:aws:sns:us-east-1:{a.id}:queue-depth", topics)
        cfn.delete_stack(StackName="alarms")
        self.assertEqual(a.client("cloudwatch").describe_alarms(AlarmNames=["queue-depth"])["MetricAlarms"], [])


# A stack whose table has a fixed name (so two copies collide, as ctguard's do) and whose topic
# name comes from a parameter (so overrides and updates are visible in the account).
FIXED = json.dumps({
    "Parameters": {"Greeting": {"Type": "String", "Default": "hello"}},
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::Sub": "topic-${Greeting}"}}},
        "Table": {"Type": "AWS::DynamoDB::Table", "DependsOn": "Topic", "Properties": {
            "TableName": "fixed-table", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}},
    },
})
# Nothing with a fixed name: any number of stack sets can deploy it into the same account.
FREE = json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
REGIONS = ["us-east-1", "us-west-2"]


class Organization:
    """A fresh organization: its management account (an Account) and, per name, an OU or a
    member account, created through the Organizations API as a customer would."""

    def __init__(self):
        self.mgmt = Account()
        self.org = self.mgmt.client("organizations")
        self.org.create_organization(FeatureSet="ALL")
        self.root = self.org.list_roots()["Roots"][0]["Id"]

    def ou(self, name, parent=None):
        return self.org.create_organizational_unit(ParentId=parent or self.root, Name=name)["OrganizationalUnit"]["Id"]

    def account(self, name, parent=None):
        st = self.org.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]
        if parent:
            self.move(st["AccountId"], parent)
        return st["AccountId"]

    def move(self, account, to):
        src = self.org.list_parents(ChildId=account)["Parents"][0]["Id"]
        self.org.move_account(AccountId=account, SourceParentId=src, DestinationParentId=to)

    def member(self, account, service, region="us-east-1"):
        """A client acting in a member account (its OrganizationAccountAccessRole)."""
        c = self.mgmt.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="tests"
        )["Credentials"]
        return boto3.client(service, endpoint_url=EMU.endpoint, region_name=region, aws_access_key_id=c["AccessKeyId"],
                            aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])

    def stack_set(self, name, template=FIXED, auto=True, retain=False):
        self.mgmt.client("cloudformation").create_stack_set(
            StackSetName=name, TemplateBody=template, PermissionModel="SERVICE_MANAGED", Tags=[{"Key": "k", "Value": "v"}],
            AutoDeployment={"Enabled": auto, "RetainStacksOnAccountRemoval": retain},
        )
        return name

    def create(self, name, ous, regions=REGIONS, **kw):
        return self.mgmt.client("cloudformation").create_stack_instances(
            StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": ous, **kw}, Regions=regions,
        )["OperationId"]

    def instances(self, name):
        """{(account, region): (status, detailed status, OU)}"""
        got = self.mgmt.client("cloudformation").list_stack_instances(StackSetName=name)["Summaries"]
        return {(i["Account"], i["Region"]): (i["Status"], i["StackInstanceStatus"]["DetailedStatus"],
                i.get("OrganizationalUnitId")) for i in got}

    def results(self, name, op):
        got = self.mgmt.client("cloudformation").list_stack_set_operation_results(StackSetName=name, OperationId=op)
        return {(r["Account"], r["Region"]): (r["Status"], r.get("StatusReason", "")) for r in got["Summaries"]}

    def stacks(self, account, name, region="us-east-1"):
        """The account's own view: its stacks of the stack set `name`."""
        got = self.member(account, "cloudformation", region).describe_stacks()["Stacks"]
        return [s for s in got if s["StackName"].startswith(f"StackSet-{name}-")]


class StackSetsTest(unittest.TestCase):
    """scripts/moto_stacksets.py: service-managed StackSets as AWS documents them."""

    def test_the_root_reaches_members_at_any_depth_never_the_management_account(self):
        o = Organization()
        a = o.ou("a")
        a1 = o.ou("a1", a)
        m_a, m_a1, m_root = o.account("in-a", a), o.account("in-a1", a1), o.account("at-root")
        name = o.stack_set("root")
        op = o.create(name, [o.root])
        want = {(m, r) for m in (m_a, m_a1, m_root) for r in REGIONS}
        self.assertEqual(set(o.instances(name)), want, "every member, nested too; not the management account")
        self.assertNotIn(o.mgmt.id, {a for a, _ in o.instances(name)})
        self.assertEqual({v for v in o.instances(name).values()}, {("CURRENT", "SUCCEEDED", o.root)})
        self.assertEqual(o.results(name, op), {k: ("SUCCEEDED", "") for k in want})
        cfn = o.mgmt.client("cloudformation")
        self.assertEqual(cfn.describe_stack_set_operation(StackSetName=name, OperationId=op)["StackSetOperation"]["Status"], "SUCCEEDED")
        self.assertEqual(cfn.describe_stack_set(StackSetName=name)["StackSet"]["AutoDeployment"],
                         {"Enabled": True, "RetainStacksOnAccountRemoval": False})
        for region in REGIONS:
            # The instance is a stack in the member account itself, with the stack set's tags, and
            # its resources exist there (and nowhere in the management account).
            [stack] = o.stacks(m_a1, name, region)
            self.assertEqual(stack["StackStatus"], "CREATE_COMPLETE")
            self.assertEqual(stack["Tags"], [{"Key": "k", "Value": "v"}])
            self.assertIn("fixed-table", o.member(m_a1, "dynamodb", region).list_tables()["TableNames"])
            self.assertNotIn("fixed-table", o.mgmt.client("dynamodb").list_tables()["TableNames"])
        with self.assertRaises(o.mgmt.client("cloudformation").exceptions.ClientError) as e:
            cfn.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": ["ou-zzzz-nothere1"]},
                                       Regions=["us-east-1"])
        self.assertIn("not in the organization", str(e.exception))

    def test_account_filters_select_as_documented(self):
        o = Organization()
        a, b = o.ou("a"), o.ou("b")
        a1 = o.ou("a1", a)
        m1, m2, m3 = o.account("m1", a), o.account("m2", a1), o.account("m3", b)
        cases = {
            "none": ({}, {m1, m2}),
            "intersection": ({"Accounts": [m2, m3], "AccountFilterType": "INTERSECTION"}, {m2}),
            "difference": ({"Accounts": [m1], "AccountFilterType": "DIFFERENCE"}, {m2}),
            "union": ({"Accounts": [m3, o.mgmt.id], "AccountFilterType": "UNION"}, {m1, m2, m3}),
        }
        for case, (kw, accounts) in cases.items():
            name = o.stack_set(case, template=FREE)
            o.create(name, [a], regions=["us-east-1"], **kw)
            self.assertEqual({acct for acct, _ in o.instances(name)}, accounts, case)
        self.assertEqual(o.instances("union")[(m3, "us-east-1")][2], b, "UNION: an account outside the OUs via its parent")
        # A filter that leaves no account: not documented to succeed, refused here.
        name = o.stack_set("nobody", template=FREE)
        with self.assertRaises(o.mgmt.client("cloudformation").exceptions.ClientError) as e:
            o.create(name, [a], regions=["us-east-1"], Accounts=[m1, m2], AccountFilterType="DIFFERENCE")
        self.assertIn("select no account", str(e.exception))
        self.assertEqual(o.instances(name), {})
        ops = o.mgmt.client("cloudformation").list_stack_set_operations(StackSetName=name)["Summaries"]
        self.assertEqual(ops, [], "a refused request leaves no operation (none RUNNING forever)")

    def test_automatic_deployment_follows_joins_moves_and_leaves(self):
        o = Organization()
        a, b = o.ou("a"), o.ou("b")
        a1 = o.ou("a1", a)
        first = o.account("first", a)
        name = o.stack_set("auto")
        kept = o.stack_set("kept", template=FREE, retain=True)
        manual = o.stack_set("manual", template=FREE, auto=False)
        for s in (name, kept, manual):
            o.create(s, [a])
        joiner = o.account("joiner")  # joins at the root: not below the targeted OU
        self.assertNotIn(joiner, {acct for acct, _ in o.instances(name)})
        o.move(joiner, a1)  # into a nested OU of the target: automatic deployment
        self.assertEqual({k for k in o.instances(name) if k[0] == joiner}, {(joiner, r) for r in REGIONS})
        self.assertEqual(len(o.stacks(joiner, name, "us-west-2")), 1)
        self.assertNotIn(joiner, {acct for acct, _ in o.instances(manual)}, "no automatic deployment: nothing")
        o.move(joiner, b)  # out of the targets: its instances and their stacks go
        self.assertNotIn(joiner, {acct for acct, _ in o.instances(name)})
        self.assertEqual(o.stacks(joiner, name), [])
        self.assertNotIn("fixed-table", o.member(joiner, "dynamodb").list_tables()["TableNames"])
        self.assertEqual(len(o.stacks(joiner, kept)), 1, "RetainStacksOnAccountRemoval keeps the stack")
        self.assertNotIn(joiner, {acct for acct, _ in o.instances(kept)})
        newcomer = o.account("newcomer", a)  # created straight into the OU
        self.assertIn((newcomer, "us-east-1"), o.instances(name))
        self.assertEqual(o.instances(name)[(newcomer, "us-east-1")][2], a)
        # Leaving the organization: its instances go (stacks too), the others stay.
        before = o.stacks(newcomer, name)
        self.assertEqual(len(before), 1)
        o.org.remove_account_from_organization(AccountId=newcomer)
        self.assertEqual({acct for acct, _ in o.instances(name)}, {first})
        self.assertEqual(len(o.stacks(first, name)), 1)
        self.assertIn("fixed-table", o.member(first, "dynamodb").list_tables()["TableNames"])

    def test_a_failing_instance_is_rolled_back_reported_and_tolerated_as_asked(self):
        o = Organization()
        a = o.ou("a")
        taken, free = o.account("taken", a), o.account("free", a)
        o.member(taken, "dynamodb").create_table(
            TableName="fixed-table", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        name = o.stack_set("collide")
        cfn = o.mgmt.client("cloudformation")
        op = cfn.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [a]}, Regions=["us-east-1"],
                                        OperationPreferences={"FailureTolerancePercentage": 100})["OperationId"]
        res = o.results(name, op)
        self.assertEqual(res[(free, "us-east-1")], ("SUCCEEDED", ""))
        self.assertEqual(res[(taken, "us-east-1")][0], "FAILED")
        self.assertIn("already exists", res[(taken, "us-east-1")][1])
        self.assertEqual(o.instances(name)[(taken, "us-east-1")][:2], ("OUTDATED", "FAILED"))
        self.assertEqual(cfn.describe_stack_set_operation(StackSetName=name, OperationId=op)["StackSetOperation"]["Status"], "SUCCEEDED")
        # Rolled back: the failed stack and the topic it created are gone, the table it met is kept.
        self.assertEqual(o.stacks(taken, name), [])
        self.assertEqual(o.member(taken, "sns").list_topics()["Topics"], [])
        self.assertIn("fixed-table", o.member(taken, "dynamodb").list_tables()["TableNames"])
        # No tolerance: the operation fails.
        strict = o.stack_set("strict")
        o.member(free, "dynamodb", "us-west-2").create_table(
            TableName="fixed-table", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        op = o.create(strict, [a], regions=["us-west-2"])
        self.assertEqual(cfn.describe_stack_set_operation(StackSetName=strict, OperationId=op)["StackSetOperation"]["Status"], "FAILED")

    def test_updates_deletions_and_operation_ids(self):
        o = Organization()
        a, b = o.ou("a"), o.ou("b")
        ma, mb = o.account("ma", a), o.account("mb", b)
        name = o.stack_set("life")
        cfn = o.mgmt.client("cloudformation")
        cfn.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [o.root]}, Regions=REGIONS,
                                   OperationId="op-1")
        with self.assertRaises(cfn.exceptions.ClientError) as e:
            cfn.create_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [o.root]},
                                       Regions=REGIONS, OperationId="op-1")
        self.assertEqual(e.exception.response["Error"]["Code"], "OperationIdAlreadyExistsException")
        # An update without targets reaches every instance's stack.
        cfn.update_stack_set(StackSetName=name, TemplateBody=FIXED, Parameters=[{"ParameterKey": "Greeting", "ParameterValue": "hi"}])
        for m in (ma, mb):
            [st] = o.stacks(m, name, "us-west-2")
            self.assertEqual(st["Parameters"], [{"ParameterKey": "Greeting", "ParameterValue": "hi"}])
        # An override on one OU's instances wins over the stack set's value, there only.
        cfn.update_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [a]}, Regions=["us-east-1"],
                                   ParameterOverrides=[{"ParameterKey": "Greeting", "ParameterValue": "own"}])
        [st] = o.stacks(ma, name)
        self.assertEqual(st["Parameters"], [{"ParameterKey": "Greeting", "ParameterValue": "own"}])
        self.assertEqual(o.stacks(mb, name)[0]["Parameters"], [{"ParameterKey": "Greeting", "ParameterValue": "hi"}])
        got = cfn.describe_stack_instance(StackSetName=name, StackInstanceAccount=ma, StackInstanceRegion="us-east-1")
        self.assertEqual(got["StackInstance"]["ParameterOverrides"], [{"ParameterKey": "Greeting", "ParameterValue": "own"}])
        self.assertEqual(got["StackInstance"]["OrganizationalUnitId"], o.root)
        # Deleting by OU: only that OU's accounts lose their instances and stacks.
        cfn.delete_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [b]}, Regions=REGIONS,
                                   RetainStacks=False)
        self.assertEqual({acct for acct, _ in o.instances(name)}, {ma})
        self.assertEqual(o.stacks(mb, name), [])
        with self.assertRaises(cfn.exceptions.ClientError):
            cfn.delete_stack_set(StackSetName=name)  # not empty
        cfn.delete_stack_instances(StackSetName=name, DeploymentTargets={"OrganizationalUnitIds": [o.root]}, Regions=REGIONS,
                                   RetainStacks=False)
        self.assertEqual(o.instances(name), {})
        self.assertEqual(o.stacks(ma, name), [])
        cfn.delete_stack_set(StackSetName=name)

    def test_call_as_the_management_account_or_a_registered_delegated_administrator(self):
        o = Organization()
        a = o.ou("a")
        admin, other = o.account("admin", a), o.account("other", a)
        template = dict(TemplateBody=FREE, PermissionModel="SERVICE_MANAGED", AutoDeployment={"Enabled": True})
        for who in (admin, other):
            with self.assertRaises(o.mgmt.client("cloudformation").exceptions.ClientError) as e:
                o.member(who, "cloudformation").create_stack_set(StackSetName="s", CallAs="DELEGATED_ADMIN", **template)
            self.assertIn("not a delegated administrator", str(e.exception))
        o.org.register_delegated_administrator(AccountId=admin, ServicePrincipal="member.org.stacksets.cloudformation.amazonaws.com")
        cfn = o.member(admin, "cloudformation")
        with self.assertRaises(cfn.exceptions.ClientError) as e:
            cfn.create_stack_set(StackSetName="s", **template)  # CallAs SELF from a member
        self.assertIn("not the management account", str(e.exception))
        cfn.create_stack_set(StackSetName="s", CallAs="DELEGATED_ADMIN", **template)
        cfn.create_stack_instances(StackSetName="s", CallAs="DELEGATED_ADMIN", DeploymentTargets={"OrganizationalUnitIds": [o.root]},
                                   Regions=["us-east-1"])
        got = cfn.list_stack_instances(StackSetName="s", CallAs="DELEGATED_ADMIN")["Summaries"]
        self.assertEqual({i["Account"] for i in got}, {admin, other}, "the members, the administrator too; not the management account")
        listed = {x["Id"] for x in o.member(admin, "organizations").list_accounts()["Accounts"]}
        self.assertEqual(listed, {o.mgmt.id, admin, other})

    def test_a_member_role_that_does_not_exist_cannot_be_assumed(self):
        o = Organization()
        m = o.account("m")
        o.member(m, "iam").delete_role(RoleName="OrganizationAccountAccessRole")
        with self.assertRaises(o.mgmt.client("sts").exceptions.ClientError) as e:
            o.member(m, "sts")
        self.assertEqual(e.exception.response["Error"]["Code"], "AccessDenied")
        Account()  # an account outside any organization: moto's free-for-all, unchanged


class TestApiTest(unittest.TestCase):
    def call(self, method, path, body):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(EMU.endpoint + path, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_bad_requests_are_refused_clearly(self):
        self.assertEqual(self.call("POST", "/_ctguard/cloudtrail", b"{not json")[0], 400)
        status, answer = self.call("POST", "/_ctguard/cloudtrail", b'{"records": {"a": 1}}')
        self.assertEqual((status, answer["error"]), (400, "records must be a list of CloudTrail records"))
        self.assertEqual(self.call("POST", "/_ctguard/drain", b'{"timeout": "soon"}')[0], 400)
        self.assertEqual(self.call("GET", "/_ctguard/nothing", None)[0], 404)
        status, answer = self.call("POST", "/_ctguard/cloudtrail", json.dumps({"records": [7, {}, {"eventType": "AwsApiCall"}]}).encode())
        self.assertEqual(answer, {"delivered": 0, "dropped": {"not_a_record": 1, "no_account_region_or_source": 2}})


class LifecycleTest(unittest.TestCase):
    def test_the_launcher_prints_its_endpoint_and_stops_its_functions(self):
        import subprocess

        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_lambda.py")
        p = subprocess.Popen([sys.executable, script, "--exit-on-stdin-eof"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            line = p.stdout.readline().decode()
            self.assertRegex(line, r"^moto_lambda listening on http://127\.0\.0\.1:\d+\n$")
            endpoint = line.split()[-1]
            kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
            role = boto3.client("iam", **kw).create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            lam = boto3.client("lambda", **kw)
            lam.create_function(FunctionName="f", Runtime="provided.al2023", Role=role, Handler="x", Code={"ZipFile": code_zip()})
            self.assertNotIn("FunctionError", lam.invoke(FunctionName="f", Payload=b"{}"))
            children = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            self.assertEqual(len(children), 1, "one function process")
            p.stdin.close()
            self.assertEqual(p.wait(timeout=20), 0)
            time.sleep(0.2)
            self.assertFalse(any(os.path.exists(f"/proc/{c}") and open(f"/proc/{c}/stat").read().split()[2] != "Z" for c in children))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
