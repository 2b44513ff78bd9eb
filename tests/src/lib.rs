//! # ferrokv-tests: shared integration-test machinery
//!
//! - `conformance`: one behavioural suite for every `KvEngine`, instantiated per engine by
//!   `engine_conformance_tests!` so test names show which engine ran (`sim_engine::…`,
//!   `rocks_engine::…`).
//!
//! The test binaries live in `tests/`; madsim scenarios compile only under `--cfg madsim`.

pub mod conformance;
