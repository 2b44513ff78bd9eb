//! Bounded scans: bounds, limits, direction, edge keys, range deletes.

use ferrokv_core::env::{Cf, Direction, KvEngine, Snapshot, WriteBatch, WriteOptions};
use ferrokv_core::types::KeyRange;

use super::EngineFixture;

fn fill<E: KvEngine>(engine: &E, keys: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.put(Cf::Default, key, key);
    }
    engine.write(&batch, WriteOptions::NO_SYNC).expect("fill");
}

fn scan_keys<E: KvEngine>(
    engine: &E,
    start: &[u8],
    end: &[u8],
    limit: usize,
    direction: Direction,
) -> Vec<Vec<u8>> {
    let range = KeyRange::new(start.to_vec(), end.to_vec());
    let pairs = engine
        .snapshot()
        .scan(Cf::Default, &range, limit, direction)
        .expect("scan");
    for (key, value) in &pairs {
        assert_eq!(key, value, "scan returns each key's own value");
    }
    pairs.into_iter().map(|(key, _)| key).collect()
}

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|key| key.to_vec()).collect()
}

/// Start is inclusive, end exclusive, empty end unbounded, and limits cut the result.
pub fn scan_bounds_and_limits<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    fill(&engine, &[b"a", b"b", b"c", b"d", b"e"]);
    let forward = Direction::Forward;
    assert_eq!(
        scan_keys(&engine, b"b", b"d", 10, forward),
        keys(&[b"b", b"c"])
    );
    assert_eq!(
        scan_keys(&engine, b"bb", b"", 10, forward),
        keys(&[b"c", b"d", b"e"])
    );
    assert_eq!(
        scan_keys(&engine, b"", b"", 2, forward),
        keys(&[b"a", b"b"])
    );
    assert_eq!(scan_keys(&engine, b"a", b"e", 0, forward), keys(&[]));
    assert_eq!(scan_keys(&engine, b"c", b"c", 10, forward), keys(&[]));
    assert_eq!(scan_keys(&engine, b"x", b"", 10, forward), keys(&[]));
}

/// Reverse scans start from the range end and respect the same bounds.
pub fn reverse_scan<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    fill(&engine, &[b"a", b"b", b"c", b"d", b"e"]);
    let reverse = Direction::Reverse;
    assert_eq!(
        scan_keys(&engine, b"b", b"d", 10, reverse),
        keys(&[b"c", b"b"])
    );
    assert_eq!(
        scan_keys(&engine, b"", b"", 2, reverse),
        keys(&[b"e", b"d"])
    );
    assert_eq!(
        scan_keys(&engine, b"c", b"", 10, reverse),
        keys(&[b"e", b"d", b"c"])
    );
    assert_eq!(scan_keys(&engine, b"", b"a", 10, reverse), keys(&[]));
}

/// Binary edge keys order bytewise, and prefix ranges select exactly the prefix.
pub fn prefix_and_edge_keys<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    let edge: [&[u8]; 7] = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"a",
        b"a\x00",
        b"ab",
        b"\xff\xff",
    ];
    fill(&engine, &edge);
    assert_eq!(
        scan_keys(&engine, b"", b"", 100, Direction::Forward),
        keys(&edge)
    );
    assert_eq!(
        scan_keys(&engine, b"a", b"b", 100, Direction::Forward),
        keys(&edge[3..6])
    );
    assert_eq!(
        scan_keys(&engine, b"\xff", b"", 100, Direction::Forward),
        keys(&edge[6..])
    );
    let below_a = scan_keys(&engine, b"", b"a", 100, Direction::Reverse);
    assert_eq!(below_a, keys(&[b"\x00\x00", b"\x00", b""]));
}

/// A range delete removes exactly the keys in `[start, end)` of its column family.
pub fn delete_range_removes_only_inside<F: EngineFixture>() {
    let fixture = F::create();
    let engine = fixture.engine();
    fill(&engine, &[b"a", b"b", b"bz", b"c", b"d"]);
    let mut other_cf = WriteBatch::new();
    other_cf.put(Cf::Lock, b"b", b"lock");
    engine
        .write(&other_cf, WriteOptions::NO_SYNC)
        .expect("lock put");
    let mut batch = WriteBatch::new();
    batch.delete_range(Cf::Default, b"b", b"d");
    engine
        .write(&batch, WriteOptions::SYNC)
        .expect("delete range");
    assert_eq!(
        scan_keys(&engine, b"", b"", 10, Direction::Forward),
        keys(&[b"a", b"d"])
    );
    assert_eq!(engine.get(Cf::Lock, b"b").unwrap(), Some(b"lock".to_vec()));
    fill(&engine, &[b"b"]);
    assert_eq!(
        engine.get(Cf::Default, b"b").unwrap(),
        Some(b"b".to_vec()),
        "rewrite after"
    );
}
