//! The nemesis: several fault actors run at once, each injecting a fault chosen from the
//! seed's enabled set for a random while and then reverting it, so faults overlap (two kills,
//! a kill during a partition, a partition during a disk fault, total power loss). `heal`
//! undoes anything still in effect. Every action is logged with its simulated time so a
//! failing seed explains itself. A fault counts as injected only once it took effect; one
//! that found nothing to act on (no leader, no free store, an admin command refused) is a
//! no-op: logged at debug level and in the nemesis log, counted apart.

mod admin_faults;
mod clock_faults;
pub use clock_faults::{rate_within_bound, DRIFT_BOUND_PERMILLE};
mod disk_faults;
mod node_faults;
mod pd_faults;
pub use pd_faults::STORE_DOWN_MS;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_core::env::{Rng, SeededRng};
use madsim::net::NetSim;

use crate::cluster::SimCluster;
use crate::engine::{CrashTail, DiskFaults};

/// Fault kinds, each enabled or not per seed (swarm testing: each seed a different mix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillRestart,
    PowerLoss,
    Isolate,
    IsolateLeader,
    MinorityLeader,
    Asymmetric,
    Bridge,
    Pause,
    NetChaos,
    WallClock,
    ClockDrift,
    MonotonicJump,
    FsyncFailure,
    DiskFull,
    CrashDuringLargeWrite,
    Corruption,
    LeaderTransfer,
    Split,
    Membership,
    CompactLog,
    TransferThenCut,
    /// The PD leader loses power, and comes back a few seconds later.
    PdLeaderKill,
    /// A PD member (often the leader) is isolated, or cut off the other members while
    /// clients and stores still reach it.
    PdPartition,
    /// A PD member's wall clock jumps back or forward for a while.
    PdClock,
    /// A store stays down past PD's `max_store_down_time` (PD must rebuild its replicas),
    /// then comes back.
    StoreDownLong,
    /// A new store machine joins through PD (once per run); PD must spread peers and
    /// leaders onto it.
    StoreJoin,
}

impl Fault {
    /// True for operator actions (run by the operator actor, not the fault actors).
    pub fn is_operation(self) -> bool {
        matches!(
            self,
            Fault::LeaderTransfer | Fault::Split | Fault::Membership | Fault::CompactLog
        )
    }

    /// True for faults that need the Placement Driver (`--pd` seeds only).
    pub fn is_pd(self) -> bool {
        matches!(
            self,
            Fault::PdLeaderKill
                | Fault::PdPartition
                | Fault::PdClock
                | Fault::StoreDownLong
                | Fault::StoreJoin
        )
    }

    /// Every fault kind.
    pub const ALL: [Fault; 26] = [
        Fault::KillRestart,
        Fault::PowerLoss,
        Fault::Isolate,
        Fault::IsolateLeader,
        Fault::MinorityLeader,
        Fault::Asymmetric,
        Fault::Bridge,
        Fault::Pause,
        Fault::NetChaos,
        Fault::WallClock,
        Fault::ClockDrift,
        Fault::MonotonicJump,
        Fault::FsyncFailure,
        Fault::DiskFull,
        Fault::CrashDuringLargeWrite,
        Fault::Corruption,
        Fault::LeaderTransfer,
        Fault::Split,
        Fault::Membership,
        Fault::CompactLog,
        Fault::TransferThenCut,
        Fault::PdLeaderKill,
        Fault::PdPartition,
        Fault::PdClock,
        Fault::StoreDownLong,
        Fault::StoreJoin,
    ];
}

/// Which fault kinds a seed uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMask(pub BTreeSet<Fault>);

impl FaultMask {
    /// Every fault.
    pub fn all() -> FaultMask {
        FaultMask(Fault::ALL.into_iter().collect())
    }

    /// Each fault independently with probability 3/4; kills and isolation always. PD faults
    /// are left out (they draw nothing here, so seeds without PD pick what they always
    /// did); `with_pd_swarm` adds them.
    pub fn swarm(rng: &mut SeededRng) -> FaultMask {
        let mut chosen: BTreeSet<Fault> = Fault::ALL
            .into_iter()
            .filter(|fault| !fault.is_pd())
            .filter(|_| rng.ratio(3, 4))
            .collect();
        chosen.insert(Fault::KillRestart);
        chosen.insert(Fault::Isolate);
        FaultMask(chosen)
    }

    /// This set plus each PD fault with probability 3/4 (PD leader kills always).
    pub fn with_pd_swarm(mut self, rng: &mut SeededRng) -> FaultMask {
        let pd = Fault::ALL.into_iter().filter(|fault| fault.is_pd());
        self.0.extend(pd.filter(|_| rng.ratio(3, 4)));
        self.0.insert(Fault::PdLeaderKill);
        self
    }

