//! # ferrokv-server: a FerroKV store node
//!
//! The async driver that runs the sans-IO core, and the production adapters it needs:
//! - `io`: `RocksEngine` (feature `rocksdb`, never under `--cfg madsim`), and later the gRPC
//!   Raft transport and the real clock.
//! - the node event loop, tonic services and binaries arrive with the replication issue.
//!
//! Compiled normally this crate uses tokio + tonic + RocksDB; compiled with
//! `RUSTFLAGS="--cfg madsim"` the same code runs inside madsim with `SimEngine`.

pub mod io;
