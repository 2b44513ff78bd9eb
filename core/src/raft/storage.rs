//! `PeerStorage`: what raft-rs reads through `raft::Storage`, for one peer.
//!
//! The uncompacted log is held in memory (`entries`, bounded by log GC) and mirrored on disk
//! through `EngineRaftLog`; disk is read only at restart. Entries enter the cache when a Ready
//! hands them out (raft-rs requires `Storage` to see them before `advance_append_async`),
//! and become durable when the driver writes the staged batch.
//!
//! Snapshots are generated from the engine's applied state: region data of the three data
//! column families plus the region and apply state written atomically with that data.

use std::collections::VecDeque;

use ferrokv_proto::ferrokv_raftpb::{
    CfName, RaftApplyState, RaftTruncatedState, RegionLocalState, SnapshotData, SnapshotKv,
};
use ferrokv_proto::metapb::{self, PeerRole};
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot as RaftSnapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::keys;
use crate::env::{
    stage_log_op, Cf, Direction, EngineError, KvEngine, RaftLogOp, Snapshot, WriteBatch,
};
use crate::limits;
use crate::types::{fnv, KeyRange, LogIndex, RegionId};

/// First log index of a region created by bootstrap or split (TiKV's `RAFT_INIT_LOG_INDEX`):
/// entries up to it are "already applied", so a new peer on another store needs a snapshot.
pub const INIT_LOG_INDEX: u64 = 5;
/// Term of the initial log position.
pub const INIT_LOG_TERM: u64 = 5;

/// Data column families, in snapshot order.
pub const DATA_CFS: [Cf; 4] = [Cf::Raw, Cf::Default, Cf::Lock, Cf::Write];

/// The wire name of a data column family.
pub fn cf_name(cf: Cf) -> CfName {
    match cf {
        Cf::Raw => CfName::CfRaw,
        Cf::Default => CfName::CfDefault,
        Cf::Lock => CfName::CfLock,
        Cf::Write => CfName::CfWrite,
        Cf::Raft => panic!("the raft column family is never part of region data"),
    }
}

/// The column family of a wire name.
pub fn cf_of(name: CfName) -> Cf {
    match name {
        CfName::CfDefault => Cf::Default,
        CfName::CfLock => Cf::Lock,
        CfName::CfWrite => Cf::Write,
        CfName::CfRaw => Cf::Raw,
    }
}

/// The Raft membership a region's peer list describes.
pub fn conf_state_of(region: &metapb::Region) -> ConfState {
    let mut conf_state = ConfState::default();
    for peer in &region.peers {
        match PeerRole::try_from(peer.role).unwrap_or(PeerRole::Voter) {
            PeerRole::Learner => conf_state.learners.push(peer.id),
            _ => conf_state.voters.push(peer.id),
        }
    }
    conf_state
}

/// A region's peers: non-zero, distinct ids on distinct stores (what raft-rs's membership
/// and the store's one-peer-per-region rule need), checked wherever a peer list comes from
/// disk or the network.
pub fn check_peer_ids(region: &metapb::Region) -> Result<(), String> {
    let distinct = |ids: Vec<u64>| {
        let count = ids.len();
        let set: std::collections::BTreeSet<u64> = ids.into_iter().collect();
        set.len() == count && !set.contains(&0)
    };
    let peer_ids = region.peers.iter().map(|peer| peer.id).collect();
    let store_ids = region.peers.iter().map(|peer| peer.store_id).collect();
    if !distinct(peer_ids) || !distinct(store_ids) {
        return Err("peers need non-zero, distinct ids on distinct stores".into());
    }
    Ok(())
}

