//! # ferrokv-client: the FerroKV Rust client
//!
//! - `region_cache`: which region (and leader) serves a key, refreshed from store reports
//!   and corrected by region errors (`NotLeader` hints, `EpochNotMatch` current regions).
//! - `admin`: region status and operator commands on one store.
//! - `pd`: the Placement Driver client (leader discovery, retries, typed calls).
//! - `raw`: the raw KV client with per-call deadlines, backoff, and ambiguity reporting
//!   (`ClientError::Unknown`) for non-idempotent calls.
//! - `txn`: Percolator transactions (optimistic two-phase commit, lock resolution) over
//!   the same routing, with timestamps from PD's TSO or a local oracle.
//!
//! It compiles under madsim too, so simulated clients run the same retry logic as real ones.

pub mod admin;
pub mod error;
pub mod pd;
pub mod raw;
pub mod region_cache;
pub mod txn;

pub use error::ClientError;
pub use raw::{FirstAttempt, RawClient, RawConfig};
