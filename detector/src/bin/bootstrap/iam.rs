//! IAM's Query API for the detector's automatic containment: `GetRole`, `GetRolePolicy`,
//! `PutRolePolicy` (and `DeleteRolePolicy`, for completeness of [`RolePolicies`]), each one
//! signed form POST ([`crate::signed`]) to the partition's global IAM endpoint.
//!
//! The stack grants these only on roles tagged `ctguard-auto-contain=true`
//! (`aws:ResourceTag`), so an `AccessDenied` is how an untagged role answers
//! ([`ContainError::Denied`]); [`ctguard_detector::contain::auto_apply`] reads the tag
//! again from `GetRole`'s answer, so a broader grant still acts on opted-in roles only.

use std::collections::BTreeMap;

use aws_smithy_xml::decode::{try_data, Document, ScopedDecoder};
use ctguard_detector::contain::{policy_document, ContainError, Role, RolePolicies};
use serde_json::Value;

use crate::signed::{endpoint_from_env, Post, Signed, Verdict};

const VERSION: &str = "2010-05-08";

pub struct Iam {
    signed: Signed,
    endpoint: String,
    /// IAM signs in its partition's home region (`us-east-1` for `aws`).
    signing_region: String,
}

/// IAM's global endpoint and signing region for the partition of `region` (the Lambda's own).
pub fn partition_endpoint(region: &str) -> (String, String) {
    match ctguard_detector::finding::partition(region).0 {
        "aws-cn" => ("https://iam.cn-north-1.amazonaws.com.cn".into(), "cn-north-1".into()),
        "aws-us-gov" => ("https://iam.us-gov.amazonaws.com".into(), "us-gov-west-1".into()),
        _ => ("https://iam.amazonaws.com".into(), "us-east-1".into()),
    }
}

impl Iam {
    pub fn new(signed: Signed, region: &str) -> Iam {
        let (default, signing_region) = partition_endpoint(region);
        Iam { signed, endpoint: endpoint_from_env("IAM", default), signing_region }
    }

    /// One action; the answer's XML, or the error (code and message) IAM gave.
    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, ContainError> {
        let body = form(action, params);
        let url = format!("{}/", self.endpoint);
        let post = Post {
            url: &url,
            region: &self.signing_region,
            service: "iam",
            content_type: "application/x-www-form-urlencoded; charset=utf-8",
            body: &body,
        };
        let judge = |status: u16, text: &str| {
            if status == 200 {
                return Verdict::Done(text.to_string());
            }
            let (code, message) = error_of(text);
            let detail = format!("HTTP {status} {code}: {message}");
            let e = || format!("iam:{action}: {detail}");
            match classify(status, &code) {
                Answer::Denied => Verdict::Fail(ContainError::Denied(e())),
                Answer::NotFound => Verdict::Fail(ContainError::NotFound(e())),
                // The action is named once, by `exhausted`, if every attempt fails.
                Answer::Retry => Verdict::Retry(detail),
                Answer::Fail => Verdict::Fail(ContainError::Iam(e())),
            }
        };
        self.signed.call(&post, judge, |why| ContainError::Iam(format!("iam:{action}: {why}"))).await
    }
}

/// The Query API's form body (the serializer is not `Send`: it is built and dropped here).
fn form(action: &str, params: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", action).append_pair("Version", VERSION);
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

/// What an IAM error answer means for the caller.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Denied,
    NotFound,
    Retry,
    Fail,
}

fn classify(status: u16, code: &str) -> Answer {
    match (status, code) {
        (_, "AccessDenied" | "AccessDeniedException") => Answer::Denied,
        (_, "NoSuchEntity") => Answer::NotFound,
        (429 | 500..=599, _) | (_, "Throttling" | "ServiceFailure") => Answer::Retry,
        _ => Answer::Fail,
    }
}

impl RolePolicies for Iam {
    async fn role(&self, role: &str) -> Result<Role, ContainError> {
        let xml = self.call("GetRole", &[("RoleName", role)]).await?;
        parse_role(&xml).map_err(|e| ContainError::Iam(format!("iam:GetRole: {e}")))
    }

