//! Commands: each Kv* request after validation, in the terms the MVCC actions use.
//!
//! - **Inputs**: built by `request.rs` from kvrpcpb requests (or directly by tests and the
//!   server's internal paths: GC, resolve-lock read phase).
//! - **Outputs**: the command, the keys it latches, its size for flow control.
//! - **Invariants** (established by validation, asserted by `process_*`): timestamps are
//!   non-zero where a transaction is named; keys are bounded in size and number; a prewrite
//!   or pessimistic lock names each key once; pessimistic actions match the mutations one
//!   to one.

use std::collections::{BTreeMap, BTreeSet};

use crate::mvcc::actions::{CheckTxnStatusParams, Mutation, PessimisticAction, TxnKind};
use crate::mvcc::reader::ScanOptions;
use crate::types::{KeyRange, TimeStamp};

/// Transaction start_ts → its fate: commit_ts, or zero for rolled back.
pub type TxnStatusMap = BTreeMap<TimeStamp, TimeStamp>;

/// A prewrite request.
#[derive(Clone, Debug, PartialEq)]
pub struct Prewrite {
    /// The keys and operations, each key once.
    pub mutations: Vec<Mutation>,
    /// Per mutation; all `SkipPessimisticCheck` for optimistic transactions.
    pub pessimistic_actions: Vec<PessimisticAction>,
    /// The primary key.
    pub primary: Vec<u8>,
    /// The transaction.
    pub start_ts: TimeStamp,
    /// Lock TTL in ms.
    pub lock_ttl_ms: u64,
    /// Keys of the transaction in this region.
    pub txn_size: u64,
    /// Optimistic (with skip_constraint_check) or pessimistic (with for_update_ts).
    pub kind: TxnKind,
    /// Lower bound on the commit ts (0: none).
    pub min_commit_ts: TimeStamp,
    /// Upper bound for async commit/1PC (0: none).
    pub max_commit_ts: TimeStamp,
    /// Async commit: `Some(secondaries)` (possibly empty); `None` for 2PC.
    pub async_commit_secondaries: Option<Vec<Vec<u8>>>,
    /// Commit in one phase if every key prewrites.
    pub try_one_pc: bool,
}

/// A pessimistic lock request.
#[derive(Clone, Debug, PartialEq)]
pub struct PessimisticLock {
    /// Keys, each with "must not exist" (assertion NotExist), each key once.
    pub keys: Vec<(Vec<u8>, bool)>,
    /// The primary key.
    pub primary: Vec<u8>,
    /// The transaction.
    pub start_ts: TimeStamp,
    /// This statement's for_update_ts.
    pub for_update_ts: TimeStamp,
    /// Lock TTL in ms.
    pub lock_ttl_ms: u64,
    /// Return each key's newest value.
    pub return_values: bool,
    /// The locks' min_commit_ts (0: none).
    pub min_commit_ts: TimeStamp,
    /// How long to wait for a conflicting lock (`None`: answer at once).
    pub wait_timeout_ms: Option<u64>,
    /// The first lock of the transaction: no deadlock detection needed.
    pub is_first_lock: bool,
}

