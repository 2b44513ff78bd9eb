//! The nemesis: one fault at a time, chosen per seed from the enabled set, injected for a
//! random while and then reverted; `heal` undoes anything still in effect. Every action is
//! logged so a failing seed explains itself.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferrokv_client::admin::{admin, region_reports};
use ferrokv_core::env::{Rng, SeededRng};
use ferrokv_proto::ferrokv_raftpb::{admin_request, AdminRequest, SplitCmd};
use madsim::net::NetSim;

use super::workload::key_bytes;
use crate::cluster::SimCluster;
use crate::engine::{CrashTail, DiskFaults};

/// Which fault kinds a seed uses (swarm testing: each seed a different mix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMask {
    pub kill: bool,
    pub isolate: bool,
    pub asymmetric: bool,
    pub bridge: bool,
    pub pause: bool,
    pub net_chaos: bool,
    pub clock_jump: bool,
    pub fsync_failure: bool,
    pub disk_full: bool,
    pub bit_flip: bool,
    pub leader_transfer: bool,
    pub split: bool,
}

impl FaultMask {
    /// Every fault.
    pub fn all() -> FaultMask {
        FaultMask {
            kill: true,
            isolate: true,
            asymmetric: true,
            bridge: true,
            pause: true,
            net_chaos: true,
            clock_jump: true,
            fsync_failure: true,
            disk_full: true,
            bit_flip: true,
            leader_transfer: true,
            split: true,
        }
    }

    /// Each fault independently with probability 3/4; kills and isolation always.
    pub fn swarm(rng: &mut SeededRng) -> FaultMask {
        let mut pick = || rng.ratio(3, 4);
        FaultMask {
            kill: true,
            isolate: true,
            asymmetric: pick(),
            bridge: pick(),
            pause: pick(),
            net_chaos: pick(),
            clock_jump: pick(),
            fsync_failure: pick(),
            disk_full: pick(),
            bit_flip: pick(),
            leader_transfer: pick(),
            split: pick(),
        }
    }

    fn enabled(&self) -> Vec<Fault> {
        let all = [
            (self.kill, Fault::KillRestart),
            (self.isolate, Fault::Isolate),
            (self.isolate, Fault::IsolateLeader),
            (self.asymmetric, Fault::Asymmetric),
            (self.bridge, Fault::Bridge),
            (self.pause, Fault::Pause),
            (self.net_chaos, Fault::NetChaos),
            (self.clock_jump, Fault::ClockJump),
            (self.fsync_failure, Fault::FsyncFailure),
            (self.disk_full, Fault::DiskFull),
            (self.bit_flip, Fault::BitFlip),
            (self.leader_transfer, Fault::LeaderTransfer),
            (self.split, Fault::Split),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, fault)| fault)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillRestart,
    Isolate,
    IsolateLeader,
    Asymmetric,
    Bridge,
    Pause,
    NetChaos,
    ClockJump,
    FsyncFailure,
    DiskFull,
    BitFlip,
    LeaderTransfer,
    Split,
}

/// The fault injector of one run.
pub struct Nemesis {
    cluster: Arc<SimCluster>,
    rng: SeededRng,
    faults: Vec<Fault>,
    /// What it did, in order.
    pub log: Vec<String>,
    /// Stores whose disk was corrupted: down for good, excluded from convergence checks.
    pub corrupt: BTreeSet<u64>,
    start: tokio::time::Instant,
    next_region_id: u64,
    next_peer_id: u64,
}

fn secs(rng: &mut SeededRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.range(low * 1000, high * 1000))
}

impl Nemesis {
    /// A nemesis for `cluster` with the faults of `mask`.
    pub fn new(cluster: Arc<SimCluster>, rng: SeededRng, mask: &FaultMask) -> Nemesis {
        Nemesis {
            cluster,
            rng,
            faults: mask.enabled(),
            log: Vec::new(),
            corrupt: BTreeSet::new(),
            start: tokio::time::Instant::now(),
            next_region_id: 1000,
            next_peer_id: 100_000,
        }
    }

