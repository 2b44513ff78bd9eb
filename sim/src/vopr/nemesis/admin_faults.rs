//! Operator faults under load: leader transfers, splits at keys the workloads use (raw
//! keys, and encoded transactional bounds),
//! membership changes (learners added and promoted, voters removed), and log compaction
//! (half of them naming the term a naive caller would: the leader's current term, which the
//! store must refuse when it is not the entry's).

use std::collections::BTreeMap;

use ferrokv_client::admin::{admin, region_routes};
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_proto::ferrokv_raftpb::{
    admin_request, AdminRequest, ChangePeerRequest, CompactLogCmd, RegionInfo, SplitCmd,
};
use ferrokv_proto::metapb::{self, PeerRole};
use raft::eraftpb::ConfChangeType;

use super::{Fault, Nemesis};
use ferrokv_core::types::codec::encode_bytes;

use crate::vopr::txn_workload;
use crate::vopr::workload::key_bytes;

/// The newest view of each region, from the stores that answer: its info as its leader
/// (or, without a known leader, the newest replica) reports it.
type View = BTreeMap<u64, RegionInfo>;

fn epoch(info: &RegionInfo) -> (u64, u64) {
    info.region
        .as_ref()
        .and_then(|r| r.region_epoch)
        .map_or((0, 0), |e| (e.version, e.conf_ver))
}

impl Nemesis {
    /// The newest region infos the stores report. A leader on a store the cluster does not
    /// know yet (one that joined and PD registered, before the nemesis saw it register) is
    /// dropped: faults act only on stores they can reach.
    async fn view(&self) -> View {
        let mut view = View::new();
        let known = self.cluster.store_ids();
        for store in self.cluster.stores() {
            let store_id = &store.id;
            let Some(infos) = region_routes(&store.addr).await else {
                continue;
            };
            for info in infos {
                let Some(region) = &info.region else { continue };
                let leads = info.leader.is_some_and(|l| l.store_id == *store_id);
                let better = view.get(&region.id).is_none_or(|known| {
                    epoch(&info) > epoch(known) || (epoch(&info) == epoch(known) && leads)
                });
                if better {
                    view.insert(region.id, info);
                }
            }
        }
        for info in view.values_mut() {
            if info.leader.is_some_and(|l| !known.contains(&l.store_id)) {
                info.leader = None;
            }
        }
        view
    }

    /// The store that leads a region picked at random among those with a leader (not
    /// always the first region: every region's leader gets cut off, moved and isolated).
    pub(super) async fn some_leader_store(&self, rng: &mut SeededRng) -> Option<u64> {
        let view = self.view().await;
        Self::pick_region(&view, rng)?
            .leader
            .map(|leader| leader.store_id)
    }

    fn pick_region(view: &View, rng: &mut SeededRng) -> Option<RegionInfo> {
        let led: Vec<&RegionInfo> = view.values().filter(|i| i.leader.is_some()).collect();
        led.get(rng.below(led.len().max(1) as u64) as usize)
            .map(|i| (*i).clone())
    }

    /// Sends an admin command to the leader's store; counts `fault` (if any) when it was
    /// accepted.
    async fn send_admin(
        &self,
        fault: Option<Fault>,
        leader_store: u64,
        request: AdminRequest,
        what: String,
    ) -> bool {
        let addr = self.cluster.store(leader_store).addr.clone();
        match admin(&addr, request).await {
            Ok(response) if response.error.is_empty() => {
                if let Some(fault) = fault {
                    self.count(fault);
                }
                self.note(what);
                true
            }
            Ok(response) => {
                self.noop(format!("{what}: {}", response.error));
                false
            }
            Err(error) => {
                self.noop(format!("{what}: {error}"));
                false
            }
        }
    }

    /// A led region, its leader's store and another voter to hand leadership to.
    pub(super) async fn pick_transfer(
        &self,
        rng: &mut SeededRng,
    ) -> Option<(u64, u64, metapb::Peer)> {
        let view = self.view().await;
        let info = Self::pick_region(&view, rng)?;
        let region = info.region.clone().expect("region");
        let leader = info.leader.expect("led");
        let voters: Vec<metapb::Peer> = region
            .peers
            .iter()
            .filter(|p| p.role != PeerRole::Learner as i32 && p.id != leader.id)
            .copied()
            .collect();
        let target = *voters.get(rng.below(voters.len().max(1) as u64) as usize)?;
        Some((region.id, leader.store_id, target))
    }

