//! Placement Driver faults (seeds with PD only): the PD leader loses power, a PD member is
//! isolated or cut off the other members (clients and stores still reaching it), a PD
//! member's wall clock jumps, and a store stays down past PD's `max_store_down_time` so PD
//! must rebuild its replicas elsewhere, and a new store joins (once per run). One PD kill or partition at a time (three members
//! keep a quorum); clock jumps overlap them, which is what a TSO bug needs to show.

use std::time::Duration;

use ferrokv_client::pd::PdClient;
use ferrokv_core::env::{Rng, SeededRng};

use super::{secs, Fault, Nemesis};
use crate::cluster::SimStore;
use crate::pd_cluster::{pd_leader, store_ids, PdCluster};
use crate::vopr::pd_mode::MAX_REPLICAS;

/// PD's `max_store_down_time` in seeds with PD: a store down longer has its replicas
/// rebuilt on the others.
pub const STORE_DOWN_MS: u64 = 15_000;
/// How long past `STORE_DOWN_MS` a StoreDownLong store stays down waiting for PD to
/// rebuild its replicas.
const REBUILD_LIMIT: Duration = Duration::from_secs(60);
/// How long a joining store may take to register with PD (PD faults may be in effect).
const JOIN_LIMIT: Duration = Duration::from_secs(120);

impl Nemesis {
    fn pd(&self) -> &PdCluster {
        self.cluster
            .pd
            .as_ref()
            .expect("a PD fault needs a cluster with PD")
    }

    /// The PD leader's member id, as `GetMembers` reports it (None if no member answers).
    async fn pd_leader(&self) -> Option<u64> {
        let client = PdClient::new(self.pd().pd_endpoints(), Duration::from_secs(3));
        pd_leader(&client).await
    }

    /// Takes the one PD outage slot and member `id`; false if either is taken.
    fn claim_pd_outage(&self, id: u64) -> bool {
        let mut state = self.state.lock().expect("nemesis lock");
        if state.pd_outage || state.pd_busy.contains(&id) {
            return false;
        }
        state.pd_outage = true;
        state.pd_busy.insert(id);
        state.pd_disruptions += 1;
        true
    }

    /// Twice the PD kills, partitions and clock jumps begun so far, plus one if one is in
    /// effect now; and how many stores are corrupt.
    fn pd_disruptions(&self) -> (u64, usize) {
        let state = self.state.lock().expect("nemesis lock");
        let busy = state.pd_outage || !state.pd_busy.is_empty();
        (
            2 * state.pd_disruptions + u64::from(busy),
            state.corrupt.len(),
        )
    }

    fn release_pd_outage(&self, id: u64) {
        let mut state = self.state.lock().expect("nemesis lock");
        state.pd_outage = false;
        state.pd_busy.remove(&id);
    }

    /// Power loss on the PD leader; it restarts after a few seconds.
    pub(super) async fn pd_leader_kill(&self, rng: &mut SeededRng) {
        let Some(leader) = self.pd_leader().await else {
            return self.noop("PD leader kill: no PD leader known".into());
        };
        if !self.claim_pd_outage(leader) {
            return self.noop(format!("PD leader kill: member {leader} or PD busy"));
        }
        self.count(Fault::PdLeaderKill);
        self.note(format!("kill PD leader {leader}"));
        self.pd().kill_member(leader);
        tokio::time::sleep(secs(rng, 1, 8)).await;
        self.note(format!("restart PD member {leader}"));
        self.pd().restart_member(leader);
        self.release_pd_outage(leader);
    }

    /// Isolates a PD member (the leader two times in three), or cuts it off the other
    /// members while clients and stores still reach it: a deposed leader must stop handing
    /// out timestamps before another member can start.
    pub(super) async fn pd_partition(&self, rng: &mut SeededRng) {
        let members: Vec<u64> = self.pd().members.keys().copied().collect();
        let leader = if rng.ratio(2, 3) {
            self.pd_leader().await
        } else {
            None
        };
        let id = leader.unwrap_or_else(|| members[rng.below(members.len() as u64) as usize]);
        if !self.claim_pd_outage(id) {
            return self.noop(format!("PD partition: member {id} or PD busy"));
        }
        let whole = rng.ratio(1, 2);
        self.count(Fault::PdPartition);
        let role = if leader.is_some() { "leader " } else { "" };
        if whole {
            self.note(format!("isolate PD {role}member {id}"));
            self.pd().isolate_member(id);
        } else {
            self.note(format!(
                "cut PD {role}member {id} from the other members (clients still reach it)"
            ));
            self.pd().cut_member_from_members(id);
        }
        tokio::time::sleep(secs(rng, 2, 10)).await;
        if whole {
            self.pd().reconnect_member(id);
        } else {
            self.pd().restore_member_links(id);
        }
        self.note(format!("PD member {id} reconnected"));
        self.release_pd_outage(id);
    }

