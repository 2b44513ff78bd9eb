//! Store tests of membership and split edge cases found in the replication review.

use ferrokv_proto::ferrokv_raftpb::{
    admin_request, AdminRequest, ChangePeerRequest, ConfChangeContext, SplitCmd,
};
use raft::eraftpb::{ConfChange, ConfChangeType, EntryType, MessageType};

use super::*;
use crate::env::{EngineRaftLog, RaftLogStore};

/// A vote request from peer `from` (on store `from`) to peer `to` of region 2 in `term`.
/// Its key range is synthetic (disjoint from region 1) so the store creates the peer.
fn vote_request(from: u64, to: u64, term: u64) -> RaftMessage {
    let mut wire = WireMessage::default();
    wire.set_msg_type(MessageType::MsgRequestVote);
    wire.term = term;
    wire.to = to;
    wire.from = from;
    wire.log_term = INIT_LOG_TERM;
    wire.index = INIT_LOG_INDEX;
    RaftMessage {
        region_id: 2,
        from_peer: Some(peer(from, from)),
        to_peer: Some(peer(to, 1)),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 2,
        }),
        message: wire.write_to_bytes().unwrap(),
        start_key: b"x".to_vec(),
        end_key: b"z".to_vec(),
        is_tombstone: false,
        is_snapshot: false,
    }
}

/// The leader (peer 2, term 6) of region 1 appends and commits a split of region 1 at
/// `f` into region 2 (peers 11, 12, 13) to the follower peer 1 on store 1.
fn append_split(epoch: Option<metapb::RegionEpoch>) -> RaftMessage {
    let cmd = RaftCmd {
        region_id: 1,
        region_epoch: epoch,
        writes: Vec::new(),
        admin: Some(ferrokv_proto::ferrokv_raftpb::AdminCmd {
            cmd: Some(ferrokv_proto::ferrokv_raftpb::admin_cmd::Cmd::Split(
                SplitCmd {
                    split_key: b"f".to_vec(),
                    new_region_id: 2,
                    new_peer_ids: vec![11, 12, 13],
                },
            )),
        }),
    };
    let mut wire = WireMessage::default();
    wire.set_msg_type(MessageType::MsgAppend);
    (wire.term, wire.from, wire.to) = (6, 2, 1);
    (wire.log_term, wire.index, wire.commit) = (INIT_LOG_TERM, INIT_LOG_INDEX, 6);
    wire.entries = vec![entry(6, 6, &cmd)].into();
    RaftMessage {
        region_id: 1,
        from_peer: Some(peer(2, 2)),
        to_peer: Some(peer(1, 1)),
        region_epoch: epoch,
        message: wire.write_to_bytes().unwrap(),
        start_key: Vec::new(),
        end_key: b"m".to_vec(),
        is_tombstone: false,
        is_snapshot: false,
    }
}

fn vote_answers(transport: &Collect, term: u64) -> Vec<(u64, bool)> {
    let sent = transport.0.lock().unwrap();
    sent.iter()
        .filter(|(_, m)| m.region_id == 2)
        .filter_map(|(_, m)| WireMessage::parse_from_bytes(&m.message).ok())
        .filter(|w| w.get_msg_type() == MessageType::MsgRequestVoteResponse && w.term == term)
        .map(|w| (w.to, !w.reject))
        .collect()
}

