//! Applying the store and bootstrap commands.
//!
//! Store lifecycle (PD's): a store is created Up by `PutStore`; it moves Up <-> Offline, and
//! Offline -> Tombstone once no region keeps a peer on it. A tombstone never changes again
//! and cannot be put back. `PutStore` updates addresses and labels but never the state.

use ferrokv_core::types::StoreId;
use ferrokv_proto::metapb::{self, NodeState, StoreState};

use super::{ApplyError, PdOutcome, PdState};
use crate::limits::STORES_MAX;
use crate::meta;

impl PdState {
    pub(super) fn apply_bootstrap(
        &mut self,
        cluster_id: u64,
        store: &metapb::Store,
        region: &metapb::Region,
    ) -> PdOutcome {
        if self.is_bootstrapped() {
            return PdOutcome::Refused(ApplyError::AlreadyBootstrapped {
                cluster_id: self.cluster_id,
            });
        }
        if let Err(error) = validate_bootstrap(cluster_id, store, region) {
            return PdOutcome::Refused(error);
        }
        assert!(self.stores.is_empty() && self.regions.is_empty());
        self.cluster_id = cluster_id;
        self.stores
            .insert(StoreId(store.id), with_state(store.clone(), StoreState::Up));
        let displaced = self.regions.put(region.clone());
        assert!(displaced.is_empty());
        PdOutcome::Bootstrapped { cluster_id }
    }

    pub(super) fn apply_put_store(&mut self, store: &metapb::Store) -> PdOutcome {
        if !self.is_bootstrapped() {
            return PdOutcome::Refused(ApplyError::NotBootstrapped);
        }
        if let Err(error) = self.check_put_store(store) {
            return PdOutcome::Refused(error);
        }
        let store_id = StoreId(store.id);
        let (state, created) = match self.stores.get(&store_id) {
            Some(existing) => (existing.state(), false),
            None => (StoreState::Up, true),
        };
        let updated = with_state(store.clone(), state);
        if self.stores.get(&store_id) == Some(&updated) {
            return PdOutcome::Unchanged;
        }
        self.stores.insert(store_id, updated);
        assert!(self.stores.len() <= STORES_MAX);
        PdOutcome::StorePut { store_id, created }
    }

    fn check_put_store(&self, store: &metapb::Store) -> Result<(), ApplyError> {
        if store.id == 0 {
            return Err(ApplyError::InvalidStore("store id is 0"));
        }
        if store.address.is_empty() {
            return Err(ApplyError::InvalidStore("store address is empty"));
        }
        let store_id = StoreId(store.id);
        match self.stores.get(&store_id) {
            Some(existing) if existing.state() == StoreState::Tombstone => {
                return Err(ApplyError::StoreTombstone(store_id));
            }
            None if self.stores.len() >= STORES_MAX => return Err(ApplyError::TooManyStores),
            _ => {}
        }
        let clash = self.stores.values().find(|other| {
            other.id != store.id
                && other.address == store.address
                && other.state() != StoreState::Tombstone
        });
        match clash {
            Some(other) => Err(ApplyError::DuplicateAddress(StoreId(other.id))),
            None => Ok(()),
        }
    }

    pub(super) fn apply_store_state(&mut self, store_id: StoreId, to: StoreState) -> PdOutcome {
        let Some(store) = self.stores.get(&store_id) else {
            return PdOutcome::Refused(ApplyError::StoreNotFound(store_id));
        };
        let from = store.state();
        if from == to {
            return PdOutcome::Unchanged;
        }
        if let Err(error) = self.check_transition(store_id, from, to) {
            return PdOutcome::Refused(error);
        }
        let updated = with_state(store.clone(), to);
        self.stores.insert(store_id, updated);
        assert_eq!(self.stores[&store_id].state(), to);
        PdOutcome::StoreStateSet { store_id, from, to }
    }

    fn check_transition(
        &self,
        store_id: StoreId,
        from: StoreState,
        to: StoreState,
    ) -> Result<(), ApplyError> {
        let allowed = matches!(
            (from, to),
            (StoreState::Up, StoreState::Offline)
                | (StoreState::Offline, StoreState::Up)
                | (StoreState::Offline, StoreState::Tombstone)
        );
        if !allowed {
            return Err(ApplyError::InvalidStoreTransition { store_id, from, to });
        }
        if to == StoreState::Tombstone {
            let peer_count = self
                .regions
                .iter()
                .filter(|region| meta::peer_on_store(region, store_id).is_some())
                .count();
            if peer_count > 0 {
                return Err(ApplyError::StoreNotEmpty {
                    store_id,
                    peer_count,
                });
            }
        }
        Ok(())
    }
}

fn validate_bootstrap(
    cluster_id: u64,
    store: &metapb::Store,
    region: &metapb::Region,
) -> Result<(), ApplyError> {
    if cluster_id == 0 {
        return Err(ApplyError::InvalidBootstrap("cluster id is 0"));
    }
    if store.id == 0 || store.address.is_empty() {
        return Err(ApplyError::InvalidBootstrap(
            "store needs an id and an address",
        ));
    }
    meta::validate_region(region).map_err(ApplyError::InvalidRegion)?;
    if !region.start_key.is_empty() || !region.end_key.is_empty() {
        return Err(ApplyError::InvalidBootstrap(
            "the first region must span the whole key space",
        ));
    }
    let single_peer_on_store = region.peers.len() == 1 && region.peers[0].store_id == store.id;
    if !single_peer_on_store {
        return Err(ApplyError::InvalidBootstrap(
            "the first region has one peer, on the first store",
        ));
    }
    Ok(())
}

/// The store with `state` and the matching `node_state`.
fn with_state(mut store: metapb::Store, state: StoreState) -> metapb::Store {
    store.set_state(state);
    store.set_node_state(match state {
        StoreState::Up => NodeState::Serving,
        StoreState::Offline => NodeState::Removing,
        StoreState::Tombstone => NodeState::Removed,
    });
    store
}
