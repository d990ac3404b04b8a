//! The typed CloudTrail record the engine reads, parsed once and borrowing from the input.
//!
//! Only the fields a decision needs are materialised; bulky or irregular parts
//! (`requestParameters`, `responseElements`) stay as raw JSON and are parsed on demand for
//! the few event names that use them. Scalar fields are read leniently: a number, a boolean
//! or an object where a string was expected becomes `None` or its text, never a failed parse,
//! because real exports (and hand-written fixtures) carry every shape imaginable.
//!
//! The `sessionToken` of an `AssumeRole` response is never deserialised: ctguard must not be
//! able to log or alert a secret even by mistake.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::time::{parse_rfc3339, Millis};

/// A string field that tolerates any JSON scalar (and ignores objects and arrays).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The value when present and non-empty after trimming.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// [`Text::get`], keeping the borrow of the input.
    pub fn into_value(self) -> Option<Cow<'a, str>> {
        match self.0? {
            Cow::Borrowed(s) => Some(Cow::Borrowed(s.trim())),
            Cow::Owned(s) => Some(Cow::Owned(s.trim().to_string())),
        }
        .filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Text(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object field that tolerates `null`, a scalar or an array where an object was expected.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    // Buffering through RawValue keeps the borrow and lets a wrong shape become `None`.
    let raw: Option<&'de RawValue> = Option::deserialize(d)?;
    Ok(lenient_parse(raw))
}

/// The second half of [`lenient_object`]: `raw` as a `T` when it is an object of that shape.
fn lenient_parse<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.filter(|r| r.get().trim_start().starts_with('{')).and_then(|r| serde_json::from_str(r.get()).ok())
}

/// One CloudTrail record (`eventVersion` 1.0x), as delivered to S3 or in an EventBridge `detail`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    #[serde(borrow, default)]
    pub event_version: Text<'a>,
    #[serde(borrow, default, rename = "eventID")]
    pub event_id: Text<'a>,
    #[serde(borrow, default)]
    pub event_time: Text<'a>,
    /// Logstash exports carry only this (millisecond precision).
    #[serde(borrow, default, rename = "@timestamp")]
    pub at_timestamp: Text<'a>,
    #[serde(borrow, default)]
    pub event_name: Text<'a>,
    #[serde(borrow, default)]
    pub event_source: Text<'a>,
    #[serde(borrow, default)]
    pub event_type: Text<'a>,
    #[serde(borrow, default)]
    pub aws_region: Text<'a>,
    #[serde(borrow, default, rename = "sourceIPAddress")]
    pub source_ip_address: Text<'a>,
    #[serde(borrow, default)]
    pub user_agent: Text<'a>,
    #[serde(borrow, default)]
    pub recipient_account_id: Text<'a>,
    #[serde(borrow, default)]
    pub vpc_endpoint_id: Text<'a>,
    #[serde(borrow, default)]
    pub vpc_endpoint_account_id: Text<'a>,
    #[serde(borrow, default)]
    pub error_code: Text<'a>,
    #[serde(borrow, default)]
    pub read_only: Text<'a>,
    #[serde(borrow, default)]
    pub session_credential_from_console: Text<'a>,
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub user_identity: Option<UserIdentity<'a>>,
    #[serde(borrow, default)]
    pub request_parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub response_elements: Option<&'a RawValue>,
}

/// `userIdentity` of a record.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub principal_id: Text<'a>,
    #[serde(borrow, default)]
    pub arn: Text<'a>,
    #[serde(borrow, default)]
    pub account_id: Text<'a>,
    #[serde(borrow, default)]
    pub access_key_id: Text<'a>,
    #[serde(borrow, default)]
    pub user_name: Text<'a>,
    #[serde(borrow, default)]
    pub invoked_by: Text<'a>,
    /// Kept raw, read by [`UserIdentity::session_context`] (`lenient_object`'s rules): only
    /// uses of a key need it, and parsing it for every record would read its bytes twice more.
    #[serde(borrow, default)]
    pub session_context: Option<&'a RawValue>,
}

