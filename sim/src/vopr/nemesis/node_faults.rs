//! Machine and network faults: kills with lost or torn unsynced writes, total power loss,
//! isolation, a deposed leader that clients still reach, one-way and bridge partitions,
//! pauses, and lossy, slow, stalling networks.

use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};
use madsim::net::NetSim;

use super::{secs, Fault, Nemesis};

impl Nemesis {
    /// Folds the trace of a store incarnation about to die into the run's trace.
    pub(super) async fn keep_trace(&self, id: u64) {
        let addr = self.cluster.store(id).addr.clone();
        let trace = ferrokv_client::admin::store_trace(&addr).await.unwrap_or(0);
        self.cluster
            .past_traces
            .lock()
            .expect("traces lock")
            .push((id, trace));
    }

    pub(super) async fn kill_restart(&self, rng: &mut SeededRng) {
        let Some(id) = self.claim_store(rng) else {
            return self.noop("kill: no free store".into());
        };
        let tail = Self::crash_tail(rng);
        self.keep_trace(id).await;
        self.count(Fault::KillRestart);
        self.note(format!("kill store {id} ({tail:?})"));
        self.cluster.kill(id, tail);
        tokio::time::sleep(secs(rng, 1, 6)).await;
        self.note(format!("restart store {id}"));
        self.cluster.restart(id);
        self.release(id);
    }

    /// Every store loses power at once, each keeping its own share of unsynced writes.
    pub(super) async fn power_loss(&self, rng: &mut SeededRng) {
        {
            let mut state = self.state.lock().expect("nemesis lock");
            // A corrupt store stays claimed for the rest of the run (it never restarts);
            // power loss hits the others.
            let held = state.busy.iter().any(|id| !state.corrupt.contains(id));
            if state.power_loss || held {
                drop(state);
                return self.noop("power loss: other faults hold stores".into());
            }
            state.power_loss = true;
        }
        let alive: Vec<u64> = self.healthy_stores();
        self.count(Fault::PowerLoss);
        for &id in &alive {
            self.keep_trace(id).await;
        }
        for &id in &alive {
            let tail = Self::crash_tail(rng);
            self.note(format!("power loss: kill store {id} ({tail:?})"));
            self.cluster.kill(id, tail);
        }
        tokio::time::sleep(secs(rng, 1, 4)).await;
        for &id in &alive {
            self.note(format!("power back: restart store {id}"));
            self.cluster.restart(id);
        }
        self.state.lock().expect("nemesis lock").power_loss = false;
    }

    pub(super) async fn isolate(&self, rng: &mut SeededRng, leader: bool) {
        let id = if leader {
            match self.some_leader_store(rng).await {
                Some(id) if self.claim_this(id) => Some(id),
                _ => None,
            }
        } else {
            self.claim_store(rng)
        };
        let Some(id) = id else {
            return self.noop("isolate: no store to isolate".into());
        };
        self.count(if leader {
            Fault::IsolateLeader
        } else {
            Fault::Isolate
        });
        self.note(format!("isolate store {id}"));
        self.cluster.isolate(id);
        tokio::time::sleep(secs(rng, 2, 8)).await;
        self.cluster.reconnect(id);
        self.note(format!("reconnect store {id}"));
        self.release(id);
    }

    /// Cuts a leader off from the other stores while clients still reach it: a deposed
    /// leader that keeps answering is exactly where stale reads come from.
    pub(super) async fn minority_leader(&self, rng: &mut SeededRng) {
        let Some(id) = self
            .some_leader_store(rng)
            .await
            .filter(|id| self.claim_this(*id))
        else {
            return self.noop("minority leader: no leader found".into());
        };
        self.count(Fault::MinorityLeader);
        self.note(format!(
            "cut leader store {id} from the other stores (clients still reach it)"
        ));
        self.cluster.cut_from_stores(id);
        tokio::time::sleep(secs(rng, 2, 8)).await;
        self.cluster.restore_to_stores(id);
        self.note(format!("store {id} rejoins the other stores"));
        self.release(id);
    }

