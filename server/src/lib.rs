//! # ferrokv-server: a FerroKV store node
//!
//! The async driver that runs the sans-IO core, and the production adapters it needs:
//! - `node`: the event loop over one `Store` (bounded mailbox, ticks, group commit via
//!   `Store::drive`);
//! - `transport`: Raft over gRPC with bounded per-store queues and chunked snapshots;
//! - `service`: the `Tikv` raw KV service, `FerroRaft` and `FerroAdmin`, with input
//!   validation at the edge;
//! - `io`: `RocksEngine` (feature `rocksdb`, never under `--cfg madsim`);
//! - `config`, `clock`, and `server::run`, which wires them together;
//! - `pd`: joining through the Placement Driver (`pd::run_with_pd`): identity, bootstrap,
//!   address resolution, heartbeats, automatic splits and PD's instructions.
//!
//! Compiled normally this crate uses tokio + tonic + RocksDB; compiled with
//! `RUSTFLAGS="--cfg madsim"` the same code runs inside madsim with `SimEngine`.

// tonic::Status is the gRPC error type of every handler; boxing it would only add noise.
#![allow(clippy::result_large_err)]

#[macro_use]
pub mod buggify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod detector;
pub mod io;
pub mod logging;
pub mod node;
pub mod offload;
pub mod pd;
pub mod server;
pub mod service;
pub mod snapshot_chunks;
pub mod transport;

pub use server::{run, run_with_clock, ServerError};
