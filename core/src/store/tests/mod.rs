//! Unit tests of the store FSM on `MemEngine`: one store, driven by hand.

use std::sync::Mutex;

use ferrokv_proto::ferrokv_raftpb::{
    admin_request, write_op, AdminRequest, CfName, ChangePeerRequest, CompactLogCmd, PutOp,
    RaftCmd, RaftMessage, SplitCmd, WriteOp,
};
use ferrokv_proto::metapb;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, Message as WireMessage, MessageType};

use super::*;
use crate::env::{
    stage_log_op, Cf, KvEngine, MemEngine, RaftLogOp, SeededRng, SendError, Snapshot, Transport,
    WriteBatch, WriteOptions,
};
use crate::raft::{RaftConfig, INIT_LOG_INDEX, INIT_LOG_TERM};
use crate::types::{RegionId, StoreId};

/// Collects sent messages.
#[derive(Default)]
struct Collect(Mutex<Vec<(StoreId, RaftMessage)>>);

impl Transport for Collect {
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError> {
        self.0.lock().unwrap().push((to, message));
        Ok(())
    }
}

fn peer(id: u64, store_id: u64) -> metapb::Peer {
    metapb::Peer {
        id,
        store_id,
        ..Default::default()
    }
}

fn region(id: u64, start: &[u8], end: &[u8], peers: Vec<metapb::Peer>) -> metapb::Region {
    metapb::Region {
        id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers,
        ..Default::default()
    }
}

fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp {
        op: Some(write_op::Op::Put(PutOp {
            cf: CfName::CfRaw as i32,
            key: key.to_vec(),
            value: crate::raw::value::encode(value, None),
        })),
    }
}

fn load(engine: &MemEngine) -> Store<MemEngine> {
    Store::load(
        engine.clone(),
        StoreId(1),
        RaftConfig::default(),
        SeededRng::new(7),
    )
    .unwrap()
}

/// A single-voter store that leads region 1 (the whole key space).
fn leading_store() -> (MemEngine, Store<MemEngine>, Collect) {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(1, 1)])).unwrap();
    let mut store = load(&engine);
    let transport = Collect::default();
    for _ in 0..40 {
        advance(&mut store, &transport, 1);
        if store.regions()[0].is_leader {
            break;
        }
    }
    assert!(store.regions()[0].is_leader, "a single voter elects itself");
    (engine, store, transport)
}

fn advance(
    store: &mut Store<MemEngine>,
    transport: &Collect,
    ticks: u64,
) -> Vec<(Token, Response)> {
    let mut responses = Vec::new();
    for _ in 0..ticks {
        let next = store.now + store.config().tick_interval;
        store.set_now(next);
        store.tick();
        responses.extend(store.drive(transport).unwrap().responses);
    }
    responses
}

fn entry(index: u64, term: u64, cmd: &RaftCmd) -> Entry {
    Entry {
        index,
        term,
        data: cmd.encode_to_vec().into(),
        ..Default::default()
    }
}

/// Writes `entries` (from index 6, term 6) into region 1's log as committed, as a leader
/// would have replicated them, so the next load applies them: how tests put commands that
/// a proposal check would refuse in front of the apply path (the apply-time safety net).
fn commit_to_log(engine: &MemEngine, entries: Vec<Entry>) {
    let commit = entries.last().map_or(INIT_LOG_INDEX, |e| e.index);
    let mut batch = WriteBatch::new();
    let append = RaftLogOp::Append {
        region: RegionId(1),
        entries,
        replaces_tail: false,
    };
    stage_log_op(&append, &mut batch);
    let hard_state = HardState {
        term: 6,
        vote: 1,
        commit,
        ..Default::default()
    };
    stage_log_op(
        &RaftLogOp::SetHardState {
            region: RegionId(1),
            hard_state,
        },
        &mut batch,
    );
    engine.write(&batch, WriteOptions::SYNC).unwrap();
}

