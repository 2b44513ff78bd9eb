//! Restart recovery and static bootstrap.
//!
//! On start, a store reads every region state in the `raft` column family and rebuilds its
//! peers with the persisted hard state, log and apply state: the same term, vote, commit and
//! applied index as before the stop. Applied index and data were written atomically, so no
//! entry is applied twice; the synced log holds every entry not yet applied.

use ferrokv_proto::ferrokv_raftpb::{PeerState, RaftApplyState, RegionLocalState};
use ferrokv_proto::metapb;
use prost::Message as _;
use raft::eraftpb::HardState;

use crate::env::{
    Cf, EngineError, EngineRaftLog, KvEngine, RaftLogStore, Snapshot, WriteBatch, WriteOptions,
};
use crate::raft::keys;
use crate::raft::storage::{
    check_peer_ids, initial_hard_state, read_message, scan_all, stage_initial_region, LoadedState,
};
use crate::types::{KeyRange, LogIndex, RegionId};

/// Why a store could not start from its data.
#[derive(Debug, thiserror::Error)]
pub enum StoreLoadError {
    /// Storage failed or returned corrupt data.
    #[error("loading store state: {0}")]
    Engine(#[from] EngineError),
    /// The persisted state contradicts itself.
    #[error("inconsistent state for region {region_id}: {detail}")]
    Inconsistent { region_id: u64, detail: String },
    /// Raft refused the persisted state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The Raft configuration is invalid.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The data directory was written in another data layout (an older FerroKV kept raw
    /// pairs in CF default): its data would be misread, so the store does not start.
    #[error("the data directory was written by another FerroKV version (data layout record {version:?}, this version writes \"2\"; none means an older version): move it away or remove it")]
    OtherLayout { version: Vec<u8> },
}

/// Refuses a data directory of another layout: one with regions but no layout record (an
/// older FerroKV kept raw pairs in CF default), or a record of another version. Every
/// region record is written with the stamp (`raft::storage::write_region_state`), so an
/// empty store needs none.
pub(super) fn check_layout<E: KvEngine>(engine: &E) -> Result<(), StoreLoadError> {
    let view = engine.snapshot();
    if let Some(found) = view.get(Cf::Raft, keys::DATA_LAYOUT_KEY)? {
        if found == keys::DATA_LAYOUT_VERSION {
            return Ok(());
        }
        return Err(StoreLoadError::OtherLayout { version: found });
    }
    let (start, end) = keys::region_state_range();
    let regions = view.scan(
        Cf::Raft,
        &KeyRange::new(start, end),
        1,
        crate::env::Direction::Forward,
    )?;
    match regions.into_iter().next() {
        Some(_) => Err(StoreLoadError::OtherLayout {
            version: Vec::new(),
        }),
        None => Ok(()),
    }
}

/// One region found on disk.
pub(super) enum Found {
    Live {
        state: LoadedState,
        peer: metapb::Peer,
    },
    Uninitialized {
        region: metapb::Region,
        peer: metapb::Peer,
        hard_state: HardState,
    },
    /// A destroyed peer: the region as it knew it, and its id.
    Tombstone(metapb::Region, u64),
}

/// Reads every region state record.
pub(super) fn scan_regions<E: KvEngine>(
    engine: &E,
    store_id: u64,
) -> Result<Vec<Found>, StoreLoadError> {
    let view = engine.snapshot();
    let (start, end) = keys::region_state_range();
    let mut states = Vec::new();
    scan_all(&view, Cf::Raft, &KeyRange::new(start, end), |key, value| {
        states.push((key, value))
    })?;
    let log = EngineRaftLog::new(engine.clone());
    let mut found = Vec::with_capacity(states.len());
    for (key, value) in states {
        let region_id = keys::region_of_state_key(&key)
            .ok_or_else(|| EngineError::Corruption(format!("bad region state key {key:?}")))?;
        let state = RegionLocalState::decode(value.as_slice())
            .map_err(|e| EngineError::Corruption(format!("region {region_id} state: {e}")))?;
        found.push(load_region(&view, &log, region_id, state, store_id)?);
    }
    Ok(found)
}

fn inconsistent(region_id: RegionId, detail: &str) -> StoreLoadError {
    StoreLoadError::Inconsistent {
        region_id: region_id.get(),
        detail: detail.to_string(),
    }
}

fn load_region<E: KvEngine, S: Snapshot>(
    view: &S,
    log: &EngineRaftLog<E>,
    region_id: RegionId,
    state: RegionLocalState,
    store_id: u64,
) -> Result<Found, StoreLoadError> {
    let region = state
        .region
        .clone()
        .ok_or_else(|| inconsistent(region_id, "no region"))?;
    if region.id != region_id.get() {
        let detail = format!("the state under this id names region {}", region.id);
        return Err(inconsistent(region_id, &detail));
    }
    if state.state == PeerState::Tombstone as i32 {
        let own = region
            .peers
            .iter()
            .find(|p| p.store_id == store_id)
            .map_or(0, |p| p.id);
        return Ok(Found::Tombstone(region, state.destroyed_peer_id.max(own)));
    }
    let hard_state = log.hard_state(region_id)?.unwrap_or_default();
    if region.peers.is_empty() {
        if hard_state.commit != 0 {
            // Without a log nothing can be committed: raft-rs would abort on this state.
            let detail = format!(
                "an uninitialized peer with commit index {}",
                hard_state.commit
            );
            return Err(inconsistent(region_id, &detail));
        }
        let peer = metapb::Peer {
            id: state.uninitialized_peer_id,
            store_id,
            ..Default::default()
        };
        return Ok(Found::Uninitialized {
            region,
            peer,
            hard_state,
        });
    }
    let peer = region
        .peers
        .iter()
        .find(|peer| peer.store_id == store_id)
        .cloned()
        .ok_or_else(|| inconsistent(region_id, "this store holds no peer of the region"))?;
    let apply_state: RaftApplyState = read_message(view, &keys::apply_state_key(region_id))?
        .ok_or_else(|| inconsistent(region_id, "no apply state"))?;
    let entries = load_entries(log, region_id, &apply_state)?;
    check_live_state(region_id, &region, &apply_state, &hard_state, &entries)?;
    assert_eq!(peer.store_id, store_id);
    let loaded = LoadedState {
        region,
        apply_state,
        hard_state,
        entries,
    };
    Ok(Found::Live {
        state: loaded,
        peer,
    })
}

/// Regions a store loads must not overlap (a damaged disk could say they do).
pub(super) fn check_disjoint<'a>(
    regions: impl Iterator<Item = &'a metapb::Region>,
) -> Result<(), StoreLoadError> {
    let mut ranges: Vec<(&[u8], &[u8], u64)> = regions
        .map(|r| (r.start_key.as_slice(), r.end_key.as_slice(), r.id))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, left), (start, _, right)) = (pair[0], pair[1]);
        if end.is_empty() || end > start {
            return Err(StoreLoadError::Inconsistent {
                region_id: right,
                detail: format!("its range overlaps region {left}'s"),
            });
        }
    }
    Ok(())
}