    /// This set without the PD faults (for a seed without PD).
    pub fn without_pd(mut self) -> FaultMask {
        self.0.retain(|fault| !fault.is_pd());
        self
    }

    /// The set named by a comma-separated list of fault names (as `describe` prints them).
    pub fn parse(list: &str) -> Result<FaultMask, String> {
        let mut chosen = BTreeSet::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let fault = Fault::ALL
                .into_iter()
                .find(|fault| format!("{fault:?}").eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("unknown fault {name:?}"))?;
            chosen.insert(fault);
        }
        Ok(FaultMask(chosen))
    }

    /// A compact name of the set (for replay commands and logs).
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|f| format!("{f:?}")).collect();
        names.join(",")
    }
}

/// What the nemesis did, for the report.
#[derive(Clone, Debug, Default)]
pub struct NemesisStats {
    /// Faults that took effect, by kind.
    pub injected: std::collections::BTreeMap<String, u64>,
    /// Faults that had no effect (no leader found, no free store, admin refused...).
    pub noops: u64,
}

/// Shared state of the nemesis actors.
struct State {
    log: Vec<String>,
    corrupt: BTreeSet<u64>,
    busy: BTreeSet<u64>,
    power_loss: bool,
    /// A NetChaos fault holds the (global) network configuration.
    net_chaos: bool,
    /// Stores whose monotonic clock rate a ClockDrift fault holds.
    drifting: BTreeSet<u64>,
    next_region_id: u64,
    next_peer_id: u64,
    stats: NemesisStats,
    /// PD members a PD fault holds (killed, cut off, clock jumped).
    pd_busy: BTreeSet<u64>,
    /// A PD kill or partition is in effect (one at a time: the members keep a quorum).
    pd_outage: bool,
    /// PD kills, partitions and clock jumps begun so far (a StoreDownLong outage that one
    /// overlapped may legitimately see no rebuild: a new leader restarts the down timer,
    /// a leader whose clock went back sees no silence).
    pd_disruptions: u64,
    /// The store a StoreDownLong fault holds down (one at a time: PD needs live stores to
    /// rebuild on). The nemesis adds no learner on it: PD must empty it.
    down_long: Option<u64>,
    /// A StoreJoin fault began (one per run).
    joined: bool,
    /// Checks a fault itself made (a store down long that PD never rebuilt), reported as
    /// liveness failures at the end of the run.
    findings: Vec<String>,
}

impl State {
    fn new() -> State {
        State {
            log: Vec::new(),
            corrupt: BTreeSet::new(),
            busy: BTreeSet::new(),
            power_loss: false,
            net_chaos: false,
            drifting: BTreeSet::new(),
            next_region_id: 1000,
            next_peer_id: 100_000,
            stats: NemesisStats::default(),
            pd_busy: BTreeSet::new(),
            pd_outage: false,
            pd_disruptions: 0,
            down_long: None,
            joined: false,
            findings: Vec::new(),
        }
    }

    /// State for a cluster whose ids PD allocates: the ids the nemesis picks for its own
    /// splits and peers start far above anything PD's allocator reaches in a run.
    fn with_pd() -> State {
        State {
            next_region_id: 1 << 40,
            next_peer_id: 1 << 41,
            ..State::new()
        }
    }

    /// Claims a store to corrupt and marks it corrupt at once (under the nemesis lock):
    /// refused during a power loss, if a store is already corrupt (or being corrupted), if
    /// fewer than three stores are healthy, or if every healthy store is busy.
    fn claim_for_corruption(
        &mut self,
        stores: &[u64],
        rng: &mut SeededRng,
    ) -> Result<u64, &'static str> {
        if self.power_loss {
            return Err("power loss in progress");
        }
        if !self.corrupt.is_empty() {
            return Err("a store is already corrupt (once per run)");
        }
        if stores.len() < 3 {
            return Err("would leave too few healthy stores");
        }
        let free: Vec<u64> = stores
            .iter()
            .copied()
            .filter(|id| !self.busy.contains(id))
            .collect();
        if free.is_empty() {
            return Err("no free store");
        }
        let id = free[rng.below(free.len() as u64) as usize];
        self.busy.insert(id);
        self.corrupt.insert(id);
        Ok(id)
    }
}

/// The fault injector of one run.
#[derive(Clone)]
pub struct Nemesis {
    cluster: Arc<SimCluster>,
    faults: Vec<Fault>,
    keys: u64,
    state: Arc<Mutex<State>>,
    start: tokio::time::Instant,
}

fn secs(rng: &mut SeededRng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.range(low * 1000, high * 1000))
}