/// Checks a snapshot from the network before Raft sees it, and returns its region: every
/// rule `apply_snapshot` and raft-rs's restore rely on, so a malformed or forged snapshot
/// is refused here instead of failing the store (or clearing other regions' data) when it
/// applies. The region has a non-empty, non-inverted range and distinct non-zero peers
/// including `to_peer_id`; the metadata's membership is the region's; every pair lies in
/// a data column family inside the region.
pub fn check_snapshot(snapshot: &RaftSnapshot, to_peer_id: u64) -> Result<metapb::Region, String> {
    let data =
        SnapshotData::decode(snapshot.data.as_ref()).map_err(|e| format!("snapshot data: {e}"))?;
    let region = data.region.ok_or("a snapshot without a region")?;
    if !region.end_key.is_empty() && region.start_key >= region.end_key {
        return Err(format!(
            "region {} has an empty or inverted range",
            region.id
        ));
    }
    check_peer_ids(&region).map_err(|why| format!("region {}: {why}", region.id))?;
    if !region.peers.iter().any(|peer| peer.id == to_peer_id) {
        return Err(format!(
            "region {} does not include peer {to_peer_id}",
            region.id
        ));
    }
    let sorted = |ids: &[u64]| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids
    };
    let expected = conf_state_of(&region);
    let got = snapshot.get_metadata().get_conf_state();
    if sorted(&got.voters) != sorted(&expected.voters)
        || sorted(&got.learners) != sorted(&expected.learners)
        || !got.voters_outgoing.is_empty()
        || !got.learners_next.is_empty()
    {
        return Err(format!(
            "the snapshot's membership is not region {}'s",
            region.id
        ));
    }
    let owned = region_data_ranges(&region);
    for kv in &data.kvs {
        let cf = CfName::try_from(kv.cf)
            .map(cf_of)
            .map_err(|_| format!("a snapshot pair in unknown column family {}", kv.cf))?;
        if !owned
            .iter()
            .any(|(data_cf, range)| *data_cf == cf && range.contains(&kv.key))
        {
            return Err(format!(
                "a snapshot pair in {} outside region {}",
                cf.name(),
                region.id
            ));
        }
    }
    Ok(region)
}

/// The key range a region owns.
pub fn region_range(region: &metapb::Region) -> KeyRange {
    KeyRange::new(region.start_key.clone(), region.end_key.clone())
}

/// Where a region's data lives, per data column family: raw pairs in CF raw over the
/// region's own range (raw keys are stored as sent); transactional records in CF default,
/// lock and write over the region's range under the transactional prefix (the
/// transactional client's regions have memcomparable-encoded bounds; `mvcc::keys`). The
/// ranges of two regions that do not overlap never overlap in any CF, and everything a
/// region's snapshot, hash or destruction covers is listed here.
pub fn region_data_ranges(region: &metapb::Region) -> [(Cf, KeyRange); 4] {
    let raw = region_range(region);
    assert!(
        raw.end.is_empty() || raw.start < raw.end,
        "region {} has an empty or inverted range",
        region.id
    );
    let txn = crate::mvcc::keys::region_storage_range(&raw);
    assert_eq!(
        txn.start.first(),
        Some(&crate::mvcc::keys::TXN_KEY_PREFIX),
        "transactional data lies under its prefix"
    );
    assert!(
        !txn.end.is_empty() && txn.start < txn.end,
        "a bounded transactional range"
    );
    let ranges = [
        (Cf::Raw, raw),
        (Cf::Default, txn.clone()),
        (Cf::Lock, txn.clone()),
        (Cf::Write, txn),
    ];
    assert!(
        ranges.iter().map(|(cf, _)| *cf).eq(DATA_CFS),
        "one range per data CF"
    );
    ranges
}

/// A region's persisted Raft state as loaded at startup.
#[derive(Clone, Debug)]
pub struct LoadedState {
    /// Region metadata as of the applied index.
    pub region: metapb::Region,
    /// Apply progress.
    pub apply_state: RaftApplyState,
    /// Term, vote and commit.
    pub hard_state: HardState,
    /// Every stored entry after the truncated index.
    pub entries: Vec<Entry>,
}

/// The storage raft-rs sees for one peer.
pub struct PeerStorage<E: KvEngine> {
    engine: E,
    region_id: RegionId,
    region: metapb::Region,
    raft_state: RaftState,
    entries: VecDeque<Entry>,
    entry_bytes: u64,
    apply_state: RaftApplyState,
    snapshot_gen: std::cell::RefCell<SnapshotGen>,
}

impl<E: KvEngine> PeerStorage<E> {
    /// Storage for a peer with the given loaded state. `region.peers` empty means an
    /// uninitialized peer waiting for a snapshot.
    pub fn new(engine: E, region_id: RegionId, state: LoadedState) -> PeerStorage<E> {
        let conf_state = conf_state_of(&state.region);
        let raft_state = RaftState::new(state.hard_state, conf_state);
        let entry_bytes = state.entries.iter().map(|e| e.data.len() as u64).sum();
        let storage = PeerStorage {
            engine,
            region_id,
            region: state.region,
            raft_state,
            entries: state.entries.into(),
            entry_bytes,
            apply_state: state.apply_state,
            snapshot_gen: Default::default(),
        };
        storage.check_invariants();
        storage
    }

