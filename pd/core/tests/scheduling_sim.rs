//! End-to-end scheduling scenarios: the PD leader core against a model of stores that obey
//! its heartbeat instructions the way a store's Raft group would.
//!
//! Each round every live store heartbeats, every region's leader heartbeats, the PD
//! leader's proposals commit at once, and each instruction is executed by the model if its
//! epoch still matches (a store's epoch check): conf changes bump `conf_ver` (a new peer is
//! pending for one round while it "receives its snapshot"), a split bumps `version` and
//! takes ids from `AskBatchSplit`, a transfer moves leadership. Scenarios assert the cluster
//! state the schedulers must reach, and the operator counters.

use std::collections::BTreeMap;

use ferrokv_core::env::SeededRng;
use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_pd_core::coordinator::Dispatch;
use ferrokv_pd_core::meta;
use ferrokv_pd_core::operator::OperatorKind;
use ferrokv_pd_core::{Config, PdCommand, PdLeader, PdOutcome, PdState, Proposals};
use ferrokv_proto::eraftpb::ConfChangeType;
use ferrokv_proto::metapb::{self, PeerRole};
use ferrokv_proto::pdpb;

struct SimRegion {
    region: metapb::Region,
    leader: u64,
    pending: Vec<metapb::Peer>,
    size_bytes: u64,
}

struct Sim {
    state: PdState,
    leader: PdLeader,
    regions: BTreeMap<u64, SimRegion>,
    down_stores: Vec<u64>,
    now_ms: u64,
    rng: SeededRng,
}

fn config() -> Config {
    Config {
        max_store_down_time_ms: 10_000,
        balance_interval_ms: 1_000,
        region_split_size_bytes: 1_000,
        ..Config::default()
    }
}

impl Sim {
    /// A bootstrapped cluster with `stores` stores and the first region on store 1.
    fn new(stores: u64) -> Sim {
        let mut state = PdState::new();
        let first = metapb::Region {
            id: 2,
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![meta::peer(3, 1, PeerRole::Voter)],
            ..Default::default()
        };
        let store = |id: u64| metapb::Store {
            id,
            address: format!("s{id}"),
            ..Default::default()
        };
        state.apply(&PdCommand::Bootstrap {
            cluster_id: 9,
            store: store(1),
            region: first.clone(),
        });
        for id in 2..=stores {
            assert!(matches!(
                state.apply(&PdCommand::PutStore { store: store(id) }),
                PdOutcome::StorePut { .. }
            ));
        }
        let mut proposals = Proposals::new();
        let leader = PdLeader::start(&state, config(), 0, &mut proposals);
        let mut sim = Sim {
            state,
            leader,
            regions: BTreeMap::new(),
            down_stores: vec![],
            now_ms: 0,
            rng: SeededRng::new(4),
        };
        sim.commit(proposals);
        sim.regions.insert(
            2,
            SimRegion {
                region: first,
                leader: 3,
                pending: vec![],
                size_bytes: 0,
            },
        );
        sim
    }

    fn commit(&mut self, mut proposals: Proposals) {
        for command in proposals.drain() {
            let outcome = self.state.apply(&command);
            self.leader.on_applied(&self.state, &command, &outcome);
        }
    }

    /// One round of heartbeats and instructions.
    fn round(&mut self) {
        self.now_ms += 1_000;
        let stores: Vec<u64> = self.state.stores().map(|store| store.id).collect();
        for id in stores
            .into_iter()
            .filter(|id| !self.down_stores.contains(id))
        {
            let stats = pdpb::StoreStats {
                store_id: id,
                ..Default::default()
            };
            self.leader
                .on_store_heartbeat(&self.state, &stats, self.now_ms)
                .unwrap();
        }
        let ids: Vec<u64> = self.regions.keys().copied().collect();
        for id in ids {
            self.elect_if_leader_down(id);
            let response = self.heartbeat(id);
            if let Some(response) = response {
                self.execute(&response);
            }
        }
        let mut proposals = Proposals::new();
        let dispatches = self
            .leader
            .tick(&self.state, self.now_ms, &mut self.rng, &mut proposals);
        self.commit(proposals);
        for Dispatch { response, .. } in dispatches {
            self.execute(&response);
        }
    }

