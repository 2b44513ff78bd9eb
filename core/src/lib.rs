//! # ferrokv-core: the sans-IO heart of FerroKV
//!
//! Everything that decides (Raft peers, the multi-Raft store, MVCC, transaction scheduling)
//! lives here as state machines that take inputs and return effects. This crate does no IO:
//! - **Inputs**: messages, ticks, proposals, persistence acknowledgements, and the `env`
//!   traits (`Clock`, `Rng`, `KvEngine`, `RaftLogStore`, `Transport`) passed in by a driver.
//! - **Outputs**: typed effects the driver executes (persist, send after persist, apply,
//!   respond); `store::Store::drive` executes them in the one correct order for every driver.
//! - **Invariants**: no wall clock, OS randomness, threads or order-leaking hash maps
//!   (`clippy.toml` bans them; `ci/deps.sh` checks no tokio/tonic/rocksdb is linked), so the
//!   same code replays bit for bit under simulation. Broken invariants panic; expected
//!   failures are typed errors.
//!
//! Modules: `env` (the IO boundary), `types`, `limits`, `raft` (peer FSM), `store` (multi-Raft
//! store FSM), `raw` (raw KV semantics).
//!
//! Two drivers execute it: the L1 harness in `ferrokv-sim` (no async) and the async node loop
//! in `ferrokv-server` (tokio in production, madsim in simulation).

pub mod env;
pub mod limits;
pub mod mvcc;
pub mod planted;
pub mod raft;
pub mod raw;
pub mod store;
pub mod txn;
pub mod types;
