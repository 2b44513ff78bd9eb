//! Raft log persistence: entries and hard state per region.
//!
//! `RaftLogStore` is what a peer needs from its log disk. `EngineRaftLog` implements it over
//! the `raft` column family of any `KvEngine`, so both production and simulation get the same
//! layout (and the same bugs, found once):
//!
//! ```text
//! 'r' region_id(be u64) 'e' index(be u64)  -> eraftpb.Entry
//! 'r' region_id(be u64) 'h'                -> eraftpb.HardState
//! ```

use raft::eraftpb::{Entry, HardState};

use super::engine::{Cf, Direction, EngineError, KvEngine, Snapshot, WriteBatch, WriteOptions};
use crate::types::{KeyRange, LogIndex, RegionId};

/// One change to a region's persisted log.
#[derive(Clone, Debug)]
pub enum RaftLogOp {
    /// Store `entries` (consecutive indexes). With `replaces_tail`, also drop every stored
    /// entry after the last one: a new leader's conflicting entries replaced a longer tail.
    /// Without it nothing is deleted (the common case costs no range delete).
    Append {
        region: RegionId,
        entries: Vec<Entry>,
        replaces_tail: bool,
    },
    /// Store the hard state (term, vote, commit).
    SetHardState {
        region: RegionId,
        hard_state: HardState,
    },
    /// Drop entries below `first_kept` (log compaction after a snapshot or truncation).
    CompactTo {
        region: RegionId,
        first_kept: LogIndex,
    },
    /// Drop everything the region has (the peer is destroyed).
    Clear { region: RegionId },
}

/// Changes to one or more regions' logs written together (one sync per batch: group commit).
#[derive(Clone, Debug, Default)]
pub struct RaftLogBatch {
    /// The changes, applied in order.
    pub ops: Vec<RaftLogOp>,
}

impl RaftLogBatch {
    /// True if nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The persisted Raft log of every region on a store.
pub trait RaftLogStore: Clone + Send + Sync + 'static {
    /// Writes `batch` atomically; with `sync`, durable on return.
    fn write(&self, batch: &RaftLogBatch, sync: bool) -> Result<(), EngineError>;

    /// Entries in `[low, high)`, stopping once `bytes_max` is exceeded but always returning
    /// at least one entry if `low < high` and it exists. Missing entries end the result early.
    fn entries(
        &self,
        region: RegionId,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, EngineError>;

    /// The stored hard state, if any.
    fn hard_state(&self, region: RegionId) -> Result<Option<HardState>, EngineError>;

    /// `(first, last)` stored entry indexes, if any entry is stored.
    fn index_bounds(&self, region: RegionId) -> Result<Option<(LogIndex, LogIndex)>, EngineError>;
}

/// `RaftLogStore` over the `raft` column family of a `KvEngine`.
#[derive(Clone, Debug)]
pub struct EngineRaftLog<E> {
    engine: E,
}

const REGION_TAG: u8 = b'r';
const ENTRY_TAG: u8 = b'e';
const ENTRY_END_TAG: u8 = ENTRY_TAG + 1;
const HARD_STATE_TAG: u8 = b'h';

fn region_key(region: RegionId, tag: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + 1 + 8);
    key.push(REGION_TAG);
    key.extend_from_slice(&region.get().to_be_bytes());
    key.push(tag);
    key
}

fn entry_key(region: RegionId, index: LogIndex) -> Vec<u8> {
    let mut key = region_key(region, ENTRY_TAG);
    key.extend_from_slice(&index.get().to_be_bytes());
    key
}

fn entry_index(key: &[u8]) -> Result<LogIndex, EngineError> {
    let tail: [u8; 8] = key
        .get(10..18)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| EngineError::Corruption(format!("bad raft entry key {key:?}")))?;
    Ok(LogIndex(u64::from_be_bytes(tail)))
}

fn decode<M: protobuf::Message>(bytes: &[u8], what: &str) -> Result<M, EngineError> {
    M::parse_from_bytes(bytes).map_err(|e| EngineError::Corruption(format!("{what}: {e}")))
}

fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("encoding a raft message into memory cannot fail")
}

impl<E: KvEngine> EngineRaftLog<E> {
    /// A log store inside `engine`.
    pub fn new(engine: E) -> EngineRaftLog<E> {
        EngineRaftLog { engine }
    }

    fn entry_range(region: RegionId, low: LogIndex, high: LogIndex) -> KeyRange {
        KeyRange::new(entry_key(region, low), entry_key(region, high))
    }
}

