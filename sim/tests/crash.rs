//! SimEngine crash and fault semantics: what survives a power loss, and how recovery treats
//! torn and corrupt records.

use ferrokv_core::env::{Cf, EngineError, KvEngine, WriteBatch, WriteOptions};
use ferrokv_sim::{CrashTail, DiskFaults, SimDisk, SimEngine};
use proptest::prelude::*;

fn put(engine: &SimEngine, key: &[u8], value: &[u8], sync: bool) -> Result<(), EngineError> {
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, key, value);
    engine.write(&batch, WriteOptions { sync })
}

fn get(engine: &SimEngine, key: &[u8]) -> Option<Vec<u8>> {
    engine.get(Cf::Default, key).unwrap()
}

#[test]
fn synced_writes_survive_and_unsynced_are_lost() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"synced", true).unwrap();
    put(&engine, b"b", b"unsynced", false).unwrap();
    put(&engine, b"a", b"overwritten-unsynced", false).unwrap();
    assert!(disk.unsynced_bytes() > 0);
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(get(&engine, b"a"), Some(b"synced".to_vec()));
    assert_eq!(get(&engine, b"b"), None);
}

#[test]
fn a_sync_makes_earlier_unsynced_writes_durable() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", false).unwrap();
    put(&engine, b"b", b"2", true).unwrap();
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        get(&engine, b"a"),
        Some(b"1".to_vec()),
        "fsync covers earlier writes"
    );
}

#[test]
fn torn_tail_is_detected_and_never_half_applied() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"base", b"durable", true).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"x", b"1");
    batch.put(Cf::Default, b"y", b"2");
    engine.write(&batch, WriteOptions::NO_SYNC).unwrap();
    let record_bytes = disk.unsynced_bytes();
    disk.crash(CrashTail::KeepPrefix(record_bytes - 3));
    let engine = SimEngine::open(&disk).unwrap();
    let report = disk.last_recovery();
    assert_eq!(report.torn_bytes_dropped, record_bytes - 3);
    assert_eq!(get(&engine, b"base"), Some(b"durable".to_vec()));
    assert_eq!((get(&engine, b"x"), get(&engine, b"y")), (None, None));
    put(&engine, b"after", b"recovery", true).unwrap();
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        get(&engine, b"after"),
        Some(b"recovery".to_vec()),
        "log continues cleanly"
    );
}

#[test]
fn flipped_bit_in_synced_data_refuses_to_open() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"k", b"value", true).unwrap();
    put(&engine, b"k2", b"value2", true).unwrap();
    assert!(
        disk.flip_log_bit(30 * 8 + 3),
        "a payload bit of the first record"
    );
    disk.crash(CrashTail::DropAll);
    let error = SimEngine::open(&disk).unwrap_err();
    assert!(matches!(error, EngineError::Corruption(_)), "{error}");
}

#[test]
fn failed_sync_fences_the_engine_until_reopen() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    disk.set_faults(DiskFaults {
        fail_next_sync: true,
        ..DiskFaults::default()
    });
    assert!(matches!(
        put(&engine, b"k", b"v", true),
        Err(EngineError::Io(_))
    ));
    assert_eq!(put(&engine, b"k2", b"v", false), Err(EngineError::Fenced));
    assert_eq!(
        put(&engine, b"k3", b"v", true),
        Err(EngineError::Fenced),
        "no retry"
    );
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        get(&engine, b"k"),
        None,
        "the failed sync acknowledged nothing"
    );
    put(&engine, b"k", b"v", true).unwrap();
}

#[test]
fn full_disk_refuses_writes_and_changes_nothing() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"small", b"1", true).unwrap();
    disk.set_faults(DiskFaults {
        capacity_bytes: Some(64),
        ..DiskFaults::default()
    });
    let error = put(&engine, b"big", &[7u8; 100], true).unwrap_err();
    assert!(matches!(error, EngineError::DiskFull { .. }), "{error}");
    assert_eq!(get(&engine, b"big"), None);
    disk.set_faults(DiskFaults::default());
    put(&engine, b"big", &[7u8; 100], true).unwrap();
}

