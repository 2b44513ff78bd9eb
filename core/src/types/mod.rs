//! Shared value types: newtype ids, timestamps, region epochs and ranges, the key codec.

pub mod codec;
pub mod fnv;
mod ids;
mod region;
mod timestamp;

pub use ids::{LogIndex, PeerId, RegionId, StoreId, Term};
pub use region::{KeyRange, RegionEpoch};
pub use timestamp::{TimeStamp, LOGICAL_BITS, LOGICAL_MAX};
