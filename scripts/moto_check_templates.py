#!/usr/bin/env python3
"""Deploy ctguard's CloudFormation templates into a throwaway moto server.

Usage (from the repository root, with the project's venv):

    .venv/bin/python scripts/moto_check_templates.py [--keep-log]

What it does:

1. Static checks on templates/*.yaml: every taggable resource carries the
   ctguard:owner / ctguard:version tags, and the detector role stays least
   privilege (no wildcard action, no wildcard resource, no managed policy).
2. Starts `moto_server` on a free loopback port (it never talks to AWS).
3. Management account (moto's default, 123456789012):
   - ctguard-artifacts in us-east-1 (no org) and us-west-2 (with an OrgId),
     then uploads a Lambda zip under ctguard/<sha256>/ as the installer does;
   - ctguard-state in us-east-1 (the table; its own stack so that
     `uninstall --keep-state` can keep it);
   - ctguard-account in us-east-1 (own topic + email subscription);
   - ctguard-region in us-east-1 and us-west-2 (two regions, one account:
     the per-region role names must not collide);
   - an update of the us-west-2 stack with a new CodeKey (new build rolls
     out).
4. Member account: creates an organization and a member account, assumes
   OrganizationAccountAccessRole in it, and deploys ctguard-state and
   ctguard-region with the management account's topic as the central topic
   (so no ctguard-account stack there), the code coming from the management
   account's bucket. The region template takes no per-account parameter.
5. Lists every stack's resources, asserts the resources exist with the
   expected settings (through the services' own APIs, not just through
   CloudFormation), deletes every stack and asserts the resources are gone.

Resource types and properties that moto 5.2.5 silently ignores are reported
as "moto gap" notes rather than failures (see the NOTE lines in the output);
the static checks and cfn-lint cover those.

Exit status: 0 when every check passed, 1 otherwise. The server is killed on
exit in every case.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
VERSION = "0.1.0-moto"
MGMT_ACCOUNT = "123456789012"  # moto's default account
HOME_REGION = "us-east-1"
OTHER_REGION = "us-west-2"
ORG_ID_PARAM = "o-exampleorg1"
ALERT_EMAIL = "security@example.com"
TAGS = {"ctguard:owner": "ctguard", "ctguard:version": VERSION}

# Resource types that accept tags, as used by our templates.
TAGGABLE = {
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SNS::Topic",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",
    "AWS::Lambda::Function",
    "AWS::Events::Rule",
}

# Types moto 5.2.5's CloudFormation does not implement: a stack with them
# reaches CREATE_COMPLETE, but they are skipped with a warning
# (moto/cloudformation/parsing.py, resource_class_from_type).
MOTO_IGNORED_TYPES = {
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::EventInvokeConfig",
    # Created by scripts/moto_lambda.py (the end-to-end tests' emulator), not by plain moto.
    "AWS::CloudWatch::Alarm",
}

EXPECTED_EVENT_PATTERN = {
    "detail-type": ["AWS API Call via CloudTrail"],
    "source": [{"prefix": "aws."}, "ctguard.verify"],
    "detail": {
        "$or": [
            {"userIdentity": {"accessKeyId": [{"prefix": "ASIA"}]}},
            {
                "eventName": [
                    "AssumeRole",
                    "AssociateAddress",
                    "AttachNetworkInterface",
                    "StartInstances",
                ]
            },
        ]
    },
}


# --------------------------------------------------------------------------
# Reporting


class Checker:
    """Collects results; failures make the script exit non-zero."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.gaps: list[str] = []
        self.passed = 0

    def ok(self, cond: bool, what: str, detail: Any = None) -> bool:
        if cond:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            msg = what if detail is None else f"{what}: {detail}"
            self.failures.append(msg)
            print(f"  FAIL  {msg}")
        return cond

    def eq(self, actual: Any, expected: Any, what: str) -> bool:
        return self.ok(
            actual == expected, what, f"expected {expected!r}, got {actual!r}"
        )

    def attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """Runs fn; an exception is a failure (and returns None)."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - report anything
            self.ok(False, what, f"{type(exc).__name__}: {exc}")
            return None

    def gap(self, what: str, fn: Callable[[], bool]) -> None:
        """A property moto is known not to model: checked, never fatal."""
        try:
            good = bool(fn())
        except Exception as exc:  # noqa: BLE001
            good = False
            what = f"{what} ({type(exc).__name__})"
        if good:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.gaps.append(what)
            print(f"  NOTE  moto gap, not checked: {what}")


def section(title: str) -> None:
    print(f"\n== {title}")


# --------------------------------------------------------------------------
# Templates


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form tags."""


