//! Scheduling configuration: replica count, thresholds, tolerances, limits and timeouts.
//!
//! Leader-local (each member reads its own config file); a failover may change it, so
//! nothing here is part of the replicated state. `validate` rejects values that would make
//! a planner loop or never act.

/// What the checkers and schedulers aim for and how fast they may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Voters every region should have.
    pub max_replicas: usize,
    /// A store silent for longer is down: its peers are rebuilt elsewhere.
    pub max_store_down_time_ms: u64,
    /// A region reported at or above this approximate size is split.
    pub region_split_size_bytes: u64,
    /// A region reported at or above this many approximate keys is split.
    pub region_split_keys: u64,
    /// Leader counts may differ by this much before balance-leader acts.
    pub leader_balance_tolerance: u64,
    /// Region (peer) counts may differ by this much before balance-region acts.
    pub region_balance_tolerance: u64,
    /// Most running leader-transfer operators (balance-leader).
    pub leader_schedule_limit: usize,
    /// Most running peer-moving operators (balance-region).
    pub region_schedule_limit: usize,
    /// Most running replica-repair operators (replica checker).
    pub replica_schedule_limit: usize,
    /// Most running split operators (split checker).
    pub split_schedule_limit: usize,
    /// Least time between two runs of the balance schedulers.
    pub balance_interval_ms: u64,
    /// An operator that only moves leadership fails after this long.
    pub operator_leader_timeout_ms: u64,
    /// An operator that adds or removes peers (snapshots) fails after this long.
    pub operator_region_timeout_ms: u64,
    /// Ids added to the allocator's limit per `SetIdLimit`.
    pub id_batch: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_replicas: 3,
            max_store_down_time_ms: 30 * 60 * 1000,
            region_split_size_bytes: 144 * 1024 * 1024,
            region_split_keys: 1_440_000,
            leader_balance_tolerance: 1,
            region_balance_tolerance: 1,
            leader_schedule_limit: 4,
            region_schedule_limit: 2,
            replica_schedule_limit: 64,
            split_schedule_limit: 16,
            balance_interval_ms: 5_000,
            operator_leader_timeout_ms: 10_000,
            operator_region_timeout_ms: 10 * 60 * 1000,
            id_batch: 1_000,
        }
    }
}

/// A configuration value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct ConfigError(pub &'static str);

impl Config {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_replicas == 0 || self.max_replicas > crate::limits::REGION_PEERS_MAX / 2 {
            return Err(ConfigError(
                "max_replicas must be in 1..=REGION_PEERS_MAX/2",
            ));
        }
        if self.region_split_size_bytes == 0 || self.region_split_keys == 0 {
            return Err(ConfigError("split thresholds must be positive"));
        }
        if self.leader_balance_tolerance == 0 || self.region_balance_tolerance == 0 {
            return Err(ConfigError(
                "balance tolerances must be at least 1, or one move overshoots and flaps",
            ));
        }
        if self.operator_leader_timeout_ms == 0 || self.operator_region_timeout_ms == 0 {
            return Err(ConfigError("operator timeouts must be positive"));
        }
        if self.id_batch < 2 || self.id_batch > crate::limits::ID_BATCH_MAX {
            return Err(ConfigError("id_batch must be in 2..=ID_BATCH_MAX"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let zero_tolerance = Config {
            leader_balance_tolerance: 0,
            ..Config::default()
        };
        assert!(zero_tolerance
            .validate()
            .unwrap_err()
            .0
            .contains("tolerance"));
        let no_replicas = Config {
            max_replicas: 0,
            ..Config::default()
        };
        assert!(no_replicas.validate().is_err());
    }
}