impl<'a> UserIdentity<'a> {
    /// `sessionContext`, when it is an object.
    pub fn session_context(&self) -> Option<SessionContext<'a>> {
        lenient_parse(self.session_context)
    }
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub attributes: Option<SessionAttributes<'a>>,
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub session_issuer: Option<SessionIssuer<'a>>,
    /// Present (`"1.0"`/`"2.0"`) when EC2 delivered the credentials through the instance metadata service.
    #[serde(borrow, default)]
    pub ec2_role_delivery: Text<'a>,
    #[serde(borrow, default)]
    pub source_identity: Text<'a>,
}

/// `sessionContext.attributes`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes<'a> {
    #[serde(borrow, default)]
    pub creation_date: Text<'a>,
    #[serde(borrow, default)]
    pub mfa_authenticated: Text<'a>,
}

/// `sessionContext.sessionIssuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub arn: Text<'a>,
    #[serde(borrow, default)]
    pub user_name: Text<'a>,
}

/// The parts of an `sts:AssumeRole` request and response that bind a new key to a session.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleRequest<'a> {
    #[serde(borrow, default)]
    pub role_arn: Text<'a>,
    #[serde(borrow, default)]
    pub role_session_name: Text<'a>,
}

/// `responseElements` of `AssumeRole` (the session token is deliberately absent).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleResponse<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_object")]
    pub credentials: Option<IssuedCredentials<'a>>,
}

/// `responseElements.credentials` without `sessionToken`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredentials<'a> {
    #[serde(borrow, default)]
    pub access_key_id: Text<'a>,
    #[serde(borrow, default)]
    pub expiration: Text<'a>,
}

/// `instanceId` of AssociateAddress / AttachNetworkInterface requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRequest<'a> {
    #[serde(borrow, default)]
    pub instance_id: Text<'a>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub instances_set: Option<InstancesSet>,
}

/// `instancesSet` of StartInstances.
#[derive(Debug, Default, Deserialize)]
pub struct InstancesSet {
    #[serde(default)]
    pub items: Vec<InstanceItem>,
}

/// One item of `instancesSet.items`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceItem {
    #[serde(default)]
    pub instance_id: Option<String>,
}

impl<'a> Record<'a> {
    /// Parses one record from JSON text.
    pub fn parse(json: &'a str) -> Result<Record<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// When the call happened: `eventTime`, else `@timestamp`.
    pub fn time(&self) -> Option<Millis> {
        self.event_time.get().and_then(parse_rfc3339).or_else(|| self.at_timestamp.get().and_then(parse_rfc3339))
    }

    /// `userIdentity.accessKeyId`, when non-empty.
    pub fn access_key_id(&self) -> Option<&str> {
        self.user_identity.as_ref()?.access_key_id.get()
    }

    /// The role ARN behind an assumed-role session (`sessionContext.sessionIssuer.arn`).
    pub fn role_arn(&self) -> Option<Cow<'a, str>> {
        self.user_identity.as_ref()?.session_context()?.session_issuer?.arn.into_value()
    }

    /// The session name of an assumed-role principal (`…:assumed-role/ROLE/SESSION`).
    pub fn session_name(&self) -> Option<&str> {
        let ui = self.user_identity.as_ref()?;
        if ui.kind.get() != Some("AssumedRole") {
            return None;
        }
        let arn = ui.arn.get()?;
        let rest = arn.split_once(":assumed-role/")?.1;
        rest.split_once('/').map(|(_, s)| s)
    }

    /// `sessionContext.attributes.creationDate` in milliseconds.
    pub fn session_created(&self) -> Option<Millis> {
        let attrs = self.user_identity.as_ref()?.session_context()?.attributes?;
        attrs.creation_date.get().and_then(parse_rfc3339)
    }