def _cfn_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(name: str) -> dict[str, Any]:
    with open(TEMPLATES / name, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def template_body(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def static_checks(chk: Checker) -> None:
    section("static checks")
    for path in sorted(TEMPLATES.glob("*.yaml")):
        tpl = load_template(path.name)
        for logical_id, res in tpl["Resources"].items():
            if res["Type"] not in TAGGABLE:
                continue
            tags = {t["Key"]: t["Value"] for t in res.get("Properties", {}).get("Tags", [])}
            chk.eq(
                tags,
                {"ctguard:owner": "ctguard", "ctguard:version": {"Ref": "DetectorVersion"}},
                f"{path.name} {logical_id} tags",
            )

    region = load_template("ctguard-region.yaml")
    role = region["Resources"]["DetectorRole"]["Properties"]
    chk.ok("ManagedPolicyArns" not in role, "detector role has no managed policy")
    for policy in role["Policies"]:
        for stmt in policy["PolicyDocument"]["Statement"]:
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            chk.ok(
                all("*" not in a for a in actions),
                f"detector role {stmt['Sid']}: no wildcard action",
                actions,
            )
            resource = json.dumps(stmt["Resource"])
            wildcard_ok = stmt["Sid"] == "OwnLogGroup" and resource.endswith(':*"}')
            chk.ok(
                "*" not in resource or wildcard_ok,
                f"detector role {stmt['Sid']}: no wildcard resource",
                resource,
            )
    # StackSets deploy one parameter set to every account: no parameter may
    # be account specific (names derive from AWS::AccountId instead).
    chk.eq(
        sorted(region["Parameters"]),
        sorted(
            [
                "DetectorVersion", "ArtifactsAccountId", "HomeRegion", "CodeKey",
                "AlertTopicArn", "Policy", "LogRetentionDays", "DefaultTtlHours", "SecurityHub",
                "AutoContain",
            ]
        ),
        "region template parameters are the same org-wide",
    )
    rule = region["Resources"]["DetectorRule"]["Properties"]
    chk.eq(rule["EventPattern"], EXPECTED_EVENT_PATTERN, "rule EventPattern (template)")


# --------------------------------------------------------------------------
# moto server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        cmd += ["-H", "127.0.0.1", "-p", str(self.port)]
        env = dict(os.environ)
        # MOTO_ACCOUNT_ID would pin every request to one account and defeat
        # the access-key -> account mapping the member-account checks use.
        env.pop("MOTO_ACCOUNT_ID", None)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    print(f"moto_server pid {self.proc.pid} on {self.endpoint}")
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"moto_server did not answer within 60 s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # Only the server we started (its own session/process group).
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        print(f"moto_server pid {self.proc.pid} stopped")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Aws:
    """boto3 clients for one account (given by its credentials) on moto."""

    def __init__(self, endpoint: str, creds: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.creds = creds
        self.cfg = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)

    def client(self, service: str, region: str = HOME_REGION) -> Any:
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            config=self.cfg,
            **self.creds,
        )


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def gone(fn: Callable[[], Any], *codes: str) -> bool:
    """True when fn raises a ClientError with one of the given codes."""
    try:
        fn()
    except ClientError as exc:
        return error_code(exc) in codes or not codes
    return False


# --------------------------------------------------------------------------
# Stacks


def create_stack(
    chk: Checker,
    aws: Aws,
    region: str,
    name: str,
    template: str,
    params: dict[str, str],
    off: frozenset[str] = frozenset(),
) -> dict[str, str] | None:
    """Creates a stack and checks its resource listing; returns its outputs.

    `off` names the resources whose Condition is false for these parameters.
    """
    cfn = aws.client("cloudformation", region)
    print(f"\n-- create {name} ({template}) in {region}")
    created = chk.attempt(
        f"create_stack {name}",
        lambda: cfn.create_stack(
            StackName=name,
            TemplateBody=template_body(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
        ),
    )
    if created is None:
        return None
    cfn.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    chk.eq(stack["StackStatus"], "CREATE_COMPLETE", f"{name} status")
    list_resources(chk, cfn, name, template, off)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def list_resources(chk: Checker, cfn: Any, name: str, template: str, off: frozenset[str]) -> None:
    summaries = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    listed = {s["LogicalResourceId"]: s for s in summaries if s["LogicalResourceId"]}
    for logical_id, s in listed.items():
        print(f"     {logical_id:<24} {s['ResourceType']:<32} {s['PhysicalResourceId']}")
    # Every resource moto implements must be in the listing, except those
    # whose condition is false, which must not be.
    tpl = load_template(template)
    for logical_id, res in tpl["Resources"].items():
        if logical_id in off:
            chk.ok(logical_id not in listed, f"{name}: {logical_id} not created (condition false)")
            continue
        if res["Type"] in MOTO_IGNORED_TYPES:
            if logical_id not in listed:
                chk.gaps.append(f"{name}: {logical_id} ({res['Type']}) not created by moto")
                print(f"  NOTE  moto gap: {logical_id} ({res['Type']}) is not created by moto")
            continue
        chk.ok(logical_id in listed, f"{name}: {logical_id} listed as a stack resource")


def update_stack(
    chk: Checker, aws: Aws, region: str, name: str, template: str, params: dict[str, str]
) -> None:
    cfn = aws.client("cloudformation", region)
    print(f"\n-- update {name} in {region}")
    res = chk.attempt(
        f"update_stack {name}",
        lambda: cfn.update_stack(
            StackName=name,
            TemplateBody=template_body(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
        ),
    )
    if res is None:
        return
    cfn.get_waiter("stack_update_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    chk.eq(status, "UPDATE_COMPLETE", f"{name} status after update")


def delete_stack(chk: Checker, aws: Aws, region: str, name: str) -> None:
    cfn = aws.client("cloudformation", region)
    print(f"\n-- delete {name} in {region}")
    if chk.attempt(f"delete_stack {name}", lambda: cfn.delete_stack(StackName=name)) is None:
        return
    cfn.get_waiter("stack_delete_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    live = [
        s["StackName"]
        for s in cfn.list_stacks()["StackSummaries"]
        if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    chk.eq(live, [], f"{name} deleted")


# --------------------------------------------------------------------------
# Resource checks


def tag_dict(tags: list[dict[str, str]] | dict[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if isinstance(tags, dict):
        return dict(tags)
    return {t["Key"]: t["Value"] for t in tags}


def policy_document(doc: Any) -> Any:
    """An IAM policy document as returned by moto, as a dict.

    moto keeps the inline policies of a CloudFormation role as the parsed
    dict and serves them back with Python's str(), not as JSON
    (moto/iam/models.py, Role.create_from_cloudformation_json).
    """
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


def lambda_zip(marker: str) -> bytes:
    """A tiny but well-formed Lambda zip (a `bootstrap` for provided.al2023)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        zf.writestr(info, f"#!/bin/sh\n# ctguard moto check build {marker}\nexit 1\n")
    return buf.getvalue()


def upload_code(aws: Aws, region: str, bucket: str, marker: str) -> tuple[str, str]:
    data = lambda_zip(marker)
    digest = hashlib.sha256(data).hexdigest()
    key = f"ctguard/{digest}.zip"
    aws.client("s3", region).put_object(Bucket=bucket, Key=key, Body=data)
    return key, base64.b64encode(hashlib.sha256(data).digest()).decode()


def check_artifacts(chk: Checker, aws: Aws, region: str, outputs: dict[str, str], account: str) -> str:
    bucket = f"ctguard-artifacts-{account}-{region}"
    chk.eq(outputs.get("BucketName"), bucket, f"artifacts {region}: BucketName output")
    s3 = aws.client("s3", region)
    chk.attempt(f"bucket {bucket} exists", lambda: s3.head_bucket(Bucket=bucket))
    enc = chk.attempt("get_bucket_encryption", lambda: s3.get_bucket_encryption(Bucket=bucket))
    if enc:
        rule = enc["ServerSideEncryptionConfiguration"]["Rules"][0]
        chk.eq(rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256", "bucket SSE")
    tagging = chk.attempt("get_bucket_tagging", lambda: s3.get_bucket_tagging(Bucket=bucket))
    if tagging:
        chk.eq(tag_dict(tagging["TagSet"]), TAGS, "bucket tags")
    chk.gap(
        "bucket versioning Enabled",
        lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled",
    )
    chk.gap(
        "bucket public access block all true",
        lambda: all(
            s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values()
        ),
    )
    chk.gap(
        "bucket ownership BucketOwnerEnforced",
        lambda: s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0][
            "ObjectOwnership"
        ]
        == "BucketOwnerEnforced",
    )
    chk.gap(
        "bucket lifecycle: noncurrent versions expire after 30 days",
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0][
            "NoncurrentVersionExpiration"
        ]["NoncurrentDays"]
        == 30,
    )
    chk.gap(
        "bucket policy (deny non-TLS, org read of ctguard/*)",
        lambda: "aws:SecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"],
    )
    return bucket


def check_state(chk: Checker, aws: Aws, account: str, outputs: dict[str, str]) -> None:
    ddb = aws.client("dynamodb")
    table_arn = f"arn:aws:dynamodb:{HOME_REGION}:{account}:table/ctguard-state"
    chk.eq(outputs.get("StateTableName"), "ctguard-state", "StateTableName output")
    chk.eq(outputs.get("StateTableArn"), table_arn, "StateTableArn output")
    desc = chk.attempt("describe_table ctguard-state", lambda: ddb.describe_table(TableName="ctguard-state"))
    if desc:
        table = desc["Table"]
        chk.eq(table["KeySchema"], [{"AttributeName": "pk", "KeyType": "HASH"}], "table key schema")
        chk.eq(
            table["AttributeDefinitions"],
            [{"AttributeName": "pk", "AttributeType": "S"}],
            "table attribute definitions",
        )
        chk.eq(table["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST", "table billing mode")
        chk.eq(table.get("DeletionProtectionEnabled"), False, "table deletion protection off")
        chk.eq(table.get("GlobalSecondaryIndexes", []), [], "table has no GSI")
        tags = ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
        chk.eq(tag_dict(tags), TAGS, "table tags")
        chk.gap("table SSE enabled", lambda: table["SSEDescription"]["Status"] == "ENABLED")
    chk.gap(
        "table TTL on attribute ttl",
        lambda: ddb.describe_time_to_live(TableName="ctguard-state")["TimeToLiveDescription"]
        == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"},
    )
    chk.gap(
        "table point-in-time recovery enabled",
        lambda: ddb.describe_continuous_backups(TableName="ctguard-state")[
            "ContinuousBackupsDescription"
        ]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        == "ENABLED",
    )
    # Only the detector roles may write items: the table's resource policy, checked on the
    # template (what moto stores of it is checked as a gap).
    rp = load_template("ctguard-state.yaml")["Resources"]["StateTable"]["Properties"]["ResourcePolicy"]
    st, deletes = rp["PolicyDocument"]["Statement"]
    chk.eq(
        (deletes["Effect"], deletes["Principal"], sorted(deletes["Action"]), deletes["Condition"]),
        (
            "Deny",
            "*",
            ["dynamodb:DeleteItem", "dynamodb:PartiQLDelete"],
            {
                "ArnNotLike": {"aws:PrincipalArn": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ctguard-detector-*"}},
                "ForAnyValue:StringNotLike": {"dynamodb:LeadingKeys": ["K#ASIA0CTGV*", "A#ASIA0CTGV*"]},
            },
        ),
        "state table: item deletes denied but for the synthetic keys' state (template)",
    )
    chk.eq(
        (st["Effect"], st["Principal"], sorted(st["Action"]), st["Condition"]),
        (
            "Deny",
            "*",
            sorted(["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                    "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate"]),
            {"ArnNotLike": {"aws:PrincipalArn": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ctguard-detector-*"}}},
        ),
        "state table: item writes denied to all but the detector roles (template)",
    )
    chk.gap(
        "state table resource policy attached",
        lambda: "OnlyTheDetectorWritesState" in ddb.get_resource_policy(ResourceArn=table_arn)["Policy"],
    )



def check_account(chk: Checker, aws: Aws, account: str, outputs: dict[str, str]) -> None:
    sns = aws.client("sns")
    own_topic = f"arn:aws:sns:{HOME_REGION}:{account}:ctguard-alerts"
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    chk.eq(outputs.get("AlertTopicArn"), own_topic, "AlertTopicArn output = own topic")
    chk.ok(own_topic in topics, "topic ctguard-alerts exists", topics)
    attrs = chk.attempt("get_topic_attributes", lambda: sns.get_topic_attributes(TopicArn=own_topic))
    if attrs:
        chk.eq(attrs["Attributes"].get("KmsMasterKeyId"), "alias/aws/sns", "topic KMS key")
        chk.gap(
            "topic policy restricts Publish to the detector roles",
            lambda: "role/ctguard-detector-*" in attrs["Attributes"]["Policy"],
        )
    chk.gap(
        "topic tags",
        lambda: tag_dict(sns.list_tags_for_resource(ResourceArn=own_topic)["Tags"]) == TAGS,
    )
    chk.gap(
        "email subscription",
        lambda: [
            s["Endpoint"]
            for s in sns.list_subscriptions_by_topic(TopicArn=own_topic)["Subscriptions"]
        ]
        == [ALERT_EMAIL],
    )


def check_region(
    chk: Checker,
    aws: Aws,
    account: str,
    region: str,
    outputs: dict[str, str],
    params: dict[str, str],
    code_sha: str,
) -> None:
    table_arn = f"arn:aws:dynamodb:{params['HomeRegion']}:{account}:table/ctguard-state"
    topic_arn = params.get("AlertTopicArn") or f"arn:aws:sns:{params['HomeRegion']}:{account}:ctguard-alerts"
    hub = params.get("SecurityHub") == "true"
    auto_contain = params.get("AutoContain") == "true"
    product_arn = f"arn:aws:securityhub:{region}:{account}:product/{account}/default"
    fn_arn = f"arn:aws:lambda:{region}:{account}:function:ctguard-detector"
    rule_arn = f"arn:aws:events:{region}:{account}:rule/ctguard-detector"
    dlq_arn = f"arn:aws:sqs:{region}:{account}:ctguard-detector-dlq"
    role_name = f"ctguard-detector-{region}"
    role_arn = f"arn:aws:iam::{account}:role/{role_name}"
    log_group = "/aws/lambda/ctguard-detector"
    expected_outputs = {
        "FunctionName": "ctguard-detector",
        "FunctionArn": fn_arn,
        "RuleName": "ctguard-detector",
        "RuleArn": rule_arn,
        "DlqArn": dlq_arn,
        "RoleArn": role_arn,
        "LogGroupName": log_group,
    }
    for key, value in expected_outputs.items():
        chk.eq(outputs.get(key), value, f"{region}: output {key}")
    chk.ok(
        outputs.get("DlqUrl", "").endswith(f"/{account}/ctguard-detector-dlq"),
        f"{region}: output DlqUrl",
        outputs.get("DlqUrl"),
    )

    # IAM role: exact inline policy, no managed policy.
    iam = aws.client("iam", region)
    role = chk.attempt(f"get_role {role_name}", lambda: iam.get_role(RoleName=role_name))
    if role:
        trust = policy_document(role["Role"]["AssumeRolePolicyDocument"])
        chk.eq(
            [s["Principal"] for s in trust["Statement"]],
            [{"Service": "lambda.amazonaws.com"}],
            "role trusted by Lambda only",
        )
        chk.eq(tag_dict(role["Role"].get("Tags")), TAGS, "role tags")
        attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        chk.eq(attached, [], "role has no managed policies")
        doc = policy_document(
            iam.get_role_policy(RoleName=role_name, PolicyName="ctguard-detector")["PolicyDocument"]
        )
        grants = {
            s["Sid"]: (sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]), s["Resource"])
            for s in doc["Statement"]
        }
        chk.eq(
            grants,
            {
                "StateTable": (["dynamodb:UpdateItem"], table_arn),
                "Alerts": (["sns:Publish"], topic_arn),
                "OwnLogGroup": (
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    f"arn:aws:logs:{region}:{account}:log-group:{log_group}:*",
                ),
                "DeadLetters": (["sqs:SendMessage"], dlq_arn),
            },
            "role inline policy (least privilege)",
        )
        names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        chk.eq(sorted(names), sorted(["ctguard-detector"] + (["ctguard-detector-securityhub"] if hub else [])
                                     + (["ctguard-detector-contain"] if auto_contain else [])),
               "role policies: the Security Hub and containment grants only when enabled")
        if auto_contain:
            doc = policy_document(
                iam.get_role_policy(RoleName=role_name, PolicyName="ctguard-detector-contain")["PolicyDocument"]
            )
            chk.eq([(s["Sid"], s["Effect"], s["Action"], s["Resource"], s.get("Condition")) for s in doc["Statement"]],
                   [("ContainOptedInRoles", "Allow", ["iam:GetRole", "iam:GetRolePolicy", "iam:PutRolePolicy"],
                     f"arn:aws:iam::{account}:role/*",
                     {"StringEquals": {"aws:ResourceTag/ctguard-auto-contain": "true"}}),
                    ("NeverCtguardsOwnRoles", "Deny", "iam:PutRolePolicy", [f"arn:aws:iam::{account}:role/ctguard-*", f"arn:aws:iam::{account}:role/*/ctguard-*"],
                     None)],
                   "containment grant: this account's opted-in roles only, never ctguard's own")
        if hub:
            doc = policy_document(
                iam.get_role_policy(RoleName=role_name, PolicyName="ctguard-detector-securityhub")["PolicyDocument"]
            )
            chk.eq([(s["Sid"], s["Action"], s["Resource"]) for s in doc["Statement"]],
                   [("SecurityHubFindings", "securityhub:BatchImportFindings", product_arn)],
                   "Security Hub grant: the account's default product in this region only")

    # Log group.
    logs = aws.client("logs", region)
    groups = logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    chk.eq([g["logGroupName"] for g in groups], [log_group], "log group exists")
    if groups:
        chk.eq(groups[0].get("retentionInDays"), int(params.get("LogRetentionDays", "90")), "log retention")
        tags = logs.list_tags_for_resource(resourceArn=groups[0]["logGroupArn"])["tags"]
        chk.eq(tags, TAGS, "log group tags")

    # DLQ.
    sqs = aws.client("sqs", region)
    url = chk.attempt("get_queue_url", lambda: sqs.get_queue_url(QueueName="ctguard-detector-dlq")["QueueUrl"])
    if url:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        chk.eq(attrs.get("SqsManagedSseEnabled"), "true", "DLQ SSE-SQS")
        chk.eq(attrs.get("MessageRetentionPeriod"), "1209600", "DLQ retention 14 days")
        chk.eq(sqs.list_queue_tags(QueueUrl=url).get("Tags"), TAGS, "DLQ tags")
        chk.gap(
            "DLQ policy lets the rule (events.amazonaws.com) send",
            lambda: rule_arn in attrs["Policy"],
        )

    # Function.
    lam = aws.client("lambda", region)
    fn = chk.attempt("get_function ctguard-detector", lambda: lam.get_function(FunctionName="ctguard-detector"))
    if fn:
        conf = fn["Configuration"]
        for key, value in {
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Architectures": ["x86_64"],
            "MemorySize": 256,
            "Timeout": 30,
            "Role": role_arn,
            "CodeSha256": code_sha,
        }.items():
            chk.eq(conf.get(key), value, f"function {key}")
        chk.ok("ReservedConcurrentExecutions" not in fn.get("Concurrency", {}), "no reserved concurrency")
        chk.eq(
            conf.get("Environment", {}).get("Variables"),
            {
                "CTGUARD_TABLE": "ctguard-state",
                "CTGUARD_TABLE_REGION": params["HomeRegion"],
                "CTGUARD_TOPIC_ARN": topic_arn,
                "CTGUARD_POLICY": params.get("Policy", "{}"),
                "CTGUARD_DEFAULT_TTL_HOURS": params.get("DefaultTtlHours", "12"),
                "CTGUARD_VERSION": VERSION,
                "CTGUARD_SECURITY_HUB_PRODUCT": product_arn if hub else "",
                "CTGUARD_AUTO_CONTAIN": "true" if auto_contain else "false",
                "CTGUARD_ACCOUNT": account,
            },
            "function environment",
        )
        chk.ok(params["CodeKey"] in fn["Code"].get("Location", ""), "function code from CodeKey")
        chk.gap("function tags", lambda: tag_dict(fn.get("Tags")) == TAGS)
        policy = json.loads(lam.get_policy(FunctionName="ctguard-detector")["Policy"])
        chk.ok(
            any(
                s.get("Principal") == {"Service": "events.amazonaws.com"}
                and rule_arn in json.dumps(s.get("Condition", {}))
                for s in policy["Statement"]
            ),
            "function permission for the rule",
            policy,
        )

    def invoke_config_ok() -> bool:
        cfg = lam.get_function_event_invoke_config(FunctionName="ctguard-detector", Qualifier="$LATEST")
        return (
            cfg.get("MaximumRetryAttempts") == 2
            and cfg.get("MaximumEventAgeInSeconds") == 21600
            and cfg["DestinationConfig"]["OnFailure"]["Destination"] == dlq_arn
        )

    chk.gap("event invoke config (2 retries, 6 h, on-failure DLQ)", invoke_config_ok)

    # Rule.
    events = aws.client("events", region)
    rule = chk.attempt("describe_rule ctguard-detector", lambda: events.describe_rule(Name="ctguard-detector"))
    if rule:
        chk.eq(rule["State"], "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS", "rule state")
        chk.eq(rule.get("EventBusName"), "default", "rule on the default bus")
        chk.eq(json.loads(rule["EventPattern"]), EXPECTED_EVENT_PATTERN, "rule event pattern")
        targets = events.list_targets_by_rule(Rule="ctguard-detector")["Targets"]
        chk.eq(
            [(t["Arn"], t.get("RetryPolicy"), t.get("DeadLetterConfig")) for t in targets],
            [
                (
                    fn_arn,
                    {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
                    {"Arn": dlq_arn},
                )
            ],
            "rule target (function, retry policy, DLQ)",
        )
        tags = events.list_tags_for_resource(ResourceARN=rule_arn)["Tags"]
        chk.eq(tag_dict(tags), TAGS, "rule tags")

    # Health: the three alarms, and the rule that takes their state changes to the function.
    cw = aws.client("cloudwatch", region)
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNamePrefix="ctguard-detector")["MetricAlarms"]}
    expected_alarms = {
        "ctguard-detector-dlq": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum",
                                 [{"Name": "QueueName", "Value": "ctguard-detector-dlq"}]),
        "ctguard-detector-errors": ("AWS/Lambda", "Errors", "Sum", [{"Name": "FunctionName", "Value": "ctguard-detector"}]),
        "ctguard-detector-side-effects": ("ctguard", "AlertSideEffectFailures", "Sum",
                                          [{"Name": "FunctionName", "Value": "ctguard-detector"}]),
    }
    # Plain moto's CloudFormation creates no alarm (the emulator of the end-to-end tests does,
    # and tests/it/alert_to_action.rs checks them there); the template's text is checked instead.
    tpl = load_template("ctguard-region.yaml")["Resources"]
    for logical, (name, (ns, metric, stat, dims)) in zip(["DetectorDlqAlarm", "DetectorErrorsAlarm", "DetectorSideEffectsAlarm"], sorted(expected_alarms.items())):
        p = tpl[logical]["Properties"]
        # Errors must last 15 minutes (some are by design and retried); any DLQ message counts.
        periods = 3 if name.endswith("-errors") else 1
        chk.eq(
            (p["AlarmName"], p["Namespace"], p["MetricName"], p["Statistic"], p["Period"], p["Threshold"],
             p["ComparisonOperator"], p["TreatMissingData"], p["EvaluationPeriods"], p.get("DatapointsToAlarm", 1)),
            (name, ns, metric, stat, 300, 0, "GreaterThanThreshold", "notBreaching", periods, periods),
            f"alarm {name}: metric and threshold (template)",
        )
        chk.gap(f"alarm {name} created", lambda name=name: name in alarms)
    health = chk.attempt("describe_rule ctguard-detector-health", lambda: events.describe_rule(Name="ctguard-detector-health"))
    if health:
        chk.eq(
            json.loads(health["EventPattern"]),
            {
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{n}" for n in sorted(expected_alarms)],
            },
            "health rule pattern: the three alarms only",
        )
        targets = events.list_targets_by_rule(Rule="ctguard-detector-health")["Targets"]
        chk.eq([t["Arn"] for t in targets], [fn_arn], "health rule target: the function")


def check_region_deleted(chk: Checker, aws: Aws, region: str) -> None:
    lam = aws.client("lambda", region)
    chk.ok(
        gone(lambda: lam.get_function(FunctionName="ctguard-detector"), "ResourceNotFoundException"),
        f"{region}: function deleted",
    )
    events = aws.client("events", region)
    chk.ok(
        gone(lambda: events.describe_rule(Name="ctguard-detector"), "ResourceNotFoundException"),
        f"{region}: rule deleted",
    )
    iam = aws.client("iam", region)
    chk.ok(
        gone(lambda: iam.get_role(RoleName=f"ctguard-detector-{region}"), "NoSuchEntity"),
        f"{region}: role deleted",
    )
    sqs = aws.client("sqs", region)
    chk.ok(
        gone(
            lambda: sqs.get_queue_url(QueueName="ctguard-detector-dlq"),
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ),
        f"{region}: DLQ deleted",
    )
    logs = aws.client("logs", region)
    chk.eq(
        logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/ctguard-detector")["logGroups"],
        [],
        f"{region}: log group deleted",
    )


def check_account_deleted(chk: Checker, aws: Aws) -> None:
    """Both account-level stacks (state and alerts) gone."""
    ddb = aws.client("dynamodb")
    chk.ok(
        gone(lambda: ddb.describe_table(TableName="ctguard-state"), "ResourceNotFoundException"),
        "state table deleted",
    )
    topics = [t["TopicArn"] for t in aws.client("sns").list_topics()["Topics"]]
    chk.ok(not any(t.endswith(":ctguard-alerts") for t in topics), "alert topic deleted", topics)


def empty_bucket(aws: Aws, region: str, bucket: str) -> None:
    """What the uninstaller does before deleting the artifacts stack."""
    s3 = aws.client("s3", region)
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    for page in pages:
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed})


# --------------------------------------------------------------------------
# Scenario


def run(chk: Checker, endpoint: str) -> None:
    mgmt = Aws(endpoint, {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"})
    ident = mgmt.client("sts").get_caller_identity()
    chk.eq(ident["Account"], MGMT_ACCOUNT, "management account id")

    section("management account: artifacts")
    buckets = {}
    codes = {}
    for region, org_id in ((HOME_REGION, ""), (OTHER_REGION, ORG_ID_PARAM)):
        outputs = create_stack(
            chk, mgmt, region, "ctguard-artifacts", "ctguard-artifacts.yaml",
            {"OrgId": org_id, "DetectorVersion": VERSION},
        )
        if outputs is None:
            return
        buckets[region] = check_artifacts(chk, mgmt, region, outputs, MGMT_ACCOUNT)
        codes[region] = upload_code(mgmt, region, buckets[region], "build-1")

    section("management account: state stack and account stack (own topic)")
    state_out = create_stack(
        chk, mgmt, HOME_REGION, "ctguard-state", "ctguard-state.yaml", {"DetectorVersion": VERSION}
    )
    if state_out is None:
        return
    check_state(chk, mgmt, MGMT_ACCOUNT, state_out)
    acct_out = create_stack(
        chk, mgmt, HOME_REGION, "ctguard-account", "ctguard-account.yaml",
        {"DetectorVersion": VERSION, "AlertEmail": ALERT_EMAIL},
    )
    if acct_out is None:
        return
    check_account(chk, mgmt, MGMT_ACCOUNT, acct_out)
    central_topic = acct_out["AlertTopicArn"]

    section("management account: region stacks")
    region_params = {}
    for region in (HOME_REGION, OTHER_REGION):
        params = {
            "DetectorVersion": VERSION,
            "ArtifactsAccountId": MGMT_ACCOUNT,
            "HomeRegion": HOME_REGION,
            "CodeKey": codes[region][0],
            "Policy": json.dumps({"allow": [{"role": "ci-deployer", "networks": ["10.0.0.0/8"]}]}),
            "LogRetentionDays": "30" if region == OTHER_REGION else "90",
            "DefaultTtlHours": "12",
            # Both branches of the Security Hub and containment conditions.
            "SecurityHub": "true" if region == OTHER_REGION else "false",
            "AutoContain": "true" if region == HOME_REGION else "false",
        }
        off = frozenset(
            ([] if params["SecurityHub"] == "true" else ["DetectorSecurityHubPolicy"])
            + ([] if params["AutoContain"] == "true" else ["DetectorContainPolicy"])
        )
        outputs = create_stack(chk, mgmt, region, "ctguard-region", "ctguard-region.yaml", params, off=off)
        if outputs is None:
            return
        check_region(chk, mgmt, MGMT_ACCOUNT, region, outputs, params, codes[region][1])
        region_params[region] = params

    section("management account: new build rolls out (update CodeKey)")
    new_key, new_sha = upload_code(mgmt, OTHER_REGION, buckets[OTHER_REGION], "build-2")
    params = dict(region_params[OTHER_REGION], CodeKey=new_key)
    update_stack(chk, mgmt, OTHER_REGION, "ctguard-region", "ctguard-region.yaml", params)
    conf = mgmt.client("lambda", OTHER_REGION).get_function(FunctionName="ctguard-detector")
    chk.eq(conf["Configuration"]["CodeSha256"], new_sha, "function code updated to the new build")

    section("member account (OrganizationAccountAccessRole)")
    org = mgmt.client("organizations")
    org.create_organization(FeatureSet="ALL")
    status = org.create_account(Email="workload@example.com", AccountName="workload")["CreateAccountStatus"]
    chk.eq(status["State"], "SUCCEEDED", "member account created")
    member_id = status["AccountId"]
    creds = mgmt.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{member_id}:role/OrganizationAccountAccessRole",
        RoleSessionName="ctguard-installer",
    )["Credentials"]
    member = Aws(
        endpoint,
        {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        },
    )
    chk.eq(member.client("sts").get_caller_identity()["Account"], member_id, "assumed role is in the member account")
    m_state = create_stack(
        chk, member, HOME_REGION, "ctguard-state", "ctguard-state.yaml", {"DetectorVersion": VERSION}
    )
    m_params = None
    if m_state is not None:
        check_state(chk, member, member_id, m_state)
        # Code comes from the management account's bucket (cross-account).
        m_params = {
            "DetectorVersion": VERSION,
            "ArtifactsAccountId": MGMT_ACCOUNT,
            "HomeRegion": HOME_REGION,
            "CodeKey": codes[HOME_REGION][0],
            "AlertTopicArn": central_topic,
        }
        m_out = create_stack(chk, member, HOME_REGION, "ctguard-region", "ctguard-region.yaml", m_params, off=frozenset({"DetectorSecurityHubPolicy", "DetectorContainPolicy"}))
        if m_out is not None:
            check_region(chk, member, member_id, HOME_REGION, m_out, m_params, codes[HOME_REGION][1])
            topics = [t["TopicArn"] for t in member.client("sns").list_topics()["Topics"]]
            chk.ok(
                not any(t.endswith(":ctguard-alerts") for t in topics),
                "member account has no topic of its own (central topic)",
                topics,
            )
    mgmt_fn = chk.attempt(
        "management account's function still there",
        lambda: mgmt.client("lambda").get_function(FunctionName="ctguard-detector"),
    )
    if mgmt_fn:
        chk.eq(
            mgmt_fn["Configuration"]["FunctionArn"],
            f"arn:aws:lambda:{HOME_REGION}:{MGMT_ACCOUNT}:function:ctguard-detector",
            "member deployment did not touch the management account's function",
        )

    section("uninstall: delete every stack")
    if m_params is not None:
        delete_stack(chk, member, HOME_REGION, "ctguard-region")
        check_region_deleted(chk, member, HOME_REGION)
    delete_stack(chk, member, HOME_REGION, "ctguard-state")
    check_account_deleted(chk, member)
    for region in (HOME_REGION, OTHER_REGION):
        delete_stack(chk, mgmt, region, "ctguard-region")
        check_region_deleted(chk, mgmt, region)
    delete_stack(chk, mgmt, HOME_REGION, "ctguard-account")
    delete_stack(chk, mgmt, HOME_REGION, "ctguard-state")
    check_account_deleted(chk, mgmt)
    for region in (HOME_REGION, OTHER_REGION):
        empty_bucket(mgmt, region, buckets[region])
        delete_stack(chk, mgmt, region, "ctguard-artifacts")
        s3 = mgmt.client("s3", region)
        chk.ok(
            gone(lambda b=buckets[region]: s3.head_bucket(Bucket=b)),
            f"{region}: artifacts bucket deleted",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-log", action="store_true", help="keep the moto server log")
    args = parser.parse_args()

    chk = Checker()
    static_checks(chk)

    workdir = Path(tempfile.mkdtemp(prefix="ctguard-moto-"))
    server = MotoServer(workdir / "moto_server.log")
    crashed = False
    try:
        server.start()
        run(chk, server.endpoint)
    except Exception:  # noqa: BLE001 - any crash is a failure
        crashed = True
        traceback.print_exc()
        chk.failures.append("unexpected exception (see traceback above)")
    finally:
        server.stop()
        if chk.failures or crashed:
            print(f"\n-- last lines of the moto server log ({server.log_path}):")
            print(server.tail())
        if args.keep_log or chk.failures:
            print(f"moto server log kept in {server.log_path}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    section("summary")
    gaps = sorted(set(chk.gaps))
    print(f"{chk.passed} checks passed, {len(chk.failures)} failed, {len(gaps)} distinct moto gaps noted")
    for gap in gaps:
        print(f"  NOTE  {gap} (x{chk.gaps.count(gap)})")
    for failure in chk.failures:
        print(f"  FAIL  {failure}")
    return 1 if chk.failures else 0


if __name__ == "__main__":
    sys.exit(main())
