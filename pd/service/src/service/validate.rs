//! Bounds checked at the edge, before anything reaches the state machine.
//!
//! The replicated state raises its id limit above every id it stores, and ids come from
//! `AllocID`, far below `ID_INPUT_MAX`; a request naming an id near `u64::MAX` would exhaust
//! the id space (a panic in the state machine), so it is refused with `INVALID_VALUE`.

use ferrokv_pd_core::meta;
use ferrokv_proto::metapb;

/// Largest id (store, region or peer) a request may name, exclusive.
pub const ID_INPUT_MAX: u64 = 1 << 62;

/// True if every id of `region` (its own, its peers' and their stores') is in range.
pub fn region_ids_ok(region: &metapb::Region) -> bool {
    let stores_ok = region.peers.iter().all(|peer| peer.store_id < ID_INPUT_MAX);
    meta::max_id(region) < ID_INPUT_MAX && stores_ok
}

/// True if the store's id is in range.
pub fn store_id_ok(store: &metapb::Store) -> bool {
    store.id < ID_INPUT_MAX
}

/// The message for an out-of-range id.
pub const ID_OUT_OF_RANGE: &str = "an id is out of range (ids come from AllocID)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_near_the_top_of_the_space_are_refused() {
        let mut region = metapb::Region {
            id: 3,
            peers: vec![metapb::Peer {
                id: 4,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(region_ids_ok(&region));
        region.peers[0].id = u64::MAX;
        assert!(!region_ids_ok(&region));
        region.peers[0].id = 4;
        region.peers[0].store_id = ID_INPUT_MAX;
        assert!(!region_ids_ok(&region));
        let store = metapb::Store {
            id: u64::MAX,
            ..Default::default()
        };
        assert!(!store_id_ok(&store));
    }
}