    fn note(&mut self, what: String) {
        let at = self.start.elapsed().as_millis();
        tracing::info!(at_ms = at, "nemesis: {what}");
        self.log.push(format!("{at:>8} ms  {what}"));
    }

    fn healthy_stores(&self) -> Vec<u64> {
        self.cluster
            .stores
            .keys()
            .copied()
            .filter(|id| !self.corrupt.contains(id))
            .collect()
    }

    fn pick_store(&mut self) -> u64 {
        let stores = self.healthy_stores();
        stores[self.rng.below(stores.len() as u64) as usize]
    }

    async fn leader(&self) -> Option<(u64, u64)> {
        for store in self.cluster.stores.values() {
            if let Some(reports) = region_reports(&store.addr).await {
                for info in reports {
                    if let (Some(leader), Some(region)) = (info.leader, info.region) {
                        return Some((leader.store_id, region.id));
                    }
                }
            }
        }
        None
    }

    /// Injects faults until `until`.
    pub async fn run(&mut self, until: tokio::time::Instant) {
        while tokio::time::Instant::now() < until {
            let pause = secs(&mut self.rng, 1, 4);
            tokio::time::sleep(pause).await;
            if self.faults.is_empty() || tokio::time::Instant::now() >= until {
                continue;
            }
            let fault = self.faults[self.rng.below(self.faults.len() as u64) as usize];
            self.inject(fault).await;
        }
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::KillRestart => self.kill_restart().await,
            Fault::Isolate => {
                let id = self.pick_store();
                self.isolate_for(id).await;
            }
            Fault::IsolateLeader => {
                if let Some((id, _)) = self.leader().await {
                    self.isolate_for(id).await;
                }
            }
            Fault::Asymmetric => self.asymmetric().await,
            Fault::Bridge => self.bridge().await,
            Fault::Pause => self.pause().await,
            Fault::NetChaos => self.net_chaos().await,
            Fault::ClockJump => self.clock_jump().await,
            Fault::FsyncFailure => self.disk_fault("fsync failure", true).await,
            Fault::DiskFull => self.disk_fault("disk full", false).await,
            Fault::BitFlip => self.bit_flip().await,
            Fault::LeaderTransfer => self.leader_transfer().await,
            Fault::Split => self.split().await,
        }
    }

    fn crash_tail(&mut self) -> CrashTail {
        match self.rng.below(3) {
            0 => CrashTail::DropAll,
            1 => CrashTail::KeepAll,
            _ => CrashTail::KeepPrefix(self.rng.below(4096) as usize),
        }
    }

    async fn kill_restart(&mut self) {
        let id = self.pick_store();
        let tail = self.crash_tail();
        self.note(format!("kill store {id} ({tail:?})"));
        self.cluster.kill(id, tail);
        let down = secs(&mut self.rng, 1, 6);
        tokio::time::sleep(down).await;
        self.note(format!("restart store {id}"));
        self.cluster.restart(id);
    }

    async fn isolate_for(&mut self, id: u64) {
        self.note(format!("isolate store {id}"));
        self.cluster.isolate(id);
        let span = secs(&mut self.rng, 2, 8);
        tokio::time::sleep(span).await;
        self.cluster.reconnect(id);
        self.note(format!("reconnect store {id}"));
    }

    async fn asymmetric(&mut self) {
        let from = self.pick_store();
        let to = self.pick_store();
        if from == to {
            return;
        }
        self.note(format!("cut link {from} -> {to} (one way)"));
        self.cluster.cut_link(from, to);
        let span = secs(&mut self.rng, 2, 8);
        tokio::time::sleep(span).await;
        self.cluster.restore_link(from, to);
        self.note(format!("restore link {from} -> {to}"));
    }

    /// Splits the stores around one bridge store that still reaches both sides.
    async fn bridge(&mut self) {
        let ids: Vec<u64> = self.cluster.stores.keys().copied().collect();
        let bridge = ids[self.rng.below(ids.len() as u64) as usize];
        let others: Vec<u64> = ids.iter().copied().filter(|id| *id != bridge).collect();
        let (left, right) = others.split_at(others.len() / 2);
        let mut cuts = Vec::new();
        for &a in left {
            for &b in right {
                cuts.push((a, b));
            }
        }
        self.note(format!(
            "bridge through store {bridge}: {left:?} | {right:?}"
        ));
        for &(a, b) in &cuts {
            self.cluster.cut_link(a, b);
            self.cluster.cut_link(b, a);
        }
        let span = secs(&mut self.rng, 3, 10);
        tokio::time::sleep(span).await;
        for &(a, b) in &cuts {
            self.cluster.restore_link(a, b);
            self.cluster.restore_link(b, a);
        }
        self.note("bridge healed".into());
    }

    async fn pause(&mut self) {
        let id = self.pick_store();
        self.note(format!("pause store {id}"));
        self.cluster.pause(id);
        let span = secs(&mut self.rng, 1, 5);
        tokio::time::sleep(span).await;
        self.cluster.resume(id);
        self.note(format!("resume store {id}"));
    }

    async fn net_chaos(&mut self) {
        let loss = self.rng.range(1, 20) as f64 / 100.0;
        let latency_max = self.rng.range(10, 200);
        self.note(format!(
            "network: {loss:.2} loss, 1..{latency_max} ms latency"
        ));
        NetSim::current().update_config(|config| {
            config.packet_loss_rate = loss;
            config.send_latency = Duration::from_millis(1)..Duration::from_millis(latency_max);
        });
        let stalls = self.rng.ratio(1, 2);
        if stalls {
            // madsim's own buggify: 10% of sends stall for seconds.
            self.note("network: stalls on".into());
            madsim::buggify::enable();
        }
        let span = secs(&mut self.rng, 3, 10);
        tokio::time::sleep(span).await;
        NetSim::current().update_config(|config| *config = madsim::net::Config::default());
        madsim::buggify::disable();
        self.note("network: calm".into());
    }

    /// Jumps one store's wall clock, or lets it drift, for a while.
    async fn clock_jump(&mut self) {
        let id = self.pick_store();
        let sign = if self.rng.ratio(1, 2) { 1 } else { -1 };
        let skew = self.cluster.stores[&id].clock_skew_ms.clone();
        let span = secs(&mut self.rng, 2, 8);
        if self.rng.ratio(1, 2) {
            let jump = self.rng.range(100, 10_000) as i64 * sign;
            self.note(format!("store {id} wall clock jumps {jump} ms"));
            skew.fetch_add(jump, Ordering::Relaxed);
            tokio::time::sleep(span).await;
        } else {
            let per_step = self.rng.range(1, 50) as i64 * sign;
            self.note(format!(
                "store {id} wall clock drifts {per_step} ms per 100 ms"
            ));
            let steps = span.as_millis() / 100;
            for _ in 0..steps {
                skew.fetch_add(per_step, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        skew.store(0, Ordering::Relaxed);
        self.note(format!("store {id} wall clock corrected"));
    }

    /// A failed fsync or a full disk: the store fences itself; then it is power-cycled with
    /// the fault cleared and recovers from what was durable.
    async fn disk_fault(&mut self, what: &str, fsync: bool) {
        let id = self.pick_store();
        let disk = self.cluster.stores[&id].disk.clone();
        let faults = if fsync {
            DiskFaults {
                fail_next_sync: true,
                ..DiskFaults::default()
            }
        } else {
            let room = self.rng.below(8192) as usize;
            DiskFaults {
                capacity_bytes: Some(disk.stored_bytes() + room),
                ..DiskFaults::default()
            }
        };
        self.note(format!("store {id}: {what}"));
        disk.set_faults(faults);
        let span = secs(&mut self.rng, 1, 5);
        tokio::time::sleep(span).await;
        disk.set_faults(DiskFaults::default());
        let tail = self.crash_tail();
        self.note(format!("store {id}: power-cycle after {what} ({tail:?})"));
        self.cluster.kill(id, tail);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.cluster.restart(id);
    }

    /// Flips one bit of one store's durable log, at most once per run and only while every
    /// other store is healthy: the store must detect it at restart and stay down.
    async fn bit_flip(&mut self) {
        if !self.corrupt.is_empty() || self.cluster.stores.len() < 3 {
            return;
        }
        let id = self.pick_store();
        let disk = self.cluster.stores[&id].disk.clone();
        let bit = self.rng.below(u64::MAX) as usize;
        self.cluster.kill(id, CrashTail::DropAll);
        if !disk.flip_log_bit(bit) {
            self.cluster.restart(id);
            return;
        }
        self.note(format!(
            "store {id}: bit flip in its durable log; restart must refuse"
        ));
        self.corrupt.insert(id);
        self.cluster.restart(id);
    }

    async fn leader_transfer(&mut self) {
        let Some((leader, region_id)) = self.leader().await else {
            return;
        };
        let target = self.pick_store();
        let addr = self.cluster.stores[&leader].addr.clone();
        let peer_id = self.peer_id_on(region_id, target).await;
        let Some(peer_id) = peer_id else { return };
        self.note(format!(
            "transfer leadership of region {region_id} to store {target}"
        ));
        let cmd = admin_request::Cmd::TransferLeaderToPeer(peer_id);
        let _ = admin(
            &addr,
            AdminRequest {
                region_id,
                cmd: Some(cmd),
            },
        )
        .await;
    }

    async fn peer_id_on(&self, region_id: u64, store: u64) -> Option<u64> {
        let reports = region_reports(&self.cluster.stores[&store].addr).await?;
        let region = reports
            .into_iter()
            .find_map(|info| info.region.filter(|r| r.id == region_id))?;
        region
            .peers
            .iter()
            .find(|peer| peer.store_id == store)
            .map(|peer| peer.id)
    }

    async fn split(&mut self) {
        let key = key_bytes(self.rng.range(1, 64));
        for store in self.healthy_stores() {
            let addr = self.cluster.stores[&store].addr.clone();
            let Some(reports) = region_reports(&addr).await else {
                continue;
            };
            for info in reports {
                let Some(region) = info.region else { continue };
                let inside =
                    region.start_key < key && (region.end_key.is_empty() || key < region.end_key);
                let leads = info.leader.is_some_and(|leader| leader.store_id == store);
                if !inside || !leads {
                    continue;
                }
                let new_region_id = self.next_region_id;
                self.next_region_id += 1;
                let new_peer_ids: Vec<u64> = region
                    .peers
                    .iter()
                    .map(|_| {
                        self.next_peer_id += 1;
                        self.next_peer_id
                    })
                    .collect();
                let split = SplitCmd {
                    split_key: key.clone(),
                    new_region_id,
                    new_peer_ids,
                };
                self.note(format!(
                    "split region {} at {:?} into region {new_region_id}",
                    region.id,
                    String::from_utf8_lossy(&key)
                ));
                let request = AdminRequest {
                    region_id: region.id,
                    cmd: Some(admin_request::Cmd::Split(split)),
                };
                let _ = admin(&addr, request).await;
                return;
            }
        }
    }

    /// Undoes every fault still in effect: network healed, every non-corrupt store running.
    pub async fn heal(&mut self) {
        let net = NetSim::current();
        net.update_config(|config| *config = madsim::net::Config::default());
        madsim::buggify::disable();
        for (id, store) in &self.cluster.stores {
            self.cluster.reconnect(*id);
            store.clock_skew_ms.store(0, Ordering::Relaxed);
            store.disk.set_faults(DiskFaults::default());
            for other in self.cluster.stores.keys() {
                self.cluster.restore_link(*id, *other);
            }
        }
        self.note("heal: network restored, clocks corrected, disk faults cleared".into());
    }
}