    fn elect_if_leader_down(&mut self, id: u64) {
        let down = self.down_stores.clone();
        let sim = self.regions.get_mut(&id).unwrap();
        let leader_store = meta::peer_by_id(&sim.region, sim.leader).unwrap().store_id;
        if down.contains(&leader_store) {
            let next = sim
                .region
                .peers
                .iter()
                .find(|peer| meta::is_voter(peer) && !down.contains(&peer.store_id));
            sim.leader = next.expect("a live voter").id;
        }
    }

    fn heartbeat(&mut self, id: u64) -> Option<pdpb::RegionHeartbeatResponse> {
        let sim = self.regions.get_mut(&id).unwrap();
        let request = pdpb::RegionHeartbeatRequest {
            region: Some(sim.region.clone()),
            leader: Some(*meta::peer_by_id(&sim.region, sim.leader).unwrap()),
            pending_peers: std::mem::take(&mut sim.pending),
            approximate_size: sim.size_bytes,
            term: 1,
            ..Default::default()
        };
        let mut proposals = Proposals::new();
        let reply = self
            .leader
            .on_region_heartbeat(
                &self.state,
                &request,
                self.now_ms,
                &mut self.rng,
                &mut proposals,
            )
            .expect("valid heartbeat");
        self.commit(proposals);
        reply.response
    }

    fn execute(&mut self, response: &pdpb::RegionHeartbeatResponse) {
        let Some(sim) = self.regions.get_mut(&response.region_id) else {
            return;
        };
        if response.region_epoch != sim.region.region_epoch {
            return; // the store's epoch check rejects a command built on another view
        }
        if let Some(change) = &response.change_peer {
            apply_change(sim, change);
        } else if let Some(transfer) = &response.transfer_leader {
            sim.leader = transfer.peer.unwrap().id;
        } else if response.split_region.is_some() {
            self.split(response.region_id);
        }
    }

    fn split(&mut self, id: u64) {
        let sim = &self.regions[&id];
        let low = u16::from(sim.region.start_key.first().copied().unwrap_or(0));
        let high = sim
            .region
            .end_key
            .first()
            .map_or(256, |byte| u16::from(*byte));
        assert!(high - low >= 2, "model key space exhausted");
        let key = vec![((low + high) / 2) as u8];
        let request = pdpb::AskBatchSplitRequest {
            region: Some(sim.region.clone()),
            split_count: 1,
            ..Default::default()
        };
        let mut proposals = Proposals::new();
        let ids = self
            .leader
            .ask_batch_split(&self.state, &request, &mut proposals)
            .expect("split ids");
        self.commit(proposals);
        let sim = self.regions.get_mut(&id).unwrap();
        let mut right = sim.region.clone();
        right.id = ids[0].new_region_id;
        right.start_key = key.clone();
        for (peer, new_id) in right.peers.iter_mut().zip(&ids[0].new_peer_ids) {
            peer.id = *new_id;
        }
        sim.region.end_key = key;
        sim.region.region_epoch.as_mut().unwrap().version += 1;
        right.region_epoch = sim.region.region_epoch;
        sim.size_bytes = 0;
        let leader_store = meta::peer_by_id(&sim.region, sim.leader).unwrap().store_id;
        let right_leader = meta::peer_on_store(&right, StoreId(leader_store))
            .unwrap()
            .id;
        self.regions.insert(
            right.id,
            SimRegion {
                region: right,
                leader: right_leader,
                pending: vec![],
                size_bytes: 0,
            },
        );
    }

    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.round();
        }
    }

    fn voters_on(&self, region: &metapb::Region) -> Vec<u64> {
        let mut stores: Vec<u64> = region
            .peers
            .iter()
            .filter(|peer| meta::is_voter(peer))
            .map(|peer| peer.store_id)
            .collect();
        stores.sort();
        stores
    }
}

