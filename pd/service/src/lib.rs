//! # ferrokv-pd: the Placement Driver service
//!
//! The `pdpb.PD` gRPC service over the sans-IO PD core (`ferrokv-pd-core`), made highly
//! available without a second Raft implementation: each PD member runs FerroKV's own Raft
//! `Store` with one region (the PD region) whose peers are the members, and the replicated
//! `PdState` is one value in it.
//!
//! - `config`: members, addresses, cluster id, Raft and scheduling knobs.
//! - `member`: the member's Raft store (node loop, transport, Raft service).
//! - `driver`: the leader loop: take-over by a linearizable read of the state, the
//!   one-write-at-a-time proposal pipeline, TSO only inside the Raft leader lease, parking of
//!   calls that wait for a window.
//! - `service`: the gRPC edge (header and cluster-id checks, typed pdpb errors).
//! - `server::run_member`: wires them together (RocksDB in production, SimEngine in
//!   simulation).
//!
//! Inputs: gRPC requests, the PD region's status, ticks. Outputs: responses, writes of the
//! state to the PD region, instructions on the stores' heartbeat streams. Invariants: only
//! the Raft leader of the PD region serves; no timestamp is served outside its lease; the
//! state a leader serves from is always one that committed.

// tonic::Status is the gRPC error type of every handler; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod driver;
pub mod member;
pub mod server;
pub mod service;

pub use config::{Member, PdConfig};
pub use server::run_member;