/// A restart replays every committed, unapplied entry in one apply round. A CompactLog at
/// the end of that backlog names an index the round applies before reaching it: it must
/// compact (the applied index advances entry by entry), not trip an assertion against the
/// applied index from before the round and crash on every restart.
#[test]
fn replay_of_a_backlog_ending_in_compact_log_compacts_instead_of_crash_looping() {
    let engine = MemEngine::new();
    let whole = region(1, b"", b"", vec![peer(1, 1)]);
    bootstrap_region(&engine, &whole).unwrap();
    let epoch = whole.region_epoch;
    let mut entries: Vec<Entry> = (6..=20)
        .map(|i| {
            let cmd = RaftCmd {
                region_id: 1,
                region_epoch: epoch,
                writes: vec![put(format!("k{i}").as_bytes(), b"v")],
                admin: None,
            };
            entry(i, 6, &cmd)
        })
        .collect();
    let compact = RaftCmd {
        region_id: 1,
        region_epoch: epoch,
        writes: Vec::new(),
        admin: Some(ferrokv_proto::ferrokv_raftpb::AdminCmd {
            cmd: Some(ferrokv_proto::ferrokv_raftpb::admin_cmd::Cmd::CompactLog(
                CompactLogCmd {
                    compact_index: 18,
                    compact_term: 6,
                },
            )),
        }),
    };
    entries.push(entry(21, 6, &compact));
    commit_to_log(&engine, entries);

    let mut store = load(&engine);
    store.drive(&Collect::default()).unwrap();
    let status = &store.regions()[0];
    assert_eq!(status.applied_index, 21);
    assert_eq!(status.truncated, (18, 6), "compacted with the log's term");
    let view = engine.snapshot();
    for i in 6..=20 {
        let key = format!("k{i}");
        assert!(
            view.get(Cf::Raw, key.as_bytes()).unwrap().is_some(),
            "{key} applied"
        );
    }
}

/// A wire message from peer 99 to peer `to`, as raft-rs addresses one.
fn wire(msg_type: MessageType, term: u64, to: u64) -> Vec<u8> {
    let mut message = WireMessage::default();
    message.set_msg_type(msg_type);
    message.term = term;
    message.to = to;
    message.from = 99;
    message.write_to_bytes().unwrap()
}

fn incoming(region_id: u64, start: &[u8], end: &[u8], to: metapb::Peer) -> RaftMessage {
    RaftMessage {
        region_id,
        from_peer: Some(peer(99, 2)),
        to_peer: Some(to),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        message: wire(MessageType::MsgHeartbeat, 7, to.id),
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        is_tombstone: false,
        is_snapshot: false,
    }
}

/// A leader reaching out creates an uninitialized peer. Routing a message never writes to
/// the engine (no fsync inside the handler): the peer's record goes out with the next
/// drive's Raft log sync, before the new peer sends anything.
#[test]
fn a_peer_created_by_a_message_is_persisted_by_the_next_drive_not_the_handler() {
    let engine = MemEngine::new();
    let mut store = load(&engine);
    store.on_raft_message(incoming(5, b"a", b"m", peer(5, 1)));
    assert!(engine.writes().is_empty(), "no engine write inside routing");
    let transport = Collect::default();
    store.drive(&transport).unwrap();
    let writes = engine.writes();
    assert_eq!(writes.len(), 1, "one synced batch");
    assert!(writes[0].1, "synced");
    let key = crate::raft::keys::region_state_key(RegionId(5));
    assert!(engine.get(Cf::Raft, &key).unwrap().is_some());
    let reloaded = load(&engine);
    assert_eq!(
        reloaded.peers.len(),
        1,
        "the uninitialized peer survives a restart"
    );
}

/// Bad messages are dropped and change nothing: an inverted key range (which used to hit
/// the `KeyRange::new` assertion and stop the store), or a peer id of 0 (which used to be
/// persisted before `Peer::new` refused it, so every restart failed).
#[test]
fn malformed_messages_are_dropped_without_writing_anything() {
    let engine = MemEngine::new();
    let mut store = load(&engine);
    store.on_raft_message(incoming(5, b"z", b"a", peer(5, 1)));
    store.on_raft_message(incoming(6, b"a", b"b", peer(0, 1)));
    store.on_raft_message(incoming(0, b"a", b"b", peer(7, 1)));
    store.on_raft_message(incoming(8, b"a", b"b", peer(8, 2)));
    store.drive(&Collect::default()).unwrap();
    assert!(engine.writes().is_empty());
    assert!(store.peers.is_empty());
    load(&engine);
}

