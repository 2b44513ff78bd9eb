//! The client's region cache against a model (a plain list of disjoint routes): regions
//! reported by stores, PD or an EpochNotMatch error, with any key range (inverted or empty
//! ones included), leader updates and invalidations, then lookups. The cache never panics,
//! never holds two routes for one key, and answers every lookup as the model does.
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_client::region_cache::{RegionCache, Route};
use ferrokv_core::types::RegionId;
use ferrokv_proto::metapb::{Peer, Region};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Insert {
        id: u8,
        start: Vec<u8>,
        end: Vec<u8>,
        leader: Option<u8>,
    },
    UpdateLeader {
        id: u8,
        peer: u8,
    },
    Invalidate {
        id: u8,
    },
    Locate(Vec<u8>),
    LocateBefore(Vec<u8>),
}

fn peer(id: u8) -> Peer {
    Peer {
        id: u64::from(id),
        store_id: 1,
        ..Default::default()
    }
}

fn contains(route: &Route, key: &[u8]) -> bool {
    let region = &route.region;
    key >= region.start_key.as_slice()
        && (region.end_key.is_empty() || key < region.end_key.as_slice())
}

fn valid(region: &Region) -> bool {
    region.end_key.is_empty() || region.start_key < region.end_key
}

fn overlaps(a: &Region, b: &Region) -> bool {
    (b.end_key.is_empty() || a.start_key < b.end_key)
        && (a.end_key.is_empty() || b.start_key < a.end_key)
}

/// The model: what the cache should hold, as a list.
#[derive(Default)]
struct Model(Vec<Route>);

impl Model {
    fn insert(&mut self, region: Region, leader: Option<Peer>) {
        if !valid(&region) {
            return;
        }
        self.0
            .retain(|route| !overlaps(&route.region, &region) && route.region.id != region.id);
        self.0.push(Route { region, leader });
    }

    fn locate(&self, key: &[u8]) -> Option<&Route> {
        self.0.iter().find(|route| contains(route, key))
    }

    fn locate_before(&self, bound: &[u8]) -> Option<&Route> {
        self.0.iter().find(|route| {
            let region = &route.region;
            if bound.is_empty() {
                return region.end_key.is_empty();
            }
            region.start_key.as_slice() < bound
                && (region.end_key.is_empty() || region.end_key.as_slice() >= bound)
        })
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut cache = RegionCache::new();
    let mut model = Model::default();
    for op in ops.iter().take(64) {
        match op {
            Op::Insert {
                id,
                start,
                end,
                leader,
            } => {
                let region = Region {
                    id: u64::from(*id),
                    start_key: start.clone(),
                    end_key: end.clone(),
                    peers: vec![peer(*id), peer(id.wrapping_add(1))],
                    ..Default::default()
                };
                let leader = leader.map(peer);
                assert_eq!(
                    cache.insert(region.clone(), leader.clone()),
                    valid(&region),
                    "insert's answer"
                );
                model.insert(region, leader);
            }
            Op::UpdateLeader { id, peer: p } => {
                let target = model
                    .0
                    .iter_mut()
                    .find(|route| route.region.id == u64::from(*id));
                let member = target
                    .as_ref()
                    .is_some_and(|route| route.region.peers.iter().any(|m| m.id == u64::from(*p)));
                let updated = cache.update_leader(RegionId(u64::from(*id)), peer(*p));
                assert_eq!(updated, member, "update_leader's answer");
                if let (true, Some(route)) = (member, target) {
                    route.leader = Some(peer(*p));
                }
            }
            Op::Invalidate { id } => {
                cache.invalidate(RegionId(u64::from(*id)));
                model.0.retain(|route| route.region.id != u64::from(*id));
            }
            Op::Locate(key) => assert_eq!(cache.locate(key), model.locate(key), "locate({key:?})"),
            Op::LocateBefore(bound) => {
                assert_eq!(
                    cache.locate_before(bound),
                    model.locate_before(bound),
                    "locate_before({bound:?})"
                )
            }
        }
        assert_eq!(cache.len(), model.0.len(), "cached routes");
    }
});
