//! `StateStore` on DynamoDB: one item per scope (`pk`), each operation one conditional write.
//!
//! Item layout (table key: `pk` string; TTL attribute: `ttl`, epoch seconds):
//! - scope `K#<key>` / `I#<account>#<instance>`:
//!   `anchor` (identity), `anchor_at` (ms), `anchor_ev` (first-use JSON), `anchor_keys`
//!   (string set of the keys the anchor's identity used); `acc#<identity>` (map `at`, `ev`) per
//!   identity accepted by a move; `arm#<from>` (window end, ms) per move and `armby#<from>`
//!   (identity) once taken; `last_key`; `ttl`;
//! - alert claim `A#<key>#<identity>`: `claimed_at` (ms), `holder` (event id), `sent` (bool), `ttl`;
//! - alert record `ALERT#<alert id>`: `alert` (the alert's JSON, as published), `ttl`
//!   ([`ALERT_RECORD_DAYS`] after it was published), written before each publish so that
//!   `ctguard contain --alert ID` finds the alert by the id an email shows.
//!
//! Only `UpdateItem` is used (the template grants nothing else): a failed condition returns the
//! item as it is (`ReturnValuesOnConditionCheckFailure`), so no separate read is ever needed.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use ctguard_detector::state::ALERT_LEASE_MS;
use ctguard_detector::time::Millis;
use ctguard_detector::{
    AlertClaim, Anchor, Arm, Claim, EventRef, Prune, ScopeState, StateStore, StoreError, Suspect, Trusted, Update,
};

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// How long an alert record is kept for `ctguard contain --alert ID`.
pub const ALERT_RECORD_DAYS: i64 = 30;

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        DynamoStore { client, table }
    }

    /// Writes (or rewrites: every copy of one alert writes the same item) the alert's record.
    pub async fn record_alert(&self, alert_json: &str, alert_id: &str, now_secs: i64) -> Result<(), StoreError> {
        self.update(&format!("{}{alert_id}", ctguard_detector::alert::ALERT_RECORD_PREFIX))
            .update_expression("SET alert = :a, #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":a", s(alert_json))
            .expression_attribute_values(":ttl", n(now_secs + ALERT_RECORD_DAYS * 86_400))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    fn update(&self, pk: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key("pk", AttributeValue::S(pk.to_string()))
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ttl_secs(ms: Millis) -> AttributeValue {
    n(ms.div_euclid(1000) + 1)
}

fn event_json(e: &EventRef) -> AttributeValue {
    s(serde_json::to_string(e).unwrap_or_else(|_| "{}".to_string()))
}

/// Outcome of a conditional update: applied, or the condition failed (with the old item).
enum Cond {
    Applied,
    Failed(Option<HashMap<String, AttributeValue>>),
}

fn map_err(e: SdkError<UpdateItemError>) -> Result<Cond, StoreError> {
    if let SdkError::ServiceError(se) = &e {
        if let UpdateItemError::ConditionalCheckFailedException(c) = se.err() {
            return Ok(Cond::Failed(c.item.clone()));
        }
    }
    Err(classify(&e))
}

/// Throttling, server errors and transport failures are worth a retry; the rest is not.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> StoreError {
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or_default()),
        None => format!("{e:?}"),
    };
    // DynamoDB's 400 KB item limit: a distinct kind, so that an alarm names it (the scope's
    // bounds should make it impossible; see `ctguard_detector::state`).
    if e.code() == Some("ValidationException") && is_item_too_large(e.message().unwrap_or_default()) {
        return StoreError::ItemTooLarge(text);
    }
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient(text)
        }
        _ => match e.code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException",
            ) => StoreError::Transient(text),
            _ => StoreError::Fatal(text),
        },
    }
}

/// DynamoDB's messages for an item over 400 KB: "Item size has exceeded the maximum allowed
/// size", "Item size to update has exceeded the maximum allowed size".
fn is_item_too_large(message: &str) -> bool {
    message.starts_with("Item size") && message.contains("exceeded the maximum allowed size")
}

