//! `AskBatchSplit`: ids for the regions a store is about to split off.
//!
//! Input: the splitting region as the store sees it, the split count, an id source. Output:
//! per new region, a region id and one peer id per peer of the splitting region (PD's
//! `HandleAskBatchSplit`). The region must be known and the request's epoch not older than
//! PD's (`ValidRegion`). No metadata changes: the new regions enter the registry through
//! their own heartbeats.

use ferrokv_proto::pdpb;

use crate::id_alloc::IdSource;
use crate::limits::SPLIT_COUNT_MAX;
use crate::meta::{self, MetaError};
use crate::state::PdState;

/// Why split ids were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskSplitError {
    /// The cluster is not bootstrapped.
    #[error("cluster is not bootstrapped")]
    NotBootstrapped,
    /// The request carries no region.
    #[error("request carries no region")]
    MissingRegion,
    /// The region is structurally invalid.
    #[error("invalid region: {0}")]
    InvalidRegion(MetaError),
    /// `split_count` is 0 or above `SPLIT_COUNT_MAX`.
    #[error("split count {0} out of range")]
    BadSplitCount(u32),
    /// PD knows no region at the request's start key.
    #[error("region not found")]
    RegionNotFound,
    /// The request's epoch is older than PD's.
    #[error("region epoch is stale")]
    StaleEpoch,
    /// The id window is exhausted; retry shortly.
    #[error("ids are not available yet")]
    IdsPending,
}

/// Allocates the ids for `request`.
pub fn ask_batch_split(
    state: &PdState,
    request: &pdpb::AskBatchSplitRequest,
    ids: &mut dyn IdSource,
) -> Result<Vec<pdpb::SplitId>, AskSplitError> {
    if !state.is_bootstrapped() {
        return Err(AskSplitError::NotBootstrapped);
    }
    let region = request
        .region
        .as_ref()
        .ok_or(AskSplitError::MissingRegion)?;
    meta::validate_region(region).map_err(AskSplitError::InvalidRegion)?;
    let count = request.split_count;
    if count == 0 || count > SPLIT_COUNT_MAX {
        return Err(AskSplitError::BadSplitCount(count));
    }
    let known = state
        .regions()
        .region_by_key(&region.start_key)
        .ok_or(AskSplitError::RegionNotFound)?;
    if meta::epoch(region).is_stale_against(&meta::epoch(known)) {
        return Err(AskSplitError::StaleEpoch);
    }
    let mut splits = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let new_region_id = ids.next_id().ok_or(AskSplitError::IdsPending)?;
        let new_peer_ids = region
            .peers
            .iter()
            .map(|_| ids.next_id().ok_or(AskSplitError::IdsPending))
            .collect::<Result<Vec<u64>, _>>()?;
        splits.push(pdpb::SplitId {
            new_region_id,
            new_peer_ids,
        });
    }
    assert_eq!(splits.len(), count as usize);
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{bootstrapped, first_region};
    use crate::testkit::CountingIds;

    fn request(count: u32) -> pdpb::AskBatchSplitRequest {
        pdpb::AskBatchSplitRequest {
            region: Some(first_region()),
            split_count: count,
            ..Default::default()
        }
    }

    #[test]
    fn each_new_region_gets_a_region_id_and_one_peer_id_per_peer() {
        let state = bootstrapped();
        let splits = ask_batch_split(&state, &request(2), &mut CountingIds(10)).unwrap();
        assert_eq!(
            splits,
            vec![
                pdpb::SplitId {
                    new_region_id: 11,
                    new_peer_ids: vec![12]
                },
                pdpb::SplitId {
                    new_region_id: 13,
                    new_peer_ids: vec![14]
                },
            ]
        );
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let state = bootstrapped();
        let mut ids = CountingIds(10);
        assert_eq!(
            ask_batch_split(&state, &request(0), &mut ids),
            Err(AskSplitError::BadSplitCount(0))
        );
        let mut stale = request(1);
        stale
            .region
            .as_mut()
            .unwrap()
            .region_epoch
            .as_mut()
            .unwrap()
            .version = 0;
        assert_eq!(
            ask_batch_split(&state, &stale, &mut ids),
            Err(AskSplitError::StaleEpoch)
        );
        assert_eq!(
            ask_batch_split(&PdState::new(), &request(1), &mut ids),
            Err(AskSplitError::NotBootstrapped)
        );
        assert_eq!(ids.0, 10, "no id spent on a refusal");
    }
}
