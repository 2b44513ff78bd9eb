//! Helpers for the compatibility tests against the official `tikv-client` 0.4:
//! - `cluster`: a playground of real processes (`ferrokv-pd` + `ferrokv-server --pd`) on
//!   loopback in a temporary directory, with store kill/restart, torn down on drop;
//! - `model`: the in-memory model every answer is checked against, and a small seeded
//!   random generator (no dependency, so a seed replays the same operations).
//!
//! The official raw client without a keyspace speaks API v1: raw keys are sent as they are
//! (no keyspace prefix, no memcomparable encoding), which is what FerroKV stores serve.

pub mod cluster;
pub mod model;
