//! A restarted store keeps the promises its peers made before the crash.

use raft::eraftpb::MessageType;

use super::*;

/// A pre-vote for term 6 from peer 2 (store 2) to peer 1 of region 1, whose log is at
/// `(INIT_LOG_TERM, INIT_LOG_INDEX)`; `forced` marks it as a leader transfer's.
fn pre_vote(forced: bool) -> RaftMessage {
    let mut wire = WireMessage::default();
    wire.set_msg_type(MessageType::MsgRequestPreVote);
    (wire.term, wire.from, wire.to) = (6, 2, 1);
    (wire.log_term, wire.index) = (INIT_LOG_TERM, INIT_LOG_INDEX);
    if forced {
        wire.context = raft::CAMPAIGN_TRANSFER.to_vec().into();
    }
    RaftMessage {
        region_id: 1,
        from_peer: Some(peer(2, 2)),
        to_peer: Some(peer(1, 1)),
        region_epoch: region(1, b"", b"", Vec::new()).region_epoch,
        message: wire.write_to_bytes().unwrap(),
        start_key: Vec::new(),
        end_key: Vec::new(),
        is_tombstone: false,
        is_snapshot: false,
    }
}

fn pre_votes_granted(transport: &Collect) -> usize {
    let mut sent = transport.0.lock().unwrap();
    let granted = sent
        .iter()
        .filter_map(|(_, m)| WireMessage::parse_from_bytes(&m.message).ok())
        .filter(|w| w.get_msg_type() == MessageType::MsgRequestPreVoteResponse && !w.reject)
        .count();
    sent.clear();
    granted
}

/// Review finding R4: a follower that acknowledged a leader's heartbeat and then restarted
/// forgot its leader, and granted the next (pre)vote at once; the old leader's lease, which
/// counts on that follower not voting for an election timeout, then overlapped a new
/// leader's term (stale reads). A restarted peer ignores unforced (pre)votes for
/// `election_tick` ticks; a leader transfer's forced vote still gets through.
#[test]
fn a_restarted_follower_ignores_votes_for_an_election_timeout() {
    let engine = MemEngine::new();
    let three = region(1, b"", b"", vec![peer(1, 1), peer(2, 2), peer(3, 3)]);
    bootstrap_region(&engine, &three).unwrap();
    let mut store = load(&engine);
    let transport = Collect::default();
    store.on_raft_message(pre_vote(false));
    store.drive(&transport).unwrap();
    assert_eq!(
        pre_votes_granted(&transport),
        0,
        "ignored just after a restart"
    );
    store.on_raft_message(pre_vote(true));
    store.drive(&transport).unwrap();
    assert_eq!(
        pre_votes_granted(&transport),
        1,
        "a forced (transfer) vote is answered"
    );

    let election_tick = store.config().election_tick as u64;
    advance(&mut store, &transport, election_tick - 1);
    transport.0.lock().unwrap().clear();
    store.on_raft_message(pre_vote(false));
    store.drive(&transport).unwrap();
    assert_eq!(pre_votes_granted(&transport), 0, "still inside the guard");
    advance(&mut store, &transport, 1);
    transport.0.lock().unwrap().clear();
    store.on_raft_message(pre_vote(false));
    store.drive(&transport).unwrap();
    assert_eq!(
        pre_votes_granted(&transport),
        1,
        "granted once the guard ran out"
    );
}

/// A data directory of an older layout (regions, no layout record) is refused with a clear
/// error instead of being misread; an empty store starts, and a bootstrapped one carries
/// the stamp and restarts.
#[test]
fn a_data_directory_of_another_layout_is_refused() {
    let old = MemEngine::new();
    let mut batch = WriteBatch::new();
    crate::raft::storage::stage_initial_region(
        &region(1, b"", b"", vec![peer(1, 1)]),
        crate::raft::storage::initial_hard_state(),
        &mut batch,
    );
    batch.delete(Cf::Raft, crate::raft::keys::DATA_LAYOUT_KEY);
    batch.put(Cf::Default, b"user-key", b"raw value, old layout");
    old.write(&batch, WriteOptions::SYNC).unwrap();
    let refused = Store::load(old, StoreId(1), RaftConfig::default(), SeededRng::new(1));
    assert!(
        matches!(refused, Err(StoreLoadError::OtherLayout { .. })),
        "{:?}",
        refused.err()
    );
    load(&MemEngine::new());
    let (engine, store, _) = leading_store();
    let stamp = engine
        .snapshot()
        .get(Cf::Raft, crate::raft::keys::DATA_LAYOUT_KEY)
        .unwrap();
    assert_eq!(
        stamp.as_deref(),
        Some(crate::raft::keys::DATA_LAYOUT_VERSION)
    );
    drop(store);
    load(&engine);
}
