//! Every bound of the PD core in one place, with compile-time checks relating them.
//!
//! A request that would exceed a bound gets a typed error, never unbounded work.

/// Most regions one `ScanRegions` answer may hold (a request's `limit <= 0` means this many).
pub const SCAN_REGIONS_MAX: usize = 10_240;
/// Most new regions one `AskBatchSplit` may ask ids for.
pub const SPLIT_COUNT_MAX: u32 = 1_024;
/// Most peers a region may have (voters and learners together).
pub const REGION_PEERS_MAX: usize = 16;
/// Largest id batch one `SetIdLimit` may add.
pub const ID_BATCH_MAX: u64 = 1 << 20;
/// Most stores the cluster may hold.
pub const STORES_MAX: usize = 4_096;
/// Largest encoded command or snapshot the codec accepts, in bytes.
pub const ENCODED_BYTES_MAX: usize = 1 << 30;

const _: () = assert!(SCAN_REGIONS_MAX > 0);
const _: () = assert!(SPLIT_COUNT_MAX as usize <= SCAN_REGIONS_MAX);
const _: () = assert!(REGION_PEERS_MAX >= 5, "five replicas must fit");
const _: () = assert!(ID_BATCH_MAX < u64::MAX / 4);
