//! Peer GC: a peer that reports itself as a region's leader while PD knows a newer
//! membership of that region without it was removed while it was away; it must destroy
//! itself.
//!
//! Input: the replicated state and a heartbeat found stale. Output: the stale peer and the
//! region's current metadata, which `operator::instruction::destroy_stale_peer` turns into
//! a response for that peer's store. Only a report whose `conf_ver` is behind PD's is
//! considered: then the membership change that dropped the peer has been applied by the
//! region, so removing the peer cannot cost the region a needed replica.

use crate::heartbeat::RegionReport;
use crate::meta;
use crate::operator::instruction::StalePeer;
use crate::state::PdState;

/// The stale peer behind `report`, if its region has moved on without it.
pub fn stale_peer(state: &PdState, report: &RegionReport) -> Option<StalePeer> {
    let current = state.regions().get(meta::region_id(&report.region))?;
    let reported = meta::epoch(&report.region);
    let known = meta::epoch(current);
    if reported.conf_ver >= known.conf_ver {
        return None;
    }
    if meta::peer_by_id(current, report.leader.id).is_some() {
        return None;
    }
    assert!(reported.is_stale_against(&known));
    Some(StalePeer {
        peer: report.leader,
        current: current.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{region, report_of, Fixture};
    use ferrokv_proto::metapb::PeerRole::Voter;

    #[test]
    fn a_removed_peer_reporting_an_old_membership_is_stale() {
        let mut fixture = Fixture::new(3);
        fixture.put_region(region(
            10,
            ("", ""),
            (4, 2),
            &[(11, 1, Voter), (12, 2, Voter)],
        ));
        let old = region(10, ("", ""), (3, 2), &[(13, 3, Voter), (11, 1, Voter)]);
        let stale = stale_peer(&fixture.state, &report_of(&old)).expect("stale peer");
        assert_eq!(stale.peer.id, 13);
        assert_eq!(stale.current.region_epoch.unwrap().conf_ver, 4);
    }

    #[test]
    fn a_member_behind_on_epoch_is_not_destroyed() {
        let mut fixture = Fixture::new(3);
        fixture.put_region(region(
            10,
            ("", ""),
            (4, 2),
            &[(11, 1, Voter), (12, 2, Voter)],
        ));
        let old_but_member = region(10, ("", ""), (3, 2), &[(11, 1, Voter)]);
        assert_eq!(
            stale_peer(&fixture.state, &report_of(&old_but_member)),
            None
        );
        let split_behind = region(10, ("", ""), (4, 1), &[(13, 3, Voter)]);
        assert_eq!(
            stale_peer(&fixture.state, &report_of(&split_behind)),
            None,
            "only conf_ver staleness proves removal"
        );
    }
}
