//! # ferrokv-tests: shared integration-test machinery
//!
//! - `conformance`: one behavioural suite for every `KvEngine`, instantiated per engine by
//!   `engine_conformance_tests!` so test names show which engine ran (`sim_engine::…`,
//!   `rocks_engine::…`).
//!
//! - `process_cluster`: real `ferrokv-server` processes on loopback (not under madsim).
//!
//! The test binaries live in `tests/`; madsim scenarios compile only under `--cfg madsim`.

pub mod conformance;
#[cfg(not(madsim))]
pub mod process_cluster;
