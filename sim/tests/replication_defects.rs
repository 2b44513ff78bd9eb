//! L1 scenarios for the replication defects a line-by-line review found (issue 12). Each
//! test failed on the code before its fix (the issue note lists them); each now guards the
//! fix as a regression.

use std::time::Duration;

use ferrokv_core::raft::RaftConfig;
use ferrokv_core::raw::RawRead;
use ferrokv_core::store::{RegionError, Request, RequestHeader, Response, Token};
use ferrokv_core::types::{RegionEpoch, RegionId, StoreId};
use ferrokv_proto::ferrokv_raftpb::{
    admin_request, AdminRequest, ChangePeerRequest, CompactLogCmd,
};
use ferrokv_proto::metapb;
use ferrokv_sim::engine::CrashTail;
use ferrokv_sim::harness::{message_type, put_op, Cluster, NetConfig, Packet};
use raft::eraftpb::MessageType;

const SECOND: Duration = Duration::from_secs(1);
const REGION: RegionId = RegionId(1);

fn cluster(stores: u64, seed: u64) -> Cluster {
    Cluster::new(stores, seed, RaftConfig::default(), NetConfig::default())
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn header(c: &Cluster, store: StoreId) -> RequestHeader {
    let status = c
        .regions(store)
        .into_iter()
        .find(|s| s.region.id == REGION.get())
        .expect("store holds the region");
    RequestHeader {
        region_id: REGION,
        epoch: RegionEpoch::from(status.region.region_epoch),
    }
}

fn write_to(c: &mut Cluster, store: StoreId, k: &[u8], v: &[u8]) -> Token {
    let request = Request::Write {
        header: header(c, store),
        ops: vec![put_op(k, v)],
    };
    c.submit(store, request)
}

fn read_from(c: &mut Cluster, store: StoreId, k: &[u8]) -> Token {
    let request = Request::Read {
        header: header(c, store),
        read: RawRead::Get { key: k.to_vec() },
        now_ms: 0,
    };
    c.submit(store, request)
}

fn admin(region_id: u64, cmd: admin_request::Cmd) -> Request {
    Request::Admin(AdminRequest {
        region_id,
        cmd: Some(cmd),
    })
}

fn others(c: &Cluster, not: StoreId) -> Vec<StoreId> {
    c.store_ids().into_iter().filter(|id| *id != not).collect()
}

/// Item 1. A CompactLog naming a term other than its entry's (here the current term, after
/// a leader change) is refused, and no replica ever records a truncated term the log does
/// not hold.
#[test]
fn compact_log_naming_another_term_is_refused() {
    let mut c = cluster(3, 31);
    let first = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    for i in 0..10 {
        c.put(&key(i), b"v", 5 * SECOND).unwrap();
    }
    c.run_for(SECOND);
    let old = c.regions(first)[0].clone();
    let (index, real_term) = (old.applied_index, old.applied_term);
    c.crash(first, CrashTail::KeepAll);
    let second = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.restart(first);
    c.put(b"after", b"v", 5 * SECOND).unwrap();
    let current_term = c.regions(second)[0].term;
    assert!(current_term > real_term, "a leader change moved the term");
    let compact = CompactLogCmd {
        compact_index: index,
        compact_term: current_term,
    };
    let token = c.submit(second, admin(1, admin_request::Cmd::CompactLog(compact)));
    let answer = c.wait(token, 5 * SECOND);
    assert!(
        matches!(answer, Some(Response::Admin(Err(RegionError::Invalid(_))))),
        "{answer:?}"
    );
    c.run_for(2 * SECOND);
    for id in c.store_ids() {
        let (truncated_index, truncated_term) = c.regions(id)[0].truncated;
        if truncated_index == index {
            assert_eq!(
                truncated_term, real_term,
                "store {id}: truncated term is the log's"
            );
        }
        assert!(truncated_term <= real_term || truncated_index > index);
    }
}

/// Item 2 (and 7). Reads waiting for a ReadIndex round on a leader that steps down can
/// never be confirmed (raft-rs drops its rounds): they fail with NotLeader at once instead
/// of hanging.
#[test]
fn reads_waiting_on_a_deposed_leader_fail_instead_of_hanging() {
    let mut c = cluster(3, 32);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.put(b"x", b"1", 5 * SECOND).unwrap();
    c.isolate(leader);
    c.run_for(Duration::from_millis(850)); // past the lease, before check-quorum
    let token = read_from(&mut c, leader, b"x");
    let answer = c.wait(token, 4 * SECOND);
    assert!(
        matches!(
            answer,
            Some(Response::Read(Err(RegionError::NotLeader { .. })))
        ),
        "{answer:?}"
    );
}

/// Item 2. A leader transfer that aborts leaves a MsgTimeoutNow in flight; when it arrives
/// late its target wins an election at once, whatever leases say. The old leader must not
/// serve lease reads for the rest of that term, or it reads stale data.
#[test]
fn a_delayed_timeout_now_after_an_aborted_transfer_never_serves_stale_reads() {
    let mut c = cluster(3, 33);
    let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let target = others(&c, old)[0];
    let bystander = others(&c, old)[1];
    c.put(b"x", b"1", 5 * SECOND).unwrap();
    c.network.add_delay(Box::new(move |p: &Packet| {
        let held =
            p.from == old && p.to == target && message_type(p) == Some(MessageType::MsgTimeoutNow);
        held.then_some(3 * SECOND)
    }));
    let transfer = admin(1, admin_request::Cmd::TransferLeaderToPeer(target.get()));
    let token = c.submit(old, transfer);
    assert!(matches!(
        c.wait(token, SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.run_for(Duration::from_millis(2850)); // the transfer aborted; the old leader leads on
    assert_eq!(c.leader_of(REGION), Some(old));
    c.network.cut(target, old);
    c.network.cut(bystander, old);
    c.run_for(Duration::from_millis(300)); // the held MsgTimeoutNow lands
    let new = c.leader_of(REGION).expect("a leader");
    assert_eq!(new, target, "the late MsgTimeoutNow elected its target");
    let written = write_to(&mut c, target, b"x", b"2");
    assert!(matches!(
        c.wait(written, SECOND),
        Some(Response::Write(Ok(_)))
    ));
    let read = read_from(&mut c, old, b"x");
    let answer = c.wait(read, 2 * SECOND);
    let stale = matches!(&answer, Some(Response::Read(Ok(ferrokv_core::raw::RawReadResult::Value(Some(v))))) if v.as_slice() == b"1");
    assert!(!stale, "the deposed leader served a stale read: {answer:?}");
}

/// Item 3. A proposal whose entry committed under a new leader and reached its proposer
/// inside a snapshot may have applied: it is answered `OutcomeUnknown`, never
/// `StaleCommand` (which clients retry, applying the write twice).
#[test]
fn a_proposal_covered_by_a_snapshot_is_answered_unknown() {
    let mut c = cluster(3, 34);
    let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.put(b"warm", b"up", 5 * SECOND).unwrap();
    for other in others(&c, old) {
        c.network.cut(other, old); // the followers get the entry; their acks never return
    }
    let token = write_to(&mut c, old, b"w", b"once");
    c.run_for(Duration::from_millis(50));
    c.isolate(old);
    let new = c
        .wait_for_leader_outside(&[old], 10 * SECOND)
        .expect("the majority elects");
    for i in 0..20 {
        c.put(&key(i), b"v", 5 * SECOND).unwrap();
    }
    let status = c.regions(new)[0].clone();
    let compact = CompactLogCmd {
        compact_index: status.applied_index,
        compact_term: status.applied_term,
    };
    let compacted = c.submit(new, admin(1, admin_request::Cmd::CompactLog(compact)));
    assert!(matches!(
        c.wait(compacted, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.network.heal();
    let answer = c.wait(token, 9 * SECOND);
    assert!(
        matches!(
            answer,
            Some(Response::Write(Err(RegionError::OutcomeUnknown(_))))
        ),
        "{answer:?}"
    );
    assert_eq!(
        c.get(b"w", 5 * SECOND).unwrap(),
        Some(b"once".to_vec()),
        "it did apply"
    );
    assert!(c.store(old).unwrap().stats().snapshots_installed >= 1);
}

/// Item 7. On an idle region, a proposal whose index no entry will ever fill is settled as
/// soon as an entry of a higher term applies (it can never commit after it).
#[test]
fn a_proposal_on_an_idle_region_is_settled_after_a_leader_change() {
    let mut c = cluster(3, 35);
    let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.put(b"warm", b"up", 5 * SECOND).unwrap();
    c.isolate(old);
    let first = write_to(&mut c, old, b"a", b"1");
    let second = write_to(&mut c, old, b"b", b"2");
    c.wait_for_leader_outside(&[old], 10 * SECOND)
        .expect("the majority elects");
    c.network.heal();
    let answers = (c.wait(first, 5 * SECOND), c.wait(second, 5 * SECOND));
    for answer in [answers.0, answers.1] {
        assert!(
            matches!(
                answer,
                Some(Response::Write(Err(RegionError::StaleCommand)))
            ),
            "{answer:?}"
        );
    }
}

/// Item 7. Every request gets an answer: a write no quorum can commit is answered
/// `OutcomeUnknown` by its deadline.
#[test]
fn a_write_no_quorum_can_commit_is_answered_by_its_deadline() {
    let mut c = cluster(3, 36);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.isolate(leader);
    let token = write_to(&mut c, leader, b"k", b"v");
    let answer = c.wait(token, 12 * SECOND);
    assert!(
        matches!(
            answer,
            Some(Response::Write(Err(RegionError::OutcomeUnknown(_))))
        ),
        "{answer:?}"
    );
}

/// Item 8. A snapshot that takes longer than two seconds to arrive is not abandoned and
/// re-sent on a timer: the leader waits for the transport's delivery report.
#[test]
fn a_slow_snapshot_is_sent_once() {
    let mut c = cluster(3, 37);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    c.isolate(lagging);
    for i in 0..50 {
        c.put(&key(i), b"while-away", 5 * SECOND).unwrap();
    }
    let status = c.regions(leader)[0].clone();
    let compact = CompactLogCmd {
        compact_index: status.applied_index,
        compact_term: status.applied_term,
    };
    let token = c.submit(leader, admin(1, admin_request::Cmd::CompactLog(compact)));
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.network.heal();
    c.network.add_delay(Box::new(|p: &Packet| {
        (message_type(p) == Some(MessageType::MsgSnapshot)).then_some(3 * SECOND)
    }));
    c.run_for(8 * SECOND);
    let sent = c
        .network
        .sent_by_type
        .get("MsgSnapshot")
        .copied()
        .unwrap_or(0);
    assert_eq!(sent, 1, "one snapshot, delivered after 3 s");
    assert_eq!(c.store(lagging).unwrap().stats().snapshots_installed, 1);
}

/// The VOPR found it (seeds 4 and 5): raft-rs learns a snapshot applied only from the
/// application; without that, a peer caught up by a snapshot aborts the first time it
/// campaigns (it asks storage for compacted entries).
#[test]
fn a_peer_caught_up_by_a_snapshot_can_campaign() {
    let mut c = cluster(3, 38);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    let other = others(&c, leader)[1];
    c.isolate(lagging);
    for i in 0..30 {
        c.put(&key(i), b"v", 5 * SECOND).unwrap();
    }
    let status = c.regions(leader)[0].clone();
    let compact = CompactLogCmd {
        compact_index: status.applied_index,
        compact_term: status.applied_term,
    };
    let token = c.submit(leader, admin(1, admin_request::Cmd::CompactLog(compact)));
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.network.heal();
    c.run_for(3 * SECOND);
    assert_eq!(c.store(lagging).unwrap().stats().snapshots_installed, 1);
    c.crash(leader, CrashTail::KeepAll);
    c.isolate(other);
    c.run_for(5 * SECOND); // the lagging peer campaigns (and cannot win alone)
    c.network.heal();
    c.restart(leader);
    c.wait_for_leader(REGION, 10 * SECOND).expect("a leader");
    assert_eq!(c.get(&key(29), 5 * SECOND).unwrap(), Some(b"v".to_vec()));
}

/// Item 10. A leader holds a bounded number of uncommitted bytes; beyond it proposals get
/// ServerIsBusy instead of growing memory.
#[test]
fn uncommitted_bytes_are_bounded() {
    let mut c = cluster(3, 39);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.isolate(leader);
    let value = vec![7u8; 1024 * 1024];
    let busy = (0..48)
        .filter(|i| {
            let request = Request::Write {
                header: header(&c, leader),
                ops: vec![put_op(&key(*i), &value)],
            };
            let token = c.submit(leader, request);
            matches!(
                c.wait(token, Duration::from_millis(1)),
                Some(Response::Write(Err(RegionError::ServerIsBusy(_))))
            )
        })
        .count();
    assert!(busy >= 10, "{busy} of 48 one-MiB writes refused");
}

fn peer(id: u64, store_id: u64) -> metapb::Peer {
    metapb::Peer {
        id,
        store_id,
        ..Default::default()
    }
}

fn change(change_type: i32, target: metapb::Peer) -> admin_request::Cmd {
    admin_request::Cmd::ChangePeer(ChangePeerRequest {
        change_type,
        peer: Some(target),
    })
}

/// Items 12 and 3. A leader removed from its region while cut off learns it was removed
/// from a member's tombstone when it returns, destroys itself, and answers its pending
/// write `OutcomeUnknown` (it may have committed elsewhere), instead of living and waiting
/// forever.
#[test]
fn a_peer_removed_while_partitioned_is_destroyed_when_it_returns() {
    let mut c = cluster(3, 40);
    let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    c.add_empty_store(StoreId(4));
    // A new voter answers nothing at first, so adding it directly needs every current voter
    // to have answered this leader (a quorum of the four must answer): one heartbeat round.
    c.run_for(SECOND);
    let add = admin(1, change(0, peer(4, 4)));
    let token = c.submit(old, add);
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.run_for(3 * SECOND);
    c.isolate(old);
    let pending = write_to(&mut c, old, b"k", b"v");
    let new = c
        .wait_for_leader_outside(&[old], 10 * SECOND)
        .expect("the majority elects");
    let remove = admin(1, change(1, peer(old.get(), old.get())));
    let token = c.submit(new, remove);
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.network.heal();
    let answer = c.wait(pending, 8 * SECOND);
    assert!(
        matches!(
            answer,
            Some(Response::Write(Err(RegionError::OutcomeUnknown(_))))
        ),
        "{answer:?}"
    );
    c.run_for(2 * SECOND);
    assert!(c.regions(old).is_empty(), "the removed peer is gone");
    assert_eq!(c.store(old).unwrap().stats().stale_peers_destroyed, 1);
    c.put(b"after", b"ok", 5 * SECOND).unwrap();
}

/// Found by the VOPR (seed 55): a snapshot generated for one lagging follower was cached and
/// later sent to a peer added after it was taken; raft-rs on the new peer refuses a snapshot
/// whose membership does not name it, so the new peer never caught up. A cached snapshot is
/// used only for peers its membership names.
#[test]
fn a_peer_added_after_a_snapshot_was_cached_still_catches_up() {
    let mut c = cluster(3, 41);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    c.isolate(lagging);
    for i in 0..30 {
        c.put(&key(i), b"v", 5 * SECOND).unwrap();
    }
    let status = c.regions(leader)[0].clone();
    let compact = CompactLogCmd {
        compact_index: status.applied_index,
        compact_term: status.applied_term,
    };
    let token = c.submit(leader, admin(1, admin_request::Cmd::CompactLog(compact)));
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.add_empty_store(StoreId(4));
    c.network.add_delay(Box::new(|p: &Packet| {
        (message_type(p) == Some(MessageType::MsgSnapshot)).then_some(SECOND)
    }));
    c.network.heal();
    c.run_for(Duration::from_millis(300)); // the lagging follower's snapshot is generated
    let add = admin(1, change(2, peer(4, 4)));
    let token = c.submit(leader, add);
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.run_for(8 * SECOND);
    let added = c.regions(StoreId(4));
    assert_eq!(added.len(), 1, "the new learner installed a snapshot");
    assert_eq!(added[0].applied_index, c.regions(leader)[0].applied_index);
}

/// Review finding R4. A follower acknowledges the leader's heartbeats (the leader's lease
/// counts on it not voting for an election timeout), then restarts and forgets its leader.
/// A peer long cut from the leader asks for votes: without the restart guard the restarted
/// follower grants at once, a new leader commits a write while the isolated old leader
/// still serves lease reads, and those reads are stale. Over several seeds (the new
/// candidate's timing varies), no read from the old leader may see the old value after the
/// new value was acknowledged.
#[test]
fn a_restarted_follower_never_lets_a_lease_read_go_stale() {
    let mut elected_within_lease = 0;
    for seed in 0..12 {
        let mut c = cluster(3, 4000 + seed);
        let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
        let (a, b) = (others(&c, old)[0], others(&c, old)[1]);
        c.put(b"x", b"1", 5 * SECOND).unwrap();
        c.network.cut_both(old, b);
        c.run_for(5 * SECOND); // b campaigns in vain: a still hears the leader
        c.network.cut_both(old, a);
        c.crash(a, CrashTail::KeepAll);
        c.restart(a);
        let lease_end = c.now() + Duration::from_millis(600);
        while c.now() < lease_end && c.leader_of(REGION) != Some(b) {
            c.run_for(Duration::from_millis(10));
        }
        if c.leader_of(REGION) != Some(b) {
            continue;
        }
        elected_within_lease += 1;
        let written = write_to(&mut c, b, b"x", b"2");
        if !matches!(
            c.wait(written, Duration::from_millis(100)),
            Some(Response::Write(Ok(_)))
        ) {
            continue;
        }
        let read = read_from(&mut c, old, b"x");
        let answer = c.wait(read, Duration::from_millis(50));
        let stale = matches!(&answer, Some(Response::Read(Ok(ferrokv_core::raw::RawReadResult::Value(Some(v))))) if v.as_slice() == b"1");
        assert!(
            !stale,
            "seed {seed}: the old leader served a stale read: {answer:?}"
        );
    }
    assert_eq!(
        elected_within_lease, 0,
        "no leader may be elected inside the old lease"
    );
}

/// Review finding R7. A snapshot the transport refuses to queue (full) is never sent, so
/// the transport never reports it; the store reports the failure at once, and the leader
/// sends a new snapshot soon, instead of leaving the follower in snapshot state until the
/// 60 s report timeout.
#[test]
fn a_snapshot_the_transport_refuses_is_retried_soon() {
    let mut c = cluster(3, 38);
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    c.isolate(lagging);
    for i in 0..50 {
        c.put(&key(i), b"while-away", 5 * SECOND).unwrap();
    }
    let status = c.regions(leader)[0].clone();
    let compact = CompactLogCmd {
        compact_index: status.applied_index,
        compact_term: status.applied_term,
    };
    let token = c.submit(leader, admin(1, admin_request::Cmd::CompactLog(compact)));
    assert!(matches!(
        c.wait(token, 5 * SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.refuse_snapshot_sends(leader, 1);
    c.network.heal();
    c.run_for(5 * SECOND);
    assert_eq!(
        c.store(lagging).unwrap().stats().snapshots_installed,
        1,
        "a second snapshot followed the refused one within seconds"
    );
}

/// Review finding R8. While a snapshot is in flight to a lagging follower, a log over its
/// limits is compacted past the slowest follower, but never past the snapshot's index: the
/// follower resumes from there. Compacting further made every snapshot stale on arrival
/// under steady writes (another snapshot, and another).
#[test]
fn compaction_under_load_never_outruns_a_snapshot_in_flight() {
    let config = RaftConfig {
        log_gc_count_threshold: 5,
        log_gc_count_limit: 60, // 100 writes during the snapshot stay under twice this
        log_gc_tick: 1,
        ..RaftConfig::default()
    };
    let mut c = Cluster::new(3, 39, config, NetConfig::default());
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    c.isolate(lagging);
    for i in 0..40 {
        c.put(&key(i), b"while-away", 5 * SECOND).unwrap();
    }
    c.network.heal();
    c.network.add_delay(Box::new(|p: &Packet| {
        (message_type(p) == Some(MessageType::MsgSnapshot)).then_some(2 * SECOND)
    }));
    for i in 40..140 {
        c.put(&key(i), b"during-snapshot", 5 * SECOND).unwrap();
    }
    c.run_for(6 * SECOND);
    assert_eq!(c.store(lagging).unwrap().stats().snapshots_installed, 1);
    let sent = c.network.sent_by_type.get("MsgSnapshot").copied();
    assert_eq!(sent, Some(1), "one snapshot caught the follower up");
}

/// Review of R8: holding compaction for a snapshot in flight is bounded. A transfer that
/// streams for minutes must not pin the leader's in-memory log without limit: at twice the
/// limits the log is compacted anyway (the follower will need a newer snapshot).
#[test]
fn a_snapshot_stuck_in_flight_holds_the_log_only_up_to_twice_its_limits() {
    let config = RaftConfig {
        log_gc_count_threshold: 5,
        log_gc_count_limit: 10,
        log_gc_tick: 1,
        ..RaftConfig::default()
    };
    let limit = config.log_gc_count_limit;
    let mut c = Cluster::new(3, 41, config, NetConfig::default());
    let leader = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let lagging = others(&c, leader)[0];
    c.isolate(lagging);
    for i in 0..40 {
        c.put(&key(i), b"while-away", 5 * SECOND).unwrap();
    }
    c.network.heal();
    c.network.add_delay(Box::new(|p: &Packet| {
        (message_type(p) == Some(MessageType::MsgSnapshot)).then_some(50 * SECOND)
    }));
    for i in 40..200 {
        c.put(&key(i), b"during-snapshot", 5 * SECOND).unwrap();
    }
    c.run_for(2 * SECOND);
    let leader = c.leader_of(REGION).expect("a leader");
    let status = c
        .regions(leader)
        .into_iter()
        .find(|r| r.region.id == REGION.get());
    let kept = status
        .map(|s| s.applied_index - s.truncated.0)
        .expect("the leader's region");
    assert!(
        kept <= 2 * limit,
        "the leader keeps {kept} applied entries, more than twice the limit of {limit}"
    );
}

/// Review finding R11. In a term where a leader transfer started, no lease can be earned;
/// the leader used to start an empty ReadIndex round (a heartbeat broadcast) every tick for
/// the rest of the term anyway. Heartbeats stay at the heartbeat rate.
#[test]
fn no_lease_renewal_rounds_in_a_term_without_leases() {
    let mut c = cluster(3, 40);
    let old = c.wait_for_leader(REGION, 10 * SECOND).unwrap();
    let target = others(&c, old)[0];
    c.put(b"x", b"1", 5 * SECOND).unwrap();
    c.network.add_filter(Box::new(move |p: &Packet| {
        p.from == old && p.to == target && message_type(p) == Some(MessageType::MsgTimeoutNow)
    }));
    let transfer = admin(1, admin_request::Cmd::TransferLeaderToPeer(target.get()));
    let token = c.submit(old, transfer);
    assert!(matches!(
        c.wait(token, SECOND),
        Some(Response::Admin(Ok(_)))
    ));
    c.run_for(3 * SECOND); // the transfer aborted; the old leader leads on, without leases
    assert_eq!(c.leader_of(REGION), Some(old));
    let before = c
        .network
        .sent_by_type
        .get("MsgHeartbeat")
        .copied()
        .unwrap_or(0);
    c.run_for(5 * SECOND);
    let heartbeats = c
        .network
        .sent_by_type
        .get("MsgHeartbeat")
        .copied()
        .unwrap_or(0)
        - before;
    let config = RaftConfig::default();
    let per_follower = 5 * SECOND.as_millis() as u64
        / (config.tick_interval.as_millis() as u64 * config.heartbeat_tick as u64);
    assert!(
        heartbeats <= 2 * per_follower + 4,
        "{heartbeats} heartbeats in 5 s; the heartbeat rate allows {}",
        2 * per_follower
    );
}
