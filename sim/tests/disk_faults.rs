//! SimDisk's harsher faults, with exact outcomes: the durable boundary (damage past it is a
//! torn tail, damage before it refuses to open), zeroed and scrambled crash tails,
//! misdirected records, latent sector errors, bit flips in the checkpoint image, a crash
//! during a large synced write, and the sync counter. Two proptests close it: any crash
//! sequence recovers a prefix of batches holding every synced one, and any damage to durable
//! data refuses to open.

use std::collections::BTreeMap;

use ferrokv_core::env::{Cf, EngineError, KvEngine, WriteBatch, WriteOptions};
use ferrokv_sim::{
    CrashReport, CrashTail, DiskFaults, DiskSector, RecordDamage, RecoveryReport, SimDisk,
    SimEngine,
};
use proptest::prelude::*;

/// Bytes of the record of a batch holding one put: header 24, mutation 10 + key + value.
fn put_record_bytes(key: &[u8], value: &[u8]) -> usize {
    34 + key.len() + value.len()
}

/// The value that makes a one-byte-key put exactly one 512-byte sector.
const SECTOR_VALUE_BYTES: usize = 477;

fn put(engine: &SimEngine, key: &[u8], value: &[u8], sync: bool) -> Result<(), EngineError> {
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, key, value);
    engine.write(&batch, WriteOptions { sync })
}

fn get(engine: &SimEngine, key: &[u8]) -> Option<Vec<u8>> {
    engine.get(Cf::Default, key).unwrap()
}

/// Writes one sector-sized unsynced record per key in `keys`.
fn put_sectors(engine: &SimEngine, keys: std::ops::Range<u8>) {
    for key in keys {
        let value = [key + 1; SECTOR_VALUE_BYTES];
        assert_eq!(put_record_bytes(&[key], &value), 512);
        put(engine, &[key], &value, false).unwrap();
    }
}

fn present(engine: &SimEngine, keys: std::ops::Range<u8>) -> Vec<u8> {
    keys.filter(|key| get(engine, &[*key]).is_some()).collect()
}

#[test]
fn garbage_past_the_durable_boundary_is_a_torn_tail() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", true).unwrap();
    put(&engine, b"b", b"2", false).unwrap();
    put(&engine, b"c", b"3", false).unwrap();
    assert_eq!(disk.durable_log_bytes(), 36);
    assert_eq!(disk.unsynced_bytes(), 72);
    disk.crash(CrashTail::GarbageFrom {
        bytes: 36 + 10,
        seed: 1,
    });
    assert_eq!(
        disk.last_crash(),
        CrashReport {
            unsynced_bytes: 72,
            kept_bytes: 46,
            zeroed_bytes: 0,
            zeroed_sectors: vec![],
            garbage_bytes: 26,
        }
    );
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        disk.last_recovery(),
        RecoveryReport {
            image_entries: 0,
            durable_records: 1,
            records_replayed: 2,
            torn_bytes_dropped: 36,
            tail_damage: Some(RecordDamage::Header),
            zero_sectors_dropped: 0,
            orphan_records_dropped: 0,
        }
    );
    assert_eq!(get(&engine, b"b"), Some(b"2".to_vec()));
    assert_eq!(get(&engine, b"c"), None);
    assert_eq!(
        disk.durable_log_bytes(),
        72,
        "recovery made the replayed tail durable"
    );
}

#[test]
fn damage_before_the_durable_boundary_refuses_to_open_and_changes_nothing() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", true).unwrap();
    put(&engine, b"b", b"2", true).unwrap();
    put(&engine, b"c", b"3", false).unwrap();
    disk.crash(CrashTail::KeepAll);
    assert!(
        disk.flip_log_bit((36 + 24 + 5) * 8),
        "a payload bit of record 1"
    );
    let expected = EngineError::Corruption(
        "durable log offset 36 (record 1): record payload checksum mismatch".into(),
    );
    assert_eq!(SimEngine::open(&disk).unwrap_err(), expected);
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        expected,
        "a failed open repairs nothing"
    );
    assert!(disk.flip_log_bit((36 + 24 + 5) * 8), "flip it back");
    assert!(
        disk.flip_log_bit((36 + 4) * 8 + 1),
        "a header bit of record 1"
    );
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        EngineError::Corruption(
            "durable log offset 36 (record 1): record header checksum mismatch".into()
        )
    );
}

