//! `StateStore` on DynamoDB: one item per scope (`pk`), each operation one conditional write.
//!
//! Item layout (table key: `pk` string; TTL attribute: `ttl`, epoch seconds):
//! - scope `K#<key>` / `I#<account>#<instance>`: `ids` map identity → first-use JSON,
//!   `armed_until` (ms), `last_key`, `ttl`;
//! - alert claim `A#<key>#<identity>`: `claimed_at` (ms), `sent` (bool), `ttl`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use ctguard_detector::state::ALERT_LEASE_MS;
use ctguard_detector::time::Millis;
use ctguard_detector::{Claim, EventRef, ScopeState, StateStore, StoreError, Trusted};

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        DynamoStore { client, table }
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

fn parse_state(item: &HashMap<String, AttributeValue>) -> ScopeState {
    let mut st = ScopeState::default();
    if let Some(AttributeValue::M(ids)) = item.get("ids") {
        let mut v: Vec<Trusted> = ids
            .iter()
            .map(|(identity, ev)| {
                let first: EventRef = ev.as_s().ok().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
                Trusted { identity: identity.clone(), first }
            })
            .collect();
        v.sort_by(|a, b| a.first.event_time.cmp(&b.first.event_time));
        st.trusted = v;
    }
    if let Some(AttributeValue::N(u)) = item.get("armed_until") {
        st.armed_until = u.parse().ok();
    }
    st
}

impl StateStore for DynamoStore {
    async fn claim(&self, scope: &str, first: &Trusted, expires_at: Millis) -> Result<Claim, StoreError> {
        let r = self
            .update(scope)
            .update_expression("SET ids = :ids, #ttl = :ttl")
            .condition_expression("attribute_not_exists(ids)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(
                ":ids",
                AttributeValue::M(HashMap::from([(first.identity.clone(), event_json(&first.first))])),
            )
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Ok(Claim::Won),
            Cond::Failed(Some(item)) => Ok(Claim::Existing(parse_state(&item))),
            // The item vanished between the failed check and now (TTL): treat as held by nobody.
            Cond::Failed(None) => Ok(Claim::Existing(ScopeState::default())),
        }
    }

    async fn trust(&self, scope: &str, identity: &Trusted, expires_at: Millis) -> Result<(), StoreError> {
        let r = self
            .update(scope)
            .update_expression("SET ids.#i = :ev, #ttl = :ttl")
            .condition_expression("attribute_exists(ids)")
            .expression_attribute_names("#i", &identity.identity)
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":ev", event_json(&identity.first))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .send()
            .await;
        match r.map(|_| Cond::Applied).or_else(map_err)? {
            Cond::Applied => Ok(()),
            // No identities yet (expired in between): this one becomes the first.
            Cond::Failed(_) => self.claim(scope, identity, expires_at).await.map(|_| ()),
        }
    }

    async fn arm(&self, scope: &str, until: Millis, expires_at: Millis) -> Result<(), StoreError> {
        self.update(scope)
            .update_expression("SET armed_until = :u, #ttl = if_not_exists(#ttl, :ttl)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn take_arm(&self, scope: &str, at: Millis, identity: &Trusted) -> Result<bool, StoreError> {
        let r = self
            .update(scope)
            .update_expression("REMOVE armed_until SET ids.#i = :ev")
            .condition_expression("armed_until >= :at AND attribute_exists(ids)")
            .expression_attribute_names("#i", &identity.identity)
            .expression_attribute_values(":ev", event_json(&identity.first))
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        Ok(matches!(r.map(|_| Cond::Applied).or_else(map_err)?, Cond::Applied))
    }

    async fn claim_alert(
        &self,
        access_key: &str,
        identity: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<bool, StoreError> {
        let r = self
            .update(&format!("A#{access_key}#{identity}"))
            .update_expression("SET claimed_at = :now, sent = :f, #ttl = :ttl")
            .condition_expression("attribute_not_exists(pk) OR (sent = :f AND claimed_at < :stale)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":stale", n(now - ALERT_LEASE_MS))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":ttl", ttl_secs(expires_at))
            .send()
            .await;
        Ok(matches!(r.map(|_| Cond::Applied).or_else(map_err)?, Cond::Applied))
    }

    async fn confirm_alert(&self, access_key: &str, identity: &str) -> Result<(), StoreError> {
        self.update(&format!("A#{access_key}#{identity}"))
            .update_expression("SET sent = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
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
