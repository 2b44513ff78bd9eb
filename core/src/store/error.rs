//! Region errors: why a store did not serve a request, in kvproto's terms so clients can
//! react (refresh routes, retry elsewhere, back off).

use ferrokv_proto::errorpb;
use ferrokv_proto::metapb;

use crate::env::EngineError;
use crate::types::RegionId;

/// Why a request was not served. Each maps to one `errorpb::Error` variant.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RegionError {
    /// This peer is not the leader; `leader` is the best known one.
    #[error("region {region_id} is not led by this store (leader hint {leader:?})")]
    NotLeader {
        region_id: RegionId,
        leader: Option<metapb::Peer>,
    },
    /// The region is not on this store.
    #[error("region {0} not found on this store")]
    RegionNotFound(RegionId),
    /// The client's epoch is stale; `current` lists the regions now covering its range.
    #[error("epoch not match: {message}")]
    EpochNotMatch {
        message: String,
        current: Vec<metapb::Region>,
    },
    /// A key is outside the region's range.
    #[error("key is not in region {}", region.id)]
    KeyNotInRegion {
        key: Vec<u8>,
        region: Box<metapb::Region>,
    },
    /// The proposal was superseded (leadership changed before it committed): it will never
    /// apply, so a retry is safe.
    #[error("stale command: the proposal was dropped by a leadership change")]
    StaleCommand,
    /// The request was taken but its outcome is unknown: a write may or may not apply (its
    /// entry arrived inside a snapshot, its peer was destroyed, or its deadline passed).
    /// Clients must not retry it blindly.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A read waited past its deadline; it had no effect and may be retried.
    #[error("request timed out: {0}")]
    Timeout(String),
    /// The store is overloaded; retry later.
    #[error("server is busy: {0}")]
    ServerIsBusy(String),
    /// The proposal is larger than one Raft entry may be.
    #[error("raft entry of {entry_bytes} bytes is too large")]
    RaftEntryTooLarge {
        region_id: RegionId,
        entry_bytes: u64,
    },
    /// Storage failed; the store is fenced and must restart.
    #[error("storage error: {0}")]
    Storage(#[from] EngineError),
    /// The request is malformed for this region (bad split key, unknown peer...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl RegionError {
    /// True if the request may have had an effect although it failed.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, RegionError::OutcomeUnknown(_))
    }

    /// The kvproto form, for responses' `region_error` field.
    pub fn to_proto(&self) -> errorpb::Error {
        let mut error = errorpb::Error {
            message: self.to_string(),
            ..Default::default()
        };
        match self {
            RegionError::NotLeader { region_id, leader } => {
                error.not_leader = Some(errorpb::NotLeader {
                    region_id: region_id.get(),
                    leader: *leader,
                });
            }
            RegionError::RegionNotFound(region_id) => {
                error.region_not_found = Some(errorpb::RegionNotFound {
                    region_id: region_id.get(),
                });
            }
            RegionError::EpochNotMatch { current, .. } => {
                error.epoch_not_match = Some(errorpb::EpochNotMatch {
                    current_regions: current.clone(),
                });
            }
            RegionError::KeyNotInRegion { key, region } => {
                error.key_not_in_region = Some(errorpb::KeyNotInRegion {
                    key: key.clone(),
                    region_id: region.id,
                    start_key: region.start_key.clone(),
                    end_key: region.end_key.clone(),
                });
            }
            RegionError::StaleCommand => error.stale_command = Some(errorpb::StaleCommand {}),
            RegionError::ServerIsBusy(reason) => {
                error.server_is_busy = Some(errorpb::ServerIsBusy {
                    reason: reason.clone(),
                    ..Default::default()
                });
            }
            RegionError::RaftEntryTooLarge {
                region_id,
                entry_bytes,
            } => {
                error.raft_entry_too_large = Some(errorpb::RaftEntryTooLarge {
                    region_id: region_id.get(),
                    entry_size: *entry_bytes,
                });
            }
            RegionError::Storage(_)
            | RegionError::Invalid(_)
            | RegionError::OutcomeUnknown(_)
            | RegionError::Timeout(_) => {}
        }
        error
    }
}