#[test]
fn flip_log_bit_only_touches_durable_bytes() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", false).unwrap();
    assert!(!disk.flip_log_bit(0), "nothing durable yet");
    put(&engine, b"b", b"2", true).unwrap();
    put(&engine, b"c", b"3", false).unwrap();
    disk.crash(CrashTail::KeepAll);
    assert!(
        disk.flip_log_bit(72 * 8 + 3),
        "wraps to bit 3 of the durable bytes"
    );
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        EngineError::Corruption(
            "durable log offset 0 (record 0): record header checksum mismatch".into()
        )
    );
}

#[test]
fn recovery_makes_the_replayed_tail_durable() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", true).unwrap();
    put(&engine, b"b", b"2", false).unwrap();
    disk.crash(CrashTail::KeepAll);
    let _engine = SimEngine::open(&disk).unwrap();
    let report = disk.last_recovery();
    assert_eq!((report.durable_records, report.records_replayed), (1, 2));
    assert_eq!(disk.durable_log_bytes(), 72);
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(disk.last_recovery().durable_records, 2);
    assert_eq!(get(&engine, b"b"), Some(b"2".to_vec()));
    assert_eq!(
        disk.syncs(),
        1,
        "recovery's own superblock write is not counted"
    );
}

#[test]
fn clean_reopen_keeps_unsynced_writes_and_kills_the_old_handle() {
    let disk = SimDisk::new();
    let old = SimEngine::open(&disk).unwrap();
    put(&old, b"a", b"1", false).unwrap();
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(get(&engine, b"a"), Some(b"1".to_vec()));
    assert_eq!(disk.durable_log_bytes(), 36);
    assert!(matches!(
        put(&old, b"z", b"1", true),
        Err(EngineError::Io(_))
    ));
    put(&engine, b"b", b"2", true).unwrap();
    disk.crash(CrashTail::DropAll);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        (get(&engine, b"a"), get(&engine, b"b")),
        (Some(b"1".to_vec()), Some(b"2".to_vec()))
    );
}

#[test]
fn zeroed_tail_replays_the_whole_records_before_the_zeros() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put_sectors(&engine, 0..3);
    disk.crash(CrashTail::ZeroedFrom(612));
    assert_eq!(
        disk.last_crash(),
        CrashReport {
            unsynced_bytes: 1536,
            kept_bytes: 612,
            zeroed_bytes: 924,
            zeroed_sectors: vec![1, 2],
            garbage_bytes: 0,
        }
    );
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        disk.last_recovery(),
        RecoveryReport {
            image_entries: 0,
            durable_records: 0,
            records_replayed: 1,
            torn_bytes_dropped: 1024,
            tail_damage: Some(RecordDamage::Payload),
            zero_sectors_dropped: 1,
            orphan_records_dropped: 0,
        }
    );
    assert_eq!(present(&engine, 0..3), vec![0]);
}

#[test]
fn scrambled_tail_never_replays_a_record_after_a_lost_one() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put_sectors(&engine, 0..4);
    disk.crash(CrashTail::Scrambled { seed: 0 });
    assert_eq!(disk.last_crash().zeroed_sectors, vec![1]);
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        disk.last_recovery(),
        RecoveryReport {
            image_entries: 0,
            durable_records: 0,
            records_replayed: 1,
            torn_bytes_dropped: 1536,
            tail_damage: Some(RecordDamage::Zeros),
            zero_sectors_dropped: 1,
            orphan_records_dropped: 2,
        }
    );
    assert_eq!(
        present(&engine, 0..4),
        vec![0],
        "records 2 and 3 survived but must not replay"
    );
}