/// Review finding R1: an uninitialized peer of region 2 (created by a vote request before
/// the split applied on this lagging follower) voted for peer 12 in term 9; the split that
/// then creates its region must keep that vote. Writing a fresh hard state (term kept,
/// vote 0) let it vote again in term 9, for peer 13: two leaders in one term.
#[test]
fn a_split_target_keeps_the_vote_its_uninitialized_peer_cast() {
    let engine = MemEngine::new();
    let whole = region(1, b"", b"m", vec![peer(1, 1), peer(2, 2), peer(3, 3)]);
    bootstrap_region(&engine, &whole).unwrap();
    let mut store = load(&engine);
    let transport = Collect::default();
    store.on_raft_message(vote_request(12, 11, 9));
    store.drive(&transport).unwrap();
    assert_eq!(
        vote_answers(&transport, 9),
        [(12, true)],
        "the uninitialized peer votes"
    );

    store.on_raft_message(append_split(whole.region_epoch));
    store.drive(&transport).unwrap();
    assert_eq!(store.regions().len(), 2, "the split applied");
    let hard_state = EngineRaftLog::new(engine.clone())
        .hard_state(RegionId(2))
        .unwrap()
        .expect("the split target's hard state is persisted");
    assert_eq!(
        (hard_state.term, hard_state.vote),
        (9, 12),
        "{hard_state:?}"
    );
    assert_eq!(hard_state.commit, INIT_LOG_INDEX);

    let mut second = vote_request(13, 11, 9);
    second.start_key = b"f".to_vec();
    second.end_key = b"m".to_vec();
    store.on_raft_message(second);
    store.drive(&transport).unwrap();
    assert_eq!(
        vote_answers(&transport, 9),
        [(12, true), (13, false)],
        "one vote per term"
    );
    let reloaded = load(&engine);
    let region2 = reloaded.peers[&RegionId(2)].hard_state();
    assert_eq!((region2.term, region2.vote), (9, 12));
}

fn change_peer(change_type: ConfChangeType, moved: metapb::Peer) -> Request {
    Request::Admin(AdminRequest {
        region_id: 1,
        cmd: Some(admin_request::Cmd::ChangePeer(ChangePeerRequest {
            change_type: change_type as i32,
            peer: Some(moved),
        })),
    })
}

/// Review finding R2: adding a peer id the region already has, on another store, is
/// refused when proposed (it used to re-home the peer in the leader's peer cache at once,
/// and in the region when it applied: its messages and role went to a store without its log).
#[test]
fn a_change_peer_moving_a_member_to_another_store_is_refused_when_proposed() {
    let (engine, mut store, transport) = leading_store();
    for change_type in [ConfChangeType::AddNode, ConfChangeType::AddLearnerNode] {
        let answer = store
            .request(Token(1), change_peer(change_type, peer(1, 2)))
            .expect("refused at once");
        assert!(
            matches!(&answer, Response::Admin(Err(RegionError::Invalid(m))) if m.contains("never moves")),
            "{answer:?}"
        );
    }
    advance(&mut store, &transport, 3);
    assert_eq!(store.regions()[0].region.peers, vec![peer(1, 1)]);
    assert_eq!(load(&engine).regions()[0].region.peers, vec![peer(1, 1)]);
}

/// Review finding R2, the apply side: such a change that committed anyway (proposed by a
/// leader without the check) is refused by every replica when it applies, deterministically,
/// and the region keeps its membership.
#[test]
fn a_committed_change_peer_moving_a_member_is_refused_at_apply() {
    let engine = MemEngine::new();
    let whole = region(1, b"", b"", vec![peer(1, 1)]);
    bootstrap_region(&engine, &whole).unwrap();
    let context = ConfChangeContext {
        region_epoch: whole.region_epoch,
        peer: Some(peer(1, 2)),
    };
    let mut change = ConfChange::default();
    change.set_change_type(ConfChangeType::AddNode);
    change.node_id = 1;
    change.context = context.encode_to_vec().into();
    let mut conf_entry = Entry {
        index: 6,
        term: 6,
        data: change.write_to_bytes().unwrap().into(),
        ..Default::default()
    };
    conf_entry.set_entry_type(EntryType::EntryConfChange);
    commit_to_log(&engine, vec![conf_entry]);
    let mut store = load(&engine);
    store.drive(&Collect::default()).unwrap();
    let status = &store.regions()[0];
    assert_eq!(status.applied_index, 6);
    assert_eq!(
        status.region.peers,
        vec![peer(1, 1)],
        "membership unchanged"
    );
    assert_eq!(
        status.region.region_epoch, whole.region_epoch,
        "epoch unchanged"
    );
}
