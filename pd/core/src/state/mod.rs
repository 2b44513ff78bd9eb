//! `PdState`: the replicated state machine every PD member holds.
//!
//! Inputs: committed `PdCommand`s in log order (`apply`), or a snapshot (`restore`).
//! Outputs: a `PdOutcome` per command, read access for routing and planning, and snapshot
//! bytes. Invariants: the cluster id never changes once set; the id limit, TSO limit and GC
//! safe point never decrease; every id the state mentions is below the id limit; no two
//! regions overlap; a tombstone store stays a tombstone. `apply` is deterministic: equal
//! states fed equal commands produce equal states and outcomes on every member.

pub mod codec;
pub mod command;
mod pb;
mod stores;

use std::collections::BTreeMap;

use ferrokv_core::types::StoreId;
use ferrokv_proto::metapb;

use crate::meta;
use crate::registry::check::{classify, RegionChange};
use crate::registry::RegionRegistry;
pub use command::{ApplyError, PdCommand, PdOutcome};

/// The replicated PD state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PdState {
    cluster_id: u64,
    stores: BTreeMap<StoreId, metapb::Store>,
    regions: RegionRegistry,
    id_limit: u64,
    tso_limit_ms: u64,
    gc_safe_point: u64,
}

impl PdState {
    /// The state of a PD that has applied nothing.
    pub fn new() -> PdState {
        PdState::default()
    }

    /// True once `Bootstrap` applied.
    pub fn is_bootstrapped(&self) -> bool {
        self.cluster_id != 0
    }

    /// The cluster id; 0 before bootstrap.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The store with this id, in any state.
    pub fn store(&self, id: StoreId) -> Option<&metapb::Store> {
        self.stores.get(&id)
    }

    /// All stores in id order, tombstones included.
    pub fn stores(&self) -> impl Iterator<Item = &metapb::Store> {
        self.stores.values()
    }

    /// The region metadata registry.
    pub fn regions(&self) -> &RegionRegistry {
        &self.regions
    }

    /// Ids at or above this were never handed out.
    pub fn id_limit(&self) -> u64 {
        self.id_limit
    }

    /// No timestamp at or above this physical ms was handed out.
    pub fn tso_limit_ms(&self) -> u64 {
        self.tso_limit_ms
    }

    /// The GC safe point.
    pub fn gc_safe_point(&self) -> u64 {
        self.gc_safe_point
    }

    /// Applies one committed command.
    pub fn apply(&mut self, command: &PdCommand) -> PdOutcome {
        let id_limit_before = self.id_limit;
        let tso_limit_before = self.tso_limit_ms;
        let safe_point_before = self.gc_safe_point;
        let outcome = self.apply_command(command);
        if let PdOutcome::Refused(_) | PdOutcome::Unchanged = outcome {
            assert_eq!(self.id_limit, id_limit_before);
        } else {
            self.raise_id_limit_above(command.max_id());
        }
        assert!(self.id_limit >= id_limit_before, "id limit moved back");
        assert!(
            self.tso_limit_ms >= tso_limit_before,
            "tso limit moved back"
        );
        assert!(
            self.gc_safe_point >= safe_point_before,
            "safe point moved back"
        );
        outcome
    }

    fn apply_command(&mut self, command: &PdCommand) -> PdOutcome {
        match command {
            PdCommand::Bootstrap {
                cluster_id,
                store,
                region,
            } => self.apply_bootstrap(*cluster_id, store, region),
            PdCommand::PutStore { store } => self.apply_put_store(store),
            PdCommand::SetStoreState { store_id, state } => {
                self.apply_store_state(*store_id, *state)
            }
            PdCommand::SetIdLimit { limit } => self.apply_id_limit(*limit),
            PdCommand::SetTsoLimit { limit_ms } => self.apply_tso_limit(*limit_ms),
            PdCommand::UpdateGcSafePoint { safe_point } => self.apply_gc_safe_point(*safe_point),
            PdCommand::PutRegion { region } => self.apply_put_region(region),
        }
    }

    fn raise_id_limit_above(&mut self, max_id: u64) {
        if max_id >= self.id_limit {
            self.id_limit = max_id.checked_add(1).expect("id space exhausted");
        }
        assert!(self.id_limit > max_id);
    }

    fn apply_id_limit(&mut self, limit: u64) -> PdOutcome {
        if limit <= self.id_limit {
            return PdOutcome::Refused(ApplyError::IdLimitNotAbove {
                current: self.id_limit,
                requested: limit,
            });
        }
        self.id_limit = limit;
        PdOutcome::IdLimitSet { limit }
    }

    fn apply_tso_limit(&mut self, limit_ms: u64) -> PdOutcome {
        if limit_ms <= self.tso_limit_ms {
            return PdOutcome::Refused(ApplyError::TsoLimitNotAbove {
                current: self.tso_limit_ms,
                requested: limit_ms,
            });
        }
        self.tso_limit_ms = limit_ms;
        PdOutcome::TsoLimitSet { limit_ms }
    }

    fn apply_gc_safe_point(&mut self, safe_point: u64) -> PdOutcome {
        if !self.is_bootstrapped() {
            return PdOutcome::Refused(ApplyError::NotBootstrapped);
        }
        let previous = self.gc_safe_point;
        if safe_point < previous {
            return PdOutcome::Refused(ApplyError::GcSafePointBelow {
                current: previous,
                requested: safe_point,
            });
        }
        if safe_point == previous {
            return PdOutcome::Unchanged;
        }
        self.gc_safe_point = safe_point;
        PdOutcome::GcSafePointSet {
            previous,
            safe_point,
        }
    }

    fn apply_put_region(&mut self, region: &metapb::Region) -> PdOutcome {
        if !self.is_bootstrapped() {
            return PdOutcome::Refused(ApplyError::NotBootstrapped);
        }
        if let Err(error) = meta::validate_region(region) {
            return PdOutcome::Refused(ApplyError::InvalidRegion(error));
        }
        let change = match classify(&self.regions, region) {
            Err(reason) => return PdOutcome::Refused(ApplyError::RegionStale(reason)),
            Ok(RegionChange::Unchanged) => return PdOutcome::Unchanged,
            Ok(change) => change,
        };
        let displaced = self.regions.put(region.clone());
        assert!(self.regions.get(meta::region_id(region)).is_some());
        PdOutcome::RegionPut {
            region_id: meta::region_id(region),
            change,
            displaced,
        }
    }

    /// Checks every invariant over the whole state (O(n)); for restores and tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.regions.check_invariants()?;
        let mut max_id = 0;
        for (id, store) in &self.stores {
            if id.0 != store.id || store.id == 0 {
                return Err(format!("store {id} indexed under a wrong id"));
            }
            max_id = max_id.max(store.id);
        }
        for region in self.regions.iter() {
            max_id = max_id.max(meta::max_id(region));
        }
        if max_id != 0 && max_id >= self.id_limit {
            return Err(format!("id {max_id} is not below the id limit"));
        }
        let holds_metadata = !self.stores.is_empty() || !self.regions.is_empty();
        if !self.is_bootstrapped() && holds_metadata {
            return Err("stores or regions exist before bootstrap".into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
