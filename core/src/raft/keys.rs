//! Keys of per-region and per-store metadata in the `raft` column family. Disjoint from the
//! Raft log's `'r'` keys (`env::EngineRaftLog`).
//!
//! ```text
//! 's' region_id(be u64)  -> RegionLocalState   (written with applied data)
//! 'a' region_id(be u64)  -> RaftApplyState     (written with applied data)
//! 'i'                    -> StoreIdent
//! 'v'                    -> data layout version (`DATA_LAYOUT_VERSION`)
//! ```

use crate::types::RegionId;

const REGION_STATE_TAG: u8 = b's';
const APPLY_STATE_TAG: u8 = b'a';
/// Key of the store identity record.
pub const STORE_IDENT_KEY: &[u8] = b"i";
/// Key of the data layout version record.
pub const DATA_LAYOUT_KEY: &[u8] = b"v";
/// The data layout this code reads and writes: raw pairs in CF raw, transactional records
/// in CF default, lock and write. Written with the first region a store creates (or at the
/// first start of an empty store); a store holding regions without it was written by an
/// older FerroKV (raw pairs in CF default) and is refused.
pub const DATA_LAYOUT_VERSION: &[u8] = b"2";

fn region_meta_key(tag: u8, region: RegionId) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(tag);
    key.extend_from_slice(&region.get().to_be_bytes());
    key
}

/// Key of a region's `RegionLocalState`.
pub fn region_state_key(region: RegionId) -> Vec<u8> {
    region_meta_key(REGION_STATE_TAG, region)
}

/// Key of a region's `RaftApplyState`.
pub fn apply_state_key(region: RegionId) -> Vec<u8> {
    region_meta_key(APPLY_STATE_TAG, region)
}

/// `[start, end)` covering every region state key.
pub fn region_state_range() -> (Vec<u8>, Vec<u8>) {
    (vec![REGION_STATE_TAG], vec![REGION_STATE_TAG + 1])
}

/// The region id inside a region state key.
pub fn region_of_state_key(key: &[u8]) -> Option<RegionId> {
    let (&tag, rest) = key.split_first()?;
    if tag != REGION_STATE_TAG {
        return None;
    }
    Some(RegionId(u64::from_be_bytes(rest.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_state_keys_roundtrip_and_stay_in_range() {
        let key = region_state_key(RegionId(77));
        assert_eq!(region_of_state_key(&key), Some(RegionId(77)));
        let (start, end) = region_state_range();
        assert!(key >= start && key < end);
        assert!(apply_state_key(RegionId(77)) < start || apply_state_key(RegionId(77)) >= end);
        assert_eq!(region_of_state_key(&apply_state_key(RegionId(1))), None);
    }
}
