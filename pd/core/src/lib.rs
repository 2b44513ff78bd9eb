//! # ferrokv-pd-core: the Placement Driver's sans-IO core
//!
//! Pure state machines the PD service drives; like `ferrokv-core`, no clocks, threads, OS
//! randomness or IO crates (`clippy.toml`, `ci/deps.sh`).
//!
//! Modules:
//! - `limits`, `meta`: bounds and helpers over `metapb` regions and peers.
//! - `state`: the **replicated** state machine `PdState` (`apply(&PdCommand) -> PdOutcome`),
//!   command and snapshot codecs. Everything that must survive a failover lives here.
//! - `registry`: region metadata by id and key range (inside `PdState`), staleness rules,
//!   routing lookups.
//! - `leader`: `PdLeader`, the **leader-memory** side, rebuilt from heartbeats after a
//!   failover: `tso` (timestamp oracle over the replicated TSO limit), `id_alloc` (id window
//!   under the replicated id limit), `coordinator` (heartbeats -> registry proposals,
//!   operator progress, checkers, schedulers), `memory` (leaders, pending/down peers, sizes,
//!   store statistics), `ask_split`.
//! - Planning: `view` (the read-only `ClusterView`), `checker::{replica, split, peer_gc}`,
//!   `scheduler::{balance_leader, balance_region}`, `operator` (steps, progress, the
//!   pdpb instruction for a step, the per-region controller), `config`.
//!
//! The leader-side core never changes replicated state itself: it emits `Proposals`
//! (`PdCommand`s) that the driver replicates through Raft and applies with
//! `PdState::apply` on every member, then reports back with `PdLeader::on_applied`.

pub mod ask_split;
pub mod checker;
pub mod config;
pub mod coordinator;
pub mod heartbeat;
pub mod id_alloc;
pub mod leader;
pub mod limits;
pub mod memory;
pub mod meta;
pub mod operator;
pub mod proposals;
pub mod registry;
pub mod scheduler;
pub mod state;
pub mod tso;
pub mod view;

#[cfg(test)]
mod testkit;

pub use config::Config;
pub use leader::PdLeader;
pub use proposals::Proposals;
pub use state::{PdCommand, PdOutcome, PdState};
