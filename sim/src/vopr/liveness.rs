//! The progress phase and the final checks, after the nemesis healed the cluster.
//!
//! Progress is required, not hoped for: every call invoked `PROGRESS_GRACE` after healing
//! must succeed (an unknown or failed outcome is a liveness failure), every client must
//! complete `PROGRESS_CALLS` such calls (at least one an acknowledged write), every pending call must finish, every store that
//! is not corrupt must answer, and every region must settle on one leader with every peer of
//! its newest epoch at the same applied index and data hash, all within `LIVENESS_BUDGET`
//! of simulated time. Then one final write per key group must be acknowledged and every key
//! read back definitely, so the history ends on a known state the checker must explain. A
//! store whose disk was corrupted must *not* answer: it has to refuse to start. With PD,
//! settling also means every region is back to full replica count on live stores (PD
//! rebuilt the replicas of any store down past its timeout), and PD must hand out a
//! timestamp after healing.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokv_client::admin::store_report;

use super::workload::{elapsed_ns, key_bytes, Progress};
use super::{Clients, Failure, LIVENESS_BUDGET, PROGRESS_CALLS};
use crate::checker::regions::{
    check_convergence, check_peers_present, newest_regions, StoreReports,
};
use crate::cluster::SimCluster;
use crate::history::{Event, History, Op, Outcome, GROUP_KEYS};

