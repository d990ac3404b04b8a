//! Event builders shared by the scenario, integrity and property tests.
#![allow(dead_code)]

use serde_json::{json, Value};

pub const ACCT: &str = "111122223333";
pub const ROLE: &str = "arn:aws:iam::111122223333:role/web";
pub const KEY1: &str = "ASIAAAAAAAAAAAAAAAA2";
pub const KEY2: &str = "ASIAAAAAAAAAAAAAAAA3";
pub const KEY3: &str = "ASIAAAAAAAAAAAAAAAA4";
pub const INSTANCE: &str = "i-0123456789abcdef0";

/// A use of `key` by a Lambda-style role session (per-key scope).
pub fn call(key: &str, ip: &str, time: &str, region: &str, id: &str) -> Value {
    json!({
        "eventVersion": "1.08", "eventID": id, "eventTime": time, "eventType": "AwsApiCall",
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": region,
        "sourceIPAddress": ip, "userAgent": "aws-cli/2.15", "recipientAccountId": ACCT,
        "userIdentity": { "type": "AssumedRole", "accessKeyId": key,
            "arn": "arn:aws:sts::111122223333:assumed-role/web/my-function",
            "accountId": ACCT,
            "sessionContext": { "attributes": {"creationDate": "2024-05-01T10:00:00Z"},
                "sessionIssuer": {"type": "Role", "arn": ROLE} } }
    })
}

/// A use of `key` by the EC2 instance's role session.
pub fn instance_call(key: &str, ip: &str, time: &str, id: &str) -> Value {
    let mut v = call(key, ip, time, "us-east-1", id);
    v["userIdentity"]["arn"] = json!(format!("arn:aws:sts::111122223333:assumed-role/web/{INSTANCE}"));
    v["userIdentity"]["sessionContext"]["ec2RoleDelivery"] = json!("2.0");
    v
}

/// A use of `key` through a VPC endpoint of the principal's own account (private source).
pub fn own_vpce_call(key: &str, time: &str, id: &str) -> Value {
    vpce_call(key, "vpce-0aaa", ACCT, time, id)
}

/// A use of `key` through the VPC endpoint `vpce` owned by `owner`.
pub fn vpce_call(key: &str, vpce: &str, owner: &str, time: &str, id: &str) -> Value {
    let mut v = call(key, "10.0.0.5", time, "us-east-1", id);
    v["vpcEndpointId"] = json!(vpce);
    v["vpcEndpointAccountId"] = json!(owner);
    v
}

/// EC2 refreshing the instance's credentials: a new key for the same session.
pub fn rotation(new_key: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08", "eventID": format!("rot-{new_key}"), "eventTime": time, "eventType": "AwsApiCall",
        "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": "us-east-1",
        "sourceIPAddress": "ec2.amazonaws.com", "userAgent": "ec2.amazonaws.com", "recipientAccountId": ACCT,
        "userIdentity": { "type": "AWSService", "invokedBy": "ec2.amazonaws.com" },
        "requestParameters": { "roleArn": ROLE, "roleSessionName": INSTANCE },
        "responseElements": { "credentials": { "accessKeyId": new_key, "sessionToken": "TOKEN-MUST-NOT-LEAK",
            "expiration": "May 1, 2024 6:00:00 PM" } }
    })
}

/// A successful network move of the instance: `AssociateAddress`, `AttachNetworkInterface`
/// or `StartInstances`, in the request shape each really has.
pub fn instance_move(name: &str, time: &str) -> Value {
    let request = match name {
        "StartInstances" => json!({ "instancesSet": { "items": [{ "instanceId": INSTANCE }] } }),
        "AttachNetworkInterface" => json!({ "instanceId": INSTANCE, "networkInterfaceId": "eni-1", "deviceIndex": 1 }),
        _ => json!({ "instanceId": INSTANCE, "allocationId": "eipalloc-1" }),
    };
    json!({
        "eventVersion": "1.08", "eventID": format!("{name}-{time}"), "eventTime": time, "eventType": "AwsApiCall",
        "eventSource": "ec2.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.200", "recipientAccountId": ACCT,
        "userIdentity": { "type": "IAMUser", "accessKeyId": "AKIAAAAAAAAAAAAAAAAA" },
        "requestParameters": request,
        "responseElements": { "return": true }
    })
}

pub fn associate_address(time: &str) -> Value {
    instance_move("AssociateAddress", time)
}

/// Every signal a record can carry: a rotation and the three kinds of move.
pub fn every_signal(time: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("rotation", rotation(KEY2, time)),
        ("AssociateAddress", instance_move("AssociateAddress", time)),
        ("AttachNetworkInterface", instance_move("AttachNetworkInterface", time)),
        ("StartInstances", instance_move("StartInstances", time)),
    ]
}

/// An EventBridge envelope of `detail` with `source`.
pub fn envelope(source: &str, detail: Value) -> Value {
    json!({"version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail", "source": source,
           "account": ACCT, "region": "us-east-1", "detail": detail})
}