    fn check_invariants(&self) {
        let truncated = self.truncated();
        if let Some(first) = self.entries.front() {
            assert_eq!(
                first.index,
                truncated.index + 1,
                "log cache starts after truncation"
            );
        }
        assert!(
            self.apply_state.applied_index >= truncated.index,
            "applied below truncated"
        );
        assert!(
            self.raft_state.hard_state.commit >= self.apply_state.applied_index
                || !self.is_initialized(),
            "applied above commit"
        );
    }

    /// The region as of the applied index.
    pub fn region(&self) -> &metapb::Region {
        &self.region
    }

    /// True once the peer has a region (created by bootstrap, split or snapshot).
    pub fn is_initialized(&self) -> bool {
        !self.region.peers.is_empty()
    }

    /// Apply progress.
    pub fn apply_state(&self) -> &RaftApplyState {
        &self.apply_state
    }

    /// The truncated log position.
    pub fn truncated(&self) -> RaftTruncatedState {
        self.apply_state.truncated_state.unwrap_or_default()
    }

    /// The engine this peer stores into.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Bytes of entry payload held in the log cache.
    pub fn entry_bytes(&self) -> u64 {
        self.entry_bytes
    }

    /// Caches `entries` (replacing any conflicting tail) and stages their persistence.
    pub fn append(&mut self, entries: Vec<Entry>, batch: &mut WriteBatch) {
        let Some(first) = entries.first() else { return };
        let first_index = first.index;
        assert!(
            first_index > self.truncated().index,
            "append below the truncated index"
        );
        let old_last = self.last_index_value();
        let new_last = entries.last().expect("non-empty").index;
        while self
            .entries
            .back()
            .is_some_and(|last| last.index >= first_index)
        {
            let dropped = self.entries.pop_back().expect("checked non-empty");
            self.entry_bytes -= dropped.data.len() as u64;
        }
        let expected_next = self.last_index_value() + 1;
        assert_eq!(
            first_index, expected_next,
            "append leaves a hole in the log"
        );
        for entry in &entries {
            self.entry_bytes += entry.data.len() as u64;
        }
        self.entries.extend(entries.iter().cloned());
        stage_log_op(
            &RaftLogOp::Append {
                region: self.region_id,
                entries,
                replaces_tail: old_last > new_last,
            },
            batch,
        );
    }

    /// Records and stages a new hard state.
    pub fn set_hard_state(&mut self, hard_state: HardState, batch: &mut WriteBatch) {
        self.raft_state.hard_state = hard_state.clone();
        stage_log_op(
            &RaftLogOp::SetHardState {
                region: self.region_id,
                hard_state,
            },
            batch,
        );
    }

    /// Records that entry `(index, term)` applied: the next one after the applied index.
    /// The caller stages the apply state via `stage_apply` at the end of the round.
    pub fn advance_applied(&mut self, index: u64, term: u64) {
        assert_eq!(
            index,
            self.apply_state.applied_index + 1,
            "entries apply one by one, in order"
        );
        assert!(
            term >= self.apply_state.applied_term,
            "applied terms never decrease"
        );
        assert!(
            index
                <= self
                    .raft_state
                    .hard_state
                    .commit
                    .max(self.last_index_value()),
            "applying beyond the log"
        );
        self.apply_state.applied_index = index;
        self.apply_state.applied_term = term;
    }

    /// Records the region as changed by applied admin commands (split, membership).
    pub fn set_region(&mut self, region: metapb::Region) {
        assert_eq!(
            region.id,
            self.region_id.get(),
            "a peer keeps its region id"
        );
        self.raft_state.conf_state = conf_state_of(&region);
        self.region = region;
    }

    /// Stages the apply state and region state into `batch` (atomic with applied data).
    pub fn stage_apply(&self, batch: &mut WriteBatch) {
        write_apply_state(self.region_id, &self.apply_state, batch);
        let normal = ferrokv_proto::ferrokv_raftpb::PeerState::Normal;
        write_region_state(&self.region, normal, 0, batch);
    }

