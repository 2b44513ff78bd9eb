//! Tests of `PdState::apply` and the codecs.

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::metapb::{self, PeerRole, StoreState};

use super::codec::CodecError;
use super::*;
use crate::meta::peer;
use crate::registry::check::StaleReason;

pub(crate) fn store(id: u64) -> metapb::Store {
    metapb::Store {
        id,
        address: format!("127.0.0.1:{}", 20_160 + id),
        ..Default::default()
    }
}

pub(crate) fn first_region() -> metapb::Region {
    metapb::Region {
        id: 2,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![peer(3, 1, PeerRole::Voter)],
        ..Default::default()
    }
}

pub(crate) fn bootstrapped() -> PdState {
    let mut state = PdState::new();
    let outcome = state.apply(&PdCommand::Bootstrap {
        cluster_id: 7,
        store: store(1),
        region: first_region(),
    });
    assert_eq!(outcome, PdOutcome::Bootstrapped { cluster_id: 7 });
    state
}

#[test]
fn bootstrap_once_and_ids_stay_below_the_limit() {
    let mut state = bootstrapped();
    assert!(state.is_bootstrapped());
    assert_eq!(state.cluster_id(), 7);
    assert_eq!(state.id_limit(), 4, "ids 1..=3 are in use");
    assert_eq!(state.store(StoreId(1)).unwrap().state(), StoreState::Up);
    assert!(state.regions().tiles_key_space());
    let again = state.apply(&PdCommand::Bootstrap {
        cluster_id: 8,
        store: store(1),
        region: first_region(),
    });
    assert_eq!(
        again,
        PdOutcome::Refused(ApplyError::AlreadyBootstrapped { cluster_id: 7 })
    );
    assert_eq!(state.check_invariants(), Ok(()));
}

#[test]
fn bootstrap_rejects_a_partial_first_region() {
    let mut state = PdState::new();
    let mut region = first_region();
    region.end_key = b"m".to_vec();
    let outcome = state.apply(&PdCommand::Bootstrap {
        cluster_id: 7,
        store: store(1),
        region,
    });
    assert!(matches!(
        outcome,
        PdOutcome::Refused(ApplyError::InvalidBootstrap(_))
    ));
    assert!(!state.is_bootstrapped());
    assert_eq!(state.id_limit(), 0);
}

#[test]
fn store_lifecycle_follows_pd_rules() {
    let mut state = bootstrapped();
    let put = state.apply(&PdCommand::PutStore { store: store(5) });
    assert_eq!(
        put,
        PdOutcome::StorePut {
            store_id: StoreId(5),
            created: true
        }
    );
    assert_eq!(state.id_limit(), 6);
    let set = |state: &mut PdState, to| {
        state.apply(&PdCommand::SetStoreState {
            store_id: StoreId(5),
            state: to,
        })
    };
    assert!(matches!(
        set(&mut state, StoreState::Tombstone),
        PdOutcome::Refused(ApplyError::InvalidStoreTransition { .. })
    ));
    assert!(matches!(
        set(&mut state, StoreState::Offline),
        PdOutcome::StoreStateSet { .. }
    ));
    assert!(matches!(
        set(&mut state, StoreState::Tombstone),
        PdOutcome::StoreStateSet { .. }
    ));
    assert_eq!(
        set(&mut state, StoreState::Up),
        PdOutcome::Refused(ApplyError::InvalidStoreTransition {
            store_id: StoreId(5),
            from: StoreState::Tombstone,
            to: StoreState::Up
        })
    );
    assert_eq!(
        state.apply(&PdCommand::PutStore { store: store(5) }),
        PdOutcome::Refused(ApplyError::StoreTombstone(StoreId(5)))
    );
}

#[test]
fn a_store_with_peers_cannot_become_a_tombstone() {
    let mut state = bootstrapped();
    let offline = state.apply(&PdCommand::SetStoreState {
        store_id: StoreId(1),
        state: StoreState::Offline,
    });
    assert!(matches!(offline, PdOutcome::StoreStateSet { .. }));
    let tombstone = state.apply(&PdCommand::SetStoreState {
        store_id: StoreId(1),
        state: StoreState::Tombstone,
    });
    assert_eq!(
        tombstone,
        PdOutcome::Refused(ApplyError::StoreNotEmpty {
            store_id: StoreId(1),
            peer_count: 1
        })
    );
}

#[test]
fn put_store_keeps_state_and_refuses_duplicate_addresses() {
    let mut state = bootstrapped();
    let mut clash = store(9);
    clash.address = store(1).address;
    assert_eq!(
        state.apply(&PdCommand::PutStore { store: clash }),
        PdOutcome::Refused(ApplyError::DuplicateAddress(StoreId(1)))
    );
    state.apply(&PdCommand::SetStoreState {
        store_id: StoreId(1),
        state: StoreState::Offline,
    });
    let mut moved = store(1);
    moved.address = "10.0.0.1:20160".into();
    let outcome = state.apply(&PdCommand::PutStore { store: moved });
    assert_eq!(
        outcome,
        PdOutcome::StorePut {
            store_id: StoreId(1),
            created: false
        }
    );
    let stored = state.store(StoreId(1)).unwrap();
    assert_eq!(stored.address, "10.0.0.1:20160");
    assert_eq!(stored.state(), StoreState::Offline, "state is kept");
}

