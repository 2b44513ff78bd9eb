//! Region-level checkers over the stores' final reports: the key space is tiled by regions
//! with no gap or overlap, and caught-up replicas of a region hold identical data.

use std::collections::BTreeMap;

use ferrokv_proto::ferrokv_raftpb::RegionInfo;
use ferrokv_proto::metapb;

/// Reports of one store.
pub type StoreReports = (u64, Vec<RegionInfo>);

fn version(region: &metapb::Region) -> (u64, u64) {
    region
        .region_epoch
        .map_or((0, 0), |epoch| (epoch.version, epoch.conf_ver))
}

/// The newest view of every region across stores.
pub fn newest_regions(reports: &[StoreReports]) -> BTreeMap<u64, metapb::Region> {
    let mut newest: BTreeMap<u64, metapb::Region> = BTreeMap::new();
    for (_, regions) in reports {
        for info in regions {
            let Some(region) = &info.region else { continue };
            if newest
                .get(&region.id)
                .is_none_or(|known| version(region) > version(known))
            {
                newest.insert(region.id, region.clone());
            }
        }
    }
    newest
}

/// Checks that the newest regions cover the whole key space exactly once.
pub fn check_tiling(regions: &BTreeMap<u64, metapb::Region>) -> Result<(), String> {
    let mut ordered: Vec<&metapb::Region> = regions.values().collect();
    ordered.sort_by(|a, b| a.start_key.cmp(&b.start_key));
    let mut expected_start: Vec<u8> = Vec::new();
    for (position, region) in ordered.iter().enumerate() {
        if region.start_key != expected_start {
            return Err(format!(
                "region {} starts at {:?}, expected {:?} (gap or overlap)",
                region.id, region.start_key, expected_start
            ));
        }
        let last = position + 1 == ordered.len();
        if region.end_key.is_empty() != last {
            return Err(format!(
                "region {} ends at {:?} out of place",
                region.id, region.end_key
            ));
        }
        if !region.end_key.is_empty() && region.end_key <= region.start_key {
            return Err(format!(
                "region {} has an empty or inverted range",
                region.id
            ));
        }
        expected_start = region.end_key.clone();
    }
    if ordered.is_empty() {
        return Err("no regions at all".into());
    }
    Ok(())
}

