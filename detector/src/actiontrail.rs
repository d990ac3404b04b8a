//! Alibaba Cloud ActionTrail events, rewritten into the CloudTrail shape [`crate::event::Record`] reads.
//!
//! ActionTrail is CloudTrail's counterpart on Alibaba Cloud and records the same facts under
//! slightly different names (`acsRegion`, `sourceIpAddress`, `eventId`, `eventType: ApiCall`,
//! `userIdentity.type: assumed-role`). Temporary credentials are `STS.…` AccessKey IDs, long-term
//! ones `LTAI…`. Events arrive:
//!
//! - bare (OSS delivery writes JSON arrays of them, the `LookupEvents` API returns them);
//! - nested under `event` when exported from Simple Log Service (SLS), where `event` is an object
//!   or, as SLS stores it, a JSON *string*;
//! - as the `data` of an EventBridge CloudEvent whose `type` starts with `actiontrail:`.
//!
//! [`to_cloudtrail`] maps every one of those onto CloudTrail field names so that the detector,
//! `scan` and `trace` need no second code path. The mapping is lenient like the rest of the
//! reader: a field of the wrong shape is dropped, never a reason to lose the event.
//!
//! Field names follow Alibaba's ActionTrail documentation ("ActionTrail event structure",
//! "Log fields" of the SLS export).

use serde_json::{Map, Value};

/// Cheap pre-check: every ActionTrail event carries `acsRegion`, which no CloudTrail record has
/// at its top level. Use it to avoid a JSON parse for the (overwhelmingly) CloudTrail case.
pub fn looks_like(json: &str) -> bool {
    json.contains("acsRegion")
}

/// Rewrites one ActionTrail event (plain, nested under `event`, or in a CloudEvent) into
/// CloudTrail-shaped JSON. Returns `None` when `json` is not an ActionTrail event (including
/// every CloudTrail record), so callers can fall back to reading it as it is.
pub fn to_cloudtrail(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let event = unwrap_event(v)?;
    let obj = event.as_object()?;
    // A CloudTrail record that merely mentions `acsRegion` in its parameters stays as it is.
    if obj.contains_key("awsRegion") || obj.contains_key("sourceIPAddress") || !obj.contains_key("acsRegion") {
        return None;
    }
    Some(Value::Object(rewrite(obj)).to_string())
}

/// Finds the event inside an SLS export row (`event`, object or string) or a CloudEvent (`data`).
fn unwrap_event(v: Value) -> Option<Value> {
    let Value::Object(mut obj) = v else { return None };
    if obj.contains_key("eventName") || obj.contains_key("acsRegion") {
        return Some(Value::Object(obj));
    }
    let is_cloud_event = obj.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("actiontrail:"));
    let inner = match (obj.remove("event"), is_cloud_event) {
        (Some(e), _) => e,
        (None, true) => obj.remove("data")?,
        (None, false) => return None,
    };
    match inner {
        Value::String(s) => serde_json::from_str::<Value>(&s).ok().filter(Value::is_object),
        o @ Value::Object(_) => Some(o),
        _ => None,
    }
}

/// A non-empty string field (ActionTrail writes `""` for absent values, e.g. `errorCode`).
fn text<'v>(o: &'v Map<String, Value>, k: &str) -> Option<&'v str> {
    o.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// A scalar written as text (ActionTrail's `eventVersion` is a number in some exports).