/// Stages `op` into `batch`, for callers that write it atomically with other data.
pub fn stage_log_op(op: &RaftLogOp, batch: &mut WriteBatch) {
    match op {
        RaftLogOp::Append {
            region,
            entries,
            replaces_tail,
        } => stage_append(*region, entries, *replaces_tail, batch),
        RaftLogOp::SetHardState { region, hard_state } => {
            batch.put(
                Cf::Raft,
                &region_key(*region, HARD_STATE_TAG),
                &encode(hard_state),
            );
        }
        RaftLogOp::CompactTo { region, first_kept } => {
            let start = entry_key(*region, LogIndex(0));
            batch.delete_range(Cf::Raft, &start, &entry_key(*region, *first_kept));
        }
        RaftLogOp::Clear { region } => {
            let start = region_key(*region, 0);
            batch.delete_range(Cf::Raft, &start, &region_key(*region, u8::MAX));
            batch.delete(Cf::Raft, &region_key(*region, u8::MAX));
        }
    }
}

fn stage_append(region: RegionId, entries: &[Entry], replaces_tail: bool, batch: &mut WriteBatch) {
    let Some(last) = entries.last() else { return };
    for (offset, pair) in entries.windows(2).enumerate() {
        assert_eq!(
            pair[0].index + 1,
            pair[1].index,
            "non-consecutive append at {offset}"
        );
    }
    for entry in entries {
        assert!(entry.index > 0, "raft entries start at index 1");
        batch.put(
            Cf::Raft,
            &entry_key(region, LogIndex(entry.index)),
            &encode(entry),
        );
    }
    if replaces_tail {
        let tail_start = entry_key(region, LogIndex(last.index + 1));
        batch.delete_range(Cf::Raft, &tail_start, &region_key(region, ENTRY_END_TAG));
    }
}

impl<E: KvEngine> RaftLogStore for EngineRaftLog<E> {
    fn write(&self, batch: &RaftLogBatch, sync: bool) -> Result<(), EngineError> {
        let mut write_batch = WriteBatch::new();
        for op in &batch.ops {
            stage_log_op(op, &mut write_batch);
        }
        if write_batch.is_empty() {
            return Ok(());
        }
        self.engine.write(&write_batch, WriteOptions { sync })
    }

    fn entries(
        &self,
        region: RegionId,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, EngineError> {
        if low >= high {
            return Ok(Vec::new());
        }
        let count = usize::try_from(high.get() - low.get()).unwrap_or(usize::MAX);
        let limit = count.min(crate::limits::ENGINE_SCAN_KEYS_MAX);
        let range = Self::entry_range(region, low, high);
        let pairs = self
            .engine
            .snapshot()
            .scan(Cf::Raft, &range, limit, Direction::Forward)?;
        collect_entries(low, &pairs, bytes_max)
    }

    fn hard_state(&self, region: RegionId) -> Result<Option<HardState>, EngineError> {
        let value = self
            .engine
            .get(Cf::Raft, &region_key(region, HARD_STATE_TAG))?;
        value.map(|bytes| decode(&bytes, "hard state")).transpose()
    }

    fn index_bounds(&self, region: RegionId) -> Result<Option<(LogIndex, LogIndex)>, EngineError> {
        let snapshot = self.engine.snapshot();
        let range = Self::entry_range(region, LogIndex(0), LogIndex(u64::MAX));
        let first = snapshot.scan(Cf::Raft, &range, 1, Direction::Forward)?;
        let last = snapshot.scan(Cf::Raft, &range, 1, Direction::Reverse)?;
        match (first.first(), last.first()) {
            (Some((first, _)), Some((last, _))) => {
                let bounds = (entry_index(first)?, entry_index(last)?);
                assert!(bounds.0 <= bounds.1, "first stored index above last");
                Ok(Some(bounds))
            }
            (None, None) => Ok(None),
            _ => unreachable!("one snapshot saw entries in one direction only"),
        }
    }
}

/// Decodes consecutive entries from `low`, within `bytes_max` (at least one).
fn collect_entries(
    low: LogIndex,
    pairs: &[(Vec<u8>, Vec<u8>)],
    bytes_max: u64,
) -> Result<Vec<Entry>, EngineError> {
    let mut entries = Vec::with_capacity(pairs.len());
    let mut bytes = 0u64;
    for (expected, (key, value)) in (low.get()..).zip(pairs) {
        let index = entry_index(key)?;
        if index.get() != expected {
            break; // a hole: compacted or never written; the caller sees a short result
        }
        bytes += value.len() as u64;
        if !entries.is_empty() && bytes > bytes_max {
            break;
        }
        let entry: Entry = decode(value, "raft entry")?;
        if entry.index != index.get() {
            return Err(EngineError::Corruption(format!(
                "entry {} stored at {index}",
                entry.index
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}
