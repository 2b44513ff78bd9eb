//! Route answers for the service: a registered region joined with what leader memory knows
//! of its leader, down and pending peers (`GetRegion`, `GetRegionByID`, `ScanRegions`).
//!
//! The leader is reported only if the last heartbeat's leader is still a member of the
//! registered region; down and pending peers only if that heartbeat had the registered
//! epoch. Followers have no leader memory and answer with the region alone.

use ferrokv_core::types::RegionId;
use ferrokv_proto::{metapb, pdpb};

use super::Coordinator;
use crate::meta;

impl Coordinator {
    /// The region's leader as last reported, if still a member.
    pub fn leader_of(&self, region: &metapb::Region) -> Option<metapb::Peer> {
        let stats = self.memory.region(RegionId(region.id))?;
        let leader = stats.report.leader;
        (meta::peer_by_id(region, leader.id) == Some(&leader)).then_some(leader)
    }

    /// The region with its leader, down and pending peers, as `ScanRegions` returns it.
    pub fn describe(&self, region: &metapb::Region) -> pdpb::Region {
        let fresh = self
            .memory
            .region(RegionId(region.id))
            .filter(|stats| meta::epoch(&stats.report.region) == meta::epoch(region));
        pdpb::Region {
            region: Some(region.clone()),
            leader: self.leader_of(region),
            down_peers: fresh.map_or_else(Vec::new, |stats| stats.report.down_peers.clone()),
            pending_peers: fresh.map_or_else(Vec::new, |stats| stats.report.pending_peers.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testkit::{region, report_of};
    use ferrokv_proto::metapb::PeerRole::Voter;

    #[test]
    fn the_leader_is_reported_only_while_it_is_a_member() {
        let mut coordinator = Coordinator::new(Config::default(), 0);
        let current = region(10, ("", ""), (2, 2), &[(11, 1, Voter), (12, 2, Voter)]);
        assert_eq!(coordinator.leader_of(&current), None, "never heard");
        let mut report = report_of(&current);
        report.pending_peers = vec![current.peers[1]];
        coordinator.memory.record_region(report, 5, false);
        assert_eq!(coordinator.leader_of(&current), Some(current.peers[0]));
        let described = coordinator.describe(&current);
        assert_eq!(described.pending_peers, vec![current.peers[1]]);
        let moved_on = region(10, ("", ""), (3, 2), &[(12, 2, Voter)]);
        assert_eq!(coordinator.leader_of(&moved_on), None);
        assert!(coordinator.describe(&moved_on).pending_peers.is_empty());
    }
}
