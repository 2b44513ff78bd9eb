//! Peer tuning. Times are expressed in ticks of `tick_interval`, which the driver produces.
//!
//! The lease rule (`validate`): a follower that heard from its leader ignores votes for
//! `election_tick` ticks, but its first tick may come right after the heartbeat, so another
//! peer can win an election `(election_tick - 1)` tick intervals after the last heartbeat a
//! quorum saw, measured on the followers' clocks. The leader measures its lease on its own
//! clock; with clock rates differing by up to `max_clock_drift_permille` the lease must stay
//! below `(election_tick - 1) * tick_interval * (1000 - drift) / (1000 + drift)`.

use std::time::Duration;

use crate::limits;
use crate::planted::{self, PlantedBug};

/// Configuration shared by every peer of a store.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// Duration of one logical tick.
    pub tick_interval: Duration,
    /// Ticks without a leader before a follower campaigns (randomized up to twice this).
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// PreVote: a partitioned node cannot disrupt the cluster when it returns.
    pub pre_vote: bool,
    /// CheckQuorum: a leader that loses its quorum steps down; followers ignore votes while
    /// they hear from a leader. Together with PreVote it keeps partial partitions live.
    pub check_quorum: bool,
    /// Largest append message, in bytes.
    pub max_size_per_msg: u64,
    /// Most in-flight append messages per follower.
    pub max_inflight_msgs: usize,
    /// Most proposals waiting to commit on one peer before new ones get ServerIsBusy.
    pub pending_proposals_max: usize,
    /// Most bytes of proposals waiting to commit on one peer before new ones get
    /// ServerIsBusy.
    pub pending_proposal_bytes_max: usize,
    /// Most reads waiting on one peer before new ones get ServerIsBusy.
    pub pending_reads_max: usize,
    /// Leader lease: how long after a quorum confirmed leadership local reads are safe.
    /// Bounded by `lease_bound` (checked by `validate`).
    pub lease: Duration,
    /// The largest rate difference between two nodes' monotonic clocks, in parts per
    /// thousand, that the lease must tolerate.
    pub max_clock_drift_permille: u64,
    /// Compact the log once this many applied entries are kept.
    pub log_gc_count_threshold: u64,
    /// Compact even past lagging followers (they will need a snapshot) beyond this many
    /// entries, or beyond `log_gc_bytes_limit` bytes.
    pub log_gc_count_limit: u64,
    /// See `log_gc_count_limit`.
    pub log_gc_bytes_limit: u64,
    /// Ticks between log compaction checks on a leader.
    pub log_gc_tick: usize,
    /// How long a request may wait for its answer before the store answers for it: a write
    /// as "outcome unknown", a read as a timeout.
    pub request_timeout: Duration,
    /// How long a follower may stay in snapshot state without the transport reporting the
    /// snapshot delivered or failed, before the leader gives up on it and sends a new one.
    pub snapshot_report_timeout: Duration,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: limits::RAFT_MSG_BYTES_MAX,
            max_inflight_msgs: limits::RAFT_INFLIGHT_MSGS_MAX,
            pending_proposals_max: 4096,
            pending_proposal_bytes_max: limits::PROPOSAL_QUEUE_BYTES_MAX,
            pending_reads_max: 4096,
            lease: Duration::from_millis(700),
            max_clock_drift_permille: 50,
            log_gc_count_threshold: 1024,
            log_gc_count_limit: 8192,
            log_gc_bytes_limit: 64 * 1024 * 1024,
            log_gc_tick: 10,
            request_timeout: Duration::from_secs(10),
            snapshot_report_timeout: Duration::from_secs(60),
        }
    }
}

impl RaftConfig {
    /// The longest safe lease for these ticks and this clock drift (see the module doc).
    pub fn lease_bound(&self) -> Duration {
        let drift = self.max_clock_drift_permille.min(999) as u32;
        let ticks = self.election_tick.saturating_sub(1) as u32;
        self.tick_interval * ticks * (1000 - drift) / (1000 + drift)
    }

    /// The lease peers use: `lease`, or under the planted bug `LeaseBeyondElectionBound`
    /// two election timeouts (the mistake of bounding the lease by the longest randomized
    /// timeout instead of the earliest moment another peer can win).
    pub fn effective_lease(&self) -> Duration {
        if planted::active(PlantedBug::LeaseBeyondElectionBound) {
            return self.tick_interval * self.election_tick as u32 * 2;
        }
        self.lease
    }

    /// Checks relations between settings; the error names the broken one.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return Err("election_tick must exceed heartbeat_tick > 0".into());
        }
        if self.tick_interval.is_zero() {
            return Err("tick_interval must be positive".into());
        }
        if self.max_clock_drift_permille >= 1000 {
            return Err("max_clock_drift_permille must be below 1000".into());
        }
        if !self.lease.is_zero() && !self.check_quorum {
            return Err(
                "a lease needs check_quorum: without it a follower votes for a new leader \
                 while the old one still believes its lease (set lease = 0 to read by ReadIndex)"
                    .into(),
            );
        }
        let bound = self.lease_bound();
        if self.lease > bound {
            return Err(format!(
                "lease {:?} exceeds the safe bound {bound:?}: (election_tick - 1) ticks \
                 less {} permille clock drift",
                self.lease, self.max_clock_drift_permille
            ));
        }
        if self.log_gc_count_limit < self.log_gc_count_threshold {
            return Err("log_gc_count_limit must be at least log_gc_count_threshold".into());
        }
        if self.pending_proposals_max == 0 || self.pending_reads_max == 0 {
            return Err("pending proposal and read queues must hold at least one".into());
        }
        if self.max_size_per_msg == 0 || self.max_inflight_msgs == 0 {
            return Err("max_size_per_msg and max_inflight_msgs must be positive".into());
        }
        Ok(())
    }

    /// The same settings with the largest safe lease.
    pub fn with_safe_lease(mut self) -> RaftConfig {
        self.lease = self.lease_bound();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_lease_is_checked() {
        assert_eq!(RaftConfig::default().validate(), Ok(()));
        let unsafe_lease = RaftConfig {
            lease: Duration::from_secs(5),
            ..RaftConfig::default()
        };
        assert!(unsafe_lease.validate().unwrap_err().contains("lease"));
        let no_check_quorum = RaftConfig {
            check_quorum: false,
            ..RaftConfig::default()
        };
        assert!(no_check_quorum
            .validate()
            .unwrap_err()
            .contains("check_quorum"));
        let reads_by_read_index = RaftConfig {
            check_quorum: false,
            lease: Duration::ZERO,
            ..RaftConfig::default()
        };
        assert_eq!(reads_by_read_index.validate(), Ok(()));
    }

    #[test]
    fn lease_bound_is_election_minus_one_tick_less_drift() {
        let config = RaftConfig {
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            max_clock_drift_permille: 0,
            ..RaftConfig::default()
        };
        assert_eq!(config.lease_bound(), Duration::from_millis(900));
        let drifting = RaftConfig {
            max_clock_drift_permille: 100,
            ..config.clone()
        };
        // 900 ms * 900 / 1100
        assert_eq!(drifting.lease_bound(), Duration::from_nanos(736_363_636));
        // The old default (0.8 x timeout) is unsafe for small election ticks: with 3 ticks
        // another peer may win 2 ticks after the last heartbeat.
        let small = RaftConfig {
            election_tick: 3,
            heartbeat_tick: 1,
            lease: Duration::from_millis(240),
            ..config
        };
        assert!(small.validate().unwrap_err().contains("safe bound"));
        assert_eq!(small.clone().with_safe_lease().validate(), Ok(()));
    }
}
