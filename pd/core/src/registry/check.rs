//! Deciding whether a reported region is newer than what the registry holds.
//!
//! Input: a validated region (from a heartbeat or a `PutRegion` command) and the registry.
//! Output: `New`, `EpochChanged` or `Unchanged`, or the `StaleReason` it must be ignored for.
//! The rules are PD's (`pkg/core/region.go` `check`): against the same id, neither `version`
//! nor `conf_ver` may go back; against every other overlapping region, `version` may not be
//! lower. The same function runs on the leader (to skip useless proposals) and in `apply`
//! (so replicas agree whatever order proposals commit in).

use ferrokv_core::types::{RegionEpoch, RegionId};
use ferrokv_proto::metapb;

use super::RegionRegistry;
use crate::meta;

/// How a non-stale report relates to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionChange {
    /// The id is unknown.
    New,
    /// The id is known with an older epoch.
    EpochChanged { previous: RegionEpoch },
    /// The id is known with this exact epoch: nothing to store.
    Unchanged,
}

/// Why a report is older than what the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StaleReason {
    /// The same region is known with a higher `version` (a split or merge happened since).
    #[error("region {region_id} version {reported} is behind {current}")]
    VersionBehind {
        region_id: RegionId,
        current: u64,
        reported: u64,
    },
    /// The same region is known with a higher `conf_ver` (a membership change happened since).
    #[error("region {region_id} conf_ver {reported} is behind {current}")]
    ConfVerBehind {
        region_id: RegionId,
        current: u64,
        reported: u64,
    },
    /// Another region overlapping the reported range has a higher `version`.
    #[error("overlapping region {overlapping} has version {current} above {reported}")]
    OverlapNewer {
        overlapping: RegionId,
        current: u64,
        reported: u64,
    },
    /// The reporting leader's Raft term is behind the last one heard for this region.
    #[error("region {region_id} term {reported} is behind {current}")]
    TermBehind {
        region_id: RegionId,
        current: u64,
        reported: u64,
    },
}

/// Classifies `region` against `registry`.
pub fn classify(
    registry: &RegionRegistry,
    region: &metapb::Region,
) -> Result<RegionChange, StaleReason> {
    assert_eq!(meta::validate_region(region), Ok(()));
    let id = meta::region_id(region);
    let reported = meta::epoch(region);
    let change = match registry.get(id) {
        None => RegionChange::New,
        Some(known) => against_same_id(id, meta::epoch(known), reported)?,
    };
    if change == RegionChange::Unchanged {
        return Ok(change);
    }
    for other in registry.overlapping(region) {
        let current = meta::epoch(registry.get(other).expect("overlap is registered")).version;
        if reported.version < current {
            return Err(StaleReason::OverlapNewer {
                overlapping: other,
                current,
                reported: reported.version,
            });
        }
    }
    Ok(change)
}

fn against_same_id(
    id: RegionId,
    current: RegionEpoch,
    reported: RegionEpoch,
) -> Result<RegionChange, StaleReason> {
    if reported.version < current.version {
        return Err(StaleReason::VersionBehind {
            region_id: id,
            current: current.version,
            reported: reported.version,
        });
    }
    if reported.conf_ver < current.conf_ver {
        return Err(StaleReason::ConfVerBehind {
            region_id: id,
            current: current.conf_ver,
            reported: reported.conf_ver,
        });
    }
    if reported == current {
        return Ok(RegionChange::Unchanged);
    }
    assert!(current.is_stale_against(&reported));
    Ok(RegionChange::EpochChanged { previous: current })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::region;

    fn with_conf(mut region: metapb::Region, conf_ver: u64) -> metapb::Region {
        region.region_epoch.as_mut().unwrap().conf_ver = conf_ver;
        region
    }

    #[test]
    fn same_id_newer_wins_older_is_stale() {
        let mut registry = RegionRegistry::new();
        registry.put(with_conf(region(1, "", "", 3), 2));
        assert_eq!(
            classify(&registry, &with_conf(region(1, "", "", 3), 2)),
            Ok(RegionChange::Unchanged)
        );
        assert_eq!(
            classify(&registry, &with_conf(region(1, "", "", 3), 3)),
            Ok(RegionChange::EpochChanged {
                previous: RegionEpoch {
                    conf_ver: 2,
                    version: 3
                }
            })
        );
        assert_eq!(
            classify(&registry, &with_conf(region(1, "", "", 2), 5)),
            Err(StaleReason::VersionBehind {
                region_id: RegionId(1),
                current: 3,
                reported: 2
            })
        );
        assert_eq!(
            classify(&registry, &with_conf(region(1, "", "", 4), 1)),
            Err(StaleReason::ConfVerBehind {
                region_id: RegionId(1),
                current: 2,
                reported: 1
            })
        );
    }

    #[test]
    fn an_old_parent_cannot_roll_back_its_children() {
        let mut registry = RegionRegistry::new();
        registry.put(region(1, "", "m", 2));
        registry.put(region(2, "m", "", 2));
        assert_eq!(
            classify(&registry, &region(3, "a", "z", 1)),
            Err(StaleReason::OverlapNewer {
                overlapping: RegionId(1),
                current: 2,
                reported: 1
            })
        );
        assert_eq!(
            classify(&registry, &region(3, "m", "q", 3)),
            Ok(RegionChange::New)
        );
    }
}
