//! ctguard's detector: catch a stolen AWS temporary credential the moment it is reused.
//!
//! The rules are plain, synchronous Rust with no AWS I/O ([`engine::classify`]); the
//! [`engine::Detector`] drives them against two seams, [`state::StateStore`] and
//! [`alert::AlertSink`]. The Lambda bootstrap (feature `lambda`) plugs in DynamoDB and SNS;
//! `ctguard scan` plugs in [`memory::MemoryStore`] and [`memory::CollectingSink`] to replay
//! historical logs read by [`reader`] with exactly the same decisions.

pub mod actiontrail;
pub mod alert;
pub mod contain;
pub mod emf;
pub mod engine;
pub mod error;
pub mod event;
pub mod faults;
pub mod finding;
pub mod fuzzing;
pub mod health;
pub mod identity;
pub mod memory;
pub mod notify;
pub mod policy;
pub mod reader;
pub mod state;
pub mod time;

pub use alert::{alert_id, Alert, AlertSink, Severity};
pub use engine::{classify, Decision, Detector, Observation, Scope, Signal, Skip, Stats};
pub use error::{Error, SinkError, StoreError};
pub use event::Record;
pub use identity::NetworkIdentity;
pub use memory::{CollectingSink, MemoryStore};
pub use policy::Policy;
pub use state::{AlertClaim, Anchor, Arm, Claim, EventRef, Prune, ScopeState, StateStore, Suspect, Trusted, Update};

/// True for a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The detector's version, reported in every alert and compared by `ctguard status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