/// Found by the `raft_messages` fuzz target: a vote request without a term from the network
/// made raft-rs abort the store ("term should be set when sending MsgRequestVoteResponse").
/// Also refused: message types only a node itself creates (a leader appended the entries
/// of a `MsgPropose` it was sent, bypassing every proposal check) and a wire message whose
/// own addressing disagrees with the envelope, and (found next) an append after a gap.
#[test]
fn malformed_raft_messages_from_the_network_never_reach_raft() {
    let (engine, mut store, transport) = leading_store();
    let writes = engine.writes().len();
    let mut message = incoming(1, b"", b"", peer(1, 1));
    let mut vote = WireMessage::default();
    vote.set_msg_type(MessageType::MsgRequestVote);
    vote.to = 1;
    vote.from = 99;
    message.message = vote.write_to_bytes().unwrap();
    store.on_raft_message(message.clone());
    let mut propose = WireMessage::default();
    propose.set_msg_type(MessageType::MsgPropose);
    propose.to = 1;
    propose.from = 99;
    propose.set_entries(
        vec![Entry {
            data: b"forged".to_vec().into(),
            ..Default::default()
        }]
        .into(),
    );
    message.message = propose.write_to_bytes().unwrap();
    store.on_raft_message(message.clone());
    let mut misaddressed = WireMessage::default();
    misaddressed.set_msg_type(MessageType::MsgHeartbeat);
    misaddressed.term = 99;
    misaddressed.to = 4;
    misaddressed.from = 99;
    message.message = misaddressed.write_to_bytes().unwrap();
    store.on_raft_message(message.clone());
    // An append far past the log claiming "term 0" for its predecessor: raft-rs reads term
    // 0 for indexes it does not hold, so it matched and appended after a gap (an abort).
    let mut gap = WireMessage::default();
    gap.set_msg_type(MessageType::MsgAppend);
    gap.term = 99;
    gap.to = 1;
    gap.from = 99;
    gap.index = 255;
    let entry = Entry {
        index: 256,
        term: 99,
        ..Default::default()
    };
    gap.set_entries(vec![entry].into());
    message.message = gap.write_to_bytes().unwrap();
    store.on_raft_message(message);
    store.drive(&transport).unwrap();
    assert_eq!(
        engine.writes().len(),
        writes,
        "nothing appended or persisted"
    );
    assert!(
        store.regions()[0].is_leader,
        "no term change: the leader stays"
    );
}

/// Review findings (issue 11): a heartbeat committing past a follower's log aborted it in
/// raft-rs, and a snapshot sent with its envelope's `is_snapshot` flag unset skipped every
/// snapshot check (one whose region has no peers aborted raft-rs; one covering the whole
/// key space would clear other regions' data). Both are refused and change nothing.
#[test]
fn forged_log_positions_and_unflagged_snapshots_are_refused() {
    let engine = MemEngine::new();
    let three = vec![peer(1, 1), peer(2, 2), peer(3, 3)];
    bootstrap_region(&engine, &region(1, b"", b"", three)).unwrap();
    let mut store = load(&engine);
    let transport = Collect::default();
    let writes = engine.writes().len();
    let envelope = |wire: WireMessage| RaftMessage {
        region_id: 1,
        from_peer: Some(peer(2, 2)),
        to_peer: Some(peer(1, 1)),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        message: wire.write_to_bytes().unwrap(),
        ..Default::default()
    };
    let mut heartbeat = WireMessage::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    (
        heartbeat.to,
        heartbeat.from,
        heartbeat.term,
        heartbeat.commit,
    ) = (1, 2, 9, 100);
    store.on_raft_message(envelope(heartbeat));
    let mut snapshot = WireMessage::default();
    snapshot.set_msg_type(MessageType::MsgSnapshot);
    (snapshot.to, snapshot.from, snapshot.term) = (1, 2, 9);
    let data = ferrokv_proto::ferrokv_raftpb::SnapshotData {
        region: Some(region(1, b"", b"", Vec::new())),
        kvs: Vec::new(),
    };
    let snap = snapshot.mut_snapshot();
    snap.data = data.encode_to_vec().into();
    (snap.mut_metadata().index, snap.mut_metadata().term) = (50, 9);
    store.on_raft_message(envelope(snapshot));
    store.drive(&transport).unwrap();
    assert_eq!(engine.writes().len(), writes, "nothing persisted");
    assert_eq!(
        store.stats().raft_messages_refused,
        1,
        "the heartbeat was refused"
    );
    let status = &store.regions()[0];
    let initial = (INIT_LOG_INDEX, INIT_LOG_TERM);
    assert_eq!(status.truncated, initial, "no snapshot installed");
    assert_eq!(status.term, INIT_LOG_TERM, "no term change");
    assert_eq!(status.region.peers.len(), 3, "the region keeps its peers");
}