#[test]
fn scrambled_tails_replay_exactly_the_records_before_the_first_lost_sector() {
    for seed in 0..64 {
        let disk = SimDisk::new();
        let engine = SimEngine::open(&disk).unwrap();
        put(&engine, b"durable", b"yes", true).unwrap();
        put_sectors(&engine, 0..4);
        disk.crash(CrashTail::Scrambled { seed });
        let crash = disk.last_crash();
        let engine = SimEngine::open(&disk).unwrap();
        assert_eq!(
            get(&engine, b"durable"),
            Some(b"yes".to_vec()),
            "seed {seed}"
        );
        // Record k occupies log bytes 42 + 512k .. 42 + 512(k+1): sectors k and k + 1.
        let first_lost = (0..4u8)
            .find(|k| {
                let k = usize::from(*k);
                crash.zeroed_sectors.contains(&k) || crash.zeroed_sectors.contains(&(k + 1))
            })
            .unwrap_or(4);
        let expected: Vec<u8> = (0..first_lost).collect();
        assert_eq!(present(&engine, 0..4), expected, "seed {seed}: {crash:?}");
        assert_eq!(
            disk.last_recovery().records_replayed,
            1 + usize::from(first_lost)
        );
    }
}

#[test]
fn misdirected_record_in_the_durable_log_is_corruption() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", true).unwrap();
    put(&engine, b"b", b"2", false).unwrap();
    assert!(!disk.misdirect_durable_record(0), "one durable record only");
    put(&engine, b"c", b"3", true).unwrap();
    disk.crash(CrashTail::DropAll);
    assert!(disk.misdirect_durable_record(0));
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        EngineError::Corruption(
            "durable log offset 72 (record 2): misdirected record: seq 0 where 2 belongs".into()
        )
    );
}

#[test]
fn misdirected_copy_of_an_identical_batch_is_still_caught() {
    for seed in 0..8 {
        let disk = SimDisk::new();
        let engine = SimEngine::open(&disk).unwrap();
        put(&engine, b"same", b"batch", true).unwrap();
        put(&engine, b"same", b"batch", true).unwrap();
        assert!(disk.misdirect_durable_record(seed));
        let error = SimEngine::open(&disk).unwrap_err();
        let expected = [
            "durable log offset 0 (record 0): misdirected record: seq 1 where 0 belongs",
            "durable log offset 43 (record 1): misdirected record: seq 0 where 1 belongs",
        ];
        assert!(
            expected
                .iter()
                .any(|why| error == EngineError::Corruption((*why).into())),
            "seed {seed}: {error}"
        );
    }
}

#[test]
fn latent_sector_error_in_the_durable_log_is_io() {
    let disk = SimDisk::new();
    assert_eq!(disk.latent_sector_error(0), None, "nothing durable");
    let engine = SimEngine::open(&disk).unwrap();
    put_sectors(&engine, 0..3);
    put(&engine, b"sync", b"", true).unwrap();
    disk.crash(CrashTail::DropAll);
    assert_eq!(
        disk.latent_sector_error(5),
        Some(DiskSector::Log(1)),
        "wraps over 4 sectors"
    );
    let expected = EngineError::Io("durable log offset 512: sector unreadable".into());
    assert_eq!(SimEngine::open(&disk).unwrap_err(), expected);
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        expected,
        "the error is latent"
    );
}

/// A disk whose two sector-sized records were folded into a checkpoint image, followed by
/// one durable log record.
fn checkpointed_disk() -> SimDisk {
    let disk = SimDisk::with_checkpoint_log_bytes(1000);
    let engine = SimEngine::open(&disk).unwrap();
    put_sectors(&engine, 0..2);
    put(&engine, b"sync", b"", true).unwrap();
    assert_eq!(
        disk.image_bytes(),
        36 + 2 * (4 + 2 + 4 + SECTOR_VALUE_BYTES) + (4 + 5 + 4)
    );
    assert_eq!(disk.durable_log_bytes(), 0);
    put(&engine, b"x", b"after", true).unwrap();
    disk.crash(CrashTail::DropAll);
    disk
}

