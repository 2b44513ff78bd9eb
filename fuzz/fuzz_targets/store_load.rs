//! A store starting from a damaged `raft` column family: region states, apply states, hard
//! states and log entries replaced by arbitrary bytes or by well-formed but contradictory
//! records. Loading gives a store or a typed `StoreLoadError`, never a panic, and a store
//! that loaded can be driven (ticks, elections, applying what the log holds).
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_core::env::{
    stage_log_op, Cf, Instant, KvEngine, MemEngine, RaftLogOp, SeededRng, WriteBatch, WriteOptions,
};
use ferrokv_core::raft::keys::{
    apply_state_key, region_state_key, DATA_LAYOUT_KEY, STORE_IDENT_KEY,
};
use ferrokv_core::raft::RaftConfig;
use ferrokv_core::store::{bootstrap_region, Store};
use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_fuzz::{raft_log_keys, Outbox};
use ferrokv_proto::ferrokv_raftpb::{RaftApplyState, RaftTruncatedState, RegionLocalState};
use ferrokv_proto::metapb;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType, HardState};

#[derive(Arbitrary, Debug)]
enum Key {
    RegionState(u8),
    ApplyState(u8),
    HardState(u8),
    Entry(u8, u16),
    Ident,
    Layout,
}

impl Key {
    fn bytes(&self) -> Vec<u8> {
        match *self {
            Key::RegionState(r) => region_state_key(RegionId(u64::from(r))),
            Key::ApplyState(r) => apply_state_key(RegionId(u64::from(r))),
            Key::HardState(r) => raft_log_keys::hard_state(u64::from(r)),
            Key::Entry(r, i) => raft_log_keys::entry(u64::from(r), u64::from(i)),
            Key::Ident => STORE_IDENT_KEY.to_vec(),
            Key::Layout => DATA_LAYOUT_KEY.to_vec(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Record {
    Raw {
        key: Key,
        bytes: Vec<u8>,
    },
    Delete {
        key: Key,
    },
    RegionState {
        region: u8,
        state: u8,
        start: Vec<u8>,
        end: Vec<u8>,
        peers: Vec<(u8, u8)>,
        epoch: (u8, u8),
        uninitialized_peer_id: u8,
        destroyed_peer_id: u8,
    },
    ApplyState {
        region: u8,
        applied: u16,
        truncated: u16,
        applied_term: u8,
    },
    HardState {
        region: u8,
        term: u8,
        vote: u8,
        commit: u16,
    },
    Entries {
        region: u8,
        first: u16,
        entries: Vec<(u8, bool, Vec<u8>)>,
    },
}

fn region_state(record: &Record) -> Option<(u8, Vec<u8>)> {
    let Record::RegionState {
        region,
        state,
        start,
        end,
        peers,
        epoch,
        uninitialized_peer_id,
        destroyed_peer_id,
    } = record
    else {
        return None;
    };
    let region_meta = metapb::Region {
        id: u64::from(*region),
        start_key: start.clone(),
        end_key: end.clone(),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: u64::from(epoch.0),
            version: u64::from(epoch.1),
        }),
        peers: peers
            .iter()
            .map(|&(id, store_id)| metapb::Peer {
                id: u64::from(id),
                store_id: u64::from(store_id),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let local = RegionLocalState {
        state: i32::from(*state % 4),
        region: Some(region_meta),
        uninitialized_peer_id: u64::from(*uninitialized_peer_id),
        destroyed_peer_id: u64::from(*destroyed_peer_id),
    };
    Some((*region, local.encode_to_vec()))
}

fn stage(record: &Record, batch: &mut WriteBatch) {
    match record {
        Record::Raw { key, bytes } => batch.put(Cf::Raft, &key.bytes(), bytes),
        Record::Delete { key } => batch.delete(Cf::Raft, &key.bytes()),
        Record::RegionState { .. } => {
            let (region, bytes) = region_state(record).expect("a region state");
            batch.put(
                Cf::Raft,
                &region_state_key(RegionId(u64::from(region))),
                &bytes,
            );
        }
        Record::ApplyState {
            region,
            applied,
            truncated,
            applied_term,
        } => {
            let state = RaftApplyState {
                applied_index: u64::from(*applied),
                truncated_state: Some(RaftTruncatedState {
                    index: u64::from(*truncated),
                    term: u64::from(*applied_term),
                }),
                applied_term: u64::from(*applied_term),
            };
            batch.put(
                Cf::Raft,
                &apply_state_key(RegionId(u64::from(*region))),
                &state.encode_to_vec(),
            );
        }
        Record::HardState {
            region,
            term,
            vote,
            commit,
        } => {
            let hard_state = HardState {
                term: u64::from(*term),
                vote: u64::from(*vote),
                commit: u64::from(*commit),
                ..Default::default()
            };
            let region = RegionId(u64::from(*region));
            stage_log_op(&RaftLogOp::SetHardState { region, hard_state }, batch);
        }
        Record::Entries {
            region,
            first,
            entries,
        } => {
            let entries: Vec<Entry> = entries
                .iter()
                .take(16)
                .enumerate()
                .map(|(offset, (term, conf_change, data))| Entry {
                    entry_type: if *conf_change {
                        EntryType::EntryConfChange
                    } else {
                        EntryType::EntryNormal
                    },
                    term: u64::from(*term),
                    index: u64::from((*first).max(1)) + offset as u64,
                    data: data.clone().into(),
                    ..Default::default()
                })
                .collect();
            if entries.is_empty() {
                return;
            }
            let region = RegionId(u64::from(*region));
            stage_log_op(
                &RaftLogOp::Append {
                    region,
                    entries,
                    replaces_tail: true,
                },
                batch,
            );
        }
    }
}

fuzz_target!(|input: (u8, Vec<Record>)| {
    // 0: an empty store; otherwise region 1 bootstrapped with 1 to 3 peers (one peer elects
    // itself and applies whatever committed entries the damaged log holds).
    let (bootstrap, records) = input;
    let engine = MemEngine::new();
    if bootstrap > 0 {
        let peers = 1 + u64::from(bootstrap % 3);
        let region = ferrokv_sim::harness::initial_region(peers);
        bootstrap_region(&engine, &region).expect("bootstrap");
    }
    let mut batch = WriteBatch::new();
    for record in records.iter().take(32) {
        stage(record, &mut batch);
    }
    engine
        .write(&batch, WriteOptions::SYNC)
        .expect("memory engine writes");
    let Ok(mut store) = Store::load(engine, StoreId(1), RaftConfig::default(), SeededRng::new(7))
    else {
        return;
    };
    let outbox = Outbox::default();
    let tick = RaftConfig::default().tick_interval;
    for step in 1..=40u32 {
        store.set_now(Instant::from_nanos(0) + tick * step);
        store.tick();
        // A storage error stops a store for good (it must be reloaded, never driven again):
        // the damaged disk was found, which is an answer, not a crash.
        if store.drive(&outbox).is_err() {
            break;
        }
        outbox.take();
    }
});