/// Each rule of `refused_from_network` against a message raft-rs sends between nodes: the
/// honest message passes, the message breaking only that rule is refused.
#[test]
fn network_message_rules_refuse_only_what_no_honest_peer_sends() {
    use crate::raft::refused_from_network;
    let between_nodes = [
        MessageType::MsgAppend,
        MessageType::MsgAppendResponse,
        MessageType::MsgRequestVote,
        MessageType::MsgRequestVoteResponse,
        MessageType::MsgRequestPreVote,
        MessageType::MsgRequestPreVoteResponse,
        MessageType::MsgHeartbeat,
        MessageType::MsgHeartbeatResponse,
        MessageType::MsgSnapshot,
        MessageType::MsgTimeoutNow,
    ];
    for kind in between_nodes {
        let message = honest_wire(kind);
        assert_eq!(refused_from_network(&message, 1, Some(2)), None, "{kind:?}");
        assert_eq!(
            refused_from_network(&message, 1, None),
            None,
            "{kind:?} without from_peer"
        );
        assert!(
            refused_from_network(&message, 4, Some(2)).is_some(),
            "{kind:?} to another peer"
        );
        assert!(
            refused_from_network(&message, 1, Some(7)).is_some(),
            "{kind:?} envelope mismatch"
        );
        let mut from_self = message.clone();
        from_self.from = 1;
        assert!(
            refused_from_network(&from_self, 1, None).is_some(),
            "{kind:?} from itself"
        );
        let mut no_term = message.clone();
        no_term.term = 0;
        assert!(
            refused_from_network(&no_term, 1, Some(2)).is_some(),
            "{kind:?} without term"
        );
    }
}

/// Message types only a node itself creates, and an append without its predecessor's term,
/// are refused.
#[test]
fn local_only_messages_and_appends_after_a_gap_are_refused() {
    use crate::raft::refused_from_network;
    for kind in [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgUnreachable,
        MessageType::MsgSnapStatus,
        MessageType::MsgCheckQuorum,
        MessageType::MsgReadIndex,
        MessageType::MsgReadIndexResp,
        MessageType::MsgTransferLeader,
    ] {
        assert!(
            refused_from_network(&honest_wire(kind), 1, Some(2)).is_some(),
            "{kind:?}"
        );
    }
    let mut gap = honest_wire(MessageType::MsgAppend);
    gap.log_term = 0;
    assert!(
        refused_from_network(&gap, 1, Some(2)).is_some(),
        "append without its term"
    );
    gap.index = 0;
    assert_eq!(
        refused_from_network(&gap, 1, Some(2)),
        None,
        "an append from the start"
    );
}

/// raft-rs refuses to demote the only voter when the change applies; checked at propose
/// with raft-rs's own rules, it is refused up front instead of panicking at apply on every
/// replica and every restart.
#[test]
fn demoting_the_sole_voter_is_refused_when_proposed() {
    let (engine, mut store, transport) = leading_store();
    let demote = ChangePeerRequest {
        change_type: raft::eraftpb::ConfChangeType::AddLearnerNode as i32,
        peer: Some(peer(1, 1)),
    };
    let request = Request::Admin(AdminRequest {
        region_id: 1,
        cmd: Some(admin_request::Cmd::ChangePeer(demote)),
    });
    let answer = store.request(Token(1), request).expect("refused at once");
    assert!(
        matches!(&answer, Response::Admin(Err(RegionError::Invalid(m))) if m.contains("demoting the leader")),
        "{answer:?}"
    );
    advance(&mut store, &transport, 3);
    load(&engine);
}

