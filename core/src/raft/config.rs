//! Peer tuning. Times are expressed in ticks of `tick_interval`, which the driver produces.

use std::time::Duration;

/// Deliberate bugs the simulator must catch (test-only; never enabled in production
/// configuration files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Serve reads from any peer's local state, without ReadIndex or a lease.
    StaleLocalReads,
    /// Acknowledge Raft log writes without syncing them.
    SkipRaftLogSync,
}

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
    /// Most reads waiting on one peer before new ones get ServerIsBusy.
    pub pending_reads_max: usize,
    /// Leader lease: how long after a quorum confirmed leadership local reads are safe.
    /// Must stay below the election timeout minus clock drift (checked by `validate`).
    pub lease: Duration,
    /// Compact the log once this many applied entries are kept.
    pub log_gc_count_threshold: u64,
    /// Compact even past lagging followers (they will need a snapshot) beyond this many
    /// entries, or beyond `log_gc_bytes_limit` bytes.
    pub log_gc_count_limit: u64,
    /// See `log_gc_count_limit`.
    pub log_gc_bytes_limit: u64,
    /// Ticks between log compaction checks on a leader.
    pub log_gc_tick: usize,
    /// Test-only planted bug.
    pub planted_bug: Option<PlantedBug>,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            pending_proposals_max: 4096,
            pending_reads_max: 4096,
            lease: Duration::from_millis(800),
            log_gc_count_threshold: 1024,
            log_gc_count_limit: 8192,
            log_gc_bytes_limit: 64 * 1024 * 1024,
            log_gc_tick: 10,
            planted_bug: None,
        }
    }
}

impl RaftConfig {
    /// Checks relations between settings; the error names the broken one.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return Err("election_tick must exceed heartbeat_tick > 0".into());
        }
        let election_timeout = self.tick_interval * self.election_tick as u32;
        if self.lease >= election_timeout {
            return Err(format!(
                "lease {:?} must be below the election timeout {election_timeout:?}",
                self.lease
            ));
        }
        if self.log_gc_count_limit < self.log_gc_count_threshold {
            return Err("log_gc_count_limit must be at least log_gc_count_threshold".into());
        }
        Ok(())
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
    }
}
