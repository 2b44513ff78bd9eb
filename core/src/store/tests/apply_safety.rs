//! The apply path's safety net, driven through committed entries written straight into the
//! log (as a leader without the proposal checks would have replicated them).

use ferrokv_proto::ferrokv_raftpb::{CasOp, DeleteRangeOp};

use super::*;
use crate::env::EngineError;

fn cmd(writes: Vec<write_op::Op>) -> RaftCmd {
    RaftCmd {
        region_id: 1,
        region_epoch: region(1, b"", b"", Vec::new()).region_epoch,
        writes: writes
            .into_iter()
            .map(|op| WriteOp { op: Some(op) })
            .collect(),
        admin: None,
    }
}

/// Review finding R3: a command whose CAS finds a stored value that does not decode is a
/// storage error: the drive fails (the store stops and restarts from disk), and none of the
/// command's writes (a put before the CAS) nor its applied index reach the engine. It used
/// to answer the CAS with an error and write the put: a half-applied command.
#[test]
fn a_storage_error_while_applying_stops_the_store_and_writes_nothing() {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(1, 1)])).unwrap();
    let mut garbage = WriteBatch::new();
    garbage.put(Cf::Raw, b"k", &[0xff, 0xff, 0xff]);
    engine.write(&garbage, WriteOptions::SYNC).unwrap();
    let cas = write_op::Op::Cas(CasOp {
        key: b"k".to_vec(),
        previous_not_exist: true,
        previous_value: Vec::new(),
        value: crate::raw::value::encode(b"2", None),
        now_ms: 0,
    });
    let put_a = put(b"a", b"1").op.unwrap();
    commit_to_log(&engine, vec![entry(6, 6, &cmd(vec![put_a, cas]))]);
    let mut store = load(&engine);
    let driven = store.drive(&Collect::default());
    assert!(
        matches!(driven, Err(EngineError::Corruption(_))),
        "{driven:?}"
    );
    assert!(
        engine.get(Cf::Raw, b"a").unwrap().is_none(),
        "no half-applied command"
    );
    assert_eq!(load(&engine).regions()[0].applied_index, INIT_LOG_INDEX);
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.drive(&Collect::default());
    }));
    assert!(again.is_err(), "a failed store refuses to be driven again");
}

/// Review finding R3: a committed delete-range with start > end (which a proposal check
/// refuses) is refused at apply on every replica, with nothing staged; it used to hit the
/// `KeyRange` assertion and crash-loop every replica.
#[test]
fn a_committed_inverted_delete_range_is_refused_at_apply() {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(1, 1)])).unwrap();
    let inverted = write_op::Op::DeleteRange(DeleteRangeOp {
        cf: CfName::CfRaw as i32,
        start_key: b"z".to_vec(),
        end_key: b"a".to_vec(),
    });
    let put_a = put(b"a", b"1").op.unwrap();
    commit_to_log(&engine, vec![entry(6, 6, &cmd(vec![put_a, inverted]))]);
    let mut store = load(&engine);
    store.drive(&Collect::default()).unwrap();
    assert_eq!(store.regions()[0].applied_index, 6);
    assert!(
        engine.get(Cf::Raw, b"a").unwrap().is_none(),
        "all or nothing"
    );
}

fn split_entry(new_region_id: u64) -> Entry {
    let split = RaftCmd {
        region_id: 1,
        region_epoch: region(1, b"", b"", Vec::new()).region_epoch,
        writes: Vec::new(),
        admin: Some(ferrokv_proto::ferrokv_raftpb::AdminCmd {
            cmd: Some(ferrokv_proto::ferrokv_raftpb::admin_cmd::Cmd::Split(
                SplitCmd {
                    split_key: b"f".to_vec(),
                    new_region_id,
                    new_peer_ids: vec![11],
                },
            )),
        }),
    };
    entry(6, 6, &split)
}

/// Issue 12 item 4, the apply side: a split whose new region id already exists on the
/// store (refused at propose, committed here anyway) applies without a panic on every
/// load, and the existing region is kept.
#[test]
fn a_committed_split_into_an_existing_region_id_never_crashes() {
    let engine = MemEngine::new();
    let mut batch = WriteBatch::new();
    let initial = crate::raft::storage::initial_hard_state;
    let left = region(1, b"", b"m", vec![peer(1, 1)]);
    let right = region(2, b"m", b"", vec![peer(2, 1)]);
    crate::raft::storage::stage_initial_region(&left, initial(), &mut batch);
    crate::raft::storage::stage_initial_region(&right, initial(), &mut batch);
    engine.write(&batch, WriteOptions::SYNC).unwrap();
    commit_to_log(&engine, vec![split_entry(2)]);
    for _ in 0..2 {
        let mut store = load(&engine);
        store.drive(&Collect::default()).unwrap();
        let regions = store.regions();
        assert_eq!(regions.len(), 2);
        let kept = regions.iter().find(|r| r.region.id == 2).unwrap();
        assert_eq!(
            kept.region.start_key,
            b"m".to_vec(),
            "region 2 is the one it was"
        );
    }
}

/// Issue 12 item 4, the apply side: a membership change raft-rs refuses (demoting the sole
/// voter), committed anyway, is answered with an error at apply instead of a panic that
/// would repeat on every replica and restart.
#[test]
fn a_committed_membership_change_raft_refuses_never_crashes() {
    let engine = MemEngine::new();
    let whole = region(1, b"", b"", vec![peer(1, 1)]);
    bootstrap_region(&engine, &whole).unwrap();
    let context = ferrokv_proto::ferrokv_raftpb::ConfChangeContext {
        region_epoch: whole.region_epoch,
        peer: Some(peer(1, 1)),
    };
    let mut change = raft::eraftpb::ConfChange::default();
    change.set_change_type(raft::eraftpb::ConfChangeType::AddLearnerNode);
    change.node_id = 1;
    change.context = context.encode_to_vec().into();
    let mut conf_entry = Entry {
        index: 6,
        term: 6,
        data: change.write_to_bytes().unwrap().into(),
        ..Default::default()
    };
    conf_entry.set_entry_type(raft::eraftpb::EntryType::EntryConfChange);
    commit_to_log(&engine, vec![conf_entry]);
    for _ in 0..2 {
        let mut store = load(&engine);
        store.drive(&Collect::default()).unwrap();
        let status = &store.regions()[0];
        assert_eq!(status.applied_index, 6);
        assert_eq!(
            status.region.peers,
            vec![peer(1, 1)],
            "still the sole voter"
        );
    }
}
