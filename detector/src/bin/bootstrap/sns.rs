//! `AlertSink` on SNS: readable subject, one publish with a message per protocol
//! ([`ctguard_detector::notify::sns_message`]: email text, Chatbot form, versioned JSON), message attributes for subscription filters
//! and for dropping duplicates (`alert_id`, the same for every copy of one alert).

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use ctguard_detector::health::HealthNotice;
use ctguard_detector::{Alert, AlertSink, SinkError};

pub struct SnsSink {
    client: Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: Client, topic_arn: String) -> Self {
        SnsSink { client, topic_arn }
    }
}

fn attr(v: &str) -> Result<MessageAttributeValue, SinkError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .map_err(|e| SinkError::Fatal(e.to_string()))
}

/// An SNS error as a [`SinkError`]: whether SNS may have accepted the message decides whether
/// a retry can make a second copy: a timeout, a lost connection or a server error may have; an
/// error answer to the request (throttling, not found, access denied) has not.
fn sink_error(e: SdkError<PublishError>) -> SinkError {
    let text = match e.code() {
        Some(c) => format!("{c}: {}", e.message().unwrap_or_default()),
        None => format!("{e:?}"),
    };
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SinkError::Ambiguous(text)
        }
        _ => match e.code() {
            Some("InternalError" | "InternalFailure" | "ServiceUnavailable") => SinkError::Ambiguous(text),
            Some("Throttling" | "ThrottledException" | "KMSThrottlingException") => SinkError::Transient(text),
            _ => SinkError::Fatal(text),
        },
    }
}

impl SnsSink {
    /// Publishes a health notice ([`ctguard_detector::health`]): `kind` = `health`, so alert
    /// subscribers can filter it out; no `alert_id`, and no `severity` (a subscription that
    /// filters alerts on their severity does not receive notices).
    pub async fn notify(&self, notice: &HealthNotice) -> Result<(), SinkError> {
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(notice.subject())
            .message_structure("json")
            .message(notice.sns_message())
            .message_attributes("synthetic", attr("false")?)
            .message_attributes("kind", attr("health")?)
            .send()
            .await
            .map_err(sink_error)?;
        tracing::warn!(message_id = out.message_id.as_deref().unwrap_or(""), alarm = %notice.alarm, state = %notice.state, "health notice published");
        Ok(())
    }
}

impl AlertSink for SnsSink {
    async fn publish(&self, alert: &Alert) -> Result<(), SinkError> {
        let r = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(alert.subject())
            .message_structure("json")
            .message(ctguard_detector::notify::sns_message(alert))
            .message_attributes("severity", attr(alert.severity.as_str())?)
            .message_attributes("synthetic", attr(if alert.synthetic { "true" } else { "false" })?)
            .message_attributes("kind", attr(&alert.kind)?)
            .message_attributes("alert_id", attr(&alert.id)?)
            .send()
            .await;
        match r {
            Ok(out) => {
                tracing::warn!(
                    message_id = out.message_id.as_deref().unwrap_or(""),
                    alert_id = %alert.id,
                    access_key_id = %alert.access_key_id,
                    seen = %alert.seen_identity,
                    synthetic = alert.synthetic,
                    "alert published"
                );
                Ok(())
            }
            Err(e) => Err(sink_error(e)),
        }
    }
}
