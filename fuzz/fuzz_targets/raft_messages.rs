//! Raft messages from the network into a store that holds region 1 (peers 1, 2, 3 on stores
//! 1, 2, 3; this is store 1): any addressing, region, epoch, key range, tombstone flag,
//! undecodable or decodable body, and snapshots with arbitrary data. A message for another
//! store, region 0 or peer 0 is dropped (nothing written, nothing sent); nothing panics.
//!
//! Raft is not Byzantine-tolerant: a peer of the region that lies about its log (an append
//! conflicting with committed entries, a commit index past the follower's log) makes
//! raft-rs abort, as in every Raft. So decodable bodies carry commit 0 and appends start at
//! or above the commit index: what an honest but arbitrary peer, or a stranger, can send.
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_core::env::{Instant, MemEngine, SeededRng};
use ferrokv_core::raft::{RaftConfig, INIT_LOG_INDEX};
use ferrokv_core::store::{bootstrap_region, Store};
use ferrokv_core::types::StoreId;
use ferrokv_fuzz::Outbox;
use ferrokv_proto::ferrokv_raftpb::RaftMessage;
use ferrokv_proto::metapb;
use libfuzzer_sys::fuzz_target;
use protobuf::Message as _;
use raft::eraftpb::{Entry, EntryType, Message as WireMessage, MessageType, Snapshot};

const TYPES: [MessageType; 14] = [
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
    // Never sent between nodes: refused before raft-rs.
    MessageType::MsgPropose,
    MessageType::MsgReadIndex,
    MessageType::MsgTransferLeader,
    MessageType::MsgHup,
];

#[derive(Arbitrary, Debug)]
enum Body {
    Bytes(Vec<u8>),
    Wire {
        kind: u8,
        term: u8,
        log_term: u8,
        index: u8,
        reject: bool,
        entries: Vec<(u8, bool, Vec<u8>)>,
        snapshot: Option<(u8, u8, Vec<u8>)>,
        /// Wire addressing that may disagree with the envelope.
        wire_from: Option<u8>,
        wire_to: Option<u8>,
        /// A commit index (heartbeats) or acknowledged index (append responses) this many
        /// entries past the store's log: refused, as no honest peer names one.
        past_log: Option<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Incoming {
    region_id: u8,
    to: (u8, u8),
    from: Option<(u8, u8)>,
    epoch: (u8, u8),
    start_key: Vec<u8>,
    end_key: Vec<u8>,
    is_tombstone: bool,
    is_snapshot: bool,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Message(Incoming),
    Tick(u8),
}

fn peer(pair: (u8, u8)) -> metapb::Peer {
    metapb::Peer {
        id: u64::from(pair.0),
        store_id: u64::from(pair.1),
        ..Default::default()
    }
}

fn wire(body: &Body, from: u64, to: u64, (commit, last): (u64, u64)) -> Vec<u8> {
    let Body::Wire {
        kind,
        term,
        log_term,
        index,
        reject,
        entries,
        snapshot,
        wire_from,
        wire_to,
        past_log,
    } = body
    else {
        let Body::Bytes(bytes) = body else {
            unreachable!()
        };
        return bytes.clone();
    };
    let mut message = WireMessage::default();
    message.set_msg_type(TYPES[usize::from(*kind) % TYPES.len()]);
    message.from = from;
    message.to = to;
    message.term = u64::from(*term);
    message.log_term = u64::from(*log_term);
    // Appends start at or above the commit index: below it they would contradict committed
    // entries, which raft-rs (like every Raft) answers by aborting.
    message.index = u64::from(*index).max(INIT_LOG_INDEX).max(commit);
    message.reject = *reject;
    message.commit = 0;
    message.from = wire_from.map_or(from, u64::from);
    message.to = wire_to.map_or(to, u64::from);
    if let Some(past) = past_log {
        let beyond = last + 1 + u64::from(*past);
        match message.get_msg_type() {
            MessageType::MsgHeartbeat => message.commit = beyond,
            MessageType::MsgAppendResponse => {
                message.index = beyond;
                message.reject = false;
            }
            _ => {}
        }
    }
    let first = message.index + 1;
    let entries = entries
        .iter()
        .take(8)
        .enumerate()
        .map(|(offset, (term, conf, data))| Entry {
            entry_type: if *conf {
                EntryType::EntryConfChange
            } else {
                EntryType::EntryNormal
            },
            term: u64::from(*term),
            index: first + offset as u64,
            data: data.clone().into(),
            ..Default::default()
        });
    message.set_entries(entries.collect::<Vec<_>>().into());
    if let Some((index, term, data)) = snapshot {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = u64::from(*index);
        snap.mut_metadata().term = u64::from(*term);
        snap.data = data.clone().into();
        message.set_snapshot(snap);
    }
    message.write_to_bytes().expect("encodes")
}

fn raft_message(incoming: &Incoming, log: (u64, u64)) -> RaftMessage {
    let to = peer(incoming.to);
    let from = incoming.from.map(peer);
    RaftMessage {
        region_id: u64::from(incoming.region_id),
        message: wire(
            &incoming.body,
            from.as_ref().map_or(0, |p| p.id),
            to.id,
            log,
        ),
        to_peer: Some(to),
        from_peer: from,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: u64::from(incoming.epoch.0),
            version: u64::from(incoming.epoch.1),
        }),
        start_key: incoming.start_key.clone(),
        end_key: incoming.end_key.clone(),
        is_tombstone: incoming.is_tombstone,
        is_snapshot: incoming.is_snapshot,
    }
}

fn misaddressed(message: &RaftMessage) -> bool {
    let to = message.to_peer.as_ref().expect("set");
    to.store_id != 1 || to.id == 0 || message.region_id == 0
}

fuzz_target!(|ops: Vec<Op>| {
    let engine = MemEngine::new();
    let region = ferrokv_sim::harness::initial_region(3);
    bootstrap_region(&engine, &region).expect("bootstrap");
    let config = RaftConfig::default();
    let mut store = Store::load(
        engine.clone(),
        StoreId(1),
        config.clone(),
        SeededRng::new(3),
    )
    .expect("store loads");
    let outbox = Outbox::default();
    let mut now = Instant::from_nanos(0);
    for op in ops.iter().take(32) {
        match op {
            Op::Tick(count) => {
                for _ in 0..count % 16 {
                    now = now + config.tick_interval;
                    store.set_now(now);
                    store.tick();
                    store.drive(&outbox).expect("memory engine writes");
                }
                outbox.take();
            }
            Op::Message(incoming) => {
                let status = store.regions().into_iter().find(|r| r.region.id == 1);
                let log = status.map_or((0, 0), |status| (status.commit_index, status.last_index));
                let message = raft_message(incoming, log);
                let dropped = misaddressed(&message);
                let writes = engine.writes().len();
                let regions = store.regions().len();
                store.on_raft_message(message);
                store.drive(&outbox).expect("memory engine writes");
                let sent = outbox.take();
                if dropped {
                    assert_eq!(
                        engine.writes().len(),
                        writes,
                        "a misaddressed message wrote"
                    );
                    assert!(sent.is_empty(), "a misaddressed message was answered");
                    assert_eq!(
                        store.regions().len(),
                        regions,
                        "a misaddressed message made a peer"
                    );
                }
            }
        }
    }
});
