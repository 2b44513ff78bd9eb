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

pub mod limits;
pub mod meta;
pub mod registry;
pub mod state;
pub mod tso;
