//! # ferrokv-sim: the simulation toolkit
//!
//! Everything that makes FerroKV's runs deterministic and hostile, and nothing production
//! runs:
//! - `engine`: `SimEngine`, a `KvEngine` over a `SimDisk` that survives node restarts and on
//!   a crash drops or tears unsynced writes; recovery detects torn tails and corruption.
//!
//! Invariants: every random choice comes from a seeded `ferrokv_core::env::SeededRng`;
//! containers iterate in a fixed order (`BTreeMap`), so a seed replays bit for bit.

pub mod engine;

pub use engine::{CrashTail, DiskFaults, RecoveryReport, SimDisk, SimEngine, SimSnapshot};
