//! The storage boundary: an ordered key-value engine with column families, atomic write
//! batches, durable (`sync`) writes and consistent snapshots.
//!
//! Shaped by what the core needs (get, bounded scan, atomic batch, sync), not by one backend's
//! API. Implemented by `RocksEngine` (production) and `SimEngine` (simulation); one
//! conformance suite runs against both.

use crate::limits;
use crate::types::KeyRange;

/// Column families. Their names are part of the on-disk format.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Cf {
    /// MVCC values of large transactional writes (every key under the transactional prefix).
    Default,
    /// Percolator locks.
    Lock,
    /// Percolator commit/rollback records.
    Write,
    /// Raft log, hard state, region and apply state.
    Raft,
    /// Raw KV data, keys as the client sends them. A column family of its own, so raw keys
    /// are any bytes and never meet transactional data.
    Raw,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 5] = [Cf::Default, Cf::Lock, Cf::Write, Cf::Raft, Cf::Raw];

    /// The on-disk name.
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
            Cf::Raft => "raft",
            Cf::Raw => "raw",
        }
    }
}

/// Why a storage operation failed. None of these is a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The device or OS reported an error.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Stored data failed its checksum or could not be decoded.
    #[error("storage corruption: {0}")]
    Corruption(String),
    /// No space left for the write; nothing was written.
    #[error("disk full: write of {bytes} bytes refused")]
    DiskFull { bytes: usize },
    /// A sync failed earlier: what is durable is unknown, so the engine refuses all further
    /// work until the store restarts and recovers (never retry an fsync and continue).
    #[error("storage fenced after a failed sync; the store must restart")]
    Fenced,
}

/// Scan order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Ascending from the range start.
    Forward,
    /// Descending from the range end.
    Reverse,
}

/// One change inside a write batch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete { cf: Cf, key: Vec<u8> },
    /// Remove every key in `[start, end)`; `end` must be bounded.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// Changes applied atomically: after a crash either all of them are visible or none.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct WriteBatch {
    mutations: Vec<Mutation>,
    bytes: usize,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) {
        self.bytes += key.len() + value.len();
        self.mutations.push(Mutation::Put {
            cf,
            key: key.to_vec(),
            value: value.to_vec(),
        });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: &[u8]) {
        self.bytes += key.len();
        self.mutations.push(Mutation::Delete {
            cf,
            key: key.to_vec(),
        });
    }

    /// Adds a range delete of `[start, end)`; panics on an unbounded or inverted range.
    pub fn delete_range(&mut self, cf: Cf, start: &[u8], end: &[u8]) {
        assert!(!end.is_empty(), "delete_range needs a bounded end");
        assert!(start <= end, "delete_range end below start");
        self.bytes += start.len() + end.len();
        self.mutations.push(Mutation::DeleteRange {
            cf,
            start: start.to_vec(),
            end: end.to_vec(),
        });
    }

    /// Appends every mutation of `other`.
    pub fn extend(&mut self, other: WriteBatch) {
        self.bytes += other.bytes;
        self.mutations.extend(other.mutations);
    }

    /// The mutations in order.
    pub fn mutations(&self) -> &[Mutation] {
        &self.mutations
    }

    /// Number of mutations.
    pub fn len(&self) -> usize {
        self.mutations.len()
    }

    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty()
    }

    /// Key and value bytes in the batch.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// How a write is made durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WriteOptions {
    /// Durable on return (fsync). Without it a crash may drop the write, and every unsynced
    /// write before it.
    pub sync: bool,
}

impl WriteOptions {
    /// A durable write.
    pub const SYNC: WriteOptions = WriteOptions { sync: true };
    /// A write that a crash may drop.
    pub const NO_SYNC: WriteOptions = WriteOptions { sync: false };
}

/// A key-value pair read from the engine.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A consistent, read-only view of the engine at one moment.
pub trait Snapshot: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Up to `limit` pairs inside `range`, in `direction` order. `limit` must not exceed
    /// `limits::ENGINE_SCAN_KEYS_MAX`, so every scan is bounded.
    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<KvPair>, EngineError>;
}

/// An ordered, column-family key-value engine.
pub trait KvEngine: Clone + Send + Sync + 'static {
    /// The snapshot type.
    type Snap: Snapshot;

    /// A consistent view; later writes are invisible to it.
    fn snapshot(&self) -> Self::Snap;

    /// Applies `batch` atomically. With `options.sync`, durable on return.
    fn write(&self, batch: &WriteBatch, options: WriteOptions) -> Result<(), EngineError>;

    /// Shorthand for a get on a fresh snapshot.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.snapshot().get(cf, key)
    }
}

/// Checks the scan contract every engine shares; engines call it before scanning.
pub fn assert_scan_args(range: &KeyRange, limit: usize) {
    assert!(
        limit <= limits::ENGINE_SCAN_KEYS_MAX,
        "scan limit {limit} above the bound"
    );
    assert!(
        range.end.is_empty() || range.start <= range.end,
        "inverted scan range"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_accounts_bytes_and_order() {
        let mut batch = WriteBatch::new();
        batch.put(Cf::Default, b"k", b"value");
        batch.delete(Cf::Lock, b"kk");
        let mut other = WriteBatch::new();
        other.delete_range(Cf::Raft, b"a", b"b");
        batch.extend(other);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.bytes(), 1 + 5 + 2 + 2);
        assert!(matches!(
            batch.mutations()[2],
            Mutation::DeleteRange { cf: Cf::Raft, .. }
        ));
    }

    #[test]
    #[should_panic(expected = "bounded end")]
    fn unbounded_delete_range_is_a_bug() {
        WriteBatch::new().delete_range(Cf::Default, b"a", b"");
    }

    #[test]
    fn cf_names_are_stable() {
        let names: Vec<_> = Cf::ALL.iter().map(|cf| cf.name()).collect();
        assert_eq!(names, ["default", "lock", "write", "raft", "raw"]);
    }
}
