//! Model-based property test of the region registry inside `PdState`.
//!
//! A model cluster starts as one region over the whole key space and evolves by splits
//! (both halves get `version + 1`; the right half gets a new id) and membership changes
//! (`conf_ver + 1`). Every region metadata the model ever had is kept as history. The test
//! delivers random history entries (stale or current) to `PdState::apply` as `PutRegion`,
//! interleaved with model steps, and checks after every step:
//! - the registry never holds overlapping regions (`check_invariants`);
//! - a region's registered epoch never goes back;
//! - an accepted region is never older than anything registered for its id or range.
//!
//! At the end, once every current region has been delivered (in random order), the
//! registry equals the model exactly and tiles the key space: the newest epochs win.

use std::collections::BTreeMap;

use ferrokv_core::types::RegionId;
use ferrokv_pd_core::meta;
use ferrokv_pd_core::{PdCommand, PdOutcome, PdState};
use ferrokv_proto::metapb::{self, PeerRole};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Split the model region at `pick % len` at a key chosen from `key_seed`.
    Split { pick: usize, key_seed: u16 },
    /// Bump the membership of a model region.
    ConfChange { pick: usize },
    /// Deliver history entry `pick % len` to PD.
    Deliver { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<usize>(), any::<u16>()).prop_map(|(pick, key_seed)| Op::Split { pick, key_seed }),
        1 => any::<usize>().prop_map(|pick| Op::ConfChange { pick }),
        4 => any::<usize>().prop_map(|pick| Op::Deliver { pick }),
    ]
}

struct Model {
    current: BTreeMap<u64, metapb::Region>,
    history: Vec<metapb::Region>,
    next_id: u64,
}

fn region(id: u64, start: Vec<u8>, end: Vec<u8>, conf_ver: u64, version: u64) -> metapb::Region {
    metapb::Region {
        id,
        start_key: start,
        end_key: end,
        region_epoch: Some(metapb::RegionEpoch { conf_ver, version }),
        peers: vec![meta::peer(id + 1_000_000, 1, PeerRole::Voter)],
        ..Default::default()
    }
}

/// A two-byte key strictly inside `[start, end)`, if one exists.
fn key_inside(start: &[u8], end: &[u8], seed: u16) -> Option<Vec<u8>> {
    let key = seed.to_be_bytes().to_vec();
    let inside = key.as_slice() > start && (end.is_empty() || key.as_slice() < end);
    inside.then_some(key)
}

impl Model {
    fn new(first: metapb::Region) -> Model {
        Model {
            current: BTreeMap::from([(first.id, first.clone())]),
            history: vec![first],
            next_id: 100,
        }
    }

    fn pick(&self, pick: usize) -> metapb::Region {
        self.current
            .values()
            .nth(pick % self.current.len())
            .unwrap()
            .clone()
    }

    fn record(&mut self, region: metapb::Region) {
        self.history.push(region.clone());
        self.current.insert(region.id, region);
    }

    fn split(&mut self, pick: usize, key_seed: u16) {
        let parent = self.pick(pick);
        let Some(key) = key_inside(&parent.start_key, &parent.end_key, key_seed) else {
            return;
        };
        let epoch = meta::epoch(&parent);
        let left = region(
            parent.id,
            parent.start_key.clone(),
            key.clone(),
            epoch.conf_ver,
            epoch.version + 1,
        );
        self.next_id += 1;
        let right = region(
            self.next_id,
            key,
            parent.end_key.clone(),
            epoch.conf_ver,
            epoch.version + 1,
        );
        self.record(left);
        self.record(right);
    }

    fn conf_change(&mut self, pick: usize) {
        let mut changed = self.pick(pick);
        changed.region_epoch.as_mut().unwrap().conf_ver += 1;
        self.record(changed);
    }
}

fn snapshot_epochs(state: &PdState) -> BTreeMap<u64, (u64, u64)> {
    state
        .regions()
        .iter()
        .map(|region| {
            let epoch = meta::epoch(region);
            (region.id, (epoch.version, epoch.conf_ver))
        })
        .collect()
}

/// Checks the per-step properties after delivering `delivered`.
fn check_delivery(
    before: &PdState,
    after: &PdState,
    delivered: &metapb::Region,
    outcome: &PdOutcome,
) {
    assert_eq!(after.check_invariants(), Ok(()));
    let old = snapshot_epochs(before);
    let new = snapshot_epochs(after);
    for (id, epoch) in &new {
        if let Some(previous) = old.get(id) {
            assert!(
                epoch.0 >= previous.0 && epoch.1 >= previous.1,
                "region {id} went back"
            );
        }
    }
    if let PdOutcome::RegionPut { displaced, .. } = outcome {
        let version = meta::epoch(delivered).version;
        for id in displaced {
            let displaced_version = old[&id.0].0;
            assert!(
                displaced_version <= version,
                "a newer region {id} was displaced"
            );
        }
        assert_eq!(after.regions().get(RegionId(delivered.id)), Some(delivered));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn registry_never_overlaps_and_newest_epochs_win(
        ops in proptest::collection::vec(op(), 1..120),
        final_order in any::<u64>(),
    ) {
        let mut state = PdState::new();
        let first = region(2, vec![], vec![], 1, 1);
        let store = metapb::Store { id: 1, address: "s1".into(), ..Default::default() };
        let outcome = state.apply(&PdCommand::Bootstrap { cluster_id: 1, store, region: first.clone() });
        prop_assert_eq!(outcome, PdOutcome::Bootstrapped { cluster_id: 1 });
        let mut model = Model::new(first);
        for op in ops {
            match op {
                Op::Split { pick, key_seed } => model.split(pick, key_seed),
                Op::ConfChange { pick } => model.conf_change(pick),
                Op::Deliver { pick } => {
                    let delivered = model.history[pick % model.history.len()].clone();
                    let before = state.clone();
                    let outcome = state.apply(&PdCommand::PutRegion { region: delivered.clone() });
                    check_delivery(&before, &state, &delivered, &outcome);
                }
            }
        }
        let mut current: Vec<metapb::Region> = model.current.values().cloned().collect();
        let len = current.len();
        for index in 0..len {
            let swap = (final_order as usize).wrapping_mul(index + 7) % len;
            current.swap(index, swap);
        }
        for delivered in &current {
            let before = state.clone();
            let outcome = state.apply(&PdCommand::PutRegion { region: delivered.clone() });
            prop_assert!(!matches!(outcome, PdOutcome::Refused(_)), "current region refused: {:?}", outcome);
            check_delivery(&before, &state, delivered, &outcome);
        }
        let registered: BTreeMap<u64, metapb::Region> =
            state.regions().iter().map(|region| (region.id, region.clone())).collect();
        prop_assert_eq!(&registered, &model.current);
        prop_assert!(state.regions().tiles_key_space());
    }
}
