//! Test fixtures: a bootstrapped cluster with stores, regions, fresh heartbeats and a view.

use ferrokv_core::types::{RegionId, StoreId};
use ferrokv_proto::metapb::{self, PeerRole};
use ferrokv_proto::pdpb;

use crate::config::Config;
use crate::heartbeat::RegionReport;
use crate::id_alloc::IdSource;
use crate::memory::LeaderMemory;
use crate::meta::peer;
use crate::operator::controller::OperatorController;
use crate::state::{PdCommand, PdOutcome, PdState};
use crate::view::ClusterView;

/// Ids counting up from a start.
pub struct CountingIds(pub u64);

impl IdSource for CountingIds {
    fn next_id(&mut self) -> Option<u64> {
        self.0 += 1;
        Some(self.0)
    }
}

/// A region with `peers` as `(peer id, store id, role)`; the first voter leads by default.
pub fn region(
    id: u64,
    range: (&str, &str),
    epoch: (u64, u64),
    peers: &[(u64, u64, PeerRole)],
) -> metapb::Region {
    metapb::Region {
        id,
        start_key: range.0.as_bytes().to_vec(),
        end_key: range.1.as_bytes().to_vec(),
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: epoch.0,
            version: epoch.1,
        }),
        peers: peers
            .iter()
            .map(|(peer_id, store_id, role)| peer(*peer_id, *store_id, *role))
            .collect(),
        ..Default::default()
    }
}

/// A fresh report of `region` led by its first voter.
pub fn report_of(region: &metapb::Region) -> RegionReport {
    let leader = *region
        .peers
        .iter()
        .find(|peer| crate::meta::is_voter(peer))
        .expect("a voter");
    RegionReport {
        region: region.clone(),
        leader,
        down_peers: vec![],
        pending_peers: vec![],
        approximate_size_bytes: 0,
        approximate_keys: 0,
        term: 1,
    }
}

/// A cluster the planners can look at.
pub struct Fixture {
    pub state: PdState,
    pub memory: LeaderMemory,
    pub operators: OperatorController,
    pub config: Config,
    pub now_ms: u64,
}

impl Fixture {
    /// Stores `1..=stores`, all heard from at time 0, and the bootstrap region (id 2).
    pub fn new(stores: u64) -> Fixture {
        let mut state = PdState::new();
        let first = region(2, ("", ""), (1, 1), &[(3, 1, PeerRole::Voter)]);
        let outcome = state.apply(&PdCommand::Bootstrap {
            cluster_id: 7,
            store: crate::state::tests::store(1),
            region: first,
        });
        assert_eq!(outcome, PdOutcome::Bootstrapped { cluster_id: 7 });
        for id in 2..=stores {
            let store = crate::state::tests::store(id);
            assert!(matches!(
                state.apply(&PdCommand::PutStore { store }),
                PdOutcome::StorePut { .. }
            ));
        }
        let mut fixture = Fixture {
            state,
            memory: LeaderMemory::new(0),
            operators: OperatorController::new(),
            config: Config::default(),
            now_ms: 0,
        };
        fixture.hear_stores(0);
        fixture
    }

    /// Every Up store heartbeats at `now_ms`.
    pub fn hear_stores(&mut self, now_ms: u64) {
        let ids: Vec<u64> = self.state.stores().map(|store| store.id).collect();
        for id in ids {
            self.hear_store(StoreId(id), now_ms);
        }
    }

    /// One store heartbeats at `now_ms`.
    pub fn hear_store(&mut self, id: StoreId, now_ms: u64) {
        let stats = pdpb::StoreStats {
            store_id: id.0,
            ..Default::default()
        };
        self.memory.record_store(stats, now_ms);
    }

    /// Registers `region` (which must be newer) and records a fresh report of it.
    pub fn put_region(&mut self, region: metapb::Region) -> RegionReport {
        let outcome = self.state.apply(&PdCommand::PutRegion {
            region: region.clone(),
        });
        assert!(
            matches!(outcome, PdOutcome::RegionPut { .. }),
            "{outcome:?}"
        );
        for removed in self.displaced(&outcome) {
            self.memory.forget_region(removed);
        }
        let report = report_of(&region);
        let owned = self.operators.get(RegionId(region.id)).is_some();
        self.memory
            .record_region(report.clone(), self.now_ms, owned);
        report
    }

    fn displaced(&self, outcome: &PdOutcome) -> Vec<RegionId> {
        match outcome {
            PdOutcome::RegionPut { displaced, .. } => displaced.clone(),
            _ => vec![],
        }
    }

    /// Records `report` as the region's latest heartbeat.
    pub fn record(&mut self, report: RegionReport) {
        let owned = self.operators.get(RegionId(report.region.id)).is_some();
        self.memory.record_region(report, self.now_ms, owned);
    }

    /// The view planners take.
    pub fn view(&self) -> ClusterView<'_> {
        ClusterView {
            state: &self.state,
            memory: &self.memory,
            operators: &self.operators,
            config: &self.config,
            now_ms: self.now_ms,
        }
    }
}