/// A write command: runs under latches and proposes its modifications through Raft.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// KvPrewrite.
    Prewrite(Prewrite),
    /// KvCommit.
    Commit {
        start_ts: TimeStamp,
        commit_ts: TimeStamp,
        keys: Vec<Vec<u8>>,
    },
    /// KvBatchRollback.
    BatchRollback {
        start_ts: TimeStamp,
        keys: Vec<Vec<u8>>,
    },
    /// KvCleanup (0 current_ts: roll back regardless of TTL).
    Cleanup {
        key: Vec<u8>,
        start_ts: TimeStamp,
        current_ts: TimeStamp,
    },
    /// KvCheckTxnStatus.
    CheckTxnStatus {
        primary: Vec<u8>,
        lock_ts: TimeStamp,
        params: CheckTxnStatusParams,
    },
    /// KvCheckSecondaryLocks.
    CheckSecondaryLocks {
        start_ts: TimeStamp,
        keys: Vec<Vec<u8>>,
    },
    /// KvResolveLock on explicit keys: each key's lock is resolved if its transaction is in
    /// `txn_status` (start_ts → commit_ts, 0 = rolled back).
    ResolveLock {
        txn_status: TxnStatusMap,
        keys: Vec<Vec<u8>>,
    },
    /// KvTxnHeartBeat.
    TxnHeartBeat {
        primary: Vec<u8>,
        start_ts: TimeStamp,
        advise_ttl_ms: u64,
    },
    /// KvPessimisticLock.
    PessimisticLock(PessimisticLock),
    /// KvPessimisticRollback.
    PessimisticRollback {
        start_ts: TimeStamp,
        for_update_ts: TimeStamp,
        keys: Vec<Vec<u8>>,
    },
    /// GC of these keys' versions below the safe point.
    Gc {
        safe_point: TimeStamp,
        keys: Vec<Vec<u8>>,
    },
    /// KvDeleteRange: all transactional data in the user-key range.
    DeleteRange { range: KeyRange },
}

/// A read command: no latches, no Raft proposal.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadCommand {
    /// KvGet.
    Get {
        key: Vec<u8>,
        ts: TimeStamp,
        bypass_locks: BTreeSet<TimeStamp>,
    },
    /// KvBatchGet.
    BatchGet {
        keys: Vec<Vec<u8>>,
        ts: TimeStamp,
        bypass_locks: BTreeSet<TimeStamp>,
    },
    /// KvScan.
    Scan(ScanOptionsCommand),
    /// KvScanLock: locks with ts ≤ `max_ts` in `range`.
    ScanLock {
        max_ts: TimeStamp,
        range: KeyRange,
        limit: usize,
    },
    /// The read phase of a key-less KvResolveLock: the next batch of keys in `range` locked
    /// by a transaction in `txn_status`.
    ResolveLockScan {
        txn_status: TxnStatusMap,
        range: KeyRange,
    },
    /// The read phase of GC: the next batch of user keys in `range` that have versions.
    GcScan { range: KeyRange },
}

impl ReadCommand {
    /// The timestamp a data read sees the store at (`None` for lock and key scans).
    pub fn snapshot_ts(&self) -> Option<TimeStamp> {
        match self {
            ReadCommand::Get { ts, .. } | ReadCommand::BatchGet { ts, .. } => Some(*ts),
            ReadCommand::Scan(options) => Some(options.0.ts),
            ReadCommand::ScanLock { .. }
            | ReadCommand::ResolveLockScan { .. }
            | ReadCommand::GcScan { .. } => None,
        }
    }
}

/// Scan options as a command (a newtype so the command stays comparable).
#[derive(Clone, Debug)]
pub struct ScanOptionsCommand(pub ScanOptions);

impl PartialEq for ScanOptionsCommand {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        (
            &a.range,
            a.ts,
            a.limit,
            a.key_only,
            a.direction,
            &a.bypass_locks,
        ) == (
            &b.range,
            b.ts,
            b.limit,
            b.key_only,
            b.direction,
            &b.bypass_locks,
        )
    }
}

impl Command {
    /// The keys whose latches the command takes (range commands take none: they run with
    /// no concurrent writer only if the caller arranges it, as TiKV's DeleteRange).
    pub fn latch_keys(&self) -> Vec<Vec<u8>> {
        match self {
            Command::Prewrite(prewrite) => {
                prewrite.mutations.iter().map(|m| m.key.clone()).collect()
            }
            Command::PessimisticLock(lock) => lock.keys.iter().map(|(k, _)| k.clone()).collect(),
            Command::Commit { keys, .. }
            | Command::BatchRollback { keys, .. }
            | Command::CheckSecondaryLocks { keys, .. }
            | Command::ResolveLock { keys, .. }
            | Command::PessimisticRollback { keys, .. }
            | Command::Gc { keys, .. } => keys.clone(),
            Command::Cleanup { key, .. } => vec![key.clone()],
            Command::CheckTxnStatus { primary, .. } | Command::TxnHeartBeat { primary, .. } => {
                vec![primary.clone()]
            }
            Command::DeleteRange { .. } => Vec::new(),
        }
    }