fn scalar(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// ActionTrail `eventType` → CloudTrail `eventType`.
fn event_type(t: &str) -> String {
    match t {
        "ApiCall" => "AwsApiCall".into(),
        "ConsoleOperation" => "AwsConsoleAction".into(),
        "ConsoleSignin" | "ConsoleSignout" => "AwsConsoleSignIn".into(),
        "AliyunServiceEvent" => "AwsServiceEvent".into(),
        other => other.to_string(),
    }
}

/// ActionTrail `userIdentity.type` → CloudTrail `userIdentity.type`.
fn identity_type(t: &str) -> String {
    match t {
        "root-account" => "Root".into(),
        "ram-user" => "IAMUser".into(),
        "assumed-role" => "AssumedRole".into(),
        "system" => "AWSService".into(),
        "alibaba-cloud-account" => "AWSAccount".into(),
        other => other.to_string(),
    }
}

fn rewrite(at: &Map<String, Value>) -> Map<String, Value> {
    let mut ct = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            ct.insert(k.to_string(), Value::String(v));
        }
    };
    let s = |k: &str| text(at, k).map(str::to_string);
    put("eventVersion", scalar(at, "eventVersion"));
    put("eventID", s("eventId"));
    put("eventTime", s("eventTime"));
    put("eventName", s("eventName"));
    // `eventSource` is the endpoint host (`ecs-cn-hangzhou.aliyuncs.com`); when an export drops
    // it, the service name stands in so that the service is still known.
    put(
        "eventSource",
        s("eventSource")
            .or_else(|| text(at, "serviceName").map(|n| format!("{}.aliyuncs.com", n.to_ascii_lowercase()))),
    );
    put("eventType", text(at, "eventType").map(event_type));
    put("awsRegion", s("acsRegion"));
    put("sourceIPAddress", s("sourceIpAddress"));
    put("userAgent", s("userAgent"));
    put("errorCode", s("errorCode"));
    put("errorMessage", s("errorMessage"));
    put("requestID", s("requestId"));
    put("serviceName", s("serviceName"));
    // ActionTrail names the VPC a private call came from; like a VPC endpoint id on AWS it
    // names the network path, where the private address alone names nothing.
    put("vpcEndpointId", s("vpcId"));
    put("readOnly", text(at, "eventRW").map(|rw| (rw.eq_ignore_ascii_case("Read")).to_string()));
    let ui = at.get("userIdentity").and_then(Value::as_object);
    let account = text(at, "recipientAccountId").or_else(|| ui.and_then(|u| text(u, "accountId"))).map(str::to_string);
    put("recipientAccountId", account);
    for k in ["requestParameters", "responseElements", "additionalEventData"] {
        if let Some(v) = at.get(k).filter(|v| v.is_object()) {
            ct.insert(k.to_string(), v.clone());
        }
    }
    if let Some(u) = ui {
        ct.insert("userIdentity".into(), Value::Object(rewrite_identity(u)));
    }
    ct
}