    /// Jumps one PD member's wall clock, or every follower's (the leader's clock ran ahead
    /// of the others), back (up to a minute) or forward (up to 10 s) for a while, then takes
    /// the skew back. Timestamps must keep increasing across any failover meanwhile.
    pub(super) async fn pd_clock(&self, rng: &mut SeededRng) {
        let members: Vec<u64> = self.pd().members.keys().copied().collect();
        let chosen: Vec<u64> = match self.pd_leader().await.filter(|_| rng.ratio(1, 2)) {
            Some(leader) => members.into_iter().filter(|m| *m != leader).collect(),
            None => vec![members[rng.below(members.len() as u64) as usize]],
        };
        {
            let mut state = self.state.lock().expect("nemesis lock");
            if chosen.iter().any(|id| state.pd_busy.contains(id)) {
                drop(state);
                return self.noop(format!("PD clock: members {chosen:?} busy"));
            }
            state.pd_busy.extend(chosen.iter().copied());
            state.pd_disruptions += 1;
        }
        let jump = if rng.ratio(2, 3) {
            -(rng.range(1_000, 60_000) as i64)
        } else {
            rng.range(100, 10_000) as i64
        };
        self.count(Fault::PdClock);
        self.note(format!("PD members {chosen:?}: wall clock jumps {jump} ms"));
        for id in &chosen {
            self.pd().members[id].clock.skew_wall_clock(jump);
        }
        tokio::time::sleep(secs(rng, 2, 15)).await;
        for id in &chosen {
            self.pd().members[id].clock.skew_wall_clock(-jump);
        }
        self.note(format!("PD members {chosen:?}: wall clock corrected"));
        let mut state = self.state.lock().expect("nemesis lock");
        for id in &chosen {
            state.pd_busy.remove(id);
        }
    }

    /// A store down past `STORE_DOWN_MS`: it stays down until PD's region list shows no
    /// peer on it (PD rebuilt its replicas on the others), at most `REBUILD_LIMIT` past
    /// `STORE_DOWN_MS`; then it comes back (its removed peers await PD's peer GC). Counted
    /// only if PD rebuilt; no rebuild in time is a liveness finding unless a PD kill,
    /// partition or clock jump overlapped the outage (a new leader restarts the down timer;
    /// a leader whose clock went back sees no silence) or a store went corrupt meanwhile
    /// (too few stores left for the replicas). One at a time, and only while the other
    /// healthy stores can hold `MAX_REPLICAS` replicas.
    pub(super) async fn store_down_long(&self, rng: &mut SeededRng) {
        let Some(id) = self.claim_store(rng) else {
            return self.noop("store down long: no free store".into());
        };
        {
            let mut state = self.state.lock().expect("nemesis lock");
            let healthy = self.cluster.store_ids().len() - state.corrupt.len();
            if state.down_long.is_some() || healthy <= MAX_REPLICAS {
                state.busy.remove(&id);
                drop(state);
                return self.noop(format!(
                    "store down long: another store is down long, or too few healthy stores for {MAX_REPLICAS} replicas without store {id}"
                ));
            }
            state.down_long = Some(id);
        }
        // A store holding no replica has nothing to rebuild: no effect. Nor while PD still
        // places a replica on a corrupt store: a region with voters there and here loses
        // its quorum and no one can rebuild it (seed 6 --pd, 5 minutes).
        let client = PdClient::new(self.pd().pd_endpoints(), Duration::from_secs(3));
        let corrupt = self.corrupt();
        let (holds, on_corrupt) = match client.scan_regions(b"", b"", 0).await {
            Ok(routes) => {
                let peers = || routes.iter().flat_map(|route| route.region.peers.iter());
                (
                    peers().any(|p| p.store_id == id),
                    peers().any(|p| corrupt.contains(&p.store_id)),
                )
            }
            Err(_) => (false, false),
        };
        if !holds || on_corrupt {
            self.state.lock().expect("nemesis lock").down_long = None;
            self.release(id);
            return self.noop(format!(
                "store down long: PD places no replica on store {id} (or did not answer), or still one on a corrupt store"
            ));
        }
        let tail = Self::crash_tail(rng);
        self.keep_trace(id).await;
        let (disruptions, corrupt) = self.pd_disruptions();
        self.note(format!(
            "kill store {id} until PD rebuilt its replicas ({tail:?})"
        ));
        self.cluster.kill(id, tail);
        let killed = tokio::time::Instant::now();
        let limit = killed + Duration::from_millis(STORE_DOWN_MS) + REBUILD_LIMIT;
        tokio::time::sleep(Duration::from_millis(STORE_DOWN_MS)).await;
        let (rebuilt, left) = await_rebuild(&client, id, limit).await;
        let waited = killed.elapsed();
        if rebuilt {
            self.count(Fault::StoreDownLong);
            self.note(format!(
                "PD rebuilt store {id}'s replicas; restart it after {waited:?}"
            ));
        } else {
            let (disruptions_now, corrupt_now) = self.pd_disruptions();
            // A PD fault in effect at either end counts as one (the counts differ).
            let overlapped = disruptions_now != disruptions || disruptions % 2 == 1;
            let corrupted = corrupt_now != corrupt;
            let what = format!("store {id} down {waited:?}: PD still placed replicas on it");
            if overlapped || corrupted {
                self.noop(format!(
                    "store down long: {what} (a PD fault or a corruption overlapped)"
                ));
            } else {
                self.note(format!("{what}: liveness finding"));
                self.state
                    .lock()
                    .expect("nemesis lock")
                    .findings
                    .push(format!(
                        "PD did not rebuild the replicas of store {id}, down {waited:?} (max_store_down_time {STORE_DOWN_MS} ms) with no PD fault overlapping: {left}"
                    ));
            }
        }
        self.cluster.restart(id);
        self.state.lock().expect("nemesis lock").down_long = None;
        self.release(id);
    }