fn apply_change(sim: &mut SimRegion, change: &pdpb::ChangePeer) {
    let peer = change.peer.unwrap();
    let existing = sim.region.peers.iter().position(|p| p.id == peer.id);
    match ConfChangeType::try_from(change.change_type).unwrap() {
        ConfChangeType::AddLearnerNode | ConfChangeType::AddNode => match existing {
            Some(position) => sim.region.peers[position].role = peer.role,
            None => {
                sim.region.peers.push(peer);
                sim.pending.push(peer);
            }
        },
        ConfChangeType::RemoveNode => {
            assert_ne!(
                peer.id, sim.leader,
                "a leader is never told to remove itself"
            );
            sim.region
                .peers
                .remove(existing.expect("removing a member"));
        }
    }
    sim.region.region_epoch.as_mut().unwrap().conf_ver += 1;
}

#[test]
fn a_single_replica_grows_to_three_voters() {
    let mut sim = Sim::new(4);
    sim.run(12);
    let region = &sim.regions[&2].region;
    assert_eq!(sim.voters_on(region).len(), 3);
    assert_eq!(region.peers.len(), 3, "no learner left behind");
    assert_eq!(sim.state.regions().get(RegionId(2)), Some(region));
    let counters = sim
        .leader
        .coordinator()
        .operators()
        .counters(OperatorKind::Replica);
    assert_eq!(
        (counters.created, counters.finished, counters.failed),
        (2, 2, 0)
    );
}

#[test]
fn replicas_on_a_down_store_are_rebuilt_elsewhere() {
    let mut sim = Sim::new(4);
    sim.run(12);
    let victim = sim.voters_on(&sim.regions[&2].region)[0];
    sim.down_stores.push(victim);
    sim.run(25);
    let region = &sim.regions[&2].region;
    let voters = sim.voters_on(region);
    assert_eq!(voters.len(), 3);
    assert!(
        !voters.contains(&victim),
        "store {victim} still holds a voter: {voters:?}"
    );
    assert_eq!(region.peers.len(), 3);
    assert!(sim.state.regions().tiles_key_space());
}

#[test]
fn an_oversized_region_is_split_and_both_halves_registered() {
    let mut sim = Sim::new(3);
    sim.run(12);
    sim.regions.get_mut(&2).unwrap().size_bytes = 5_000;
    sim.run(4);
    assert_eq!(sim.regions.len(), 2);
    assert_eq!(sim.state.regions().len(), 2);
    assert!(sim.state.regions().tiles_key_space());
    for sim_region in sim.regions.values() {
        let registered = sim.state.regions().get(RegionId(sim_region.region.id));
        assert_eq!(registered, Some(&sim_region.region));
    }
    let counters = sim
        .leader
        .coordinator()
        .operators()
        .counters(OperatorKind::Split);
    assert_eq!((counters.created, counters.finished), (1, 1));
}

#[test]
fn leaders_spread_across_stores() {
    let mut sim = Sim::new(3);
    sim.run(12);
    for _ in 0..3 {
        let id = *sim.regions.keys().next_back().unwrap();
        sim.regions.get_mut(&id).unwrap().size_bytes = 5_000;
        sim.run(4);
    }
    sim.run(20);
    assert_eq!(sim.regions.len(), 4);
    let mut counts: BTreeMap<u64, u64> = [(1, 0), (2, 0), (3, 0)].into();
    for sim_region in sim.regions.values() {
        let store = meta::peer_by_id(&sim_region.region, sim_region.leader)
            .unwrap()
            .store_id;
        *counts.get_mut(&store).unwrap() += 1;
    }
    let most = counts.values().max().unwrap();
    let least = counts.values().min().unwrap();
    assert!(
        most - least <= config().leader_balance_tolerance,
        "leaders {counts:?}"
    );
    let moved = sim
        .leader
        .coordinator()
        .operators()
        .counters(OperatorKind::BalanceLeader);
    assert!(moved.finished >= 1);
}