    async fn get(&self, role: &str, name: &str) -> Result<Option<Value>, ContainError> {
        match self.call("GetRolePolicy", &[("RoleName", role), ("PolicyName", name)]).await {
            Ok(xml) => {
                let leaves = leaves(&xml, &["GetRolePolicyResponse/GetRolePolicyResult"])
                    .map_err(|e| ContainError::Iam(format!("iam:GetRolePolicy: {e}")))?;
                let doc = leaves
                    .iter()
                    .find(|(p, _)| p == "GetRolePolicyResponse/GetRolePolicyResult/PolicyDocument")
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| ContainError::Iam("iam:GetRolePolicy: no PolicyDocument".into()))?;
                Ok(Some(policy_document(doc)))
            }
            Err(ContainError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, role: &str, name: &str, doc: &Value) -> Result<(), ContainError> {
        let doc = doc.to_string();
        self.call("PutRolePolicy", &[("RoleName", role), ("PolicyName", name), ("PolicyDocument", &doc)]).await?;
        Ok(())
    }

    async fn delete(&self, role: &str, name: &str) -> Result<bool, ContainError> {
        match self.call("DeleteRolePolicy", &[("RoleName", role), ("PolicyName", name)]).await {
            Ok(_) => Ok(true),
            Err(ContainError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The text of every leaf element of `xml` as (path, text), in document order. Elements whose
/// path is in `containers` are descended into, each of their children's paths numbered by
/// position (`Tags/member[1]/Key`) when they repeat under a `member` list; others are read as
/// text (an element with children there is skipped).
fn leaves(xml: &str, containers: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(|e| format!("not XML: {e}"))?;
    let name = root.start_el().local().to_string();
    let mut out = Vec::new();
    walk(&mut root, &name, containers, &mut out)?;
    Ok(out)
}

fn walk(d: &mut ScopedDecoder, path: &str, containers: &[&str], out: &mut Vec<(String, String)>) -> Result<(), String> {
    let mut members = 0usize;
    while let Some(mut child) = d.next_tag() {
        let local = child.start_el().local().to_string();
        let plain = format!("{path}/{local}");
        let shown = if local == "member" {
            members += 1;
            format!("{plain}[{members}]")
        } else {
            plain.clone()
        };
        if containers.contains(&plain.as_str()) || containers.contains(&strip_indexes(&plain).as_str()) {
            walk(&mut child, &shown, containers, out)?;
        } else if let Ok(text) = try_data(&mut child) {
            out.push((shown, text.into_owned()));
        }
    }
    Ok(())
}

/// `a/member[2]/b` → `a/member/b`: a container pattern matches every member.
fn strip_indexes(p: &str) -> String {
    p.split('/').map(|c| c.split_once('[').map(|(n, _)| n).unwrap_or(c)).collect::<Vec<_>>().join("/")
}

const ROLE: &str = "GetRoleResponse/GetRoleResult/Role";

/// `GetRole`'s answer: the role's id and tags.
fn parse_role(xml: &str) -> Result<Role, String> {
    let containers = [
        "GetRoleResponse",
        "GetRoleResponse/GetRoleResult",
        ROLE,
        "GetRoleResponse/GetRoleResult/Role/Tags",
        "GetRoleResponse/GetRoleResult/Role/Tags/member",
    ];
    let leaves = leaves(xml, &containers)?;
    let id = leaves
        .iter()
        .find(|(p, _)| p == &format!("{ROLE}/RoleId"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or("no RoleId in the answer")?;
    let mut tags: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    let prefix = format!("{ROLE}/Tags/");
    for (p, v) in &leaves {
        let Some((member, field)) = p.strip_prefix(&prefix).and_then(|r| r.rsplit_once('/')) else { continue };
        let e = tags.entry(member.to_string()).or_default();
        match field {
            "Key" => e.0 = Some(v.clone()),
            "Value" => e.1 = Some(v.clone()),
            _ => {}
        }
    }
    let tags = tags.into_values().filter_map(|(k, v)| Some((k?, v.unwrap_or_default()))).collect();
    Ok(Role { id, tags })
}

/// The `Code` and `Message` of an IAM error answer (`?` when it is not one).
fn error_of(xml: &str) -> (String, String) {
    let leaves = leaves(xml, &["ErrorResponse", "ErrorResponse/Error"]).unwrap_or_default();
    let get =
        |name: &str| leaves.iter().find(|(p, _)| p == &format!("ErrorResponse/Error/{name}")).map(|(_, v)| v.clone());
    let short: String = xml.chars().take(200).collect();
    (get("Code").unwrap_or_else(|| "?".into()), get("Message").unwrap_or(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET_ROLE: &str = r#"<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <GetRoleResult>
    <Role>
      <Path>/</Path>
      <AssumeRolePolicyDocument>%7B%22Version%22%3A%222012-10-17%22%7D</AssumeRolePolicyDocument>
      <RoleName>app</RoleName>
      <RoleId>AROADBQP57FF2AEXAMPLE</RoleId>
      <Arn>arn:aws:iam::123456789012:role/app</Arn>
      <RoleLastUsed/>
      <Tags>
        <member><Key>team</Key><Value>payments &amp; risk</Value></member>
        <member><Value>true</Value><Key>ctguard-auto-contain</Key></member>
        <member><Key>empty</Key><Value/></member>
      </Tags>
    </Role>
  </GetRoleResult>
  <ResponseMetadata><RequestId>df37e965</RequestId></ResponseMetadata>
</GetRoleResponse>"#;

    #[test]
    fn the_role_id_and_its_tags_in_any_field_order() {
        let r = parse_role(GET_ROLE).expect("role");
        assert_eq!(r.id, "AROADBQP57FF2AEXAMPLE");
        assert_eq!(
            r.tags,
            [
                ("team".to_string(), "payments & risk".to_string()),
                ("ctguard-auto-contain".to_string(), "true".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert!(r.opted_in());
        let untagged = GET_ROLE.replace("<Value>true</Value>", "<Value>false</Value>");
        assert!(!parse_role(&untagged).expect("role").opted_in());
        let no_tags =
            r#"<GetRoleResponse><GetRoleResult><Role><RoleId>AROAX</RoleId></Role></GetRoleResult></GetRoleResponse>"#;
        assert_eq!(parse_role(no_tags).expect("role"), Role { id: "AROAX".into(), tags: vec![] });
    }

    #[test]
    fn garbage_is_an_error_not_a_role() {
        for bad in ["", "not xml", "<GetRoleResponse/>", "<ErrorResponse><Error><Code>x</Code></Error></ErrorResponse>"]
        {
            assert!(parse_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_answers_give_their_code_and_message() {
        let xml = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::1:assumed-role/x is not authorized</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        let (code, msg) = error_of(xml);
        assert_eq!(code, "AccessDenied");
        assert!(msg.starts_with("User: arn:aws:sts"), "{msg}");
        let (code, msg) = error_of("<html>bad gateway</html>");
        assert_eq!(code, "?");
        assert!(msg.contains("bad gateway"), "{msg}");
    }

    #[test]
    fn the_form_is_url_encoded() {
        let body = form("PutRolePolicy", &[("RoleName", "app"), ("PolicyDocument", r#"{"a":"b c&d"}"#)]);
        assert_eq!(
            body,
            "Action=PutRolePolicy&Version=2010-05-08&RoleName=app&PolicyDocument=%7B%22a%22%3A%22b+c%26d%22%7D"
        );
    }

    #[test]
    fn answers_are_classified_by_code_then_status() {
        assert_eq!(classify(403, "AccessDenied"), Answer::Denied);
        assert_eq!(classify(404, "NoSuchEntity"), Answer::NotFound);
        assert_eq!(classify(400, "Throttling"), Answer::Retry);
        assert_eq!(classify(503, "?"), Answer::Retry);
        assert_eq!(classify(429, "?"), Answer::Retry);
        assert_eq!(classify(400, "MalformedPolicyDocument"), Answer::Fail);
        assert_eq!(classify(409, "LimitExceeded"), Answer::Fail);
    }

    #[test]
    fn the_partitions_global_endpoint() {
        assert_eq!(partition_endpoint("eu-west-1"), ("https://iam.amazonaws.com".into(), "us-east-1".into()));
        assert_eq!(partition_endpoint("cn-northwest-1").1, "cn-north-1");
        assert_eq!(partition_endpoint("us-gov-east-1").0, "https://iam.us-gov.amazonaws.com");
    }
}
