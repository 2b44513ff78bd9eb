//! Approximate region sizes, measured off the node loop from a consistent engine view: a
//! paged scan of the region's data (column family default), counting bytes and keys up to a
//! cap, sampling keys on the way so a split key near the middle (by bytes) comes for free.
//!
//! Bounds: at most `cap_bytes` are read per region and at most `SAMPLES_MAX` keys kept.

use ferrokv_core::env::{Cf, Direction, EngineError, Snapshot};
use ferrokv_core::types::KeyRange;
use ferrokv_proto::metapb;

/// Scan page size (keys).
const PAGE_KEYS: usize = 1_024;
/// Most sampled keys kept per measurement.
const SAMPLES_MAX: u64 = 64;

/// What a measurement found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionSize {
    /// Bytes of keys and values (up to the cap).
    pub bytes: u64,
    /// Keys (up to the cap).
    pub keys: u64,
    /// A key strictly inside the region near the middle by bytes, if there is one.
    pub split_key: Option<Vec<u8>>,
}

/// Measures `region` on `view`, reading at most about `cap_bytes`.
pub fn measure<S: Snapshot>(
    view: &S,
    region: &metapb::Region,
    cap_bytes: u64,
) -> Result<RegionSize, EngineError> {
    assert!(cap_bytes > 0);
    let step = (cap_bytes / SAMPLES_MAX).max(1);
    let mut samples: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut size = RegionSize::default();
    let mut start = region.start_key.clone();
    loop {
        let range = KeyRange::new(start.clone(), region.end_key.clone());
        let page = view.scan(Cf::Raw, &range, PAGE_KEYS, Direction::Forward)?;
        let full = page.len() == PAGE_KEYS;
        for (key, value) in &page {
            let before = size.bytes;
            size.bytes += (key.len() + value.len()) as u64;
            size.keys += 1;
            if before / step != size.bytes / step && key.as_slice() > region.start_key.as_slice() {
                samples.push((size.bytes, key.clone()));
            }
        }
        match page.last() {
            Some((last, _)) if full && size.bytes < cap_bytes => {
                start = last.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    let half = size.bytes / 2;
    size.split_key = samples
        .into_iter()
        .find(|(bytes, _)| *bytes >= half)
        .map(|(_, key)| key);
    assert!(size
        .split_key
        .as_ref()
        .is_none_or(|key| key.as_slice() > region.start_key.as_slice()));
    Ok(size)
}
