//! # ferrokv-pd-core: the Placement Driver's sans-IO core
//!
//! Pure state machines the PD service drives; like `ferrokv-core`, no clocks, threads, OS
//! randomness or IO crates (`clippy.toml`, `ci/deps.sh`).
//! - `tso`: the timestamp oracle. Inputs: wall-clock readings and the persisted window
//!   limit; outputs: strictly increasing timestamps and "persist this window" requests. The
//!   invariant: no timestamp is ever handed out at or above a limit not yet persisted, so a
//!   new leader that starts above the persisted limit never repeats a timestamp.
//!
//! Cluster state, id allocation, checkers and schedulers join it with the PD issue.

pub mod tso;
