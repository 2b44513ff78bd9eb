//! `EngineRaftLog` over each engine: append, fetch, conflicting tails, compaction, clear.

use ferrokv_core::env::{EngineRaftLog, RaftLogBatch, RaftLogOp, RaftLogStore};
use ferrokv_core::types::{LogIndex, RegionId};
use raft::eraftpb::{Entry, HardState};

use super::EngineFixture;

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec().into(),
        ..Default::default()
    }
}

fn append<L: RaftLogStore>(log: &L, region: u64, entries: Vec<Entry>) {
    append_replacing(log, region, entries, false);
}

fn append_replacing<L: RaftLogStore>(
    log: &L,
    region: u64,
    entries: Vec<Entry>,
    replaces_tail: bool,
) {
    let op = RaftLogOp::Append {
        region: RegionId(region),
        entries,
        replaces_tail,
    };
    log.write(&RaftLogBatch { ops: vec![op] }, true)
        .expect("append");
}

fn terms<L: RaftLogStore>(log: &L, region: u64, low: u64, high: u64) -> Vec<(u64, u64)> {
    let entries = log
        .entries(RegionId(region), LogIndex(low), LogIndex(high), u64::MAX)
        .unwrap();
    entries.iter().map(|e| (e.index, e.term)).collect()
}

/// Entries and hard state round-trip, per region, with byte limits honoured.
pub fn raft_log_roundtrip<F: EngineFixture>() {
    let mut fixture = F::create();
    {
        let log = EngineRaftLog::new(fixture.engine());
        append(
            &log,
            1,
            (1..=5).map(|i| entry(i, 1, &[i as u8; 100])).collect(),
        );
        append(&log, 2, vec![entry(1, 7, b"other region")]);
        let hard_state = HardState {
            term: 3,
            vote: 2,
            commit: 4,
            ..Default::default()
        };
        let op = RaftLogOp::SetHardState {
            region: RegionId(1),
            hard_state,
        };
        log.write(&RaftLogBatch { ops: vec![op] }, true).unwrap();
    }
    fixture.reopen();
    let log = EngineRaftLog::new(fixture.engine());
    assert_eq!(terms(&log, 1, 2, 5), vec![(2, 1), (3, 1), (4, 1)]);
    assert_eq!(terms(&log, 2, 1, 10), vec![(1, 7)]);
    let limited = log
        .entries(RegionId(1), LogIndex(1), LogIndex(6), 250)
        .unwrap();
    assert_eq!(limited.len(), 2, "stops once the byte budget is exceeded");
    let one = log
        .entries(RegionId(1), LogIndex(1), LogIndex(6), 0)
        .unwrap();
    assert_eq!(one.len(), 1, "always at least one entry");
    let hard_state = log
        .hard_state(RegionId(1))
        .unwrap()
        .expect("hard state stored");
    assert_eq!(
        (hard_state.term, hard_state.vote, hard_state.commit),
        (3, 2, 4)
    );
    assert_eq!(log.hard_state(RegionId(3)).unwrap(), None);
    assert_eq!(
        log.index_bounds(RegionId(1)).unwrap(),
        Some((LogIndex(1), LogIndex(5)))
    );
    assert_eq!(log.index_bounds(RegionId(9)).unwrap(), None);
}

/// Appending at an index below the last, replacing the tail, drops every later stored
/// entry; a plain append below the last only overwrites the entries it carries.
pub fn raft_log_conflicting_tail_is_replaced<F: EngineFixture>() {
    let fixture = F::create();
    let log = EngineRaftLog::new(fixture.engine());
    append(&log, 1, (1..=6).map(|i| entry(i, 1, b"old")).collect());
    append(&log, 1, vec![entry(3, 2, b"new")]);
    assert_eq!(
        terms(&log, 1, 1, 10),
        vec![(1, 1), (2, 1), (3, 2), (4, 1), (5, 1), (6, 1)]
    );
    append_replacing(
        &log,
        1,
        vec![entry(3, 2, b"new"), entry(4, 2, b"new")],
        true,
    );
    assert_eq!(terms(&log, 1, 1, 10), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(
        log.index_bounds(RegionId(1)).unwrap(),
        Some((LogIndex(1), LogIndex(4)))
    );
}

/// Compaction drops the prefix; clear drops the region and nothing else.
pub fn raft_log_compaction_and_clear<F: EngineFixture>() {
    let fixture = F::create();
    let log = EngineRaftLog::new(fixture.engine());
    append(&log, 1, (1..=6).map(|i| entry(i, 1, b"x")).collect());
    append(&log, 2, (1..=2).map(|i| entry(i, 1, b"y")).collect());
    let compact = RaftLogOp::CompactTo {
        region: RegionId(1),
        first_kept: LogIndex(4),
    };
    log.write(&RaftLogBatch { ops: vec![compact] }, true)
        .unwrap();
    assert_eq!(
        terms(&log, 1, 1, 10),
        Vec::<(u64, u64)>::new(),
        "a hole at the start"
    );
    assert_eq!(terms(&log, 1, 4, 10), vec![(4, 1), (5, 1), (6, 1)]);
    assert_eq!(
        log.index_bounds(RegionId(1)).unwrap(),
        Some((LogIndex(4), LogIndex(6)))
    );
    let hard_state = HardState {
        term: 1,
        ..Default::default()
    };
    let ops = vec![
        RaftLogOp::SetHardState {
            region: RegionId(1),
            hard_state,
        },
        RaftLogOp::Clear {
            region: RegionId(1),
        },
    ];
    log.write(&RaftLogBatch { ops }, true).unwrap();
    assert_eq!(log.index_bounds(RegionId(1)).unwrap(), None);
    assert_eq!(log.hard_state(RegionId(1)).unwrap(), None);
    assert_eq!(
        terms(&log, 2, 1, 10),
        vec![(1, 1), (2, 1)],
        "other regions untouched"
    );
}
