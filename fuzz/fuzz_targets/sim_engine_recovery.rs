//! SimEngine recovery from a damaged disk: batches written with and without sync, a crash
//! that keeps any part of the unsynced tail (cut, zeroed, garbage, out of order), arbitrary
//! bytes past the last record, and damage to durable bytes (bit flips, misdirected writes,
//! unreadable sectors). Recovery either opens with exactly a prefix of whole batches, at
//! least every synced one, or refuses with Corruption/Io when durable bytes are damaged; it
//! never panics, never shows half a batch, and a second recovery shows the same state.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use ferrokv_core::env::{Cf, Direction, EngineError, KvEngine, Snapshot, WriteBatch, WriteOptions};
use ferrokv_core::types::KeyRange;
use ferrokv_sim::{CrashTail, SimDisk, SimEngine};
use libfuzzer_sys::fuzz_target;

type State = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

#[derive(Arbitrary, Debug)]
struct Batch {
    puts: Vec<(u8, Vec<u8>, Vec<u8>)>,
    deletes: Vec<(u8, Vec<u8>)>,
    sync: bool,
}

#[derive(Arbitrary, Debug)]
enum Tail {
    DropAll,
    KeepPrefix(u16),
    KeepAll,
    ZeroedFrom(u16),
    GarbageFrom(u16, u64),
    Scrambled(u64),
}

#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    FlipLogBit(u32),
    FlipImageBit(u32),
    Misdirect(u64),
    LatentSector(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    checkpoint_bytes: u16,
    batches: Vec<Batch>,
    garbage: Vec<u8>,
    tail: Tail,
    damage: Damage,
}

fn cf(index: u8) -> (usize, Cf) {
    let index = usize::from(index) % Cf::ALL.len();
    (index, Cf::ALL[index])
}

fn stage(batch: &Batch, model: &mut State) -> WriteBatch {
    let mut write = WriteBatch::new();
    for (family, key) in batch.deletes.iter().take(8) {
        let (index, family) = cf(*family);
        write.delete(family, key);
        model.remove(&(index, key.clone()));
    }
    for (family, key, value) in batch.puts.iter().take(8) {
        let (index, family) = cf(*family);
        write.put(family, key, value);
        model.insert((index, key.clone()), value.clone());
    }
    write
}

fn contents(engine: &SimEngine) -> State {
    let view = engine.snapshot();
    let mut state = State::new();
    for (index, family) in Cf::ALL.into_iter().enumerate() {
        let pairs = view
            .scan(
                family,
                &KeyRange::all(),
                ferrokv_core::limits::ENGINE_SCAN_KEYS_MAX,
                Direction::Forward,
            )
            .expect("a recovered engine reads");
        state.extend(pairs.into_iter().map(|(key, value)| ((index, key), value)));
    }
    state
}

fn crash_tail(tail: &Tail) -> CrashTail {
    match *tail {
        Tail::DropAll => CrashTail::DropAll,
        Tail::KeepPrefix(n) => CrashTail::KeepPrefix(usize::from(n)),
        Tail::KeepAll => CrashTail::KeepAll,
        Tail::ZeroedFrom(n) => CrashTail::ZeroedFrom(usize::from(n)),
        Tail::GarbageFrom(n, seed) => CrashTail::GarbageFrom {
            bytes: usize::from(n),
            seed,
        },
        Tail::Scrambled(seed) => CrashTail::Scrambled { seed },
    }
}

fn damage(disk: &SimDisk, damage: &Damage) -> bool {
    match *damage {
        Damage::None => false,
        Damage::FlipLogBit(bit) => disk.flip_log_bit(bit as usize),
        Damage::FlipImageBit(bit) => disk.flip_image_bit(bit as usize),
        Damage::Misdirect(seed) => disk.misdirect_durable_record(seed),
        Damage::LatentSector(index) => disk.latent_sector_error(usize::from(index)).is_some(),
    }
}

fuzz_target!(|input: Input| {
    let disk = SimDisk::with_checkpoint_log_bytes(64 + usize::from(input.checkpoint_bytes) % 4096);
    let engine = SimEngine::open(&disk).expect("an empty disk opens");
    // States after 0, 1, 2, ... batches; batches[..durable] were synced.
    let mut model = State::new();
    let mut states = vec![model.clone()];
    let mut durable = 0;
    for batch in input.batches.iter().take(24) {
        let write = stage(batch, &mut model);
        engine
            .write(&write, WriteOptions { sync: batch.sync })
            .expect("a healthy disk writes");
        states.push(model.clone());
        if batch.sync {
            durable = states.len() - 1;
        }
    }
    drop(engine);
    disk.append_unsynced_garbage(&input.garbage);
    disk.crash(crash_tail(&input.tail));
    let damaged = damage(&disk, &input.damage);
    match SimEngine::open(&disk) {
        Err(error) => {
            assert!(damaged, "recovery refused an undamaged disk: {error}");
            assert!(
                matches!(error, EngineError::Corruption(_) | EngineError::Io(_)),
                "{error}"
            );
            let again = SimEngine::open(&disk).expect_err("a refused disk stays refused");
            assert_eq!(
                again.to_string(),
                error.to_string(),
                "a failed recovery changed the disk"
            );
        }
        Ok(engine) => {
            assert!(
                !damaged,
                "recovery opened a disk with damaged durable bytes"
            );
            let recovered = contents(&engine);
            // Garbage the fuzzer made into a whole, in-sequence record may replay as a batch
            // of its own; otherwise exactly a prefix of the written batches is visible.
            if input.garbage.is_empty() {
                let prefix = states.iter().rposition(|state| *state == recovered);
                let prefix = prefix.expect("recovered state is not a prefix of whole batches");
                assert!(
                    prefix >= durable || states[durable] == recovered,
                    "lost a synced batch"
                );
            }
            drop(engine);
            disk.crash(CrashTail::DropAll);
            let reopened = SimEngine::open(&disk).expect("a recovered disk reopens");
            assert_eq!(
                contents(&reopened),
                recovered,
                "a second recovery differs from the first"
            );
        }
    }
});