/// What a live region's records must agree on before Raft sees them: a damaged disk is a
/// typed error here, never an abort inside raft-rs or a broken store invariant later.
fn check_live_state(
    region_id: RegionId,
    region: &metapb::Region,
    apply_state: &RaftApplyState,
    hard_state: &HardState,
    entries: &[raft::eraftpb::Entry],
) -> Result<(), StoreLoadError> {
    let fail = |detail: String| Err(inconsistent(region_id, &detail));
    if !region.end_key.is_empty() && region.start_key >= region.end_key {
        return fail("the region's range is empty or inverted".into());
    }
    check_peer_ids(region).map_err(|detail| inconsistent(region_id, &detail))?;
    let truncated = apply_state.truncated_state.unwrap_or_default().index;
    let applied = apply_state.applied_index;
    if truncated > applied {
        return fail(format!(
            "log truncated at {truncated}, past the applied index {applied}"
        ));
    }
    if hard_state.commit < applied {
        return fail(format!(
            "applied index {applied} above the durable commit index {}",
            hard_state.commit
        ));
    }
    if entries
        .first()
        .is_some_and(|first| first.index != truncated + 1)
        || entries
            .windows(2)
            .any(|pair| pair[1].index != pair[0].index + 1)
    {
        return fail("the loaded log has a gap".into());
    }
    let truncated_term = apply_state.truncated_state.unwrap_or_default().term;
    if truncated > 0 && truncated_term == 0 {
        return fail(format!(
            "log truncated at {truncated} without that entry's term"
        ));
    }
    if applied == truncated && apply_state.applied_term != truncated_term {
        return fail(format!(
            "applied term {} differs from the truncated term {truncated_term} at index {applied}",
            apply_state.applied_term
        ));
    }
    let mut term = truncated_term;
    for entry in entries {
        if entry.term == 0 || entry.term < term {
            return fail(format!("log terms decrease at index {}", entry.index));
        }
        if entry.index == applied && entry.term != apply_state.applied_term {
            return fail(format!(
                "applied term {} differs from the log's term {} at index {applied}",
                apply_state.applied_term, entry.term
            ));
        }
        term = entry.term;
    }
    if term > hard_state.term {
        return fail(format!(
            "a log term {term} above the current term {}",
            hard_state.term
        ));
    }
    let last = entries.last().map_or(truncated, |entry| entry.index);
    if hard_state.commit > last {
        return fail(format!(
            "durable commit index {} beyond the last log index {last}",
            hard_state.commit
        ));
    }
    Ok(())
}

fn load_entries<E: KvEngine>(
    log: &EngineRaftLog<E>,
    region_id: RegionId,
    apply_state: &RaftApplyState,
) -> Result<Vec<raft::eraftpb::Entry>, StoreLoadError> {
    let truncated = apply_state.truncated_state.unwrap_or_default().index;
    let Some((_, last)) = log.index_bounds(region_id)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let mut next = truncated + 1;
    while next <= last.get() {
        let page = log.entries(
            region_id,
            LogIndex(next),
            LogIndex(last.get() + 1),
            u64::MAX,
        )?;
        let Some(page_last) = page.last() else {
            return Err(inconsistent(
                region_id,
                "hole in the raft log after the truncated index",
            ));
        };
        next = page_last.index + 1;
        entries.extend(page);
    }
    Ok(entries)
}

/// Writes the initial state of `region` on this store if the store has none for it: the
/// same on every store listed in the region (a static bootstrap, used until PD exists and by
/// tests). Returns true if it wrote.
pub fn bootstrap_region<E: KvEngine>(
    engine: &E,
    region: &metapb::Region,
) -> Result<bool, EngineError> {
    let region_id = RegionId(region.id);
    if engine
        .get(Cf::Raft, &keys::region_state_key(region_id))?
        .is_some()
    {
        return Ok(false);
    }
    assert!(
        !region.peers.is_empty(),
        "a bootstrapped region needs peers"
    );
    let mut batch = WriteBatch::new();
    stage_initial_region(region, initial_hard_state(), &mut batch);
    engine.write(&batch, WriteOptions::SYNC)?;
    Ok(true)
}
