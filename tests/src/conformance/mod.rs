//! One behavioural suite for every `KvEngine`.
//!
//! Each case is a generic function over an `EngineFixture`; `engine_conformance_tests!`
//! stamps out one `#[test]` per case for a fixture, so `sim_engine::snapshot_isolation` and
//! `rocks_engine::snapshot_isolation` are separate, named tests.

mod basic;
mod model;
mod raft_log;
mod scan;

pub use basic::*;
pub use model::*;
pub use raft_log::*;
pub use scan::*;

use ferrokv_core::env::KvEngine;

/// Creates, holds and reopens one engine for a test.
pub trait EngineFixture: Sized {
    /// The engine under test.
    type Engine: KvEngine;

    /// A fresh, empty engine.
    fn create() -> Self;

    /// A handle to the open engine.
    fn engine(&self) -> Self::Engine;

    /// Closes the engine cleanly (every handle and snapshot must be dropped first) and opens
    /// it again from what it stored.
    fn reopen(&mut self);
}

/// Emits one `#[test]` per conformance case for `$fixture`.
#[macro_export]
macro_rules! engine_conformance_tests {
    ($fixture:ty) => {
        $crate::engine_conformance_tests!(@cases $fixture;
            put_get_delete,
            atomic_batch_applies_all,
            last_write_in_batch_wins,
            snapshot_isolation,
            column_families_are_isolated,
            empty_values_are_values,
            reopen_keeps_synced_data,
            scan_bounds_and_limits,
            reverse_scan,
            prefix_and_edge_keys,
            delete_range_removes_only_inside,
            raft_log_roundtrip,
            raft_log_conflicting_tail_is_replaced,
            raft_log_compaction_and_clear,
            model_matches_btreemap
        );
    };
    (@cases $fixture:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case::<$fixture>();
            }
        )*
    };
}