#[test]
fn limits_and_safe_point_only_grow() {
    let mut state = bootstrapped();
    assert_eq!(
        state.apply(&PdCommand::SetIdLimit { limit: 1_000 }),
        PdOutcome::IdLimitSet { limit: 1_000 }
    );
    assert_eq!(
        state.apply(&PdCommand::SetIdLimit { limit: 1_000 }),
        PdOutcome::Refused(ApplyError::IdLimitNotAbove {
            current: 1_000,
            requested: 1_000
        })
    );
    state.apply(&PdCommand::SetTsoLimit { limit_ms: 50 });
    assert!(matches!(
        state.apply(&PdCommand::SetTsoLimit { limit_ms: 40 }),
        PdOutcome::Refused(ApplyError::TsoLimitNotAbove { current: 50, .. })
    ));
    assert_eq!(state.tso_limit_ms(), 50);
    let raise = state.apply(&PdCommand::UpdateGcSafePoint { safe_point: 90 });
    assert_eq!(
        raise,
        PdOutcome::GcSafePointSet {
            previous: 0,
            safe_point: 90
        }
    );
    assert_eq!(
        state.apply(&PdCommand::UpdateGcSafePoint { safe_point: 80 }),
        PdOutcome::Refused(ApplyError::GcSafePointBelow {
            current: 90,
            requested: 80
        })
    );
    assert_eq!(
        state.apply(&PdCommand::UpdateGcSafePoint { safe_point: 90 }),
        PdOutcome::Unchanged
    );
    assert_eq!(state.gc_safe_point(), 90);
}

fn split_children() -> (metapb::Region, metapb::Region) {
    let mut left = first_region();
    left.end_key = b"m".to_vec();
    left.region_epoch.as_mut().unwrap().version = 2;
    let mut right = left.clone();
    right.id = 10;
    right.start_key = b"m".to_vec();
    right.end_key = vec![];
    right.peers = vec![peer(11, 1, PeerRole::Voter)];
    (left, right)
}

#[test]
fn region_puts_follow_epochs_and_raise_the_id_limit() {
    let mut state = bootstrapped();
    let (left, right) = split_children();
    let outcome = state.apply(&PdCommand::PutRegion {
        region: right.clone(),
    });
    assert!(matches!(
        outcome,
        PdOutcome::RegionPut { region_id: RegionId(10), ref displaced, .. }
            if displaced == &vec![RegionId(2)]
    ));
    assert_eq!(state.id_limit(), 12);
    assert_eq!(
        state.apply(&PdCommand::PutRegion {
            region: first_region()
        }),
        PdOutcome::Refused(ApplyError::RegionStale(StaleReason::OverlapNewer {
            overlapping: RegionId(10),
            current: 2,
            reported: 1
        }))
    );
    state.apply(&PdCommand::PutRegion { region: left });
    assert!(state.regions().tiles_key_space());
    assert_eq!(
        state.apply(&PdCommand::PutRegion { region: right }),
        PdOutcome::Unchanged
    );
    assert_eq!(state.check_invariants(), Ok(()));
}

fn sample_commands() -> Vec<PdCommand> {
    let (left, _) = split_children();
    vec![
        PdCommand::Bootstrap {
            cluster_id: 7,
            store: store(1),
            region: first_region(),
        },
        PdCommand::PutStore { store: store(4) },
        PdCommand::SetStoreState {
            store_id: StoreId(4),
            state: StoreState::Offline,
        },
        PdCommand::SetIdLimit { limit: 5_000 },
        PdCommand::SetTsoLimit { limit_ms: 1_234 },
        PdCommand::UpdateGcSafePoint { safe_point: 77 },
        PdCommand::PutRegion { region: left },
    ]
}

#[test]
fn commands_round_trip_through_bytes() {
    for command in sample_commands() {
        let bytes = command.encode();
        assert_eq!(bytes[0], codec::FORMAT_VERSION);
        assert_eq!(PdCommand::decode(&bytes), Ok(command));
    }
}

#[test]
fn garbage_is_rejected_with_typed_errors() {
    assert_eq!(PdCommand::decode(&[]), Err(CodecError::Empty));
    assert_eq!(
        PdCommand::decode(&[9, 1, 2]),
        Err(CodecError::UnknownVersion(9))
    );
    assert!(matches!(
        PdCommand::decode(&[codec::FORMAT_VERSION, 0xff, 0xff]),
        Err(CodecError::Malformed(_))
    ));
    assert_eq!(
        PdCommand::decode(&[codec::FORMAT_VERSION]),
        Err(CodecError::MissingField("kind"))
    );
    // SetStoreState{store_id: 1, state: 9}: field 3, length 4, then two varint fields.
    let bad_state = [codec::FORMAT_VERSION, 0x1a, 4, 0x08, 1, 0x10, 9];
    assert_eq!(
        PdCommand::decode(&bad_state),
        Err(CodecError::UnknownStoreState(9))
    );
}

#[test]
fn snapshots_round_trip_exactly_and_reject_broken_states() {
    let mut state = PdState::new();
    for command in sample_commands() {
        assert!(!matches!(state.apply(&command), PdOutcome::Refused(_)));
    }
    let bytes = state.snapshot();
    let restored = PdState::restore(&bytes).expect("restores");
    assert_eq!(restored, state);
    assert_eq!(restored.snapshot(), bytes, "encoding is deterministic");
    assert_eq!(PdState::restore(&[]), Err(CodecError::Empty));
    let mut broken = state.clone();
    broken.id_limit = 1;
    assert!(matches!(
        PdState::restore(&broken.snapshot()),
        Err(CodecError::InvalidSnapshot(_))
    ));
}
