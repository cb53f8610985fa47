//! The shared model every stage agrees on: the canonical decision event,
//! the SPIFFE ID type, the Arrow schemas of what is stored, and the on-disk
//! layout of a data directory.
//!
//! This crate holds types and pure functions only. It never talks to Kafka,
//! never runs queries and never serves HTTP; ingest, analytics and api
//! depend on it, never the other way round.
#![forbid(unsafe_code)]

pub mod duration;
pub mod event;
pub mod layout;
pub mod report;
pub mod results;
pub mod spiffe_id;
pub mod table;

pub use event::{Decision, DecisionEvent, SubjectKind};
pub use layout::DataDir;
pub use spiffe_id::{SpiffeId, SpiffeIdError};