#[test]
fn checkpoint_image_and_log_recover_together() {
    let disk = checkpointed_disk();
    let engine = SimEngine::open(&disk).unwrap();
    assert_eq!(
        disk.last_recovery(),
        RecoveryReport {
            image_entries: 3,
            durable_records: 1,
            records_replayed: 1,
            ..RecoveryReport::default()
        }
    );
    assert_eq!(present(&engine, 0..2), vec![0, 1]);
    assert_eq!(get(&engine, b"x"), Some(b"after".to_vec()));
    drop(engine);
    assert!(disk.flip_log_bit(0));
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        EngineError::Corruption(
            "durable log offset 0 (record 3): record header checksum mismatch".into()
        ),
        "the log continues the image's sequence"
    );
}

#[test]
fn latent_sector_error_in_the_image_is_io() {
    let disk = checkpointed_disk();
    assert_eq!(disk.latent_sector_error(1), Some(DiskSector::Image(1)));
    assert_eq!(
        SimEngine::open(&disk).unwrap_err(),
        EngineError::Io("checkpoint image: sector unreadable".into())
    );
}

#[test]
fn every_flipped_image_bit_refuses_to_open() {
    let bits = checkpointed_disk().image_bytes() * 8;
    for bit in (0..bits).step_by(3) {
        let disk = checkpointed_disk();
        assert!(disk.flip_image_bit(bit));
        match SimEngine::open(&disk) {
            Err(EngineError::Corruption(why)) => {
                assert!(why.starts_with("checkpoint image"), "bit {bit}: {why}")
            }
            Ok(_) => panic!("bit {bit}: opened over a flipped image bit"),
            Err(other) => panic!("bit {bit}: {other}"),
        }
    }
    assert!(!SimDisk::new().flip_image_bit(0), "no image yet");
}

#[test]
fn crash_during_a_large_synced_write_recovers_the_state_before_it() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"a", b"1", true).unwrap();
    disk.crash_on_sync_at_least(4096, 3);
    put(&engine, b"b", b"2", true).unwrap();
    put(&engine, b"c", b"3", false).unwrap();
    let big = vec![9u8; 8000];
    assert_eq!(
        put(&engine, b"big", &big, true),
        Err(EngineError::Io(
            "power lost during a 8037 byte synced write".into()
        ))
    );
    assert!(
        matches!(put(&engine, b"d", b"4", true), Err(EngineError::Io(_))),
        "the handle died with the power"
    );
    assert_eq!(disk.syncs(), 2);
    let crash = disk.last_crash();
    let kept = 7499; // the prefix seed 3 keeps: all of "c" and part of "big"
    assert_eq!((crash.unsynced_bytes, crash.kept_bytes), (36 + 8037, kept));
    let engine = SimEngine::open(&disk).unwrap();
    let report = disk.last_recovery();
    assert_eq!(report.tail_damage, Some(RecordDamage::Cut));
    assert_eq!(report.torn_bytes_dropped, kept - 36);
    assert_eq!(get(&engine, b"b"), Some(b"2".to_vec()));
    assert_eq!(get(&engine, b"c"), Some(b"3".to_vec()));
    assert_eq!(get(&engine, b"big"), None);
    put(&engine, b"big", &big, true).unwrap();
    assert_eq!(disk.syncs(), 3, "the fault fired once");
}

#[test]
fn a_crash_kills_a_fenced_handle_with_io() {
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
    assert_eq!(put(&engine, b"k", b"v", true), Err(EngineError::Fenced));
    disk.crash(CrashTail::DropAll);
    assert!(matches!(
        put(&engine, b"k", b"v", true),
        Err(EngineError::Io(_))
    ));
}