    /// Key and value bytes the command carries, for flow control.
    pub fn bytes(&self) -> usize {
        let keys: usize = self.latch_keys().iter().map(Vec::len).sum();
        let values: usize = match self {
            Command::Prewrite(prewrite) => prewrite
                .mutations
                .iter()
                .map(|m| match &m.op {
                    crate::mvcc::actions::MutationOp::Put(v)
                    | crate::mvcc::actions::MutationOp::Insert(v) => v.len(),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        keys + values
    }
}

/// The user-key ranges a command touches (points as one-key ranges).
fn point_ranges(keys: Vec<Vec<u8>>) -> Vec<KeyRange> {
    keys.into_iter()
        .map(|key| {
            let mut end = key.clone();
            end.push(0);
            KeyRange::new(key, end)
        })
        .collect()
}

impl Command {
    /// True for an async-commit or 1PC prewrite: its commit ts comes from max_ts, so its
    /// region must have max_ts synced with PD since its leader was elected.
    pub fn computes_commit_ts(&self) -> bool {
        matches!(self, Command::Prewrite(p) if p.try_one_pc || p.async_commit_secondaries.is_some())
    }

    /// The user keys and ranges the command touches.
    pub fn user_ranges(&self) -> Vec<KeyRange> {
        match self {
            Command::DeleteRange { range } => vec![range.clone()],
            other => point_ranges(other.latch_keys()),
        }
    }
}

impl ReadCommand {
    /// For the region-wide scans a server runs on its own (the read phases of a key-less
    /// KvResolveLock and of GC): cuts the range to `region` (user keys); other reads are
    /// left as they are (the client cuts them).
    pub fn clamp_region_scan(&mut self, region: &KeyRange) {
        if let ReadCommand::ResolveLockScan { range, .. } | ReadCommand::GcScan { range } = self {
            let start = range.start.clone().max(region.start.clone());
            let end = match (range.end.is_empty(), region.end.is_empty()) {
                (true, _) => region.end.clone(),
                (false, true) => range.end.clone(),
                (false, false) => range.end.clone().min(region.end.clone()),
            };
            *range = KeyRange::new(
                start.clone(),
                if !end.is_empty() && end < start {
                    start
                } else {
                    end
                },
            );
        }
    }

    /// The user keys and ranges the read touches.
    pub fn user_ranges(&self) -> Vec<KeyRange> {
        match self {
            ReadCommand::Get { key, .. } => point_ranges(vec![key.clone()]),
            ReadCommand::BatchGet { keys, .. } => point_ranges(keys.clone()),
            ReadCommand::Scan(options) => vec![options.0.range.clone()],
            ReadCommand::ScanLock { range, .. }
            | ReadCommand::ResolveLockScan { range, .. }
            | ReadCommand::GcScan { range } => vec![range.clone()],
        }
    }
}

/// The region-space form of user-key ranges: the transactional client locates regions by
/// memcomparable-encoded keys, so a region `[s, e)` serves user key `k` iff
/// `s <= encode(k) < e`. Encoding preserves order, so a user range maps to the encoded
/// range of its bounds (an empty end stays unbounded).
pub fn encoded_ranges(user: &[KeyRange]) -> Vec<KeyRange> {
    user.iter()
        .map(|range| {
            let start = crate::types::codec::encode_bytes(&range.start);
            let point = range.end.len() == range.start.len() + 1
                && range.end.starts_with(&range.start)
                && range.end.last() == Some(&0);
            if point {
                // One key: the one encoded key (a region bound may fall between the
                // encodings of `k` and `k ++ 0`).
                let mut end = start.clone();
                end.push(0);
                return KeyRange::new(start, end);
            }
            let end = if range.end.is_empty() {
                Vec::new()
            } else {
                crate::types::codec::encode_bytes(&range.end)
            };
            KeyRange::new(start, end)
        })
        .collect()
}
