//! What every store says about itself: its regions, written beside a failed seed's
//! nemesis log (for a liveness failure the first question is which peers each region has,
//! in which role, and who leads it), and its pessimistic-lock waits, summed for the seed.

use std::collections::BTreeSet;

use ferrokv_proto::metapb::{Peer, PeerRole};

use super::liveness::collect_reports;
use crate::checker::regions::StoreReports;
use crate::cluster::SimCluster;

/// Pessimistic-lock waits summed over the stores that answer: queued, woken, timed out,
/// deadlocks refused. A lower bound: a store's counts restart with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockWaitTotals {
    pub waited: u64,
    pub woken: u64,
    pub timed_out: u64,
    pub deadlocks: u64,
    /// Of `deadlocks`, found by the cluster's detector (a cycle across stores).
    pub remote_deadlocks: u64,
}

/// Sums every live store's lock-wait counters (after the run's fingerprint was taken).
pub(super) async fn lock_wait_totals(
    cluster: &SimCluster,
    corrupt: &BTreeSet<u64>,
) -> LockWaitTotals {
    let mut totals = LockWaitTotals::default();
    for store in cluster.stores() {
        if corrupt.contains(&store.id) {
            continue;
        }
        let counters = ferrokv_client::admin::store_report(&store.addr, false)
            .await
            .and_then(|report| report.counters);
        if let Some(c) = counters {
            totals.waited += c.lock_waits;
            totals.woken += c.lock_waits_woken;
            totals.timed_out += c.lock_waits_timed_out;
            totals.deadlocks += c.deadlocks;
            totals.remote_deadlocks += c.remote_deadlocks;
        }
    }
    totals
}

/// The lines appended to the nemesis log of a seed that failed on liveness.
pub(super) async fn regions_at_failure(
    cluster: &SimCluster,
    corrupt: &BTreeSet<u64>,
) -> Vec<String> {
    let (reports, silent) = collect_reports(cluster, corrupt).await;
    let mut lines = vec![format!(
        "--- regions as each store reports them at the failure (corrupt stores {corrupt:?}, silent {silent:?})"
    )];
    lines.extend(describe(&reports));
    lines
}

/// One line per (region, store) pair, regions in id order.
fn describe(reports: &[StoreReports]) -> Vec<String> {
    let mut rows = Vec::new();
    for (store, regions) in reports {
        for info in regions {
            let Some(region) = &info.region else { continue };
            let epoch = region
                .region_epoch
                .as_ref()
                .map_or((0, 0), |e| (e.conf_ver, e.version));
            let peers: Vec<String> = region.peers.iter().map(peer).collect();
            rows.push((
                region.id,
                *store,
                format!(
                    "region {} on store {store}: epoch (conf_ver, version) {epoch:?}, peers [{}], leader {:?}, term {}, commit {}, applied {} (term {}), truncated {}",
                    region.id,
                    peers.join(", "),
                    info.leader.as_ref().map(|l| l.id),
                    info.term,
                    info.commit_index,
                    info.applied_index,
                    info.applied_term,
                    info.truncated_index,
                ),
            ));
        }
    }
    rows.sort_by_key(|(region, store, _)| (*region, *store));
    rows.into_iter().map(|(_, _, line)| line).collect()
}

fn peer(peer: &Peer) -> String {
    let role = match PeerRole::try_from(peer.role).unwrap_or(PeerRole::Voter) {
        PeerRole::Voter => "voter",
        PeerRole::Learner => "learner",
        PeerRole::IncomingVoter => "incoming",
        PeerRole::DemotingVoter => "demoting",
    };
    format!("{}@{} {role}", peer.id, peer.store_id)
}
