//! The Raft log store reading a `raft` column family holding arbitrary bytes at entry and
//! hard-state keys: every read gives entries or a typed Corruption error, never a panic, and
//! what it returns keeps its contract (consecutive indexes inside the asked range, the byte
//! bound with at least one entry, bounds that match the stored keys).
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_core::env::{
    Cf, EngineError, EngineRaftLog, KvEngine, MemEngine, RaftLogStore, WriteBatch, WriteOptions,
};
use ferrokv_core::types::{LogIndex, RegionId};
use ferrokv_fuzz::raft_log_keys;
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;

#[derive(Arbitrary, Debug)]
enum Stored {
    /// Arbitrary bytes at entry `index` of region 1 or 2.
    RawEntry {
        region2: bool,
        index: u8,
        bytes: Vec<u8>,
    },
    /// A well-formed entry whose own index and term are chosen freely.
    Entry {
        index: u8,
        claimed_index: u8,
        term: u8,
        data: Vec<u8>,
    },
    /// Arbitrary bytes as region 1's hard state.
    RawHardState(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    stored: Vec<Stored>,
    low: u8,
    high: u8,
    bytes_max: u16,
}

fn corruption(result: &Result<impl Sized, EngineError>) {
    if let Err(error) = result {
        assert!(
            matches!(error, EngineError::Corruption(_)),
            "a non-corruption error: {error}"
        );
    }
}

fuzz_target!(|input: Input| {
    let engine = MemEngine::new();
    let mut batch = WriteBatch::new();
    for stored in input.stored.iter().take(64) {
        match stored {
            Stored::RawEntry {
                region2,
                index,
                bytes,
            } => {
                let region = if *region2 { 2 } else { 1 };
                batch.put(
                    Cf::Raft,
                    &raft_log_keys::entry(region, u64::from(*index)),
                    bytes,
                );
            }
            Stored::Entry {
                index,
                claimed_index,
                term,
                data,
            } => {
                let mut entry = raft::eraftpb::Entry::default();
                entry.index = u64::from(*claimed_index);
                entry.term = u64::from(*term);
                entry.data = data.clone().into();
                let bytes = entry.write_to_bytes().expect("encodes");
                batch.put(
                    Cf::Raft,
                    &raft_log_keys::entry(1, u64::from(*index)),
                    &bytes,
                );
            }
            Stored::RawHardState(bytes) => {
                batch.put(Cf::Raft, &raft_log_keys::hard_state(1), bytes)
            }
        }
    }
    engine
        .write(&batch, WriteOptions::SYNC)
        .expect("memory engine writes");
    let log = EngineRaftLog::new(engine);
    let region = RegionId(1);
    corruption(&log.hard_state(region));
    let bounds = log.index_bounds(region);
    corruption(&bounds);
    if let Ok(Some((first, last))) = bounds {
        assert!(first <= last, "bounds out of order");
    }
    let (low, high) = (u64::from(input.low), u64::from(input.high));
    if low > high {
        return;
    }
    let bytes_max = u64::from(input.bytes_max);
    let entries = log.entries(region, LogIndex(low), LogIndex(high), bytes_max);
    corruption(&entries);
    let Ok(entries) = entries else { return };
    for (offset, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.index,
            low + offset as u64,
            "entries not consecutive from low"
        );
        assert!(entry.index < high, "an entry at or past high");
    }
    let sizes: Vec<u64> = entries
        .iter()
        .map(|e| u64::from(e.compute_size()))
        .collect();
    if sizes.len() > 1 {
        let before_last: u64 = sizes[..sizes.len() - 1].iter().sum();
        assert!(
            before_last <= bytes_max,
            "more than the byte bound before the last entry"
        );
    }
});