#[test]
fn syncs_counts_successful_syncs_only() {
    let disk = SimDisk::new();
    let engine = SimEngine::open(&disk).unwrap();
    for i in 0..5u8 {
        put(&engine, &[i], b"v", i % 2 == 0).unwrap();
    }
    assert_eq!(disk.syncs(), 3);
    disk.set_faults(DiskFaults {
        fail_next_sync: true,
        ..DiskFaults::default()
    });
    assert!(put(&engine, b"x", b"v", true).is_err());
    assert_eq!(disk.syncs(), 3);
    disk.crash(CrashTail::KeepAll);
    let engine = SimEngine::open(&disk).unwrap();
    put(&engine, b"y", b"v", true).unwrap();
    assert_eq!(disk.syncs(), 4);
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keys the proptests write: 0..6 by ordinary writes, 6 by the large synced write.
const KEYS: std::ops::Range<u8> = 0..7;
const BIG_KEY: u8 = 6;
/// A synced write at least this large crashes under `Op::CrashInSync`; ordinary writes
/// (at most 3 puts of < 1200 bytes) stay below it.
const BIG_RECORD_BYTES: usize = 4000;

fn read_state(engine: &SimEngine) -> State {
    KEYS.filter_map(|key| get(engine, &[key]).map(|value| (vec![key], value)))
        .collect()
}

/// A value unique to write `op` of `len` bytes (at least 4).
fn value(op: usize, len: usize) -> Vec<u8> {
    let mut value = u32::try_from(op).unwrap().to_le_bytes().to_vec();
    value.resize(len.max(4), op as u8);
    value
}

#[derive(Clone, Debug)]
enum Op {
    /// One atomic batch of puts.
    Write { puts: Vec<(u8, usize)>, sync: bool },
    /// Power loss with this tail, then reopen.
    Crash(CrashTail),
    /// Power loss during a large synced write, then reopen.
    CrashInSync { seed: u64 },
    /// Reopen without a crash (the OS keeps unsynced bytes).
    Reopen,
}

fn crash_tail() -> impl Strategy<Value = CrashTail> {
    prop_oneof![
        Just(CrashTail::DropAll),
        Just(CrashTail::KeepAll),
        (0usize..6000).prop_map(CrashTail::KeepPrefix),
        (0usize..6000).prop_map(CrashTail::ZeroedFrom),
        any::<u64>().prop_map(|seed| CrashTail::Scrambled { seed }),
        (0usize..6000, any::<u64>())
            .prop_map(|(bytes, seed)| CrashTail::GarbageFrom { bytes, seed }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let puts = prop::collection::vec((0u8..BIG_KEY, 0usize..1200), 1..4);
    prop_oneof![
        8 => (puts, any::<bool>()).prop_map(|(puts, sync)| Op::Write { puts, sync }),
        3 => crash_tail().prop_map(Op::Crash),
        1 => any::<u64>().prop_map(|seed| Op::CrashInSync { seed }),
        1 => Just(Op::Reopen),
    ]
}

/// The engine under test plus what it may hold: `candidates[0]` is the state at the last
/// durable point, later entries add one unsynced batch each.
struct Run {
    disk: SimDisk,
    engine: SimEngine,
    current: State,
    candidates: Vec<State>,
}

impl Run {
    fn write(&mut self, index: usize, puts: &[(u8, usize)], sync: bool) {
        let mut batch = WriteBatch::new();
        for (key, len) in puts {
            let value = value(index, *len);
            batch.put(Cf::Default, &[*key], &value);
            self.current.insert(vec![*key], value);
        }
        self.engine.write(&batch, WriteOptions { sync }).unwrap();
        if sync {
            self.candidates = vec![self.current.clone()];
        } else {
            self.candidates.push(self.current.clone());
        }
    }

    /// Reopens after a crash: the recovered state must be one of the candidates.
    fn recover(&mut self) -> Result<(), TestCaseError> {
        self.engine = SimEngine::open(&self.disk).unwrap();
        let recovered = read_state(&self.engine);
        let report = self.disk.last_recovery();
        prop_assert!(report.records_replayed >= report.durable_records);
        prop_assert_eq!(report.tail_damage.is_some(), report.torn_bytes_dropped > 0);
        prop_assert!(
            self.candidates.contains(&recovered),
            "recovered {:?} is not a batch prefix holding every synced batch ({:?})",
            recovered.keys().collect::<Vec<_>>(),
            report
        );
        self.current = recovered;
        self.candidates = vec![self.current.clone()];
        Ok(())
    }

    fn step(&mut self, index: usize, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Write { puts, sync } => self.write(index, puts, *sync),
            Op::Crash(tail) => {
                self.disk.crash(*tail);
                self.recover()?;
            }
            Op::CrashInSync { seed } => {
                self.disk.crash_on_sync_at_least(BIG_RECORD_BYTES, *seed);
                let result = put(&self.engine, &[BIG_KEY], &value(index, 5000), true);
                prop_assert!(matches!(result, Err(EngineError::Io(_))), "{:?}", result);
                self.recover()?;
            }
            Op::Reopen => {
                self.engine = SimEngine::open(&self.disk).unwrap();
                prop_assert_eq!(read_state(&self.engine), self.current.clone());
                self.candidates = vec![self.current.clone()];
            }
        }
        Ok(())
    }
}

/// What damages durable data.
#[derive(Clone, Debug)]
enum Damage {
    LogBit(usize),
    ImageBit(usize),
    Misdirect(u64),
    Sector(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::LogBit),
        any::<usize>().prop_map(Damage::ImageBit),
        any::<u64>().prop_map(Damage::Misdirect),
        any::<usize>().prop_map(Damage::Sector),
    ]
}

/// Applies `damage`; returns the error open must then fail with (`true`: I/O, `false`:
/// corruption), or None if there was nothing durable to damage.
fn inflict(disk: &SimDisk, damage: &Damage) -> Option<bool> {
    let applied = match damage {
        Damage::LogBit(bit) => disk.flip_log_bit(*bit),
        Damage::ImageBit(bit) => disk.flip_image_bit(*bit),
        Damage::Misdirect(seed) => disk.misdirect_durable_record(*seed),
        Damage::Sector(index) => disk.latent_sector_error(*index).is_some(),
    };
    applied.then_some(matches!(damage, Damage::Sector(_)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any sequence of writes, crashes with any tail, crashes inside a large synced write and
    /// clean reopens: every recovery yields the state after a prefix of the written batches
    /// that holds every synced one (never a later batch after a missing one, never half a
    /// batch), across checkpoints.
    #[test]
    fn any_crash_sequence_recovers_a_prefix_with_every_synced_batch(
        ops in prop::collection::vec(op(), 1..40),
        checkpoint in prop::sample::select(vec![1024usize, 4096, 1 << 22]),
        final_tail in crash_tail(),
    ) {
        let disk = SimDisk::with_checkpoint_log_bytes(checkpoint);
        let engine = SimEngine::open(&disk).unwrap();
        let mut run = Run { disk, engine, current: State::new(), candidates: vec![State::new()] };
        for (index, op) in ops.iter().enumerate() {
            run.step(index, op)?;
        }
        run.step(ops.len(), &Op::Crash(final_tail))?;
    }

    /// Any damage to durable data (a log or image bit, a misdirected record, an unreadable
    /// sector), before or after the crashed tail was recovered: open fails with exactly
    /// `Corruption` (or `Io` for the sector), never opens with wrong data, never panics. With
    /// nothing durable to damage, open recovers as usual.
    #[test]
    fn any_durable_damage_refuses_to_open(
        writes in prop::collection::vec((0u8..BIG_KEY, 0usize..1200, any::<bool>()), 1..16),
        checkpoint in prop::sample::select(vec![1024usize, 1 << 22]),
        tail in crash_tail(),
        recover_tail_first in any::<bool>(),
        damage in damage(),
    ) {
        let disk = SimDisk::with_checkpoint_log_bytes(checkpoint);
        let engine = SimEngine::open(&disk).unwrap();
        let mut run = Run { disk, engine, current: State::new(), candidates: vec![State::new()] };
        for (index, (key, len, sync)) in writes.iter().enumerate() {
            run.write(index, &[(*key, *len)], *sync);
        }
        run.disk.crash(tail);
        if recover_tail_first {
            run.recover()?;
            run.disk.crash(CrashTail::DropAll);
        }
        let Some(io) = inflict(&run.disk, &damage) else {
            return run.recover();
        };
        match SimEngine::open(&run.disk) {
            Err(EngineError::Io(_)) if io => {}
            Err(EngineError::Corruption(_)) if !io => {}
            Err(other) => prop_assert!(false, "{:?} gave {}", damage, other),
            Ok(engine) => prop_assert!(
                false,
                "{:?}: opened with {:?}",
                damage,
                read_state(&engine).keys().collect::<Vec<_>>()
            ),
        }
    }
}
