//! Applying committed commands: pure functions from (region, command, current data) to staged
//! writes and an outcome. The caller writes the staged batch together with the apply state,
//! so data and applied index are durable atomically.

use std::collections::BTreeMap;

use ferrokv_proto::ferrokv_raftpb::{write_op, CfName, RaftCmd, SplitCmd, WriteOp};
use ferrokv_proto::metapb::{self, PeerRole};
use raft::eraftpb::{ConfChange, ConfChangeType};

use super::storage::{cf_of, region_range};
use crate::env::{Cf, EngineError, Snapshot, WriteBatch};
use crate::planted::{self, PlantedBug};
use crate::raw::value;
use crate::store::{RegionError, WriteOutcome};
use crate::types::{KeyRange, RegionEpoch};

/// Writes staged by earlier commands of the same apply round, so later commands (a CAS after
/// a put) read their own round's effects before they reach the engine.
/// `(sequence, value)`; `None` is a deletion.
type Versioned = (u64, Option<Vec<u8>>);

#[derive(Default)]
struct Overlay {
    seq: u64,
    points: BTreeMap<(Cf, Vec<u8>), Versioned>,
    ranges: Vec<(u64, Cf, KeyRange)>,
}

/// Data access while applying one round of committed entries.
pub struct ApplyContext<'a, S: Snapshot> {
    view: &'a S,
    overlay: Overlay,
    /// Where applied writes are staged.
    pub batch: &'a mut WriteBatch,
}

impl<'a, S: Snapshot> ApplyContext<'a, S> {
    /// A context reading `view` (the engine before this round) and staging into `batch`.
    pub fn new(view: &'a S, batch: &'a mut WriteBatch) -> ApplyContext<'a, S> {
        ApplyContext {
            view,
            overlay: Overlay::default(),
            batch,
        }
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let point = self.overlay.points.get(&(cf, key.to_vec()));
        let range_seq = self
            .overlay
            .ranges
            .iter()
            .filter(|(_, range_cf, range)| *range_cf == cf && range.contains(key))
            .map(|(seq, _, _)| *seq)
            .max();
        match (point, range_seq) {
            (Some((seq, value)), range) if range.is_none_or(|r| *seq > r) => Ok(value.clone()),
            (_, Some(_)) => Ok(None),
            (_, None) => self.view.get(cf, key),
        }
    }

    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.overlay.seq += 1;
        let entry = (self.overlay.seq, Some(value.to_vec()));
        self.overlay.points.insert((cf, key.to_vec()), entry);
        self.batch.put(cf, key, value);
    }

    fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.overlay.seq += 1;
        self.overlay
            .points
            .insert((cf, key.to_vec()), (self.overlay.seq, None));
        self.batch.delete(cf, key);
    }

    fn delete_range(&mut self, cf: Cf, start: &[u8], end: &[u8]) {
        self.overlay.seq += 1;
        let range = KeyRange::new(start.to_vec(), end.to_vec());
        self.overlay.ranges.push((self.overlay.seq, cf, range));
        self.batch.delete_range(cf, start, end);
    }
}

fn epoch_not_match(message: String, region: &metapb::Region) -> RegionError {
    RegionError::EpochNotMatch {
        message,
        current: vec![region.clone()],
    }
}

/// The keys a write touches, as ranges.
pub fn write_op_ranges(op: &WriteOp) -> Vec<KeyRange> {
    let point = |key: &[u8]| {
        let mut end = key.to_vec();
        end.push(0);
        KeyRange::new(key.to_vec(), end)
    };
    match &op.op {
        Some(write_op::Op::Put(put)) => vec![point(&put.key)],
        Some(write_op::Op::Delete(delete)) => vec![point(&delete.key)],
        Some(write_op::Op::DeleteRange(range)) => {
            vec![KeyRange::new(
                range.start_key.clone(),
                range.end_key.clone(),
            )]
        }
        Some(write_op::Op::Cas(cas)) => vec![point(&cas.key)],
        None => Vec::new(),
    }
}

/// Checks that every range lies inside `region`.
pub fn check_ranges_in_region(
    ranges: &[KeyRange],
    region: &metapb::Region,
) -> Result<(), RegionError> {
    let owned = region_range(region);
    for range in ranges {
        let end_inside = owned.end.is_empty() || (!range.end.is_empty() && range.end <= owned.end);
        if !owned.contains(&range.start) || !end_inside {
            let key = range.start.clone();
            return Err(RegionError::KeyNotInRegion {
                key,
                region: Box::new(region.clone()),
            });
        }
    }
    Ok(())
}

fn cf_from_wire(raw: i32) -> Cf {
    cf_of(CfName::try_from(raw).unwrap_or(CfName::CfDefault))
}