impl Nemesis {
    /// A nemesis for `cluster` with the faults of `mask`, over `keys` workload keys.
    /// PD faults are dropped if the cluster has no PD.
    pub fn new(cluster: Arc<SimCluster>, mask: &FaultMask, keys: u64) -> Nemesis {
        let pd = cluster.pd.is_some();
        Nemesis {
            faults: mask
                .0
                .iter()
                .copied()
                .filter(|fault| pd || !fault.is_pd())
                .collect(),
            cluster,
            keys,
            state: Arc::new(Mutex::new(if pd { State::with_pd() } else { State::new() })),
            start: tokio::time::Instant::now(),
        }
    }

    fn note(&self, what: String) {
        let at = self.start.elapsed().as_millis();
        tracing::info!(at_ms = at, "nemesis: {what}");
        self.state
            .lock()
            .expect("nemesis lock")
            .log
            .push(format!("{at:>8} ms  {what}"));
    }

    /// Logs a fault that had no effect (at debug level; not counted as injected).
    fn noop(&self, what: String) {
        let at = self.start.elapsed().as_millis();
        tracing::debug!(at_ms = at, "nemesis: no effect: {what}");
        let mut state = self.state.lock().expect("nemesis lock");
        state.stats.noops += 1;
        state.log.push(format!("{at:>8} ms  (no effect) {what}"));
    }

    /// Counts a fault that took effect.
    fn count(&self, fault: Fault) {
        let mut state = self.state.lock().expect("nemesis lock");
        *state
            .stats
            .injected
            .entry(format!("{fault:?}"))
            .or_default() += 1;
    }

