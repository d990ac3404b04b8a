//! `AlertSink` on SNS: readable subject, one publish with a message per protocol
//! ([`ctguard_detector::notify::sns_message`]: email text, Chatbot form, versioned JSON), message attributes for subscription filters
//! and for dropping duplicates (`alert_id`, the same for every copy of one alert).

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
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
            Err(e) => {
                let text = match e.code() {
                    Some(c) => format!("{c}: {}", e.message().unwrap_or_default()),
                    None => format!("{e:?}"),
                };
                // Whether SNS may have accepted the message decides whether a retry can make a
                // second copy: a timeout, a lost connection or a server error may have; an
                // error answer to the request (throttling, not found, access denied) has not.
                Err(match &e {
                    SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                        SinkError::Ambiguous(text)
                    }
                    _ => match e.code() {
                        Some("InternalError" | "InternalFailure" | "ServiceUnavailable") => SinkError::Ambiguous(text),
                        Some("Throttling" | "ThrottledException" | "KMSThrottlingException") => {
                            SinkError::Transient(text)
                        }
                        _ => SinkError::Fatal(text),
                    },
                })
            }
        }
    }
}