    /// Drops cached entries up to `compact_index` and stages their deletion; the truncated
    /// state moves with them. The caller stages the apply state afterwards.
    pub fn compact_to(&mut self, compact_index: u64, compact_term: u64, batch: &mut WriteBatch) {
        assert!(
            compact_index <= self.apply_state.applied_index,
            "compacting unapplied entries"
        );
        assert!(
            compact_index > self.truncated().index,
            "compaction moves the truncated index forward"
        );
        while self
            .entries
            .front()
            .is_some_and(|e| e.index <= compact_index)
        {
            let dropped = self.entries.pop_front().expect("checked non-empty");
            self.entry_bytes -= dropped.data.len() as u64;
            if dropped.index == compact_index {
                assert_eq!(
                    dropped.term, compact_term,
                    "region {}: the truncated term must be the log's term at index {}",
                    self.region_id, compact_index
                );
            }
        }
        self.apply_state.truncated_state = Some(RaftTruncatedState {
            index: compact_index,
            term: compact_term,
        });
        let op = RaftLogOp::CompactTo {
            region: self.region_id,
            first_kept: LogIndex(compact_index + 1),
        };
        stage_log_op(&op, batch);
        self.check_invariants();
    }

    /// Installs a received snapshot: stages replacement of the region's data, log and state
    /// into `batch`, and updates the in-memory view. Returns the snapshot's region.
    pub fn apply_snapshot(
        &mut self,
        snapshot: &RaftSnapshot,
        batch: &mut WriteBatch,
    ) -> Result<metapb::Region, EngineError> {
        let data = SnapshotData::decode(snapshot.data.as_ref())
            .map_err(|e| EngineError::Corruption(format!("snapshot data: {e}")))?;
        let region = data
            .region
            .clone()
            .ok_or_else(|| EngineError::Corruption("snapshot without a region".to_string()))?;
        let meta = snapshot.get_metadata();
        if !self.region.peers.is_empty() {
            clear_region_data(&self.region, batch);
        }
        clear_region_data(&region, batch);
        let owned = region_data_ranges(&region);
        for kv in &data.kvs {
            let cf = CfName::try_from(kv.cf).map(cf_of).map_err(|_| {
                EngineError::Corruption(format!("snapshot pair in unknown column family {}", kv.cf))
            })?;
            let inside = owned
                .iter()
                .any(|(data_cf, range)| *data_cf == cf && range.contains(&kv.key));
            if !inside {
                return Err(EngineError::Corruption(format!(
                    "snapshot pair {:?} in {} outside region {}",
                    kv.key,
                    cf.name(),
                    region.id
                )));
            }
            batch.put(cf, &kv.key, &kv.value);
        }
        stage_log_op(
            &RaftLogOp::Clear {
                region: self.region_id,
            },
            batch,
        );
        self.entries.clear();
        self.entry_bytes = 0;
        let truncated = RaftTruncatedState {
            index: meta.index,
            term: meta.term,
        };
        self.apply_state = RaftApplyState {
            applied_index: meta.index,
            truncated_state: Some(truncated),
            applied_term: meta.term,
        };
        self.region = region.clone();
        self.raft_state.conf_state = meta.get_conf_state().clone();
        let hard_state = &mut self.raft_state.hard_state;
        hard_state.commit = hard_state.commit.max(meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        let hard_state = hard_state.clone();
        stage_log_op(
            &RaftLogOp::SetHardState {
                region: self.region_id,
                hard_state,
            },
            batch,
        );
        self.stage_apply(batch);
        Ok(region)
    }

    fn last_index_value(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.truncated().index, |e| e.index)
    }

    /// The engine view a snapshot generation task reads, if raft-rs asked for a snapshot
    /// since the last call. The view is taken now, so it holds a consistent applied state.
    pub fn take_snapshot_request(&self) -> Option<E::Snap> {
        let mut generation = self.snapshot_gen.borrow_mut();
        if !std::mem::take(&mut generation.wanted) {
            return None;
        }
        generation.requested = true;
        Some(self.engine.snapshot())
    }

    /// A generation task finished: keep its snapshot for raft-rs's next request.
    pub fn on_snapshot_generated(&self, result: Result<RaftSnapshot, EngineError>) {
        let mut generation = self.snapshot_gen.borrow_mut();
        generation.requested = false;
        match result {
            // Staleness is checked when raft-rs asks for it.
            Ok(snapshot) => generation.ready = Some(snapshot),
            Err(error) => {
                tracing::warn!(region_id = %self.region_id, %error, "snapshot generation failed; will retry");
            }
        }
    }

