//! Deliberate bugs the simulator must catch, to prove its checkers can fail.
//!
//! A planted bug is switched on for one simulation thread (`set`, only under
//! `--cfg madsim`), and production logic asks `active(bug)` at the one place the bug lives.
//! Outside simulation `active` is a constant `false`, so no planted bug can reach a
//! production binary; the `cfg` switch lives here, in the module root, never in the logic.

/// A deliberate bug, named after the defect class it plants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    /// Serve reads from any peer's local state, without ReadIndex or a lease.
    StaleLocalReads,
    /// Acknowledge Raft log writes without syncing them.
    SkipRaftLogSync,
    /// The lease is not cleared on step-down, term change or leader transfer: a deposed
    /// leader keeps serving local (lease) reads until its old lease runs out.
    LeaseKeptAfterStepDown,
    /// A lease of two election timeouts (the longest randomized timeout), ignoring the
    /// earliest moment another peer can win and clock drift.
    LeaseBeyondElectionBound,
    /// Truncate the log with the term the CompactLog request carries, not the log's term.
    CompactLogCallerTerm,
    /// The client retries a write whose outcome is unknown.
    RetryAmbiguousWrite,
    /// Apply a write, or serve a read, without checking that the region still owns its keys
    /// (the epoch check a split makes necessary).
    ApplyIgnoresEpoch,
    /// A new PD leader's timestamp oracle starts from its wall clock instead of above the
    /// persisted window limit.
    TsoFromWallClock,
    /// PD's balancers never pick a store holding nothing as a target (a store that joined
    /// stays empty).
    BalanceSkipsEmptyStores,
    /// An optimistic prewrite ignores a commit record newer than its start_ts (lost
    /// updates).
    PrewriteIgnoresNewerCommit,
    /// Rolling back a lock leaves no rollback record, so a late prewrite of the same
    /// transaction succeeds after its fate was decided.
    RollbackWithoutRecord,
    /// Commit takes whatever lock is on the key as its own, without checking that it
    /// belongs to the committing transaction.
    CommitSkipsLockCheck,
    /// GC removes every version at or below the safe point, the newest one too (reads
    /// above the safe point lose the value they must see).
    GcDropsNewestVersion,
    /// A pessimistic prewrite whose key lost its pessimistic lock (rolled back by another
    /// transaction's lock resolution) writes anyway, without checking what was committed
    /// meanwhile (lost updates).
    PrewriteSkipsPessimisticCheck,
    /// A new leader hands out async-commit and 1PC commit timestamps from its store's
    /// max_ts at once, without first raising it to a PD timestamp taken after its election
    /// (reads the old leader served may be above it).
    MaxTsNeverSynced,
    /// An async-commit or 1PC prewrite computes its commit ts from its start_ts only,
    /// ignoring max_ts (a read that missed its lock may be above its commit ts).
    AsyncCommitIgnoresMaxTs,
}

impl PlantedBug {
    /// Every planted bug, in a fixed order.
    pub const ALL: [PlantedBug; 16] = [
        PlantedBug::StaleLocalReads,
        PlantedBug::SkipRaftLogSync,
        PlantedBug::LeaseKeptAfterStepDown,
        PlantedBug::LeaseBeyondElectionBound,
        PlantedBug::CompactLogCallerTerm,
        PlantedBug::RetryAmbiguousWrite,
        PlantedBug::ApplyIgnoresEpoch,
        PlantedBug::TsoFromWallClock,
        PlantedBug::BalanceSkipsEmptyStores,
        PlantedBug::PrewriteIgnoresNewerCommit,
        PlantedBug::RollbackWithoutRecord,
        PlantedBug::CommitSkipsLockCheck,
        PlantedBug::GcDropsNewestVersion,
        PlantedBug::PrewriteSkipsPessimisticCheck,
        PlantedBug::MaxTsNeverSynced,
        PlantedBug::AsyncCommitIgnoresMaxTs,
    ];

    /// The command-line name (`ci/sim.sh --planted-bug NAME`).
    pub const fn name(self) -> &'static str {
        match self {
            PlantedBug::StaleLocalReads => "stale-reads",
            PlantedBug::SkipRaftLogSync => "skip-log-sync",
            PlantedBug::LeaseKeptAfterStepDown => "lease-after-step-down",
            PlantedBug::LeaseBeyondElectionBound => "lease-beyond-election-bound",
            PlantedBug::CompactLogCallerTerm => "compact-log-caller-term",
            PlantedBug::RetryAmbiguousWrite => "retry-ambiguous-write",
            PlantedBug::ApplyIgnoresEpoch => "apply-ignores-epoch",
            PlantedBug::TsoFromWallClock => "tso-from-wall-clock",
            PlantedBug::BalanceSkipsEmptyStores => "balance-skips-empty-stores",
            PlantedBug::PrewriteIgnoresNewerCommit => "prewrite-ignores-newer-commit",
            PlantedBug::RollbackWithoutRecord => "rollback-without-record",
            PlantedBug::CommitSkipsLockCheck => "commit-skips-lock-check",
            PlantedBug::GcDropsNewestVersion => "gc-drops-newest-version",
            PlantedBug::PrewriteSkipsPessimisticCheck => "prewrite-skips-pessimistic-check",
            PlantedBug::MaxTsNeverSynced => "max-ts-never-synced",
            PlantedBug::AsyncCommitIgnoresMaxTs => "async-commit-ignores-max-ts",
        }
    }

    /// The bug of a command-line name.
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

#[cfg(madsim)]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<PlantedBug>> = const { std::cell::Cell::new(None) };
}

/// Plants `bug` (or none) for this simulation thread.
#[cfg(madsim)]
pub fn set(bug: Option<PlantedBug>) {
    ACTIVE.with(|active| active.set(bug));
}

/// True if `bug` is planted on this simulation thread.
#[cfg(madsim)]
pub fn active(bug: PlantedBug) -> bool {
    ACTIVE.with(|active| active.get() == Some(bug))
}

/// Outside simulation no bug is ever planted.
#[cfg(not(madsim))]
#[inline(always)]
pub const fn active(_bug: PlantedBug) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for bug in PlantedBug::ALL {
            assert_eq!(PlantedBug::from_name(bug.name()), Some(bug));
        }
        let mut names: Vec<_> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PlantedBug::ALL.len());
        assert_eq!(PlantedBug::from_name("no-such-bug"), None);
    }

    #[cfg(not(madsim))]
    #[test]
    fn production_builds_never_plant() {
        assert!(PlantedBug::ALL.into_iter().all(|bug| !active(bug)));
    }
}