/// A split whose new region id already exists on the store is refused when proposed, and
/// one that commits anyway never crashes the store when it applies.
#[test]
fn a_split_into_an_existing_region_id_is_refused_and_never_crashes() {
    let (engine, mut store, transport) = leading_store();
    let split = |key: &[u8], new_region_id: u64, peer_id: u64| {
        Request::Admin(AdminRequest {
            region_id: 1,
            cmd: Some(admin_request::Cmd::Split(SplitCmd {
                split_key: key.to_vec(),
                new_region_id,
                new_peer_ids: vec![peer_id],
            })),
        })
    };
    assert!(store.request(Token(1), split(b"m", 2, 11)).is_none());
    let responses = advance(&mut store, &transport, 2);
    assert!(
        matches!(responses[..], [(Token(1), Response::Admin(Ok(_)))]),
        "{responses:?}"
    );
    assert_eq!(store.regions().len(), 2);
    let refused = store.request(Token(2), split(b"f", 2, 12));
    assert!(
        matches!(
            &refused,
            Some(Response::Admin(Err(RegionError::Invalid(_))))
        ),
        "{refused:?}"
    );
    advance(&mut store, &transport, 30);
    assert_eq!(store.regions().len(), 2);
    load(&engine);
}

/// Regions on a store stay disjoint and every entry goes through the invariant checks.
#[test]
fn loading_overlapping_regions_is_caught() {
    let engine = MemEngine::new();
    let mut batch = WriteBatch::new();
    crate::raft::storage::stage_initial_region(
        &region(1, b"", b"m", vec![peer(1, 1)]),
        crate::raft::storage::initial_hard_state(),
        &mut batch,
    );
    crate::raft::storage::stage_initial_region(
        &region(2, b"k", b"", vec![peer(2, 1)]),
        crate::raft::storage::initial_hard_state(),
        &mut batch,
    );
    engine.write(&batch, WriteOptions::SYNC).unwrap();
    let loaded = Store::load(engine, StoreId(1), RaftConfig::default(), SeededRng::new(1));
    assert!(
        matches!(
            loaded,
            Err(StoreLoadError::Inconsistent { region_id: 2, .. })
        ),
        "overlapping regions on disk are refused with a typed error"
    );
}

/// A message raft-rs sends from peer 2 to peer 1 in term 3, after index 5 of term 3.
fn honest_wire(kind: MessageType) -> WireMessage {
    let mut message = WireMessage::default();
    message.set_msg_type(kind);
    message.to = 1;
    message.from = 2;
    message.term = 3;
    message.index = 5;
    message.log_term = 3;
    message
}

/// Overwrites one `raft` CF record of a single-peer store, loads it, and returns why the load
/// was refused (panics if it was not refused as inconsistent).
fn refusal_after_writing(records: &[(Vec<u8>, Vec<u8>)]) -> String {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(1, 1)])).unwrap();
    let mut batch = WriteBatch::new();
    for (key, value) in records {
        batch.put(Cf::Raft, key, value);
    }
    engine.write(&batch, WriteOptions::SYNC).unwrap();
    match Store::load(engine, StoreId(1), RaftConfig::default(), SeededRng::new(1)) {
        Err(StoreLoadError::Inconsistent {
            region_id: 1,
            detail,
        }) => detail,
        Err(other) => panic!("refused, but not as inconsistent: {other}"),
        Ok(_) => panic!("a damaged state was loaded"),
    }
}

/// Found by the `store_load` fuzz target: an apply state whose log ends below the durable
/// commit index (here the bootstrap commit 5 over a log truncated at 0) reached raft-rs,
/// which aborts the process ("hs.commit is out of range"). A damaged disk is a typed error.
#[test]
fn a_commit_index_beyond_the_loaded_log_is_refused() {
    let apply_state = ferrokv_proto::ferrokv_raftpb::RaftApplyState {
        applied_index: 0,
        truncated_state: Some(Default::default()),
        applied_term: 0,
    };
    let key = crate::raft::keys::apply_state_key(RegionId(1));
    let detail = refusal_after_writing(&[(key, apply_state.encode_to_vec())]);
    assert!(detail.contains("beyond the last log index"), "{detail}");
}

/// Found by the `store_load` fuzz target: an uninitialized peer (a region state without
/// peers) over a hard state with a commit index made raft-rs abort at load.
#[test]
fn an_uninitialized_peer_with_a_commit_index_is_refused() {
    let state = ferrokv_proto::ferrokv_raftpb::RegionLocalState {
        state: ferrokv_proto::ferrokv_raftpb::PeerState::Applying as i32,
        region: Some(region(1, b"", b"", Vec::new())),
        uninitialized_peer_id: 23,
        destroyed_peer_id: 0,
    };
    let key = crate::raft::keys::region_state_key(RegionId(1));
    let detail = refusal_after_writing(&[(key, state.encode_to_vec())]);
    assert!(
        detail.contains("uninitialized peer with commit index 5"),
        "{detail}"
    );
}

