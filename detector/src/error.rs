//! Errors of the detector, split by whether retrying can help.

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, 5xx: retry, and fail the invocation if it persists so that
    /// Lambda's own retry and the on-failure destination keep the event.
    #[error("state store unavailable: {0}")]
    Transient(String),
    /// Misconfiguration (missing table, access denied): retrying will not help, but the event
    /// must still not be acknowledged.
    #[error("state store rejected the request: {0}")]
    Fatal(String),
    /// The scope's item would exceed the store's item size limit (DynamoDB: 400 KB). The
    /// scope's bounds should make this impossible; if it happens, it is reported as its own
    /// kind (`StateItemTooLarge`) so that an alarm can name it, never mistaken for a
    /// misconfiguration.
    #[error("state item too large: {0}")]
    ItemTooLarge(String),
}

/// A failure of the alert sink. `Transient` and `Fatal` say the alert was *not* published;
/// `Ambiguous` says nobody knows (a timeout, a connection lost after the request was sent, a
/// server error): retrying it may publish a second copy, with the same alert id.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alert sink unavailable: {0}")]
    Transient(String),
    #[error("alert sink rejected the alert: {0}")]
    Fatal(String),
    #[error("alert sink outcome unknown: {0}")]
    Ambiguous(String),
}

/// Why processing an event failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// An alert this event owes is being published by another event's invocation, and this
    /// event must change state after it: retry once that claim is confirmed or has expired.
    #[error("alert {0} is being published by another invocation")]
    AlertInFlight(String),
}

impl Error {
    /// Whether a retry of the same event may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Store(StoreError::Transient(_))
                | Error::Sink(SinkError::Transient(_) | SinkError::Ambiguous(_))
                | Error::AlertInFlight(_)
        )
    }

    /// A short machine-readable kind for the Lambda error record.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Store(StoreError::Transient(_)) => "StateStoreUnavailable",
            Error::Store(StoreError::Fatal(_)) => "StateStoreRejected",
            Error::Store(StoreError::ItemTooLarge(_)) => "StateItemTooLarge",
            Error::Sink(SinkError::Transient(_)) => "AlertSinkUnavailable",
            Error::Sink(SinkError::Fatal(_)) => "AlertSinkRejected",
            Error::Sink(SinkError::Ambiguous(_)) => "AlertSinkOutcomeUnknown",
            Error::AlertInFlight(_) => "AlertInFlight",
        }
    }
}
