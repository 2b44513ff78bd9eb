//! # ferrokv-sim: the simulation toolkit
//!
//! Everything that makes FerroKV's runs deterministic and hostile, and nothing production
//! runs:
//! - `engine`: `SimEngine`, a `KvEngine` over a `SimDisk` that survives node restarts and on
//!   a crash drops or tears unsynced writes; recovery detects torn tails and corruption.
//! - `history`, `checker`: client histories (EDN export) and the linearizability, tiling
//!   and convergence checkers.
//! - `cluster` (only under `--cfg madsim`): the L2 cluster of real server nodes on
//!   simulated machines, with kill/restart over surviving `SimDisk`s and partitions.
//! - `pd_cluster` (only under `--cfg madsim`): the L2 cluster with real PD members and
//!   stores that join through them.
//! - `vopr` (only under `--cfg madsim`): one seed = cluster + workload + nemesis, a safety
//!   phase then a liveness phase, judged by the checkers.
//! - `harness`: the L1 driver: real `Store`s stepped over a packet simulator in virtual
//!   time, with crashes, partitions and a retrying test client.
//!
//! Invariants: every random choice comes from a seeded `ferrokv_core::env::SeededRng`;
//! containers iterate in a fixed order (`BTreeMap`), so a seed replays bit for bit.

pub mod checker;
#[cfg(madsim)]
pub mod cluster;
pub mod engine;
pub mod harness;
pub mod history;
#[cfg(madsim)]
pub mod pd_cluster;
#[cfg(madsim)]
pub mod vopr;

pub use engine::{
    CrashReport, CrashTail, DiskFaults, DiskSector, RecordDamage, RecoveryReport, SimDisk,
    SimEngine, SimSnapshot, SyncCrash,
};
