//! `KvEngine` over RocksDB: one column family per `Cf`, atomic write batches, `sync` writes
//! through the WAL with fdatasync, and owned snapshots.
//!
//! A failed sync fences the engine: after an fsync error the kernel may have dropped dirty
//! pages while reporting the next fsync as clean, so what is durable is unknown. Every later
//! write answers `EngineError::Fenced` until the store restarts and recovers from disk and
//! its peers (PostgreSQL's fsyncgate lesson).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferrokv_core::env::{
    assert_scan_args, Cf, Direction, EngineError, KvEngine, KvPair, Mutation, Snapshot, WriteBatch,
    WriteOptions,
};
use ferrokv_core::types::KeyRange;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    IteratorMode, Options, ReadOptions, DB,
};

/// A RocksDB-backed engine. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
    fenced: Arc<AtomicBool>,
    path: PathBuf,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One block cache per engine, shared by every column family (TiKV shares one per store).
const BLOCK_CACHE_BYTES: usize = 128 << 20;

fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_background_jobs(2);
    options.set_keep_log_file_num(4);
    options
}

/// A column family configured the way TiKV configures its CFs: data CFs get a bloom filter
/// (a point read of an absent key skips the files that cannot hold it), index and filter
/// blocks live in the shared block cache; no compression in L0-L1 (fresh data, soon
/// rewritten), lz4 below. The Raft log CF is read in order: no filter.
fn cf_options(cf: Cf, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if cf != Cf::Raft {
        table.set_bloom_filter(10.0, false);
    }
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    let (none, lz4) = (DBCompressionType::None, DBCompressionType::Lz4);
    options.set_compression_per_level(&[none, none, lz4, lz4, lz4, lz4, lz4]);
    options
}

fn map_error(error: rocksdb::Error) -> EngineError {
    let text = error.to_string();
    match error.kind() {
        rocksdb::ErrorKind::Corruption => EngineError::Corruption(text),
        _ if text.contains("No space left") => EngineError::DiskFull { bytes: 0 },
        _ => EngineError::Io(text),
    }
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path` with every column family.
    pub fn open(path: &Path) -> Result<RocksEngine, EngineError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let families =
            Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(cf, &cache)));
        let db = DB::open_cf_descriptors(&db_options(), path, families).map_err(map_error)?;
        Ok(RocksEngine {
            db: Arc::new(db),
            fenced: Arc::new(AtomicBool::new(false)),
            path: path.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_not_fenced(&self) -> Result<(), EngineError> {
        if self.fenced.load(Ordering::Acquire) {
            return Err(EngineError::Fenced);
        }
        Ok(())
    }
}

fn handle(db: &DB, cf: Cf) -> &ColumnFamily {
    db.cf_handle(cf.name())
        .expect("every column family is created at open")
}

fn to_rocks_batch(db: &DB, batch: &WriteBatch) -> rocksdb::WriteBatch {
    let mut out = rocksdb::WriteBatch::default();
    for mutation in batch.mutations() {
        match mutation {
            Mutation::Put { cf, key, value } => out.put_cf(handle(db, *cf), key, value),
            Mutation::Delete { cf, key } => out.delete_cf(handle(db, *cf), key),
            Mutation::DeleteRange { cf, start, end } => {
                out.delete_range_cf(handle(db, *cf), start, end)
            }
        }
    }
    assert_eq!(out.len(), batch.len(), "every mutation is staged");
    out
}

impl KvEngine for RocksEngine {
    type Snap = RocksSnapshot;

    fn snapshot(&self) -> RocksSnapshot {
        RocksSnapshot {
            cell: OwnedSnapshot::new(Arc::clone(&self.db), |db| db.snapshot()),
        }
    }

    fn write(&self, batch: &WriteBatch, options: WriteOptions) -> Result<(), EngineError> {
        self.check_not_fenced()?;
        let mut write_options = rocksdb::WriteOptions::default();
        write_options.set_sync(options.sync);
        let result = self
            .db
            .write_opt(to_rocks_batch(&self.db, batch), &write_options);
        if let Err(error) = result {
            let mapped = map_error(error);
            if options.sync {
                self.fenced.store(true, Ordering::Release);
                tracing::error!(path = ?self.path, %mapped, "sync write failed; engine fenced");
            }
            return Err(mapped);
        }
        Ok(())
    }
}

type SnapshotRef<'db> = rocksdb::Snapshot<'db>;

self_cell::self_cell!(
    struct OwnedSnapshot {
        owner: Arc<DB>,
        #[covariant]
        dependent: SnapshotRef,
    }
);

/// A point-in-time view that keeps its database open.
pub struct RocksSnapshot {
    cell: OwnedSnapshot,
}

fn read_options(range: &KeyRange) -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_iterate_lower_bound(range.start.clone());
    if !range.end.is_empty() {
        options.set_iterate_upper_bound(range.end.clone());
    }
    options
}

impl Snapshot for RocksSnapshot {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        let db = self.cell.borrow_owner();
        self.cell
            .borrow_dependent()
            .get_cf(handle(db, cf), key)
            .map_err(map_error)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<KvPair>, EngineError> {
        assert_scan_args(range, limit);
        let mut out = Vec::new();
        if limit == 0 || range.is_empty() {
            return Ok(out);
        }
        let db = self.cell.borrow_owner();
        let mode = match direction {
            Direction::Forward => IteratorMode::Start,
            Direction::Reverse => IteratorMode::End,
        };
        let iter =
            self.cell
                .borrow_dependent()
                .iterator_cf_opt(handle(db, cf), read_options(range), mode);
        for item in iter.take(limit) {
            let (key, value) = item.map_err(map_error)?;
            debug_assert!(range.contains(&key), "iterator left its bounds");
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }
}