    /// Whether EC2 delivered these credentials from the instance metadata service.
    pub fn ec2_role_delivery(&self) -> bool {
        self.user_identity
            .as_ref()
            .and_then(UserIdentity::session_context)
            .is_some_and(|c| c.ec2_role_delivery.get().is_some())
    }

    /// Parses `requestParameters` into `T`, `None` when absent or of another shape.
    pub fn request<T: Deserialize<'a>>(&self) -> Option<T> {
        let raw = self.request_parameters?;
        serde_json::from_str(raw.get()).ok()
    }

    /// Parses `responseElements` into `T`, `None` when absent or of another shape.
    pub fn response<T: Deserialize<'a>>(&self) -> Option<T> {
        let raw = self.response_elements?;
        serde_json::from_str(raw.get()).ok()
    }

    /// The user agent, if any.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.get()
    }

    /// The account the event belongs to (`recipientAccountId`, else the principal's account).
    pub fn account(&self) -> Option<&str> {
        self.recipient_account_id.get().or_else(|| self.user_identity.as_ref().and_then(|u| u.account_id.get()))
    }
}

/// An EventBridge event carrying a CloudTrail record in `detail`.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow, default)]
    pub id: Text<'a>,
    #[serde(borrow, default, rename = "detail-type")]
    pub detail_type: Text<'a>,
    #[serde(borrow, default)]
    pub source: Text<'a>,
    #[serde(borrow, default)]
    pub account: Text<'a>,
    #[serde(borrow, default)]
    pub region: Text<'a>,
    #[serde(borrow, default)]
    pub detail: Option<&'a RawValue>,
}

/// The detail-type EventBridge gives CloudTrail management events.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_fields_never_fail_the_record() {
        let json = r#"{"eventTime":"2024-01-01T00:00:00Z","eventName":42,"userAgent":{"x":1},
            "readOnly":true,"userIdentity":"weird","requestParameters":null}"#;
        let r = Record::parse(json).expect("parses");
        assert_eq!(r.event_name.get(), Some("42"));
        assert_eq!(r.user_agent(), None);
        assert_eq!(r.read_only.get(), Some("true"));
        assert!(r.user_identity.is_none());
        assert!(r.time().is_some());
    }

    #[test]
    fn assumed_role_accessors() {
        let json = r#"{"eventTime":"2024-08-02T08:23:55Z","userIdentity":{"type":"AssumedRole",
          "accessKeyId":"ASIAP5CT9NN8EYVU1FXV",
          "arn":"arn:aws:sts::017622104382:assumed-role/steal-role/i-786a3a8b5c0d92ef4",
          "sessionContext":{"attributes":{"creationDate":"2024-08-02T08:20:52Z"},"ec2RoleDelivery":"1.0",
          "sessionIssuer":{"type":"Role","arn":"arn:aws:iam::017622104382:role/steal-role"}}}}"#;
        let r = Record::parse(json).expect("parses");
        assert_eq!(r.access_key_id(), Some("ASIAP5CT9NN8EYVU1FXV"));
        assert_eq!(r.session_name(), Some("i-786a3a8b5c0d92ef4"));
        assert_eq!(r.role_arn().as_deref(), Some("arn:aws:iam::017622104382:role/steal-role"));
        assert!(r.ec2_role_delivery());
        assert!(r.session_created().is_some());
    }

    #[test]
    fn assume_role_response_never_reads_the_token() {
        let json = r#"{"responseElements":{"credentials":{"accessKeyId":"ASIANEW","sessionToken":"SECRET",
            "expiration":"Nov 28, 2018 11:03:12 PM"}}}"#;
        let r = Record::parse(json).expect("parses");
        let resp: AssumeRoleResponse = r.response().expect("response");
        let c = resp.credentials.expect("credentials");
        assert_eq!(c.access_key_id.get(), Some("ASIANEW"));
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
