//! Shared pieces of FerroKV's fuzz targets.
//!
//! Each target under `fuzz_targets/` feeds untrusted bytes (a disk's, a socket's, a config
//! file's) to one decoder or edge, or lets the fuzzer choose a schedule for a model-checked
//! component, and asserts a property that can fail: a typed error and nothing changed, or
//! the answer a model gives. What several targets need lives here.

use std::sync::Mutex;

use ferrokv_core::env::{SendError, Transport};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::RaftMessage;

/// A transport that keeps what a store sends, for targets that look at it or drop it.
#[derive(Default)]
pub struct Outbox {
    sent: Mutex<Vec<(StoreId, RaftMessage)>>,
}

impl Outbox {
    /// Takes every message sent so far.
    pub fn take(&self) -> Vec<(StoreId, RaftMessage)> {
        std::mem::take(&mut *self.sent.lock().expect("outbox lock"))
    }
}

impl Transport for Outbox {
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError> {
        self.sent.lock().expect("outbox lock").push((to, message));
        Ok(())
    }
}

/// Keys of the Raft log in the `raft` column family, as `ferrokv_core::env::EngineRaftLog`
/// writes them (`'r' region(be u64) tag [index(be u64)]`); spelled out here so targets can
/// put arbitrary bytes exactly where the log store reads.
pub mod raft_log_keys {
    /// Key of entry `index` of `region`.
    pub fn entry(region: u64, index: u64) -> Vec<u8> {
        let mut key = region_tag(region, b'e');
        key.extend_from_slice(&index.to_be_bytes());
        key
    }

    /// Key of `region`'s hard state.
    pub fn hard_state(region: u64) -> Vec<u8> {
        region_tag(region, b'h')
    }

    fn region_tag(region: u64, tag: u8) -> Vec<u8> {
        let mut key = vec![b'r'];
        key.extend_from_slice(&region.to_be_bytes());
        key.push(tag);
        key
    }
}

/// One store node serving `tikvpb.Tikv` in this process, as `ferrokv-server` runs it (the
/// service's validation, the node loop on its own thread, a `Store` with one single-peer
/// region over the whole key space), on SimEngine so memory stays bounded over a long run.
/// Built once per fuzzing process: starting a node per input would cost an election each.
pub mod served {
    use std::sync::OnceLock;
    use std::time::Duration;

    use ferrokv_core::env::SeededRng;
    use ferrokv_core::raft::RaftConfig;
    use ferrokv_core::store::{bootstrap_region, Store};
    use ferrokv_core::types::StoreId;
    use ferrokv_proto::kvrpcpb::{Context, RawGetRequest};
    use ferrokv_proto::metapb;
    use ferrokv_proto::tikvpb::tikv_server::Tikv;
    use ferrokv_server::clock::RuntimeClock;
    use ferrokv_server::node::{self, Node};
    use ferrokv_server::service::KvService;
    use ferrokv_sim::{SimDisk, SimEngine};

    use super::Outbox;

    /// The served store.
    pub struct Served {
        /// Drives the service's futures.
        pub runtime: tokio::runtime::Runtime,
        /// The endpoint, called directly (no socket).
        pub service: KvService,
        /// The store's engine, for comparing what it holds with a model.
        pub engine: SimEngine,
    }

    impl Served {
        /// A request context naming the one region with its current epoch.
        pub fn context(&self) -> Context {
            Context {
                region_id: 1,
                region_epoch: Some(metapb::RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peer: Some(metapb::Peer {
                    id: 1,
                    store_id: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
    }

    /// The process's served store, started (and elected) on first use.
    pub fn store() -> &'static Served {
        static SERVED: OnceLock<Served> = OnceLock::new();
        SERVED.get_or_init(start)
    }

    fn start() -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime starts");
        let engine = SimEngine::open(&SimDisk::new()).expect("fresh engine");
        let region = ferrokv_sim::harness::initial_region(1);
        bootstrap_region(&engine, &region).expect("bootstrap");
        let config = RaftConfig {
            tick_interval: Duration::from_millis(10),
            ..RaftConfig::default()
        }
        .with_safe_lease();
        let store = Store::load(engine.clone(), StoreId(1), config, SeededRng::new(1))
            .expect("store loads");
        let service = runtime.block_on(async {
            let (node, handle) = Node::new(store, Outbox::default(), RuntimeClock::new());
            node::spawn(node);
            KvService::new(handle, RuntimeClock::new())
        });
        let served = Served {
            runtime,
            service,
            engine,
        };
        served.runtime.block_on(wait_for_leader(&served));
        served
    }

    async fn wait_for_leader(served: &Served) {
        // Generous: a busy machine (two fuzzers on two cores) slows the first election.
        for _ in 0..6000 {
            let request = RawGetRequest {
                context: Some(served.context()),
                key: b"k".to_vec(),
                ..Default::default()
            };
            let answer = served.service.raw_get(tonic::Request::new(request)).await;
            if answer.is_ok_and(|response| response.get_ref().region_error.is_none()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the single-peer region elected no leader in 60 s");
    }
}
