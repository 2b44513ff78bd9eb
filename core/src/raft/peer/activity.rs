//! Which members answered this peer lately, in ticks and terms.
//!
//! raft-rs's own `recent_active` flag is cleared at every check-quorum round and set again
//! only by the next answer, so right after a round every follower looks silent. This
//! tracker keeps, per member, the tick and term of its last *answer*: an append or
//! heartbeat response, or a granted vote, in this peer's current term (each proves the
//! member received this peer's message and could reply; a vote request or a stale-term
//! message proves nothing, as one-way partitions show). Two rules use it: a change of the
//! voter set must leave a quorum of voters that answered within an election timeout
//! (TiKV's "unsafe to perform conf change"), and members silent for
//! `DOWN_AFTER_ELECTION_TIMEOUTS` election timeouts are reported to PD as down peers,
//! silence counted from the latest of their last answer, this peer's election and their
//! joining the region.

use std::collections::BTreeMap;

use ferrokv_proto::metapb;

/// A member silent for this many election timeouts is reported down.
pub const DOWN_AFTER_ELECTION_TIMEOUTS: u64 = 2;

/// Per-member answers and join ticks.
#[derive(Debug, Default)]
pub struct Activity {
    ticks: u64,
    leader_since: u64,
    /// Member -> (tick, term) of its last answer.
    answered: BTreeMap<u64, (u64, u64)>,
    /// Member -> tick it was first seen in the region (a new member is not down at once).
    joined: BTreeMap<u64, u64>,
}

impl Activity {
    /// One logical tick passed; `members` are the region's peers now (others are forgotten,
    /// which bounds both maps by the region's size).
    pub fn tick(&mut self, members: &[metapb::Peer]) {
        self.ticks += 1;
        let now = self.ticks;
        let is_member = |id: &u64| members.iter().any(|peer| peer.id == *id);
        for member in members {
            self.joined.entry(member.id).or_insert(now);
        }
        self.joined.retain(|id, _| is_member(id));
        self.answered.retain(|id, _| is_member(id));
        assert!(
            self.joined.len() <= members.len(),
            "only members are tracked"
        );
    }

    /// `peer_id` answered this peer in `term`.
    pub fn answered(&mut self, peer_id: u64, term: u64) {
        self.answered.insert(peer_id, (self.ticks, term));
    }

    /// This peer just became leader: silence is counted from now at the latest.
    pub fn became_leader(&mut self) {
        self.leader_since = self.ticks;
    }

    /// True if `peer_id` answered in `term` within the last `window` ticks.
    pub fn answered_within(&self, peer_id: u64, term: u64, window: u64) -> bool {
        self.answered
            .get(&peer_id)
            .is_some_and(|(at, in_term)| *in_term == term && self.ticks - at <= window)
    }

    /// Ticks since `peer_id` last answered, or since this peer became leader or the member
    /// joined, whichever is latest.
    pub fn silent_ticks(&self, peer_id: u64) -> u64 {
        let answered = self.answered.get(&peer_id).map_or(0, |(at, _)| *at);
        let joined = self.joined.get(&peer_id).copied().unwrap_or(self.ticks);
        let since = answered.max(joined).max(self.leader_since);
        assert!(since <= self.ticks, "an answer from the future");
        self.ticks - since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(ids: &[u64]) -> Vec<metapb::Peer> {
        ids.iter()
            .map(|id| metapb::Peer {
                id: *id,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_member_counts_as_answering_only_in_the_term_and_within_the_window() {
        let mut activity = Activity::default();
        activity.tick(&peers(&[1, 2, 3]));
        activity.answered(2, 5);
        assert!(activity.answered_within(2, 5, 10));
        assert!(
            !activity.answered_within(2, 6, 10),
            "an answer of another term"
        );
        for _ in 0..10 {
            activity.tick(&peers(&[1, 2, 3]));
        }
        assert!(activity.answered_within(2, 5, 10));
        activity.tick(&peers(&[1, 2, 3]));
        assert!(!activity.answered_within(2, 5, 10));
        assert!(!activity.answered_within(3, 5, 10), "never answered");
    }

    #[test]
    fn silence_counts_from_the_latest_of_answer_election_and_joining() {
        let mut activity = Activity::default();
        for _ in 0..5 {
            activity.tick(&peers(&[1, 2]));
        }
        activity.answered(2, 1);
        activity.tick(&peers(&[1, 2]));
        activity.became_leader();
        activity.tick(&peers(&[1, 2]));
        activity.tick(&peers(&[1, 2]));
        assert_eq!(activity.silent_ticks(2), 2, "from the election");
        activity.answered(2, 2);
        activity.tick(&peers(&[1, 2, 3]));
        assert_eq!(activity.silent_ticks(2), 1, "from the answer");
        assert_eq!(activity.silent_ticks(3), 0, "a member that just joined");
        activity.tick(&peers(&[1, 3]));
        assert_eq!(activity.silent_ticks(3), 1);
        assert_eq!(activity.answered.len(), 0, "peer 2 left: forgotten");
        assert_eq!(activity.joined.len(), 2);
    }
}
