//! Per-region checkers, run when a region heartbeat finds no operator on the region:
//! `replica` (repair lost peers, fix the replica count), `split` (split oversized regions)
//! and `peer_gc` (tell a removed peer to destroy itself). Each is a pure function of a
//! `ClusterView`; this module holds the helpers they share.

pub mod peer_gc;
pub mod replica;
pub mod split;

use ferrokv_core::env::Rng;
use ferrokv_core::types::{PeerId, StoreId};
use ferrokv_proto::metapb;

use crate::meta;
use crate::operator::Step;
use crate::view::ClusterView;

/// The Up store holding no peer of `region` with the fewest peers; ties are broken by `rng`.
pub fn pick_target_store(
    view: &ClusterView<'_>,
    region: &metapb::Region,
    rng: &mut dyn Rng,
) -> Option<StoreId> {
    let counts = view.region_counts();
    let candidates: Vec<(StoreId, u64)> = counts
        .into_iter()
        .filter(|(store, _)| meta::peer_on_store(region, *store).is_none())
        .collect();
    let fewest = candidates.iter().map(|(_, count)| *count).min()?;
    let tied: Vec<StoreId> = candidates
        .iter()
        .filter(|(_, count)| *count == fewest)
        .map(|(store, _)| *store)
        .collect();
    assert!(!tied.is_empty());
    let index = rng.below(tied.len() as u64) as usize;
    Some(tied[index])
}

/// Steps that add a voter `new_peer` on `to_store`: as a learner first, so the region's
/// quorum never waits for a peer still receiving its snapshot.
pub fn add_voter_steps(new_peer: PeerId, to_store: StoreId) -> Vec<Step> {
    vec![
        Step::AddLearner {
            peer_id: new_peer,
            store_id: to_store,
        },
        Step::PromoteLearner {
            peer_id: new_peer,
            store_id: to_store,
        },
    ]
}

/// Steps that replace `old` with a new voter on `to_store`: add learner, promote, remove.
pub fn replace_peer_steps(old: &metapb::Peer, new_peer: PeerId, to_store: StoreId) -> Vec<Step> {
    assert!(
        old.store_id != to_store.0,
        "a replacement lives on another store"
    );
    let mut steps = add_voter_steps(new_peer, to_store);
    steps.push(Step::RemovePeer {
        peer_id: PeerId(old.id),
        store_id: StoreId(old.store_id),
    });
    steps
}