#[test]
fn handles_from_before_a_crash_are_dead() {
    let disk = SimDisk::new();
    let old = SimEngine::open(&disk).unwrap();
    disk.crash(CrashTail::DropAll);
    let new = SimEngine::open(&disk).unwrap();
    assert!(matches!(
        put(&old, b"zombie", b"write", true),
        Err(EngineError::Io(_))
    ));
    assert_eq!(get(&new, b"zombie"), None);
}

#[test]
fn checkpoint_keeps_data_across_many_writes() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    let value = vec![3u8; 4096];
    for i in 0..2000u32 {
        put(&engine, &(i % 300).to_be_bytes(), &value, i % 7 == 0).unwrap();
    }
    put(&engine, b"last", b"x", true).unwrap();
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    for i in 0..300u32 {
        assert_eq!(
            get(&engine, &i.to_be_bytes()),
            Some(value.clone()),
            "key {i}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// After a crash with any tail (a byte prefix kept, the rest lost, zeroed, garbage, or
    /// sectors persisted out of order), the engine holds the durable state plus some whole
    /// prefix of the unsynced batches: never part of a batch, never a batch after a lost one.
    #[test]
    fn crash_recovers_a_batch_prefix(
        batches in prop::collection::vec(
            (prop::collection::vec((0u8..6, any::<u8>()), 1..4), any::<bool>()), 1..12),
        keep in any::<prop::sample::Index>(),
        mode in 0u8..6,
        seed in any::<u64>(),
    ) {
        let disk = SimDisk::new();
        let engine = SimEngine::open(&disk).unwrap();
        let mut durable = std::collections::BTreeMap::new();
        let mut states = vec![durable.clone()];
        let mut current = durable.clone();
        for (writes, sync) in &batches {
            let mut batch = WriteBatch::new();
            for (key, value) in writes {
                batch.put(Cf::Default, &[*key], &[*value]);
                current.insert(vec![*key], vec![*value]);
            }
            engine.write(&batch, WriteOptions { sync: *sync }).unwrap();
            if *sync {
                durable = current.clone();
                states = vec![durable.clone()];
            } else {
                states.push(current.clone());
            }
        }
        let unsynced = disk.unsynced_bytes();
        let bytes = keep.index(unsynced + 1);
        let tail = match mode {
            0 => CrashTail::KeepPrefix(bytes),
            1 => CrashTail::ZeroedFrom(bytes),
            2 => CrashTail::GarbageFrom { bytes, seed },
            3 => CrashTail::Scrambled { seed },
            4 => CrashTail::DropAll,
            _ => CrashTail::KeepAll,
        };
        disk.crash(tail);
        let engine = SimEngine::open(&disk).unwrap();
        let recovered: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = (0u8..6)
            .filter_map(|key| get(&engine, &[key]).map(|value| (vec![key], value)))
            .collect();
        prop_assert!(states.contains(&recovered), "recovered {:?} is no batch prefix", recovered);
    }
}

#[test]
fn any_flipped_bit_in_synced_records_refuses_to_open_never_truncates() {
    for bit in (0..64 * 8).step_by(7) {
        let disk = SimDisk::new();
        let engine = SimEngine::open(&disk).unwrap();
        put(&engine, b"first", b"1", true).unwrap();
        put(&engine, b"second", b"2", true).unwrap();
        disk.crash(CrashTail::DropAll);
        disk.flip_log_bit(bit);
        match SimEngine::open(&disk) {
            Err(EngineError::Corruption(_)) => {}
            Ok(engine) => panic!(
                "bit {bit}: opened with first={:?} second={:?}",
                get(&engine, b"first"),
                get(&engine, b"second")
            ),
            Err(other) => panic!("bit {bit}: {other}"),
        }
    }
}