/// Requires progress from every client after healing, then stops them; every pending call
/// must finish, and none invoked after the grace period may end unknown or failed.
pub(super) async fn progress(
    cluster: &SimCluster,
    corrupt: &BTreeSet<u64>,
    clients: Clients,
    start: tokio::time::Instant,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + LIVENESS_BUDGET;
    clients
        .healed_at
        .store(elapsed_ns(start).max(1), Ordering::Relaxed);
    for (process, progress) in clients.progress.iter().enumerate() {
        loop {
            stuck(&clients.progress)?;
            let (successes, writes) = (
                progress.successes.load(Ordering::Relaxed),
                progress.writes.load(Ordering::Relaxed),
            );
            if successes >= PROGRESS_CALLS && writes >= 1 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Failure::liveness(format!(
                    "client {} completed {successes} successful calls ({writes} writes) after healing and the grace period; {PROGRESS_CALLS} (at least one write) required",
                    process + 1,
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    clients.stop.store(true, Ordering::Relaxed);
    for task in clients.tasks {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(Failure::new(
                    super::FailureKind::Panic,
                    format!("a client task failed: {error}"),
                ))
            }
            Err(_) => {
                return Err(Failure::liveness(
                    "a client call did not finish after healing",
                ))
            }
        }
    }
    stuck(&clients.progress)?;
    settle(cluster, corrupt, deadline).await
}

/// The first call (of any client) that did not succeed after the grace period.
fn stuck(progress: &[Arc<Progress>]) -> Result<(), Failure> {
    for client in progress {
        if let Some(why) = client.stuck.lock().expect("progress lock").clone() {
            return Err(Failure::liveness(why));
        }
    }
    Ok(())
}

/// Waits until every store answers and every region is settled and converged.
async fn settle(
    cluster: &SimCluster,
    corrupt: &BTreeSet<u64>,
    deadline: tokio::time::Instant,
) -> Result<(), Failure> {
    loop {
        let (reports, silent) = collect_reports(cluster, corrupt).await;
        let verdict = match silent.first() {
            Some(store) => Err(Failure::liveness(format!("store {store} does not answer"))),
            None => settled(&reports, corrupt, cluster.pd.is_some()),
        };
        match verdict {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(Failure::new(
                    why.kind,
                    format!("not settled after healing: {}", why.detail),
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Settled: every region led (else a liveness failure), with PD every region back to full
/// replica count on live stores (else a liveness failure: PD did not rebuild them), every
/// peer present and every replica caught up with the same data (else a convergence
/// failure).
fn settled(reports: &[StoreReports], corrupt: &BTreeSet<u64>, pd: bool) -> Result<(), Failure> {
    leaders_settled(reports).map_err(Failure::liveness)?;
    if pd {
        super::pd_mode::replicas_rebuilt(reports, corrupt)
            .map_err(|why| Failure::liveness(format!("replicas not rebuilt: {why}")))?;
    }
    check_peers_present(reports, corrupt).map_err(Failure::convergence)?;
    check_convergence(reports, true).map_err(Failure::convergence)
}

/// Reports of every store outside `corrupt` (with data hashes), and the ids of those that
/// did not answer.
pub(super) async fn collect_reports(
    cluster: &SimCluster,
    corrupt: &BTreeSet<u64>,
) -> (Vec<StoreReports>, Vec<u64>) {
    let mut reports = Vec::new();
    let mut silent = Vec::new();
    for store in cluster.stores() {
        let id = &store.id;
        if corrupt.contains(id) {
            continue;
        }
        match store_report(&store.addr, true).await {
            Some(report) => {
                let misses = report.counters.map_or(0, |c| c.override_misses);
                assert_eq!(
                    misses, 0,
                    "store {id}: raft-rs drew election timeouts the override missed"
                );
                let refused = report.counters.map_or(0, |c| c.raft_messages_refused);
                assert_eq!(
                    refused, 0,
                    "store {id}: raft messages refused in a run without a forger (a refusal rule dropped an honest message, or the store lost log it had acknowledged)"
                );
                reports.push((*id, report.regions));
            }
            None => silent.push(*id),
        }
    }
    (reports, silent)
}

/// Every newest region has exactly one leader that all its members agree on. Replicas on
/// stores outside the newest peer list (removed while cut off, awaiting peer GC) are not
/// members and may still name an old leader; they are listed in the message only.
fn leaders_settled(reports: &[StoreReports]) -> Result<(), String> {
    for (region_id, newest) in newest_regions(reports) {
        let mut leaders = BTreeSet::new();
        let mut seen = Vec::new();
        for (store, regions) in reports {
            for info in regions.iter() {
                let Some(region) = info.region.as_ref().filter(|r| r.id == region_id) else {
                    continue;
                };
                let leader = info.leader.map(|leader| leader.id);
                let member = newest.peers.iter().any(|peer| peer.store_id == *store);
                seen.push(format!(
                    "store {store}{}: {:?} leader {leader:?}",
                    if member { "" } else { " (not a member)" },
                    region
                        .region_epoch
                        .as_ref()
                        .map(|e| (e.conf_ver, e.version)),
                ));
                if member {
                    leaders.insert(leader);
                }
            }
        }
        if leaders.len() != 1 || leaders.contains(&None) {
            return Err(format!(
                "region {region_id}: leaders {leaders:?} ({})",
                seen.join("; ")
            ));
        }
    }
    Ok(())
}

/// Final writes and reads (each must succeed), the corrupt-store check, the reports to
/// judge and every store's trace hash.
pub(super) async fn final_checks(
    cluster: Arc<SimCluster>,
    corrupt: BTreeSet<u64>,
    keys: u64,
    start: tokio::time::Instant,
    history: Arc<Mutex<History>>,
) -> (Vec<StoreReports>, Vec<(u64, u64)>, Option<Failure>) {
    let client = ferrokv_client::RawClient::new(cluster.client_config());
    let record = |op: Op, outcome: Outcome, invoked_ns: u64| {
        let event = Event {
            process: 0,
            op,
            outcome,
            invoked_ns,
            completed_ns: elapsed_ns(start),
        };
        history.lock().expect("history lock").events.push(event);
    };
    let mut failure = None;
    // One acknowledged write per group (process 0's values, 1, 2, ...: unique, since every
    // client's values carry its process id in the high bits), so every group's history ends
    // on a write the checker must place after everything that was acknowledged before it.
    for group in 0..keys / GROUP_KEYS {
        let key = group * GROUP_KEYS + group % GROUP_KEYS;
        let value = group + 1;
        let invoked_ns = elapsed_ns(start);
        let result = client.put(&key_bytes(key), &value.to_be_bytes(), 0).await;
        let outcome = super::workload::write_outcome(&result);
        if let Err(error) = result {
            failure.get_or_insert(Failure::liveness(format!(
                "final write of key {key} did not succeed: {error}"
            )));
        }
        record(Op::Put(key, value), outcome, invoked_ns);
    }
    for key in 0..keys {
        let invoked_ns = elapsed_ns(start);
        let outcome = match client.get(&key_bytes(key)).await {
            Ok(found) => Outcome::Read(
                found.map(|v| v.as_slice().try_into().map_or(u64::MAX, u64::from_be_bytes)),
            ),
            Err(error) => {
                failure.get_or_insert(Failure::liveness(format!(
                    "final read of key {key} not definite: {error}"
                )));
                Outcome::Unknown
            }
        };
        record(Op::Get(key), outcome, invoked_ns);
    }
    // (Seeds with PD take one more timestamp after healing in `PdRun::finish`, checked
    // with the others.)
    for id in &corrupt {
        if store_report(&cluster.store(*id).addr, false)
            .await
            .is_some()
        {
            failure.get_or_insert(Failure::violation(format!(
                "store {id} started from a corrupt disk"
            )));
        }
    }
    // Background entries (log compaction, lease renewals) may be in flight: give the
    // replicas a moment to reach the same applied index before judging them.
    let settle_until = tokio::time::Instant::now() + Duration::from_secs(10);
    let (mut reports, _) = collect_reports(&cluster, &corrupt).await;
    while check_convergence(&reports, true).is_err() && tokio::time::Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        reports = collect_reports(&cluster, &corrupt).await.0;
    }
    let mut traces = Vec::new();
    for store in cluster.stores() {
        let id = &store.id;
        let trace = ferrokv_client::admin::store_trace(&store.addr)
            .await
            .unwrap_or(0);
        traces.push((*id, trace));
    }
    (reports, traces, failure)
}
