"""Creates an emulated AWS Organization in a running moto server, for the demo.

Management account 123456789012 (moto's default), two OUs with two member accounts each, and in
every account x region a CloudTrail trail logging all management events (read and write), which
`ctguard install` requires. Prints the member account ids, one per line.

Usage: emulated_org.py ENDPOINT REGION[,REGION...]
"""
import sys

import boto3

ENDPOINT, REGIONS = sys.argv[1], sys.argv[2].split(",")
CREDS = dict(aws_access_key_id="testing", aws_secret_access_key="testing")


def client(service, region="us-east-1", creds=CREDS):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=region, **creds)


org = client("organizations")
org.create_organization(FeatureSet="ALL")
root = org.list_roots()["Roots"][0]["Id"]
members = []
for ou_name in ("workloads", "sandbox"):
    ou = org.create_organizational_unit(ParentId=root, Name=ou_name)["OrganizationalUnit"]["Id"]
    for i in (1, 2):
        st = org.create_account(Email=f"{ou_name}{i}@example.com", AccountName=f"{ou_name}-{i}")
        acct = st["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=acct, SourceParentId=root, DestinationParentId=ou)
        members.append(acct)


def trail(creds, account):
    s3 = client("s3", creds=creds)
    bucket = f"trail-logs-{account}"
    s3.create_bucket(Bucket=bucket)
    for region in REGIONS:
        ct = client("cloudtrail", region, creds)
        name = f"org-audit-{region}"
        ct.create_trail(Name=name, S3BucketName=bucket)
        ct.put_event_selectors(
            TrailName=name,
            EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}],
        )
        ct.start_logging(Name=name)


trail(CREDS, "123456789012")
sts = client("sts")
for acct in members:
    c = sts.assume_role(
        RoleArn=f"arn:aws:iam::{acct}:role/OrganizationAccountAccessRole", RoleSessionName="demo"
    )["Credentials"]
    trail(
        dict(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
        ),
        acct,
    )
print("\n".join(members))
