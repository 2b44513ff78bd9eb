//! # ferrokv-client: the FerroKV Rust client
//!
//! - `region_cache`: which region (and leader) serves a key, refreshed from PD answers and
//!   from region errors (`NotLeader` hints, `EpochNotMatch` current regions).
//!
//! The RPC layer (raw KV with retries, then transactions) builds on it; it compiles under
//! madsim too, so simulated clients run the same retry logic as real ones.

pub mod region_cache;