    /// The store that leads `region_id`, as the freshest report says.
    pub(super) async fn leader_store_of(&self, region_id: u64) -> Option<u64> {
        let view = self.view().await;
        view.get(&region_id)?.leader.map(|leader| leader.store_id)
    }

    /// Asks the leader of `region_id` to hand leadership to `target`; true if accepted
    /// (and then counted as `fault`, if given).
    pub(super) async fn transfer(
        &self,
        fault: Option<Fault>,
        region_id: u64,
        leader_store: u64,
        target: metapb::Peer,
    ) -> bool {
        let request = AdminRequest {
            region_id,
            cmd: Some(admin_request::Cmd::TransferLeaderToPeer(target.id)),
        };
        let what = format!(
            "transfer leadership of region {region_id} to store {}",
            target.store_id
        );
        self.send_admin(fault, leader_store, request, what).await
    }

    pub(super) async fn leader_transfer(&self, rng: &mut SeededRng) {
        let Some((region_id, leader_store, target)) = self.pick_transfer(rng).await else {
            return self.noop("leader transfer: no led region".into());
        };
        self.transfer(Some(Fault::LeaderTransfer), region_id, leader_store, target)
            .await;
    }

    /// Splits the region holding a workload key at that key: a raw key, or (one split in
    /// two) the encoded form of a transactional key, the bound a transactional region
    /// needs.
    pub(super) async fn split(&self, rng: &mut SeededRng) {
        let at = rng.range(1, self.keys);
        let key = if rng.ratio(1, 2) {
            key_bytes(at)
        } else {
            encode_bytes(&txn_workload::txn_bound(at))
        };
        self.split_at(key, Some(Fault::Split)).await;
    }

    /// Splits the region holding `key` at `key`; true if the leader took the command.
    pub async fn split_at(&self, key: Vec<u8>, fault: Option<Fault>) -> bool {
        let view = self.view().await;
        let holder = view.values().find(|info| {
            info.region
                .as_ref()
                .is_some_and(|r| r.start_key < key && (r.end_key.is_empty() || key < r.end_key))
                && info.leader.is_some()
        });
        let Some(info) = holder.cloned() else {
            self.noop(format!(
                "split at {:?}: no led region holds it",
                String::from_utf8_lossy(&key)
            ));
            return false;
        };
        let region = info.region.expect("region");
        let (new_region_id, new_peer_ids) = {
            let mut state = self.state.lock().expect("nemesis lock");
            state.next_region_id += 1;
            let ids: Vec<u64> = region
                .peers
                .iter()
                .map(|_| {
                    state.next_peer_id += 1;
                    state.next_peer_id
                })
                .collect();
            (state.next_region_id, ids)
        };
        let request = AdminRequest {
            region_id: region.id,
            cmd: Some(admin_request::Cmd::Split(SplitCmd {
                split_key: key.clone(),
                new_region_id,
                new_peer_ids,
            })),
        };
        let what = format!(
            "split region {} at {:?} into region {new_region_id}",
            region.id,
            String::from_utf8_lossy(&key)
        );
        let leader = info.leader.expect("led").store_id;
        self.send_admin(fault, leader, request, what).await
    }

    /// True once some region starts exactly at `key`.
    pub async fn region_starts_at(&self, key: &[u8]) -> bool {
        let view = self.view().await;
        view.values()
            .any(|info| info.region.as_ref().is_some_and(|r| r.start_key == key))
    }

