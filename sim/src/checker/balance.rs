//! Balance: after a run with PD settled, peers and leaders per live store must differ by at
//! most `SPREAD` between the fullest and the emptiest store. PD's balancers stop within a
//! tolerance of 1 (`leader_balance_tolerance`, `region_balance_tolerance`); one more move
//! may be in flight when the check looks. A store that joined during the run starts empty,
//! so this is what shows that PD moved replicas and leaders onto it. Two more rules keep the
//! check from passing on nothing: there must be regions, and when there are at least as
//! many replicas as live stores every live store holds one (a spread of 2 alone lets an
//! empty store pass beside stores holding 2 each).

use std::collections::BTreeMap;

use super::regions::{newest_regions, StoreReports};

/// Largest allowed difference between the most and least loaded live store.
pub const SPREAD: u64 = 2;

/// Peers and leaders per store, counted over the newest regions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Peers (voters and learners) per store.
    pub peers: BTreeMap<u64, u64>,
    /// Region leaders per store.
    pub leaders: BTreeMap<u64, u64>,
    /// Regions counted.
    pub regions: u64,
}

/// Counts the load of every store in `live` (0 if it holds nothing) from the reports.
/// A region's leader is the peer its members name; a region whose members disagree is left
/// out of the leader count (`leaders_settled` judges that).
pub fn load(reports: &[StoreReports], live: &[u64]) -> Load {
    let mut load = Load {
        peers: live.iter().map(|store| (*store, 0)).collect(),
        leaders: live.iter().map(|store| (*store, 0)).collect(),
        regions: 0,
    };
    for (region_id, region) in newest_regions(reports) {
        load.regions += 1;
        for peer in &region.peers {
            if let Some(count) = load.peers.get_mut(&peer.store_id) {
                *count += 1;
            }
        }
        let named: Vec<u64> = reports
            .iter()
            .filter(|(store, _)| region.peers.iter().any(|p| p.store_id == *store))
            .flat_map(|(_, infos)| infos.iter())
            .filter(|info| info.region.as_ref().is_some_and(|r| r.id == region_id))
            .filter_map(|info| info.leader.map(|leader| leader.store_id))
            .collect();
        let agreed = named
            .first()
            .filter(|first| named.iter().all(|n| n == *first));
        if let Some(count) = agreed.and_then(|store| load.leaders.get_mut(store)) {
            *count += 1;
        }
    }
    load
}

fn spread(counts: &BTreeMap<u64, u64>) -> u64 {
    let most = counts.values().max().copied().unwrap_or(0);
    let least = counts.values().min().copied().unwrap_or(0);
    assert!(most >= least);
    most - least
}

/// Ok if peers and leaders are each spread within `SPREAD` over the live stores.
pub fn check(load: &Load) -> Result<(), String> {
    if load.regions == 0 || load.peers.is_empty() {
        return Err("no regions or no live stores reported: nothing to judge".into());
    }
    let replicas: u64 = load.peers.values().sum();
    let empty: Vec<u64> = load
        .peers
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(store, _)| *store)
        .collect();
    if replicas >= load.peers.len() as u64 && !empty.is_empty() {
        return Err(format!(
            "stores {empty:?} hold no peer among {replicas} replicas: peers per store {:?}",
            load.peers
        ));
    }
    let (peers, leaders) = (spread(&load.peers), spread(&load.leaders));
    if peers > SPREAD || leaders > SPREAD {
        return Err(format!(
            "peers per store {:?} (spread {peers}), leaders per store {:?} (spread {leaders}); at most {SPREAD} allowed",
            load.peers, load.leaders
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokv_proto::ferrokv_raftpb::RegionInfo;
    use ferrokv_proto::metapb;

    fn region(id: u64, stores: &[u64]) -> metapb::Region {
        metapb::Region {
            id,
            start_key: vec![id as u8],
            end_key: vec![id as u8 + 1],
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: stores
                .iter()
                .map(|store| metapb::Peer {
                    id: id * 100 + store,
                    store_id: *store,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Reports of `regions` (id, stores, leader store) from every store holding them.
    fn reports(regions: &[(u64, &[u64], u64)], stores: &[u64]) -> Vec<StoreReports> {
        stores
            .iter()
            .map(|store| {
                let infos = regions
                    .iter()
                    .filter(|(_, on, _)| on.contains(store))
                    .map(|(id, on, leader)| {
                        let region = region(*id, on);
                        let leader = region.peers.iter().find(|p| p.store_id == *leader).copied();
                        RegionInfo {
                            region: Some(region),
                            leader,
                            ..Default::default()
                        }
                    })
                    .collect();
                (*store, infos)
            })
            .collect()
    }

    #[test]
    fn an_empty_new_store_is_unbalanced_and_a_spread_cluster_is_not() {
        let three: &[u64] = &[1, 2, 3];
        let piled: Vec<(u64, &[u64], u64)> = (1..=6).map(|id| (id, three, 1)).collect();
        let live = [1, 2, 3, 4];
        let load = load(&reports(&piled, &live), &live);
        assert_eq!(load.peers, [(1, 6), (2, 6), (3, 6), (4, 0)].into());
        assert_eq!(load.leaders, [(1, 6), (2, 0), (3, 0), (4, 0)].into());
        assert!(check(&load).is_err(), "store 4 holds nothing");

        let spread_out: Vec<(u64, &[u64], u64)> = vec![
            (1, &[1, 2, 3], 1),
            (2, &[2, 3, 4], 2),
            (3, &[3, 4, 1], 3),
            (4, &[4, 1, 2], 4),
        ];
        let load = super::load(&reports(&spread_out, &live), &live);
        assert_eq!(load.peers, [(1, 3), (2, 3), (3, 3), (4, 3)].into());
        assert_eq!(load.leaders, [(1, 1), (2, 1), (3, 1), (4, 1)].into());
        assert_eq!(check(&load), Ok(()));

        let two: Vec<(u64, &[u64], u64)> = vec![(1, three, 1), (2, three, 2)];
        let load = super::load(&reports(&two, &live), &live);
        assert_eq!(load.peers, [(1, 2), (2, 2), (3, 2), (4, 0)].into());
        let why = check(&load).expect_err("spread 2, but store 4 is empty");
        assert!(why.contains("[4]"), "{why}");
        assert!(check(&super::load(&[], &live)).is_err(), "no regions");
    }

    #[test]
    fn members_that_disagree_on_the_leader_count_for_no_one() {
        let live = [1, 2, 3];
        let mut reports = reports(&[(1, &[1, 2, 3], 1)], &live);
        reports[2].1[0].leader = reports[2].1[0]
            .region
            .as_ref()
            .unwrap()
            .peers
            .get(1)
            .copied();
        let load = load(&reports, &live);
        assert_eq!(load.leaders, [(1, 0), (2, 0), (3, 0)].into());
        assert_eq!(load.peers, [(1, 1), (2, 1), (3, 1)].into());
    }
}
