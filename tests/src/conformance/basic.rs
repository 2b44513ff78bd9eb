//! Point operations, batches, snapshots, column families and durability across reopen.

use ferrokv_core::env::{Cf, KvEngine, Snapshot, WriteBatch, WriteOptions};

use super::EngineFixture;

fn put<E: KvEngine>(engine: &E, cf: Cf, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(cf, key, value);
    engine.write(&batch, WriteOptions::NO_SYNC).expect("put");
}

fn get<E: KvEngine>(engine: &E, cf: Cf, key: &[u8]) -> Option<Vec<u8>> {
    engine.get(cf, key).expect("get")
}

/// Put, overwrite, read and delete single keys.
pub fn put_get_delete<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    assert_eq!(get(&engine, Cf::Default, b"k"), None);
    put(&engine, Cf::Default, b"k", b"v1");
    assert_eq!(get(&engine, Cf::Default, b"k"), Some(b"v1".to_vec()));
    put(&engine, Cf::Default, b"k", b"v2");
    assert_eq!(get(&engine, Cf::Default, b"k"), Some(b"v2".to_vec()));
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Default, b"k");
    batch.delete(Cf::Default, b"never-written");
    engine.write(&batch, WriteOptions::SYNC).expect("delete");
    assert_eq!(get(&engine, Cf::Default, b"k"), None);
}

/// Every mutation of a batch lands, across column families.
pub fn atomic_batch_applies_all<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    put(&engine, Cf::Write, b"old", b"x");
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"a", b"1");
    batch.put(Cf::Lock, b"b", b"2");
    batch.put(Cf::Raft, b"c", b"3");
    batch.delete(Cf::Write, b"old");
    let before = engine.snapshot();
    engine.write(&batch, WriteOptions::SYNC).expect("batch");
    assert_eq!(get(&engine, Cf::Default, b"a"), Some(b"1".to_vec()));
    assert_eq!(get(&engine, Cf::Lock, b"b"), Some(b"2".to_vec()));
    assert_eq!(get(&engine, Cf::Raft, b"c"), Some(b"3".to_vec()));
    assert_eq!(get(&engine, Cf::Write, b"old"), None);
    assert_eq!(
        before.get(Cf::Default, b"a").unwrap(),
        None,
        "nothing leaks into the past"
    );
    assert_eq!(before.get(Cf::Write, b"old").unwrap(), Some(b"x".to_vec()));
}

/// Within one batch, later mutations of a key override earlier ones.
pub fn last_write_in_batch_wins<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    let mut batch = WriteBatch::new();
    batch.put(Cf::Default, b"k", b"first");
    batch.put(Cf::Default, b"k", b"second");
    batch.put(Cf::Default, b"gone", b"x");
    batch.delete(Cf::Default, b"gone");
    engine.write(&batch, WriteOptions::NO_SYNC).expect("batch");
    assert_eq!(get(&engine, Cf::Default, b"k"), Some(b"second".to_vec()));
    assert_eq!(get(&engine, Cf::Default, b"gone"), None);
}

/// A snapshot sees the state at its creation, whatever is written afterwards.
pub fn snapshot_isolation<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    put(&engine, Cf::Default, b"a", b"1");
    put(&engine, Cf::Default, b"b", b"1");
    let snapshot = engine.snapshot();
    put(&engine, Cf::Default, b"a", b"2");
    put(&engine, Cf::Default, b"c", b"new");
    let mut batch = WriteBatch::new();
    batch.delete(Cf::Default, b"b");
    engine.write(&batch, WriteOptions::SYNC).expect("delete");
    assert_eq!(
        snapshot.get(Cf::Default, b"a").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        snapshot.get(Cf::Default, b"b").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(snapshot.get(Cf::Default, b"c").unwrap(), None);
    let all = ferrokv_core::types::KeyRange::all();
    let seen = snapshot.scan(Cf::Default, &all, 10, ferrokv_core::env::Direction::Forward);
    let keys: Vec<Vec<u8>> = seen.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(get(&engine, Cf::Default, b"a"), Some(b"2".to_vec()));
}

/// The same key in different column families holds different values.
pub fn column_families_are_isolated<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    for (i, cf) in Cf::ALL.into_iter().enumerate() {
        put(&engine, cf, b"shared", &[i as u8]);
    }
    for (i, cf) in Cf::ALL.into_iter().enumerate() {
        assert_eq!(get(&engine, cf, b"shared"), Some(vec![i as u8]), "{cf:?}");
    }
}

/// An empty value is a value, distinct from absence; an empty key is a key.
pub fn empty_values_are_values<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    put(&engine, Cf::Default, b"k", b"");
    put(&engine, Cf::Default, b"", b"empty-key");
    assert_eq!(get(&engine, Cf::Default, b"k"), Some(Vec::new()));
    assert_eq!(get(&engine, Cf::Default, b""), Some(b"empty-key".to_vec()));
    let all = ferrokv_core::types::KeyRange::all();
    let pairs =
        engine
            .snapshot()
            .scan(Cf::Default, &all, 10, ferrokv_core::env::Direction::Forward);
    assert_eq!(
        pairs.unwrap(),
        vec![
            (Vec::new(), b"empty-key".to_vec()),
            (b"k".to_vec(), Vec::new())
        ]
    );
}

/// Synced writes survive closing and reopening the engine.
pub fn reopen_keeps_synced_data<F: EngineFixture>() {
    let mut fixture = F::create();
    {
        let engine = fixture.engine();
        let mut batch = WriteBatch::new();
        for i in 0..100u32 {
            batch.put(Cf::Write, &i.to_be_bytes(), &i.to_le_bytes());
        }
        batch.put(Cf::Raft, b"state", b"kept");
        engine
            .write(&batch, WriteOptions::SYNC)
            .expect("sync write");
        let mut delete = WriteBatch::new();
        delete.delete(Cf::Write, &7u32.to_be_bytes());
        engine
            .write(&delete, WriteOptions::SYNC)
            .expect("sync delete");
    }
    fixture.reopen();
    let engine = fixture.engine();
    assert_eq!(get(&engine, Cf::Raft, b"state"), Some(b"kept".to_vec()));
    for i in 0..100u32 {
        let expected = (i != 7).then(|| i.to_le_bytes().to_vec());
        assert_eq!(
            get(&engine, Cf::Write, &i.to_be_bytes()),
            expected,
            "key {i}"
        );
    }
}