/// Applies a normal command's writes; all or nothing.
pub fn apply_writes<S: Snapshot>(
    ctx: &mut ApplyContext<'_, S>,
    region: &metapb::Region,
    cmd: &RaftCmd,
) -> Result<WriteOutcome, RegionError> {
    if !planted::active(PlantedBug::ApplyIgnoresEpoch) {
        let proposed = RegionEpoch::from(cmd.region_epoch);
        if proposed.version < RegionEpoch::from(region.region_epoch).version {
            return Err(epoch_not_match(
                format!("proposed under {proposed:?}"),
                region,
            ));
        }
        let ranges: Vec<KeyRange> = cmd.writes.iter().flat_map(write_op_ranges).collect();
        check_ranges_in_region(&ranges, region)?;
    }
    let mut outcome = WriteOutcome::default();
    for op in &cmd.writes {
        match &op.op {
            Some(write_op::Op::Put(put)) => ctx.put(cf_from_wire(put.cf), &put.key, &put.value),
            Some(write_op::Op::Delete(delete)) => ctx.delete(cf_from_wire(delete.cf), &delete.key),
            Some(write_op::Op::DeleteRange(range)) => {
                let end = if range.end_key.is_empty() {
                    crate::limits::data_key_end()
                } else {
                    range.end_key.clone()
                };
                ctx.delete_range(cf_from_wire(range.cf), &range.start_key, &end);
            }
            Some(write_op::Op::Cas(cas)) => {
                let stored = ctx.get(Cf::Default, &cas.key)?;
                let current = value::live_value(stored.as_deref(), cas.now_ms)?;
                let matches = match &current {
                    None => cas.previous_not_exist,
                    Some(found) => !cas.previous_not_exist && *found == cas.previous_value,
                };
                if matches {
                    ctx.put(Cf::Default, &cas.key, &cas.value);
                }
                outcome.cas = Some((matches, current));
            }
            None => return Err(RegionError::Invalid("empty write op".into())),
        }
    }
    Ok(outcome)
}

/// The two regions a split produces: `(left, right)`; left keeps the region id.
pub fn split_region(
    region: &metapb::Region,
    split: &SplitCmd,
) -> Result<(metapb::Region, metapb::Region), RegionError> {
    let range = region_range(region);
    if split.split_key.is_empty()
        || split.split_key == region.start_key
        || !range.contains(&split.split_key)
    {
        return Err(RegionError::Invalid(format!(
            "split key not strictly inside region {}",
            region.id
        )));
    }
    if split.new_peer_ids.len() != region.peers.len() {
        return Err(RegionError::Invalid(
            "one new peer id per existing peer is needed".into(),
        ));
    }
    let mut ids = split.new_peer_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let reused = region.peers.iter().any(|peer| ids.contains(&peer.id));
    if ids.len() != split.new_peer_ids.len() || ids.contains(&0) || reused {
        return Err(RegionError::Invalid(
            "split needs distinct, unused, non-zero peer ids".into(),
        ));
    }
    if split.new_region_id == 0 || split.new_region_id == region.id {
        return Err(RegionError::Invalid(
            "split needs a new, non-zero region id".into(),
        ));
    }
    let mut epoch = RegionEpoch::from(region.region_epoch);
    epoch.version += 1;
    let mut left = region.clone();
    left.end_key = split.split_key.clone();
    left.region_epoch = Some(epoch.into());
    let mut right = region.clone();
    right.id = split.new_region_id;
    right.start_key = split.split_key.clone();
    right.region_epoch = Some(epoch.into());
    for (peer, new_id) in right.peers.iter_mut().zip(&split.new_peer_ids) {
        peer.id = *new_id;
    }
    Ok((left, right))
}

/// The region after a (single-step) membership change.
pub fn change_peer(region: &metapb::Region, change: &ConfChange, store_id: u64) -> metapb::Region {
    let mut changed = region.clone();
    let peer_id = change.node_id;
    let existing = changed.peers.iter().position(|peer| peer.id == peer_id);
    match change.get_change_type() {
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
            let role = if change.get_change_type() == ConfChangeType::AddNode {
                PeerRole::Voter
            } else {
                PeerRole::Learner
            };
            let peer = metapb::Peer {
                id: peer_id,
                store_id,
                role: role as i32,
                ..Default::default()
            };
            match existing {
                Some(position) => changed.peers[position] = peer,
                None => changed.peers.push(peer),
            }
        }
        ConfChangeType::RemoveNode => {
            if let Some(position) = existing {
                changed.peers.remove(position);
            }
        }
    }
    let mut epoch = RegionEpoch::from(region.region_epoch);
    epoch.conf_ver += 1;
    changed.region_epoch = Some(epoch.into());
    changed
}