fn event_from(v: Option<&AttributeValue>, time_ms: Millis) -> EventRef {
    let ev: EventRef = v.and_then(|v| v.as_s().ok()).and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
    EventRef { time_ms, ..ev }
}

fn number(v: Option<&AttributeValue>) -> Option<Millis> {
    v.and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

const ACCEPTED: &str = "acc#";
const ARM: &str = "arm#";
const ARM_TAKEN: &str = "armby#";
const ALERTED: &str = "al#";
const KEY_END: &str = "kend#";

fn parse_state(item: &HashMap<String, AttributeValue>) -> ScopeState {
    let mut st = ScopeState::default();
    if let (Some(identity), Some(at)) = (item.get("anchor").and_then(|v| v.as_s().ok()), number(item.get("anchor_at")))
    {
        let keys = item.get("anchor_keys").and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
        st.anchor = Some(Anchor { identity: identity.clone(), first: event_from(item.get("anchor_ev"), at), keys });
    }
    for (name, v) in item {
        if let Some(identity) = name.strip_prefix(ACCEPTED) {
            let Ok(m) = v.as_m() else { continue };
            let Some(at) = number(m.get("at")) else { continue };
            st.accepted.push(Trusted { identity: identity.to_string(), first: event_from(m.get("ev"), at) });
        } else if let Some(key) = name.strip_prefix(KEY_END) {
            let Some(end) = number(Some(v)) else { continue };
            st.key_ends.push((key.to_string(), end));
        } else if let Some(identity) = name.strip_prefix(ALERTED) {
            let Some(at) = number(Some(v)) else { continue };
            st.alerted.push(Suspect { identity: identity.to_string(), at });
        } else if let Some(from) = name.strip_prefix(ARM).and_then(|f| f.parse::<Millis>().ok()) {
            let Some(until) = number(Some(v)) else { continue };
            let taken_by = item.get(&format!("{ARM_TAKEN}{from}")).and_then(|v| v.as_s().ok()).cloned();
            st.arms.push(Arm { from, until, taken_by });
        }
    }
    st.accepted.sort_by_key(|t| t.first.time_ms);
    st.arms.sort_by_key(|a| a.from);
    st.alerted.sort_by(|a, b| (a.at, &a.identity).cmp(&(b.at, &b.identity)));
    st.key_ends.sort();
    st.arm_floor = number(item.get("arm_floor")).unwrap_or(0);
    st.alerted_overflow = number(item.get("al_over")).unwrap_or(0);
    st.expires_at = number(item.get("ttl")).map(|s| s * 1000).unwrap_or(0);
    st
}

fn changed(item: Option<HashMap<String, AttributeValue>>) -> Update {
    Update::Changed(Box::new(item.as_ref().map(parse_state).unwrap_or_default()))
}

fn accepted_value(t: &Trusted) -> AttributeValue {
    AttributeValue::M(HashMap::from([("at".to_string(), n(t.first.time_ms)), ("ev".to_string(), event_json(&t.first))]))
}

type UpdateBuilder = aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

/// The update clauses that hand `arm` (held by `arm.taken_by` as read) to `identity`: the SET
/// clauses (without `SET`), the REMOVE paths (the previous holder's acceptance, and the
/// taker's own when it is not accepted), the condition, and the request with its names/values.
fn hand_over(
    req: UpdateBuilder,
    arm: &Arm,
    identity: &Trusted,
    accept: bool,
) -> (String, Vec<&'static str>, String, UpdateBuilder) {
    let mut req = req
        .expression_attribute_names("#arm", format!("{ARM}{}", arm.from))
        .expression_attribute_names("#armby", format!("{ARM_TAKEN}{}", arm.from))
        .expression_attribute_names("#acc", format!("{ACCEPTED}{}", identity.identity))
        .expression_attribute_values(":taker", s(&identity.identity));
    let (mut set, mut remove) = (String::from("#armby = :taker"), Vec::new());
    if accept {
        req = req.expression_attribute_values(":acc", accepted_value(identity));
        set.push_str(", #acc = :acc");
    } else {
        remove.push("#acc");
    }
    let cond = match &arm.taken_by {
        None => "attribute_exists(#arm) AND attribute_not_exists(#armby)".to_string(),
        Some(prev) => {
            req = req.expression_attribute_values(":prev", s(prev));
            if prev != &identity.identity {
                req = req.expression_attribute_names("#accprev", format!("{ACCEPTED}{prev}"));
                remove.push("#accprev");
            }
            "attribute_exists(#arm) AND #armby = :prev".to_string()
        }
    };
    (set, remove, cond, req)
}

/// ` REMOVE a, b` for `paths` (empty when there are none).
fn remove_clause(paths: &[&str]) -> String {
    if paths.is_empty() {
        String::new()
    } else {
        format!(" REMOVE {}", paths.join(", "))
    }
}

impl StateStore for DynamoStore {
    async fn claim(&self, scope: &str, first: &Trusted, key: &str, expires_at: Millis) -> Result<Claim, StoreError> {
        let r = self
            .update(scope)
            .update_expression(
                "SET anchor = :id, anchor_at = :at, anchor_ev = :ev, #ttl = if_not_exists(#ttl, :ttl), \
                 #kend = if_not_exists(#kend, :kend) ADD anchor_keys :keys",
            )
            .condition_expression("attribute_not_exists(anchor)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#kend", format!("{KEY_END}{key}"))
            .expression_attribute_values(":kend", n(expires_at))
            .expression_attribute_values(":id", s(&first.identity))
            .expression_attribute_values(":at", n(first.first.time_ms))
            .expression_attribute_values(":ev", event_json(&first.first))
            .expression_attribute_values(":keys", AttributeValue::Ss(vec![key.to_string()]))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Ok(Claim::Won),
            // The item vanished between the failed check and now (TTL): the engine claims again.
            Cond::Failed(item) => Ok(Claim::Existing(Box::new(item.as_ref().map(parse_state).unwrap_or_default()))),
        }
    }

    async fn touch(
        &self,
        scope: &str,
        anchor: &Trusted,
        key: &str,
        key_end: Millis,
        lower: bool,
        expires_at: Millis,
    ) -> Result<Update, StoreError> {
        let (set, cond) = if lower {
            (
                "SET anchor_at = :at, anchor_ev = :ev, #ttl = :ttl, #kend = if_not_exists(#kend, :kend) \
                 ADD anchor_keys :keys",
                "anchor = :id AND anchor_at > :at",
            )
        } else {
            ("SET #ttl = :ttl, #kend = if_not_exists(#kend, :kend) ADD anchor_keys :keys", "anchor = :id")
        };
        let mut req = self
            .update(scope)
            .update_expression(set)
            .condition_expression(cond)
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#kend", format!("{KEY_END}{key}"))
            .expression_attribute_values(":kend", n(key_end))
            .expression_attribute_values(":id", s(&anchor.identity))
            .expression_attribute_values(":keys", AttributeValue::Ss(vec![key.to_string()]))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if lower {
            req = req
                .expression_attribute_values(":at", n(anchor.first.time_ms))
                .expression_attribute_values(":ev", event_json(&anchor.first));
        }
        Ok(match req.send().await.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Update::Applied,
            Cond::Failed(item) => changed(item),
        })
    }

    async fn displace(
        &self,
        scope: &str,
        old: &Anchor,
        new: &Trusted,
        key: &str,
        key_end: Millis,
        accept_old: Option<&Arm>,
        expires_at: Millis,
    ) -> Result<Update, StoreError> {
        let mut set = String::from(
            "SET anchor = :id, anchor_at = :at, anchor_ev = :ev, anchor_keys = :keys, #ttl = :ttl, \
             #kend = if_not_exists(#kend, :kend)",
        );
        let mut cond = String::from("anchor = :old AND anchor_at = :oldat AND size(anchor_keys) = :n");
        let mut req = self
            .update(scope)
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#kend", format!("{KEY_END}{key}"))
            .expression_attribute_values(":kend", n(key_end))
            .expression_attribute_values(":id", s(&new.identity))
            .expression_attribute_values(":at", n(new.first.time_ms))
            .expression_attribute_values(":ev", event_json(&new.first))
            .expression_attribute_values(":keys", AttributeValue::Ss(vec![key.to_string()]))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .expression_attribute_values(":old", s(&old.identity))
            .expression_attribute_values(":oldat", n(old.first.time_ms))
            .expression_attribute_values(":n", n(old.keys.len() as i64));
        if let Some(arm) = accept_old {
            let old_use = Trusted { identity: old.identity.clone(), first: old.first.clone() };
            let (s2, remove, c2, r2) = hand_over(req, arm, &old_use, true);
            set.push_str(", ");
            set.push_str(&s2);
            set.push_str(&remove_clause(&remove));
            cond.push_str(" AND ");
            cond.push_str(&c2);
            req = r2;
        }
        let r = req
            .update_expression(set)
            .condition_expression(cond)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Update::Applied,
            Cond::Failed(item) => changed(item),
        })
    }

    async fn arm(&self, scope: &str, arm: &Arm, expires_at: Millis) -> Result<ScopeState, StoreError> {
        // if_not_exists: a redelivered move finds its arm (taken or not) and changes nothing;
        // a move at or below the floor (its arm was pruned or dropped) fails the condition.
        let r = self
            .update(scope)
            .update_expression("SET #arm = if_not_exists(#arm, :u), #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(arm_floor) OR arm_floor < :from")
            .expression_attribute_names("#arm", format!("{ARM}{}", arm.from))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":u", n(arm.until))
            .expression_attribute_values(":from", n(arm.from))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => Ok(out.attributes.as_ref().map(parse_state).unwrap_or_default()),
            Err(e) => match map_err(e)? {
                Cond::Failed(item) => Ok(item.as_ref().map(parse_state).unwrap_or_default()),
                Cond::Applied => Ok(ScopeState::default()),
            },
        }
    }

    async fn prune(&self, scope: &str, p: &Prune) -> Result<(), StoreError> {
        // Nothing named is conditional (all of it is dead or over a bound); the floor and the
        // overflow time only rise; a condition failure means another writer went further.
        let mut req = self.update(scope);
        let (mut set, mut remove, mut cond) = (Vec::new(), Vec::new(), vec!["attribute_exists(pk)".to_string()]);
        let mut name = |req: UpdateBuilder, attr: String| {
            let placeholder = format!("#p{}", remove.len());
            remove.push(placeholder.clone());
            req.expression_attribute_names(placeholder, attr)
        };
        for k in &p.keys {
            req = name(req, format!("{KEY_END}{k}"));
        }
        for from in &p.arms {
            req = name(req, format!("{ARM}{from}"));
            req = name(req, format!("{ARM_TAKEN}{from}"));
        }
        for id in &p.accepted {
            req = name(req, format!("{ACCEPTED}{id}"));
        }
        for id in &p.alerted {
            req = name(req, format!("{ALERTED}{id}"));
        }
        if p.arm_floor != 0 {
            set.push("arm_floor = :floor");
            cond.push("(attribute_not_exists(arm_floor) OR arm_floor <= :floor)".to_string());
            req = req.expression_attribute_values(":floor", n(p.arm_floor));
        }
        if p.alerted_overflow != 0 {
            set.push("al_over = :over");
            cond.push("(attribute_not_exists(al_over) OR al_over <= :over)".to_string());
            req = req.expression_attribute_values(":over", n(p.alerted_overflow));
        }
        let mut expr = String::new();
        if !set.is_empty() {
            expr.push_str(&format!("SET {}", set.join(", ")));
        }
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        if !p.keys.is_empty() {
            expr.push_str(" DELETE anchor_keys :dead");
            req = req.expression_attribute_values(":dead", AttributeValue::Ss(p.keys.clone()));
        }
        if expr.is_empty() {
            return Ok(());
        }
        let r = req.update_expression(expr.trim_start()).condition_expression(cond.join(" AND ")).send().await;
        r.map(|_| Cond::Applied).or_else(map_err).map(|_| ())
    }

    async fn take_arm(&self, scope: &str, arm: &Arm, identity: &Trusted, accept: bool) -> Result<Update, StoreError> {
        let (set, remove, cond, req) = hand_over(self.update(scope), arm, identity, accept);
        let r = req
            .update_expression(format!("SET {set}{}", remove_clause(&remove)))
            .condition_expression(cond)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Update::Applied,
            Cond::Failed(item) => changed(item),
        })
    }

    async fn note_alerted(
        &self,
        scope: &str,
        identity: &str,
        at: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        // Keeps the earliest time: a later (or equal) record fails the condition, harmlessly.
        let r = self
            .update(scope)
            .update_expression("SET #al = :at, #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(#al) OR #al > :at")
            .expression_attribute_names("#al", format!("{ALERTED}{identity}"))
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .send()
            .await;
        r.map(|_| Cond::Applied).or_else(map_err).map(|_| ())
    }

    async fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        holder: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<AlertClaim, StoreError> {
        let r = self
            .update(&format!("A#{access_key}#{identity}"))
            .update_expression("SET claimed_at = :now, holder = :h, sent = :f, #ttl = :ttl")
            .condition_expression("attribute_not_exists(pk) OR (sent = :f AND (holder = :h OR claimed_at < :stale))")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":stale", n(now - ALERT_LEASE_MS))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => AlertClaim::Claimed,
            Cond::Failed(Some(item)) if item.get("sent").and_then(|v| v.as_bool().ok()) == Some(&true) => {
                AlertClaim::Sent
            }
            Cond::Failed(_) => AlertClaim::Held,
        })
    }

    async fn confirm_alert(&self, access_key: &str, identity: &str) -> Result<(), StoreError> {
        // Conditional on the claim still existing, so that a claim that expired meanwhile is not
        // resurrected as an item without a TTL.
        let r = self
            .update(&format!("A#{access_key}#{identity}"))
            .update_expression("SET sent = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        r.map(|_| Cond::Applied).or_else(map_err).map(|_| ())
    }

    async fn release_alert(&self, access_key: &str, identity: &str, holder: &str) -> Result<(), StoreError> {
        // A claim dated at the epoch is stale for everyone: the next event claims it at once.
        let r = self
            .update(&format!("A#{access_key}#{identity}"))
            .update_expression("SET claimed_at = :zero")
            .condition_expression("holder = :h AND sent = :f")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .send()
            .await;
        r.map(|_| Cond::Applied).or_else(map_err).map(|_| ())
    }

    async fn bind(&self, scope: &str, access_key: &str, expires_at: Millis) -> Result<(), StoreError> {
        // Extends the instance scope's life to the new credential's; an older binding arriving
        // late fails the condition and changes nothing.
        let r = self
            .update(scope)
            .update_expression("SET last_key = :k, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#ttl) OR #ttl < :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":k", s(access_key))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .send()
            .await;
        r.map(|_| Cond::Applied).or_else(map_err).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB's two messages for an item over 400 KB are recognised, nothing else is.
    #[test]
    fn item_size_errors_are_recognised() {
        assert!(is_item_too_large("Item size has exceeded the maximum allowed size"));
        assert!(is_item_too_large("Item size to update has exceeded the maximum allowed size"));
        assert!(!is_item_too_large("One or more parameter values were invalid"));
        assert!(!is_item_too_large("Requested resource not found"));
    }
}