    /// The log so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("nemesis lock").log.clone()
    }

    /// Stores whose disk was corrupted: down for good, excluded from convergence checks.
    pub fn corrupt(&self) -> BTreeSet<u64> {
        self.state.lock().expect("nemesis lock").corrupt.clone()
    }

    /// Liveness findings of the faults themselves (empty if all is well).
    pub fn findings(&self) -> Vec<String> {
        self.state.lock().expect("nemesis lock").findings.clone()
    }

    /// Counters.
    pub fn stats(&self) -> NemesisStats {
        self.state.lock().expect("nemesis lock").stats.clone()
    }

    fn healthy_stores(&self) -> Vec<u64> {
        let state = self.state.lock().expect("nemesis lock");
        self.cluster
            .store_ids()
            .into_iter()
            .filter(|id| !state.corrupt.contains(id))
            .collect()
    }

    /// Claims a healthy store no other actor is faulting, for a node-level fault.
    fn claim_store(&self, rng: &mut SeededRng) -> Option<u64> {
        let mut state = self.state.lock().expect("nemesis lock");
        if state.power_loss {
            return None;
        }
        let free: Vec<u64> = self
            .cluster
            .store_ids()
            .into_iter()
            .filter(|id| !state.corrupt.contains(id) && !state.busy.contains(id))
            .collect();
        let id = *free.get(rng.below(free.len().max(1) as u64) as usize)?;
        state.busy.insert(id);
        Some(id)
    }

    fn claim_this(&self, id: u64) -> bool {
        let mut state = self.state.lock().expect("nemesis lock");
        !state.power_loss && !state.corrupt.contains(&id) && state.busy.insert(id)
    }

    fn release(&self, id: u64) {
        self.state.lock().expect("nemesis lock").busy.remove(&id);
    }

    /// What a crash leaves of the unsynced tail: nothing, all, a prefix, a prefix then
    /// zeros or garbage, or sectors persisted out of order.
    fn crash_tail(rng: &mut SeededRng) -> CrashTail {
        let bytes = rng.below(4096) as usize;
        match rng.below(6) {
            0 => CrashTail::DropAll,
            1 => CrashTail::KeepAll,
            2 => CrashTail::KeepPrefix(bytes),
            3 => CrashTail::ZeroedFrom(bytes),
            4 => CrashTail::GarbageFrom {
                bytes,
                seed: rng.next_u64(),
            },
            _ => CrashTail::Scrambled {
                seed: rng.next_u64(),
            },
        }
    }

    /// Runs `actors` concurrent fault actors and one operator actor (leader transfers,
    /// splits, membership changes, compactions: what a busy PD does) until `until`.
    pub async fn run(&self, actors: u64, until: tokio::time::Instant, rng: &SeededRng) {
        let (operations, faults): (Vec<Fault>, Vec<Fault>) =
            self.faults.iter().partition(|fault| fault.is_operation());
        let mut tasks: Vec<_> = (0..actors.max(1))
            .map(|actor| {
                let nemesis = self.clone();
                let rng = rng.fork(1000 + actor);
                let faults = faults.clone();
                madsim::task::spawn(async move { nemesis.actor(rng, until, faults, (1, 4)).await })
            })
            .collect();
        let nemesis = self.clone();
        let operator_rng = rng.fork(999);
        tasks.push(madsim::task::spawn(async move {
            nemesis.actor(operator_rng, until, operations, (0, 3)).await
        }));
        for task in tasks {
            task.await.expect("nemesis actor");
        }
    }

    async fn actor(
        &self,
        mut rng: SeededRng,
        until: tokio::time::Instant,
        faults: Vec<Fault>,
        pause_secs: (u64, u64),
    ) {
        while tokio::time::Instant::now() < until {
            let pause =
                Duration::from_millis(rng.range(pause_secs.0 * 1000 + 300, pause_secs.1 * 1000));
            tokio::time::sleep(pause).await;
            if faults.is_empty() || tokio::time::Instant::now() >= until {
                continue;
            }
            let fault = Self::weighted_pick(&faults, &mut rng);
            self.inject(fault, &mut rng).await;
        }
    }

    /// Picks a fault; the classic stale-read setups (a deposed leader that clients still
    /// reach) come up three times as often as the others, PD faults (few among many, in
    /// seeds with PD only) twice.
    fn weighted_pick(faults: &[Fault], rng: &mut SeededRng) -> Fault {
        let weight = |fault: &Fault| match fault {
            Fault::MinorityLeader | Fault::TransferThenCut => 3,
            fault if fault.is_pd() => 2,
            _ => 1,
        };
        let total: u64 = faults.iter().map(weight).sum();
        let mut roll = rng.below(total);
        for fault in faults {
            if roll < weight(fault) {
                return *fault;
            }
            roll -= weight(fault);
        }
        unreachable!("the roll falls inside the total")
    }

    /// Injects `fault`; each fault counts itself once it took effect.
    async fn inject(&self, fault: Fault, rng: &mut SeededRng) {
        match fault {
            Fault::KillRestart => self.kill_restart(rng).await,
            Fault::PowerLoss => self.power_loss(rng).await,
            Fault::Isolate => self.isolate(rng, false).await,
            Fault::IsolateLeader => self.isolate(rng, true).await,
            Fault::MinorityLeader => self.minority_leader(rng).await,
            Fault::Asymmetric => self.asymmetric(rng).await,
            Fault::Bridge => self.bridge(rng).await,
            Fault::Pause => self.pause(rng).await,
            Fault::NetChaos => self.net_chaos(rng).await,
            Fault::WallClock => self.wall_clock(rng).await,
            Fault::ClockDrift => self.clock_drift(rng).await,
            Fault::MonotonicJump => self.monotonic_jump(rng).await,
            Fault::FsyncFailure => self.disk_fault(rng, true).await,
            Fault::DiskFull => self.disk_fault(rng, false).await,
            Fault::CrashDuringLargeWrite => self.crash_during_large_write(rng).await,
            Fault::Corruption => self.corruption(rng).await,
            Fault::LeaderTransfer => self.leader_transfer(rng).await,
            Fault::Split => self.split(rng).await,
            Fault::Membership => self.membership(rng).await,
            Fault::CompactLog => self.compact_log(rng).await,
            Fault::TransferThenCut => self.transfer_then_cut(rng).await,
            Fault::PdLeaderKill => self.pd_leader_kill(rng).await,
            Fault::PdPartition => self.pd_partition(rng).await,
            Fault::PdClock => self.pd_clock(rng).await,
            Fault::StoreDownLong => self.store_down_long(rng).await,
            Fault::StoreJoin => self.store_join(rng).await,
        }
    }

    /// Undoes every fault still in effect: network healed, clocks corrected, disk faults
    /// cleared, every non-corrupt store running.
    pub async fn heal(&self) {
        let net = NetSim::current();
        net.update_config(|config| *config = madsim::net::Config::default());
        madsim::buggify::disable();
        self.cluster.restore_all_links();
        for store in self.cluster.stores() {
            self.cluster.reconnect(store.id);
            store.clock.correct();
            store.disk.set_faults(DiskFaults::default());
        }
        self.heal_pd();
        self.note("heal: network restored, clocks corrected, disk faults cleared".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corruption_claim_is_visible_before_the_first_await() {
        let mut state = State::new();
        let mut rng = SeededRng::new(1);
        let stores = [1, 2, 3, 4];
        let first = state
            .claim_for_corruption(&stores, &mut rng)
            .expect("first claim");
        // The store is corrupt (excluded from checks) and busy from the claim on; a second
        // actor arriving before the first one's damage lands is refused.
        assert!(state.corrupt.contains(&first) && state.busy.contains(&first));
        assert!(state.claim_for_corruption(&stores, &mut rng).is_err());
        // Too few stores, or all busy: refused too.
        let mut state = State::new();
        assert!(state.claim_for_corruption(&[1, 2], &mut rng).is_err());
        state.busy.extend([1, 2, 3]);
        assert!(state.claim_for_corruption(&[1, 2, 3], &mut rng).is_err());
        assert!(state.corrupt.is_empty());
    }
}
