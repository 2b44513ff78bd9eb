//! Replica checker: keeps every region at `max_replicas` healthy voters.
//!
//! Input: one region's registered metadata and fresh heartbeat, store health, config.
//! Output: at most one `Replica` operator, chosen in this order:
//! 1. a learner no operator owns: promote it if voters are missing and it caught up, wait
//!    while it catches up, remove it if it stayed pending for `operator_region_timeout_ms`
//!    with no operator on the region (after the operator that added it, if any, finished
//!    or timed out: the learner had two such spans; its store may refuse it forever, as a
//!    peer id below one the store already destroyed for the region), or if no voter is
//!    missing;
//! 2. a voter on a lost store (down past `max_store_down_time_ms`, offline, tombstone or
//!    unknown): remove it if there are spare voters, else rebuild it elsewhere (add learner
//!    -> promote -> remove);
//! 3. too few voters: add one (add learner -> promote);
//! 4. too many voters: remove the least useful non-leader voter.
//!
//! Nothing is planned for a region with an operator or without a heartbeat that matches its
//! registered epoch.

use ferrokv_core::env::Rng;
use ferrokv_core::types::{PeerId, RegionId, StoreId};
use ferrokv_proto::metapb;

use super::{add_voter_steps, pick_target_store, replace_peer_steps};
use crate::heartbeat::RegionReport;
use crate::id_alloc::IdSource;
use crate::memory::RegionStats;
use crate::meta;
use crate::operator::{Operator, OperatorKind, Step};
use crate::view::ClusterView;

/// Plans a replica repair for `region_id`.
pub fn plan(
    view: &ClusterView<'_>,
    region_id: RegionId,
    rng: &mut dyn Rng,
    ids: &mut dyn IdSource,
) -> Option<Operator> {
    if view.is_busy(region_id) {
        return None;
    }
    let region = view.region(region_id)?;
    let stats = view.fresh_stats(region_id)?;
    let report = &stats.report;
    let steps = match orphan_learner(view, region, stats) {
        Verdict::Act(steps) => steps,
        Verdict::Wait => return None,
        Verdict::Pass => lost_voter(view, region, rng, ids)
            .or_else(|| missing_voter(view, region, rng, ids))
            .or_else(|| extra_voter(view, region, report))?,
    };
    Some(Operator::new(
        region,
        OperatorKind::Replica,
        steps,
        view.now_ms,
        view.config,
    ))
}

/// What the learner check decided.
enum Verdict {
    /// Run these steps.
    Act(Vec<Step>),
    /// Do nothing this round (a learner is still catching up).
    Wait,
    /// Nothing to do about learners; go on with the voter checks.
    Pass,
}

fn is_lost(view: &ClusterView<'_>, peer: &metapb::Peer) -> bool {
    view.store_health(StoreId(peer.store_id)).is_lost()
}

fn orphan_learner(view: &ClusterView<'_>, region: &metapb::Region, stats: &RegionStats) -> Verdict {
    let report = &stats.report;
    let Some(learner) = region.peers.iter().find(|peer| meta::is_learner(peer)) else {
        return Verdict::Pass;
    };
    let peer_id = PeerId(learner.id);
    let store_id = StoreId(learner.store_id);
    let voters_missing = meta::voter_count(region) < view.config.max_replicas;
    if !is_lost(view, learner) && voters_missing {
        let stuck_for = stats.unhealthy_for_ms(learner.id, view.now_ms);
        let catching_up = report.is_pending(learner.id) || report.is_down(learner.id);
        if catching_up && stuck_for < view.config.operator_region_timeout_ms {
            return Verdict::Wait;
        }
        if !catching_up {
            return Verdict::Act(vec![Step::PromoteLearner { peer_id, store_id }]);
        }
    }
    Verdict::Act(vec![Step::RemovePeer { peer_id, store_id }])
}

fn lost_voter(
    view: &ClusterView<'_>,
    region: &metapb::Region,
    rng: &mut dyn Rng,
    ids: &mut dyn IdSource,
) -> Option<Vec<Step>> {
    let lost = region
        .peers
        .iter()
        .find(|peer| meta::is_voter(peer) && is_lost(view, peer))?;
    if meta::voter_count(region) > view.config.max_replicas {
        return Some(vec![Step::RemovePeer {
            peer_id: PeerId(lost.id),
            store_id: StoreId(lost.store_id),
        }]);
    }
    let target = pick_target_store(view, region, rng)?;
    let new_peer = PeerId(ids.next_id()?);
    Some(replace_peer_steps(lost, new_peer, target))
}

fn missing_voter(
    view: &ClusterView<'_>,
    region: &metapb::Region,
    rng: &mut dyn Rng,
    ids: &mut dyn IdSource,
) -> Option<Vec<Step>> {
    if meta::voter_count(region) >= view.config.max_replicas {
        return None;
    }
    let target = pick_target_store(view, region, rng)?;
    let new_peer = PeerId(ids.next_id()?);
    Some(add_voter_steps(new_peer, target))
}

fn extra_voter(
    view: &ClusterView<'_>,
    region: &metapb::Region,
    report: &RegionReport,
) -> Option<Vec<Step>> {
    if meta::voter_count(region) <= view.config.max_replicas {
        return None;
    }
    let counts = view.region_counts();
    let victim = region
        .peers
        .iter()
        .filter(|peer| meta::is_voter(peer) && peer.id != report.leader.id)
        .max_by_key(|peer| {
            let unhealthy = report.is_pending(peer.id) || report.is_down(peer.id);
            let load = counts.get(&StoreId(peer.store_id)).copied().unwrap_or(0);
            (unhealthy, load, std::cmp::Reverse(peer.store_id))
        })?;
    Some(vec![Step::RemovePeer {
        peer_id: PeerId(victim.id),
        store_id: StoreId(victim.store_id),
    }])
}

#[cfg(test)]
mod tests;