    /// Forgets a generated snapshot (nothing needs it now).
    pub fn drop_generated_snapshot(&self) {
        self.snapshot_gen.borrow_mut().ready = None;
    }

    /// True if a generated snapshot is held.
    pub fn has_generated_snapshot(&self) -> bool {
        self.snapshot_gen.borrow().ready.is_some()
    }
}

/// Snapshot generation state. raft-rs asks for snapshots through `&self`, so the state sits
/// in a `RefCell`; only the peer's own thread touches it.
#[derive(Debug, Default)]
struct SnapshotGen {
    /// raft-rs asked and no task was handed out yet.
    wanted: bool,
    /// A task is running.
    requested: bool,
    /// The last generated snapshot.
    ready: Option<RaftSnapshot>,
}

/// Builds a snapshot of a region's applied state from a consistent engine view: the region
/// and apply state records and every data pair of the region, read page by page. Runs off
/// the node loop (a driver task), never inside raft-rs.
pub fn build_snapshot<S: Snapshot + ?Sized>(
    region_id: RegionId,
    view: &S,
) -> Result<RaftSnapshot, EngineError> {
    let apply_state: RaftApplyState = read_message(view, &keys::apply_state_key(region_id))?
        .ok_or_else(|| EngineError::Corruption("no apply state to snapshot".into()))?;
    let region_state: RegionLocalState = read_message(view, &keys::region_state_key(region_id))?
        .ok_or_else(|| EngineError::Corruption("no region state to snapshot".into()))?;
    let region = region_state.region.unwrap_or_default();
    if region.peers.is_empty() {
        return Err(EngineError::Corruption(
            "snapshot of an uninitialized region".into(),
        ));
    }
    let mut data = SnapshotData {
        region: Some(region.clone()),
        kvs: Vec::new(),
    };
    for (cf, range) in region_data_ranges(&region) {
        scan_all(view, cf, &range, |key, value| {
            data.kvs.push(SnapshotKv {
                cf: cf_name(cf) as i32,
                key,
                value,
            });
        })?;
    }
    let mut snapshot = RaftSnapshot {
        data: data.encode_to_vec().into(),
        ..Default::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = apply_state.applied_index;
    meta.term = apply_state.applied_term;
    meta.set_conf_state(conf_state_of(&region));
    assert!(
        meta.index > 0,
        "a snapshot covers at least the initial log position"
    );
    Ok(snapshot)
}

/// Stages an apply state record.
pub fn write_apply_state(region: RegionId, state: &RaftApplyState, batch: &mut WriteBatch) {
    batch.put(
        Cf::Raft,
        &keys::apply_state_key(region),
        &state.encode_to_vec(),
    );
}

/// Stages deletion of every data key of `region`.
pub fn clear_region_data(region: &metapb::Region, batch: &mut WriteBatch) {
    for (cf, range) in region_data_ranges(region) {
        let end = if range.end.is_empty() {
            limits::data_key_end()
        } else {
            range.end
        };
        batch.delete_range(cf, &range.start, &end);
    }
}

/// Reads and decodes one prost message from the raft column family.
pub fn read_message<S: Snapshot + ?Sized, M: prost::Message + Default>(
    view: &S,
    key: &[u8],
) -> Result<Option<M>, EngineError> {
    let Some(bytes) = view.get(Cf::Raft, key)? else {
        return Ok(None);
    };
    M::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| EngineError::Corruption(format!("decoding {key:?}: {e}")))
}

/// Calls `visit` for every pair of `cf` in `range`, scanning in bounded pages.
pub fn scan_all<S: Snapshot + ?Sized>(
    view: &S,
    cf: Cf,
    range: &KeyRange,
    mut visit: impl FnMut(Vec<u8>, Vec<u8>),
) -> Result<(), EngineError> {
    let mut start = range.start.clone();
    loop {
        let page_range = KeyRange::new(start, range.end.clone());
        let page = view.scan(
            cf,
            &page_range,
            limits::SNAPSHOT_SCAN_PAGE_KEYS,
            Direction::Forward,
        )?;
        let full = page.len() == limits::SNAPSHOT_SCAN_PAGE_KEYS;
        let Some(last_key) = page.last().map(|(key, _)| key.clone()) else {
            return Ok(());
        };
        for (key, value) in page {
            visit(key, value);
        }
        if !full {
            return Ok(());
        }
        start = last_key;
        start.push(0);
    }
}