    /// Adds a learner on a store without a peer, promotes a learner, or removes a
    /// non-leader voter (keeping at least three healthy voters).
    pub(super) async fn membership(&self, rng: &mut SeededRng) {
        let view = self.view().await;
        let Some(info) = Self::pick_region(&view, rng) else {
            return self.noop("membership: no led region".into());
        };
        let region = info.region.clone().expect("region");
        let leader = info.leader.expect("led");
        let corrupt = self.corrupt();
        let healthy_voters: Vec<metapb::Peer> = region
            .peers
            .iter()
            .filter(|p| p.role != PeerRole::Learner as i32 && !corrupt.contains(&p.store_id))
            .copied()
            .collect();
        let learner = region
            .peers
            .iter()
            .find(|p| p.role == PeerRole::Learner as i32)
            .copied();
        // Not the store a StoreDownLong holds down: learners the nemesis kept adding there
        // would keep PD from ever emptying it (seed 6 --pd, 5 minutes).
        let down_long = self.state.lock().expect("nemesis lock").down_long;
        let spare: Vec<u64> = self
            .healthy_stores()
            .into_iter()
            .filter(|s| region.peers.iter().all(|p| p.store_id != *s) && Some(*s) != down_long)
            .collect();
        // With PD, no promotions: PD's replica checker may remove a learner the nemesis added
        // between this view and the command (admin commands carry no epoch), and promoting
        // the removed peer would re-add a peer id whose replica was destroyed (seed 4 --pd,
        // before this rule: a voter that never comes back). Fresh learners are always safe.
        let promote = self.cluster.pd.is_none();
        let learner = learner.filter(|_| promote);
        let (change_type, peer) = if let Some(learner) = learner.filter(|_| rng.ratio(2, 3)) {
            (ConfChangeType::AddNode, learner)
        } else if !spare.is_empty() && (healthy_voters.len() <= 3 || rng.ratio(1, 2)) {
            let store_id = spare[rng.below(spare.len() as u64) as usize];
            let id = {
                let mut state = self.state.lock().expect("nemesis lock");
                state.next_peer_id += 1;
                state.next_peer_id
            };
            let peer = metapb::Peer {
                id,
                store_id,
                role: PeerRole::Learner as i32,
                ..Default::default()
            };
            (ConfChangeType::AddLearnerNode, peer)
        } else if healthy_voters.len() > 3 {
            let removable: Vec<metapb::Peer> = healthy_voters
                .iter()
                .copied()
                .filter(|p| p.id != leader.id)
                .collect();
            let peer = removable[rng.below(removable.len() as u64) as usize];
            (ConfChangeType::RemoveNode, peer)
        } else {
            return self.noop(format!(
                "membership of region {}: nothing safe to change",
                region.id
            ));
        };
        let request = AdminRequest {
            region_id: region.id,
            cmd: Some(admin_request::Cmd::ChangePeer(ChangePeerRequest {
                change_type: change_type as i32,
                peer: Some(peer),
            })),
        };
        let what = format!(
            "region {}: {change_type:?} peer {} on store {}",
            region.id, peer.id, peer.store_id
        );
        self.send_admin(Some(Fault::Membership), leader.store_id, request, what)
            .await;
    }

    /// Compacts a region's log: half the time naming the entry's term (applied index and
    /// term as reported), half the time the leader's current term at an earlier index.
    pub(super) async fn compact_log(&self, rng: &mut SeededRng) {
        let view = self.view().await;
        let Some(info) = Self::pick_region(&view, rng) else {
            return self.noop("compact log: no led region".into());
        };
        let leader = info.leader.expect("led");
        let compact = if rng.ratio(1, 2) {
            CompactLogCmd {
                compact_index: info.applied_index,
                compact_term: info.applied_term,
            }
        } else {
            let gap = info
                .applied_index
                .saturating_sub(info.truncated_index)
                .max(1);
            CompactLogCmd {
                compact_index: info.truncated_index + rng.range(1, gap + 1),
                compact_term: info.term,
            }
        };
        let region_id = info.region.as_ref().expect("region").id;
        let what = format!(
            "compact region {region_id} log to index {} naming term {}",
            compact.compact_index, compact.compact_term
        );
        let request = AdminRequest {
            region_id,
            cmd: Some(admin_request::Cmd::CompactLog(compact)),
        };
        self.send_admin(Some(Fault::CompactLog), leader.store_id, request, what)
            .await;
    }
}