/// Checks that replicas of each region at the same applied index hold identical data, and
/// (if `require_caught_up`) that every replica of the newest region epoch reached the same
/// applied index.
pub fn check_convergence(reports: &[StoreReports], require_caught_up: bool) -> Result<(), String> {
    let newest = newest_regions(reports);
    let mut by_region: BTreeMap<u64, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for (store, regions) in reports {
        for info in regions {
            let Some(region) = &info.region else { continue };
            if newest
                .get(&region.id)
                .is_some_and(|n| version(n) == version(region))
            {
                by_region.entry(region.id).or_default().push((
                    *store,
                    info.applied_index,
                    info.data_hash,
                ));
            }
        }
    }
    for (region, replicas) in by_region {
        for pair in replicas.windows(2) {
            let ((store_a, applied_a, hash_a), (store_b, applied_b, hash_b)) = (pair[0], pair[1]);
            if applied_a == applied_b && hash_a != hash_b {
                return Err(format!(
                    "region {region}: stores {store_a} and {store_b} diverge at index {applied_a}"
                ));
            }
            if require_caught_up && applied_a != applied_b {
                return Err(format!(
                    "region {region}: replicas not caught up: {replicas:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Checks that every peer of every newest region, on a store outside `missing_ok`, reports
/// that region at its newest epoch: a store that is up but lost or never got its replica
/// fails here.
pub fn check_peers_present(
    reports: &[StoreReports],
    missing_ok: &std::collections::BTreeSet<u64>,
) -> Result<(), String> {
    for (region_id, region) in newest_regions(reports) {
        for peer in &region.peers {
            if missing_ok.contains(&peer.store_id) {
                continue;
            }
            let reported = reports.iter().any(|(store, infos)| {
                *store == peer.store_id
                    && infos.iter().any(|info| {
                        info.region
                            .as_ref()
                            .is_some_and(|r| r.id == region_id && version(r) == version(&region))
                    })
            });
            if !reported {
                let seen: Vec<String> = reports
                    .iter()
                    .filter(|(store, _)| *store == peer.store_id)
                    .flat_map(|(_, infos)| infos.iter())
                    .filter_map(|info| info.region.as_ref())
                    .filter(|r| r.id == region_id)
                    .map(|r| {
                        format!(
                            "{:?} with peers {:?}",
                            version(r),
                            r.peers.iter().map(|p| p.id).collect::<Vec<_>>()
                        )
                    })
                    .collect();
                return Err(format!(
                    "region {region_id} (epoch {:?}): peer {} on store {} does not report it (that store reports it as: {seen:?})",
                    version(&region),
                    peer.id,
                    peer.store_id
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8], version: u64) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version,
            }),
            ..Default::default()
        }
    }

    fn info(region: metapb::Region, applied: u64, hash: u64) -> RegionInfo {
        RegionInfo {
            region: Some(region),
            applied_index: applied,
            data_hash: hash,
            ..Default::default()
        }
    }

    #[test]
    fn tiling_accepts_a_partition_and_rejects_gaps_and_overlaps() {
        let good: BTreeMap<u64, _> =
            [(1, region(1, b"", b"m", 2)), (2, region(2, b"m", b"", 2))].into();
        assert_eq!(check_tiling(&good), Ok(()));
        let gap: BTreeMap<u64, _> =
            [(1, region(1, b"", b"k", 2)), (2, region(2, b"m", b"", 2))].into();
        assert!(check_tiling(&gap).is_err());
        let overlap: BTreeMap<u64, _> =
            [(1, region(1, b"", b"n", 2)), (2, region(2, b"m", b"", 2))].into();
        assert!(check_tiling(&overlap).is_err());
        let open: BTreeMap<u64, _> = [(1, region(1, b"", b"m", 2))].into();
        assert!(
            check_tiling(&open).is_err(),
            "the last region must be unbounded"
        );
    }

    #[test]
    fn newest_epoch_wins_over_stale_reports() {
        let stale = (1, vec![info(region(1, b"", b"", 1), 10, 1)]);
        let fresh = (
            2,
            vec![
                info(region(1, b"", b"m", 2), 12, 2),
                info(region(2, b"m", b"", 2), 6, 3),
            ],
        );
        let newest = newest_regions(&[stale, fresh]);
        assert_eq!(newest[&1].end_key, b"m".to_vec());
        assert_eq!(check_tiling(&newest), Ok(()));
    }

    #[test]
    fn a_missing_peer_of_the_newest_epoch_is_caught() {
        let mut with_peers = region(1, b"", b"", 2);
        with_peers.peers = vec![
            metapb::Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            },
            metapb::Peer {
                id: 2,
                store_id: 2,
                ..Default::default()
            },
        ];
        let one = (1, vec![info(with_peers.clone(), 10, 7)]);
        let stale = (2, vec![info(region(1, b"", b"", 1), 8, 7)]);
        let none = std::collections::BTreeSet::new();
        assert!(check_peers_present(&[one.clone(), stale.clone()], &none).is_err());
        let two = (2, vec![info(with_peers, 10, 7)]);
        assert_eq!(check_peers_present(&[one.clone(), two], &none), Ok(()));
        let excused: std::collections::BTreeSet<u64> = [2].into();
        assert_eq!(check_peers_present(&[one, stale], &excused), Ok(()));
    }

    #[test]
    fn divergence_at_equal_index_is_caught() {
        let a = (1, vec![info(region(1, b"", b"", 1), 10, 7)]);
        let b = (2, vec![info(region(1, b"", b"", 1), 10, 8)]);
        assert!(check_convergence(&[a.clone(), b], false).is_err());
        let lagging = (3, vec![info(region(1, b"", b"", 1), 9, 1)]);
        assert_eq!(
            check_convergence(&[a.clone(), lagging.clone()], false),
            Ok(())
        );
        assert!(check_convergence(&[a, lagging], true).is_err());
    }
}