    /// Moves a region's leadership, and as soon as the new leader leads, cuts the old one off
    /// from the other stores (clients still reach it): whatever lease it held must not
    /// outlive the transfer.
    pub(super) async fn transfer_then_cut(&self, rng: &mut SeededRng) {
        let Some((region_id, old, target)) = self.pick_transfer(rng).await else {
            return self.noop("transfer then cut: no led region".into());
        };
        if !self.claim_this(old) {
            return self.noop(format!("transfer then cut: store {old} is busy"));
        }
        // Counted below, once the old leader is cut off.
        if !self.transfer(None, region_id, old, target).await {
            self.release(old);
            return;
        }
        let mut moved = false;
        for _ in 0..40 {
            if self.leader_store_of(region_id).await == Some(target.store_id) {
                moved = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.count(Fault::TransferThenCut);
        self.note(format!(
            "cut old leader store {old} from the other stores (clients still reach it; new leader {})",
            if moved { "seen" } else { "not seen yet" }
        ));
        self.cluster.cut_from_stores(old);
        tokio::time::sleep(secs(rng, 1, 5)).await;
        self.cluster.restore_to_stores(old);
        self.note(format!("store {old} rejoins the other stores"));
        self.release(old);
    }

    pub(super) async fn asymmetric(&self, rng: &mut SeededRng) {
        let stores = self.healthy_stores();
        let from = stores[rng.below(stores.len() as u64) as usize];
        let others: Vec<u64> = stores.iter().copied().filter(|s| *s != from).collect();
        let Some(&to) = others.get(rng.below(others.len().max(1) as u64) as usize) else {
            return self.noop("asymmetric cut: one healthy store".into());
        };
        self.count(Fault::Asymmetric);
        self.note(format!("cut link {from} -> {to} (one way)"));
        self.cluster.cut_link(from, to);
        tokio::time::sleep(secs(rng, 2, 8)).await;
        self.cluster.restore_link(from, to);
        self.note(format!("restore link {from} -> {to}"));
    }

    /// Splits the stores around one bridge store that still reaches both sides.
    pub(super) async fn bridge(&self, rng: &mut SeededRng) {
        let ids: Vec<u64> = self.cluster.store_ids();
        let bridge = ids[rng.below(ids.len() as u64) as usize];
        let others: Vec<u64> = ids.iter().copied().filter(|id| *id != bridge).collect();
        let (left, right) = others.split_at(others.len() / 2);
        let cuts: Vec<(u64, u64)> = left
            .iter()
            .flat_map(|&a| right.iter().map(move |&b| (a, b)))
            .collect();
        self.count(Fault::Bridge);
        self.note(format!(
            "bridge through store {bridge}: {left:?} | {right:?}"
        ));
        for &(a, b) in &cuts {
            self.cluster.cut_link(a, b);
            self.cluster.cut_link(b, a);
        }
        tokio::time::sleep(secs(rng, 3, 10)).await;
        for &(a, b) in &cuts {
            self.cluster.restore_link(a, b);
            self.cluster.restore_link(b, a);
        }
        self.note("bridge healed".into());
    }

    /// Freezes a store (a GC pause, or a slow fsync: the node loop is single-threaded, so
    /// a stalled sync stalls exactly what a pause stalls).
    pub(super) async fn pause(&self, rng: &mut SeededRng) {
        let Some(id) = self.claim_store(rng) else {
            return self.noop("pause: no free store".into());
        };
        self.count(Fault::Pause);
        self.note(format!("pause store {id}"));
        self.cluster.pause(id);
        tokio::time::sleep(secs(rng, 1, 5)).await;
        self.cluster.resume(id);
        self.note(format!("resume store {id}"));
        self.release(id);
    }

    /// A lossy, slow (and half the time stalling) network for a while. The network
    /// configuration is global, so one NetChaos at a time: a second one would reset it to
    /// calm when it ended, under the first.
    pub(super) async fn net_chaos(&self, rng: &mut SeededRng) {
        {
            let mut state = self.state.lock().expect("nemesis lock");
            if state.net_chaos {
                drop(state);
                return self.noop("network chaos: already in effect".into());
            }
            state.net_chaos = true;
        }
        let loss = rng.range(1, 20) as f64 / 100.0;
        let latency_max = rng.range(10, 200);
        self.count(Fault::NetChaos);
        self.note(format!(
            "network: {loss:.2} loss, 1..{latency_max} ms latency"
        ));
        NetSim::current().update_config(|config| {
            config.packet_loss_rate = loss;
            config.send_latency = Duration::from_millis(1)..Duration::from_millis(latency_max);
        });
        if rng.ratio(1, 2) {
            // madsim's own buggify: 10% of sends stall for seconds.
            self.note("network: stalls on".into());
            madsim::buggify::enable();
        }
        tokio::time::sleep(secs(rng, 3, 10)).await;
        NetSim::current().update_config(|config| *config = madsim::net::Config::default());
        madsim::buggify::disable();
        self.state.lock().expect("nemesis lock").net_chaos = false;
        self.note("network: calm".into());
    }
}
