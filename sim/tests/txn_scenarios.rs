//! L1 transaction scenarios: `TxnWrite` / `TxnRead` through the real store and peer FSMs
//! over the packet simulator, with leadership moving between two conflicting commands.

use std::time::Duration;

use ferrokv_core::raft::RaftConfig;
use ferrokv_core::store::{Request, RequestHeader, Response, TxnFailure};
use ferrokv_core::txn::{request, CommandResult};
use ferrokv_core::types::{RegionEpoch, RegionId, StoreId};
use ferrokv_proto::ferrokv_raftpb::{admin_request, AdminRequest};
use ferrokv_proto::kvrpcpb;
use ferrokv_sim::harness::{Cluster, NetConfig};

const SECOND: Duration = Duration::from_secs(1);
const REGION: RegionId = RegionId(1);

fn header(c: &Cluster, store: StoreId) -> RequestHeader {
    let status = c
        .regions(store)
        .into_iter()
        .find(|s| s.region.id == REGION.get())
        .expect("the store holds region 1");
    RequestHeader {
        region_id: REGION,
        epoch: RegionEpoch::from(status.region.region_epoch),
    }
}

fn prewrite(c: &Cluster, store: StoreId, key: &[u8], start_ts: u64) -> Request {
    let wire = kvrpcpb::PrewriteRequest {
        mutations: vec![kvrpcpb::Mutation {
            op: kvrpcpb::Op::Put as i32,
            key: key.to_vec(),
            value: start_ts.to_be_bytes().to_vec(),
            ..Default::default()
        }],
        primary_lock: key.to_vec(),
        start_version: start_ts,
        lock_ttl: 60_000,
        ..Default::default()
    };
    Request::TxnWrite {
        header: header(c, store),
        command: request::prewrite(&wire).unwrap(),
    }
}

/// True if a prewrite answer says the key is now locked by it.
fn locked(response: &Option<Response>) -> bool {
    matches!(
        response,
        Some(Response::TxnWrite(Ok(CommandResult::Prewrite { errors, .. }))) if errors.is_empty()
    )
}

/// The start_ts of the lock on `key`, read on the leader (None: no lock).
fn lock_owner(c: &mut Cluster, key: &[u8]) -> Option<u64> {
    for _ in 0..20 {
        let leader = c.wait_for_leader(REGION, 10 * SECOND)?;
        let wire = kvrpcpb::GetRequest {
            key: key.to_vec(),
            version: u64::MAX >> 1,
            ..Default::default()
        };
        let read = Request::TxnRead {
            header: header(c, leader),
            read: request::get(&wire).unwrap(),
        };
        let token = c.submit(leader, read);
        match c.wait(token, 5 * SECOND) {
            Some(Response::TxnRead(Ok(_))) => return None,
            Some(Response::TxnRead(Err(TxnFailure::Txn(error)))) => {
                let info = error.key_error().and_then(|e| e.locked);
                return Some(info.expect("only a lock fails this read").lock_version);
            }
            _ => c.run_for(SECOND),
        }
    }
    panic!("no answer to the lock read of {key:?}");
}

/// Never both locked; whoever was told it locked the key owns the lock found afterwards.
fn check_round(
    c: &mut Cluster,
    key: &[u8],
    (first_ts, a): (u64, &Option<Response>),
    (second_ts, b): (u64, &Option<Response>),
) {
    let (a_locked, b_locked) = (locked(a), locked(b));
    assert!(
        !(a_locked && b_locked),
        "both transactions locked {key:?}: {a:?} / {b:?}"
    );
    let owner = lock_owner(c, key);
    if a_locked {
        assert_eq!(owner, Some(first_ts), "{key:?}: {a:?} {b:?}");
    }
    if b_locked {
        assert_eq!(owner, Some(second_ts), "{key:?}: {a:?} {b:?}");
    }
}

/// The peer id of `store`'s replica of region 1.
fn peer_on(c: &Cluster, store: StoreId) -> u64 {
    let status = c
        .regions(store)
        .into_iter()
        .find(|s| s.region.id == REGION.get());
    let region = status.expect("the store holds region 1").region;
    region
        .peers
        .iter()
        .find(|p| p.store_id == store.get())
        .expect("a member")
        .id
}

/// Moves leadership away from `leader` in one of four ways; returns the stores cut off.
fn disturb(c: &mut Cluster, leader: StoreId, mode: u64) -> Vec<StoreId> {
    let other = c.store_ids().into_iter().find(|s| *s != leader).unwrap();
    match mode {
        0 => {
            let transfer = AdminRequest {
                region_id: REGION.get(),
                cmd: Some(admin_request::Cmd::TransferLeaderToPeer(peer_on(c, other))),
            };
            c.submit(leader, Request::Admin(transfer));
            vec![]
        }
        1 => {
            c.isolate(leader);
            vec![leader]
        }
        _ => vec![],
    }
}

/// Two transactions prewrite one key, the second after leadership may have moved (a
/// transfer; the leader cut off; or the leader cut off the moment it answered the first,
/// with one follower lagging so the other, which may not have applied the first prewrite
/// yet, must take over): never may both lock it, and whoever was told it locked the key
/// must own the lock found afterwards.
#[test]
fn conflicting_prewrites_across_leader_changes_never_both_lock_a_key() {
    let mut both_answered = 0;
    for seed in 1..=3 {
        let mut c = Cluster::new(3, seed, RaftConfig::default(), NetConfig::default());
        for round in 0..16u64 {
            let key = format!("k{seed}-{round}").into_bytes();
            let (first_ts, second_ts) = (1000 + 2 * round, 1001 + 2 * round);
            let leader = c.wait_for_leader(REGION, 10 * SECOND).expect("a leader");
            let mode = round % 4;
            let (a, b) = if mode == 3 {
                let lagging = c.store_ids().into_iter().find(|s| *s != leader).unwrap();
                c.network.cut_both(leader, lagging);
                let first = c.submit(leader, prewrite(&c, leader, &key, first_ts));
                let a = c.wait(first, 10 * SECOND);
                c.isolate(leader);
                let next = c
                    .wait_for_leader_outside(&[leader], 10 * SECOND)
                    .expect("a leader");
                let second = c.submit(next, prewrite(&c, next, &key, second_ts));
                (a, c.wait(second, 10 * SECOND))
            } else {
                let first = c.submit(leader, prewrite(&c, leader, &key, first_ts));
                let isolated = disturb(&mut c, leader, mode);
                c.run_for(SECOND * 2);
                let next = c
                    .wait_for_leader_outside(&isolated, 10 * SECOND)
                    .expect("a leader");
                let second = c.submit(next, prewrite(&c, next, &key, second_ts));
                (c.wait(first, 10 * SECOND), c.wait(second, 10 * SECOND))
            };
            c.network.heal();
            c.run_for(SECOND * 2);
            both_answered += u64::from(a.is_some() && b.is_some());
            check_round(&mut c, &key, (first_ts, &a), (second_ts, &b));
        }
    }
    assert!(
        both_answered >= 30,
        "most rounds answered both: {both_answered}"
    );
}