impl<E: KvEngine> raft::Storage for PeerStorage<E> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(self.raft_state.clone())
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let first = self.truncated().index + 1;
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let last = self.last_index_value();
        assert!(
            high <= last + 1,
            "entries [{low}, {high}) beyond last index {last}"
        );
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut size = 0u64;
        for entry in self
            .entries
            .range((low - first) as usize..(high - first) as usize)
        {
            size += u64::from(entry.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let truncated = self.truncated();
        if idx == truncated.index {
            return Ok(truncated.term);
        }
        if idx < truncated.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        let position = (idx - truncated.index - 1) as usize;
        match self.entries.get(position) {
            Some(entry) => {
                assert_eq!(entry.index, idx, "log cache is contiguous");
                Ok(entry.term)
            }
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated().index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_value())
    }

    /// A generated snapshot if one is fresh enough; otherwise asks the peer to generate
    /// one off the loop and answers "temporarily unavailable" (raft-rs retries later). Never
    /// an error raft-rs would treat as fatal.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<RaftSnapshot> {
        let floor = request_index.max(self.truncated().index);
        let mut generation = self.snapshot_gen.borrow_mut();
        if let Some(ready) = &generation.ready {
            let meta = ready.get_metadata();
            let conf = meta.get_conf_state();
            // A peer added after the snapshot was taken would refuse it (raft-rs ignores a
            // snapshot whose membership does not name it): such a snapshot is regenerated.
            let names_target = conf.voters.contains(&to) || conf.learners.contains(&to);
            if meta.index >= floor && names_target {
                return Ok(ready.clone());
            }
        }
        if !generation.requested {
            generation.wanted = true;
        }
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}

/// Stages a region state record.
pub fn write_region_state(
    region: &metapb::Region,
    state: ferrokv_proto::ferrokv_raftpb::PeerState,
    uninitialized_peer_id: u64,
    batch: &mut WriteBatch,
) {
    // Every region record carries the layout stamp (one small idempotent put), so a store
    // holding regions without it was written by an older FerroKV (`store::load`).
    batch.put(Cf::Raft, keys::DATA_LAYOUT_KEY, keys::DATA_LAYOUT_VERSION);
    let record = RegionLocalState {
        state: state as i32,
        region: Some(region.clone()),
        uninitialized_peer_id,
        destroyed_peer_id: 0,
    };
    batch.put(
        Cf::Raft,
        &keys::region_state_key(RegionId(region.id)),
        &record.encode_to_vec(),
    );
}

/// Stages the tombstone of a destroyed peer: its region as it last knew it and its id.
pub fn write_tombstone(region: &metapb::Region, peer_id: u64, batch: &mut WriteBatch) {
    let record = RegionLocalState {
        state: ferrokv_proto::ferrokv_raftpb::PeerState::Tombstone as i32,
        region: Some(region.clone()),
        uninitialized_peer_id: 0,
        destroyed_peer_id: peer_id,
    };
    batch.put(
        Cf::Raft,
        &keys::region_state_key(RegionId(region.id)),
        &record.encode_to_vec(),
    );
}

/// The hard state of a region starting at the initial log position (bootstrap, or a split
/// target with no earlier vote here).
pub fn initial_hard_state() -> HardState {
    HardState {
        term: INIT_LOG_TERM,
        commit: INIT_LOG_INDEX,
        ..Default::default()
    }
}

/// Stages everything a region starting at the initial log position needs (bootstrap or
/// split): apply state, region state and `hard_state`. A split target that already voted
/// here (as an uninitialized peer) passes the hard state it voted with: writing a fresh
/// one would forget the vote and let it vote twice in one term.
pub fn stage_initial_region(
    region: &metapb::Region,
    hard_state: HardState,
    batch: &mut WriteBatch,
) {
    assert!(
        hard_state.term >= INIT_LOG_TERM && hard_state.commit == INIT_LOG_INDEX,
        "a region at the initial log position needs term >= {INIT_LOG_TERM} and commit {INIT_LOG_INDEX}: {hard_state:?}"
    );
    let region_id = RegionId(region.id);
    write_apply_state(region_id, &initial_apply_state(), batch);
    write_region_state(
        region,
        ferrokv_proto::ferrokv_raftpb::PeerState::Normal,
        0,
        batch,
    );
    stage_log_op(
        &RaftLogOp::SetHardState {
            region: region_id,
            hard_state,
        },
        batch,
    );
}

