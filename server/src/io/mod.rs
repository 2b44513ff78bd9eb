//! Production adapters for the core's `env` traits. `cfg(madsim)` decides here, and only here,
//! which adapters exist.

#[cfg(all(feature = "rocksdb", not(madsim)))]
mod rocks_engine;

#[cfg(all(feature = "rocksdb", not(madsim)))]
pub use rocks_engine::{RocksEngine, RocksSnapshot};