fn rewrite_identity(u: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let kind = text(u, "type").map(identity_type);
    let account = text(u, "accountId");
    let user = text(u, "userName");
    for (from, to) in [
        ("principalId", "principalId"),
        ("accountId", "accountId"),
        ("accessKeyId", "accessKeyId"),
        ("userName", "userName"),
    ] {
        if let Some(v) = text(u, from) {
            out.insert(to.into(), Value::String(v.to_string()));
        }
    }
    let acct = account.unwrap_or("");
    let mut context = u.get("sessionContext").and_then(Value::as_object).cloned().unwrap_or_default();
    match (kind.as_deref(), user) {
        // `userName` of an assumed role is `ROLE:SESSION`.
        (Some("AssumedRole"), Some(name)) => {
            let (role, session) = name.split_once(':').unwrap_or((name, ""));
            out.insert("arn".into(), Value::String(format!("acs:ram::{acct}:assumed-role/{role}/{session}")));
            if !context.contains_key("sessionIssuer") {
                let issuer = serde_json::json!({
                    "type": "Role", "arn": format!("acs:ram::{acct}:role/{role}"), "userName": role
                });
                context.insert("sessionIssuer".into(), issuer);
            }
        }
        (Some("IAMUser"), Some(name)) => {
            out.insert("arn".into(), Value::String(format!("acs:ram::{acct}:user/{name}")));
        }
        (Some("Root"), _) if !acct.is_empty() => {
            out.insert("arn".into(), Value::String(format!("acs:ram::{acct}:root")));
        }
        _ => {}
    }
    if let Some(k) = kind {
        out.insert("type".into(), Value::String(k));
    }
    if !context.is_empty() {
        out.insert("sessionContext".into(), Value::Object(context));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Record;

    /// The documented example of a RAM user querying events by assuming a role (keys masked as
    /// in the documentation; the source address is given a real value here).
    const ASSUMED_ROLE: &str = r#"{
      "apiVersion": "2020-07-06", "requestId": "3462D6AF-4434-4690-8CAD-E54A", "eventType": "ApiCall",
      "userIdentity": { "accessKeyId": "STS.NUQNP4PiGyckMsNiGELCsXXXX",
        "sessionContext": { "attributes": { "mfaAuthenticated": "false", "creationDate": "2021-01-01T00:00:00Z" } },
        "accountId": "1594986938260000", "principalId": "343597926003930000:u1", "type": "assumed-role",
        "userName": "custom-role-for-actiontrail:u1" },
      "acsRegion": "cn-hangzhou", "eventName": "LookupEvents",
      "requestParameters": { "AcsHost": "actiontrail.cn-hangzhou.aliyuncs.com", "RegionId": "cn-hangzhou" },
      "eventSource": "actiontrail.cn-hangzhou.aliyuncs.com", "serviceName": "Actiontrail",
      "eventTime": "2021-01-01T00:00:00Z",
      "userAgent": "AlibabaCloud (Mac OS X; x86_64) Java/1.8.0_252-b09 Core/4.4.6 HTTPClient/ApacheHttpClient",
      "eventId": "3462D6AF-4434-4690-8CAD-0000", "additionalEventData": { "Scheme": "http" },
      "errorCode": "", "errorMessage": "", "eventVersion": "1", "sourceIpAddress": "47.96.1.20" }"#;

    #[test]
    fn maps_a_documented_event_onto_the_record() {
        let ct = to_cloudtrail(ASSUMED_ROLE).expect("an ActionTrail event");
        let r = Record::parse(&ct).expect("parses");
        assert_eq!(r.event_name.get(), Some("LookupEvents"));
        assert_eq!(r.event_type.get(), Some("AwsApiCall"));
        assert_eq!(r.aws_region.get(), Some("cn-hangzhou"));
        assert_eq!(r.source_ip_address.get(), Some("47.96.1.20"));
        assert_eq!(r.access_key_id(), Some("STS.NUQNP4PiGyckMsNiGELCsXXXX"));
        assert_eq!(r.event_id.get(), Some("3462D6AF-4434-4690-8CAD-0000"));
        assert_eq!(r.error_code.get(), None, "an empty errorCode is no error");
        assert_eq!(r.session_name(), Some("u1"));
        assert_eq!(r.role_arn().as_deref(), Some("acs:ram::1594986938260000:role/custom-role-for-actiontrail"));
        assert_eq!(r.account(), Some("1594986938260000"));
        assert!(r.time().is_some());
        assert!(r.session_created().is_some());
    }

    #[test]
    fn unwraps_sls_exports_and_cloud_events() {
        let as_string = serde_json::json!({ "__topic__": "actiontrail_event", "event": ASSUMED_ROLE }).to_string();
        let inner: Value = serde_json::from_str(ASSUMED_ROLE).expect("json");
        let as_object = serde_json::json!({ "__topic__": "actiontrail_audit_event", "event": inner }).to_string();
        let cloud_event = serde_json::json!({ "specversion": "1.0", "type": "actiontrail:ActionTrail:ApiCall",
            "source": "acs.actiontrail", "data": inner })
        .to_string();
        for wrapped in [as_string, as_object, cloud_event] {
            assert!(looks_like(&wrapped));
            let ct = to_cloudtrail(&wrapped).expect("unwrapped");
            let r = Record::parse(&ct).expect("parses");
            assert_eq!(r.access_key_id(), Some("STS.NUQNP4PiGyckMsNiGELCsXXXX"), "{wrapped}");
        }
    }

    #[test]
    fn ram_users_and_vpc_sources() {
        let ev = r#"{"eventId":"e1","eventName":"CreateAccessKey","eventSource":"ram.aliyuncs.com",
          "eventType":"ApiCall","acsRegion":"cn-shanghai","eventTime":"2023-05-06T07:08:09Z",
          "sourceIpAddress":"192.168.0.7","vpcId":"vpc-bp1abc","eventVersion":1,"eventRW":"Write",
          "userIdentity":{"type":"ram-user","accountId":"1234","userName":"alice","accessKeyId":"LTAI5tAbCdEf"}}"#;
        let r_json = to_cloudtrail(ev).expect("event");
        let r = Record::parse(&r_json).expect("parses");
        let ui = r.user_identity.as_ref().expect("identity");
        assert_eq!(ui.kind.get(), Some("IAMUser"));
        assert_eq!(ui.arn.get(), Some("acs:ram::1234:user/alice"));
        assert_eq!(r.vpc_endpoint_id.get(), Some("vpc-bp1abc"));
        assert_eq!(r.read_only.get(), Some("false"));
        assert_eq!(r.event_version.get(), Some("1"));
    }

    #[test]
    fn cloudtrail_and_junk_are_left_alone() {
        assert_eq!(
            to_cloudtrail(r#"{"eventName":"X","awsRegion":"us-east-1","requestParameters":{"acsRegion":1}}"#),
            None
        );
        for junk in ["", "[]", "{", "42", r#"{"event":17}"#, r#"{"event":"not json"}"#, r#"{"x":1}"#] {
            assert_eq!(to_cloudtrail(junk), None, "{junk}");
        }
        // Wrong shapes inside an ActionTrail event are dropped, not fatal.
        let odd = r#"{"acsRegion":["x"],"eventName":{"a":1},"userIdentity":"root","eventTime":"2021-01-01T00:00:00Z"}"#;
        let ct = to_cloudtrail(odd).expect("still an event");
        let r = Record::parse(&ct).expect("parses");
        assert!(r.user_identity.is_none());
        assert!(r.time().is_some());
    }
}