/// The apply state of a region that starts at the initial log position.
pub fn initial_apply_state() -> RaftApplyState {
    RaftApplyState {
        applied_index: INIT_LOG_INDEX,
        truncated_state: Some(RaftTruncatedState {
            index: INIT_LOG_INDEX,
            term: INIT_LOG_TERM,
        }),
        applied_term: INIT_LOG_TERM,
    }
}

/// A hash (FNV-1a, 64-bit) of every data pair of `region` in `view`: equal applied state on
/// two replicas gives equal hashes.
pub fn region_data_hash<S: Snapshot + ?Sized>(
    view: &S,
    region: &metapb::Region,
) -> Result<u64, EngineError> {
    let mut hash = fnv::FNV_OFFSET;
    for (cf, range) in region_data_ranges(region) {
        fnv::fold(&mut hash, cf.name().as_bytes());
        scan_all(view, cf, &range, |key, value| {
            fnv::fold(&mut hash, &key);
            fnv::fold(&mut hash, &value);
        })?;
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use ferrokv_proto::metapb;
    use raft::Storage as _;

    use super::*;
    use crate::env::{MemEngine, Mutation, WriteOptions};

    fn region() -> metapb::Region {
        metapb::Region {
            id: 1,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![metapb::Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn storage() -> PeerStorage<MemEngine> {
        let engine = MemEngine::new();
        let mut batch = WriteBatch::new();
        stage_initial_region(&region(), initial_hard_state(), &mut batch);
        engine.write(&batch, WriteOptions::SYNC).unwrap();
        let state = LoadedState {
            region: region(),
            apply_state: initial_apply_state(),
            hard_state: HardState {
                term: INIT_LOG_TERM,
                commit: INIT_LOG_INDEX,
                ..Default::default()
            },
            entries: Vec::new(),
        };
        PeerStorage::new(engine, RegionId(1), state)
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|index| Entry {
                index,
                term,
                data: vec![index as u8; 8].into(),
                ..Default::default()
            })
            .collect()
    }

    fn range_deletes(batch: &WriteBatch) -> usize {
        batch
            .mutations()
            .iter()
            .filter(|m| matches!(m, Mutation::DeleteRange { .. }))
            .count()
    }

    /// Item 9: an append that overwrites nothing stages no range delete (RocksDB range
    /// tombstones on every append slow every later read of the log); one that replaces a
    /// longer conflicting tail does.
    #[test]
    fn appends_delete_a_tail_only_when_they_replace_one() {
        let mut storage = storage();
        let mut batch = WriteBatch::new();
        storage.append(entries(6..=10, 6), &mut batch);
        storage.append(entries(11..=12, 6), &mut batch);
        assert_eq!(range_deletes(&batch), 0);
        let mut replacing = WriteBatch::new();
        storage.append(entries(9..=9, 7), &mut replacing);
        assert_eq!(range_deletes(&replacing), 1);
        assert_eq!(storage.last_index().unwrap(), 9);
        assert_eq!(storage.term(9).unwrap(), 7);
        assert_eq!(storage.term(8).unwrap(), 6);
    }

    /// Item 8/9: raft-rs never waits for a region scan: the first request for a snapshot
    /// hands a generation task to the driver; once it is generated the snapshot is served
    /// from the cache, only to peers its membership names.
    #[test]
    fn snapshots_are_generated_off_raft_and_served_from_the_cache() {
        let mut storage = storage();
        let mut batch = WriteBatch::new();
        storage.append(entries(6..=8, 6), &mut batch);
        let unavailable = storage.snapshot(0, 1);
        assert!(matches!(
            unavailable,
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        let view = storage
            .take_snapshot_request()
            .expect("a task was requested");
        assert!(
            storage.take_snapshot_request().is_none(),
            "one task at a time"
        );
        storage.on_snapshot_generated(build_snapshot(RegionId(1), &view));
        let snapshot = storage.snapshot(0, 1).expect("served from the cache");
        assert_eq!(snapshot.get_metadata().index, INIT_LOG_INDEX);
        assert!(
            storage.snapshot(0, 2).is_err(),
            "peer 2 is not in its membership"
        );
        assert!(
            storage.snapshot(INIT_LOG_INDEX + 1, 1).is_err(),
            "too old for the request"
        );
    }

    /// A region's snapshot, hash and destruction cover its raw pairs (CF raw, its own range)
    /// and its transactional records (CF default, lock, write, its range under the
    /// transactional prefix), and nothing of a neighbour's; a snapshot pair outside the
    /// region is corruption, not data.
    #[test]
    fn a_region_owns_its_raw_and_transactional_data_and_nothing_else() {
        let engine = MemEngine::new();
        let mut left = region();
        left.end_key = b"m".to_vec();
        let mut batch = WriteBatch::new();
        stage_initial_region(&left, initial_hard_state(), &mut batch);
        let txn = |key: &[u8]| {
            crate::mvcc::keys::region_storage_range(&KeyRange::new(key.to_vec(), Vec::new())).start
        };
        batch.put(Cf::Raw, b"a", b"raw-left");
        batch.put(Cf::Raw, b"x", b"raw-right");
        for cf in [Cf::Default, Cf::Lock, Cf::Write] {
            batch.put(cf, &txn(b"b"), b"txn-left");
            batch.put(cf, &txn(b"q"), b"txn-right");
        }
        engine.write(&batch, WriteOptions::SYNC).unwrap();
        let view = engine.snapshot();
        let snapshot = build_snapshot(RegionId(1), &view).unwrap();
        let data = SnapshotData::decode(snapshot.data.as_ref()).unwrap();
        let mut held: Vec<(i32, Vec<u8>, Vec<u8>)> = data
            .kvs
            .iter()
            .map(|kv| (kv.cf, kv.key.clone(), kv.value.clone()))
            .collect();
        held.sort();
        let mut want = vec![(CfName::CfRaw as i32, b"a".to_vec(), b"raw-left".to_vec())];
        for cf in [CfName::CfDefault, CfName::CfLock, CfName::CfWrite] {
            want.push((cf as i32, txn(b"b"), b"txn-left".to_vec()));
        }
        want.sort();
        assert_eq!(held, want);

        let mut cleared = WriteBatch::new();
        clear_region_data(&left, &mut cleared);
        engine.write(&cleared, WriteOptions::SYNC).unwrap();
        let after = engine.snapshot();
        assert_eq!(after.get(Cf::Raw, b"a").unwrap(), None);
        assert_eq!(
            after.get(Cf::Raw, b"x").unwrap(),
            Some(b"raw-right".to_vec())
        );
        for cf in [Cf::Default, Cf::Lock, Cf::Write] {
            assert_eq!(after.get(cf, &txn(b"b")).unwrap(), None);
            assert!(
                after.get(cf, &txn(b"q")).unwrap().is_some(),
                "the neighbour keeps its data"
            );
        }

        let mut foreign = data.clone();
        foreign.kvs.push(SnapshotKv {
            cf: CfName::CfLock as i32,
            key: txn(b"q"),
            value: b"not-mine".to_vec(),
        });
        let mut forged = snapshot.clone();
        forged.data = foreign.encode_to_vec().into();
        let mut target = storage();
        let refused = target.apply_snapshot(&forged, &mut WriteBatch::new());
        assert!(
            matches!(refused, Err(EngineError::Corruption(_))),
            "{refused:?}"
        );
    }

    /// Entries apply one by one, in order; compaction needs the log's own term.
    #[test]
    fn applied_index_moves_one_entry_at_a_time_and_compaction_checks_terms() {
        let mut storage = storage();
        let mut batch = WriteBatch::new();
        storage.append(entries(6..=9, 6), &mut batch);
        let committed = HardState {
            term: 6,
            commit: 9,
            ..Default::default()
        };
        storage.set_hard_state(committed, &mut batch);
        for index in 6..=8 {
            storage.advance_applied(index, 6);
        }
        storage.compact_to(7, 6, &mut batch);
        assert_eq!(storage.first_index().unwrap(), 8);
        assert_eq!(storage.term(7).unwrap(), 6);
        let skipped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut copy = self::storage();
            copy.advance_applied(7, 6);
        }));
        assert!(skipped.is_err(), "an applied index cannot skip an entry");
        let wrong_term = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            storage.compact_to(8, 9, &mut WriteBatch::new());
        }));
        assert!(wrong_term.is_err(), "a truncated term must be the log's");
    }
}