/// Found by the `store_load` fuzz target: a log whose terms go down after the applied
/// index reached the apply loop's assertion ("applied terms never decrease").
#[test]
fn a_log_with_decreasing_terms_is_refused() {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(1, 1)])).unwrap();
    let entry = |index, term| Entry {
        index,
        term,
        ..Default::default()
    };
    let entries = vec![entry(INIT_LOG_INDEX + 1, 9), entry(INIT_LOG_INDEX + 2, 7)];
    let hard_state = HardState {
        term: 9,
        commit: INIT_LOG_INDEX + 2,
        ..Default::default()
    };
    let mut batch = WriteBatch::new();
    let region_id = RegionId(1);
    stage_log_op(
        &RaftLogOp::Append {
            region: region_id,
            entries,
            replaces_tail: false,
        },
        &mut batch,
    );
    stage_log_op(
        &RaftLogOp::SetHardState {
            region: region_id,
            hard_state,
        },
        &mut batch,
    );
    engine.write(&batch, WriteOptions::SYNC).unwrap();
    let loaded = Store::load(engine, StoreId(1), RaftConfig::default(), SeededRng::new(1));
    let Err(StoreLoadError::Inconsistent { detail, .. }) = loaded else {
        panic!("decreasing log terms must be refused");
    };
    assert!(detail.contains("log terms decrease"), "{detail}");
}

/// Found by the `store_load` fuzz target: a region state listing a peer with id 0 made
/// raft-rs abort at load ("invalid restore"); duplicate ids or stores are as bad.
#[test]
fn a_region_state_with_bad_peer_ids_is_refused() {
    let bad_peer_lists = [
        vec![peer(93, 1), peer(0, 0)],
        vec![peer(1, 1), peer(1, 2)],
        vec![peer(1, 1), peer(2, 1)],
    ];
    for peers in bad_peer_lists {
        let engine = MemEngine::new();
        bootstrap_region(&engine, &region(1, b"", b"", peers)).unwrap();
        let loaded = Store::load(engine, StoreId(1), RaftConfig::default(), SeededRng::new(1));
        let Err(StoreLoadError::Inconsistent { detail, .. }) = loaded else {
            panic!("bad peer ids must be refused");
        };
        assert!(detail.contains("distinct ids"), "{detail}");
    }
}

/// Found by the VOPR (seed 13 at 5 minutes): a peer destroyed by a tombstone was recreated,
/// empty, by a message a deposed leader still addressed to it under a membership newer than
/// the one the peer had known; that leader believed the peer held its log and the empty
/// peer aborted on the commit index it was sent. A destroyed peer id never comes back.
#[test]
fn a_destroyed_peer_id_is_never_recreated() {
    let engine = MemEngine::new();
    bootstrap_region(&engine, &region(1, b"", b"", vec![peer(2, 1), peer(3, 2)])).unwrap();
    let mut store = load(&engine);
    let epoch = |conf_ver| {
        Some(metapb::RegionEpoch {
            conf_ver,
            version: 1,
        })
    };
    let mut tombstone = incoming(1, b"", b"", peer(2, 1));
    tombstone.from_peer = Some(peer(3, 2));
    tombstone.region_epoch = epoch(5);
    tombstone.is_tombstone = true;
    tombstone.message = Vec::new();
    store.on_raft_message(tombstone);
    store.drive(&Collect::default()).unwrap();
    assert!(store.peers.is_empty(), "destroyed");
    let mut stale = incoming(1, b"", b"", peer(2, 1));
    stale.region_epoch = epoch(3);
    store.on_raft_message(stale);
    assert!(store.peers.is_empty(), "the destroyed id stays destroyed");
    let mut newer = incoming(1, b"", b"", peer(9, 1));
    newer.region_epoch = epoch(6);
    store.on_raft_message(newer);
    assert_eq!(
        store.peers.len(),
        1,
        "a newer peer id of the region may be created"
    );
    store.drive(&Collect::default()).unwrap();
    let reloaded = load(&engine);
    assert_eq!(reloaded.peers.len(), 1);
}

mod apply_safety;
mod membership;
mod restart;
mod txn;