    /// A new store machine (empty disk, next free address) joins through PD, once per run.
    /// Once PD registered it, the cluster keeps it under its PD id: clients reach it, every
    /// store fault may hit it, and the end-of-run checks (settled, converged, balanced)
    /// include it. Not registering within `JOIN_LIMIT` is a liveness finding.
    pub(super) async fn store_join(&self, rng: &mut SeededRng) {
        {
            let mut state = self.state.lock().expect("nemesis lock");
            if state.joined {
                drop(state);
                return self.noop("store join: a store already joined in this run".into());
            }
            state.joined = true;
        }
        let pd = self.pd();
        let index = pd.stores.len() as u64 + 1;
        let machine = pd.start_store(index);
        machine.clock.set_rate_ppm(super::rate_within_bound(rng));
        self.note(format!(
            "a new store machine at {} joins through PD",
            machine.addr
        ));
        let client = PdClient::new(pd.pd_endpoints(), Duration::from_secs(3));
        let addrs = [(index, machine.addr.clone())].into();
        let limit = tokio::time::Instant::now() + JOIN_LIMIT;
        loop {
            if let Some(id) = store_ids(&client, &addrs).await.get(&index).copied() {
                self.cluster.add_store(SimStore::of_machine(id, &machine));
                self.count(Fault::StoreJoin);
                return self.note(format!("PD registered the new store as store {id}"));
            }
            if tokio::time::Instant::now() >= limit {
                let finding = format!(
                    "a new store at {} did not register with PD in {JOIN_LIMIT:?}",
                    machine.addr
                );
                self.note(format!("{finding}: liveness finding; its machine stops"));
                madsim::runtime::Handle::current().kill(machine.node.id());
                return self
                    .state
                    .lock()
                    .expect("nemesis lock")
                    .findings
                    .push(finding);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// PD's part of healing: every member reconnected (to clients and to each other) with
    /// its wall clock corrected.
    pub(super) fn heal_pd(&self) {
        let Some(pd) = &self.cluster.pd else { return };
        for (id, member) in &pd.members {
            pd.reconnect_member(*id);
            pd.restore_member_links(*id);
            member.clock.correct();
        }
        let mut state = self.state.lock().expect("nemesis lock");
        state.pd_busy.clear();
        state.pd_outage = false;
    }
}

/// Polls PD's region list until no region has a peer on store `id` (true) or `limit`
/// passes (false, with the regions still on it).
async fn await_rebuild(client: &PdClient, id: u64, limit: tokio::time::Instant) -> (bool, String) {
    let mut left = String::new();
    let rebuilt = loop {
        if let Ok(routes) = client.scan_regions(b"", b"", 0).await {
            let on_store: Vec<String> = routes
                .iter()
                .filter(|route| route.region.peers.iter().any(|p| p.store_id == id))
                .map(|route| {
                    let epoch = route.region.region_epoch.unwrap_or_default();
                    let peers: Vec<(u64, i32)> = route
                        .region
                        .peers
                        .iter()
                        .map(|p| (p.store_id, p.role))
                        .collect();
                    format!(
                        "region {} epoch {}/{} peers (store, role) {peers:?}",
                        route.region.id, epoch.conf_ver, epoch.version
                    )
                })
                .collect();
            if !routes.is_empty() && on_store.is_empty() {
                break true;
            }
            left = on_store.join("; ");
        }
        if tokio::time::Instant::now() >= limit {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    (rebuilt, left)
}
