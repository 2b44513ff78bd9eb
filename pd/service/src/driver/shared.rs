//! What the driver publishes for the service's handlers without a round trip: the leader
//! member, the cluster id, counters, and the heartbeat hub (each store's open
//! `RegionHeartbeat` stream, where instructions are pushed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ferrokv_proto::pdpb;
use tokio::sync::mpsc;

/// Instructions queued on one store's stream before new ones are dropped (PD re-sends on
/// the next heartbeat).
pub const STREAM_QUEUE_MAX: usize = 1_024;

/// The sending half of one store's heartbeat stream.
pub type StreamSender = mpsc::Sender<Result<pdpb::RegionHeartbeatResponse, tonic::Status>>;

/// Counters the driver keeps (for tests, the simulator's note and `ctl`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverCounters {
    /// Times this member took over as leader (state read, `PdLeader::start`).
    pub leader_starts: u64,
    /// Times it stopped leading.
    pub step_downs: u64,
    /// State writes that committed.
    pub proposals_applied: u64,
    /// State writes that failed (their commands were reported dropped).
    pub proposals_failed: u64,
    /// Timestamp requests served.
    pub tso_served: u64,
    /// Timestamp requests refused because the lease could not be proven.
    pub tso_lease_refusals: u64,
}

/// Shared between the driver and the service.
pub struct Shared {
    leader: AtomicU64,
    cluster_id: AtomicU64,
    streams: Mutex<BTreeMap<u64, StreamSender>>,
    counters: Mutex<DriverCounters>,
}

impl Shared {
    /// Nothing known yet; `cluster_id` is the configured (derived) id.
    pub fn new(cluster_id: u64) -> Shared {
        assert_ne!(cluster_id, 0, "never serve cluster id 0");
        Shared {
            leader: AtomicU64::new(0),
            cluster_id: AtomicU64::new(cluster_id),
            streams: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(DriverCounters::default()),
        }
    }

    /// The leader member id, if known.
    pub fn leader(&self) -> Option<u64> {
        Some(self.leader.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    pub(crate) fn set_leader(&self, leader: Option<u64>) {
        self.leader.store(leader.unwrap_or(0), Ordering::Release);
    }

    /// The cluster id every response carries and every request must name.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Acquire)
    }

    pub(crate) fn set_cluster_id(&self, cluster_id: u64) {
        assert_ne!(cluster_id, 0);
        self.cluster_id.store(cluster_id, Ordering::Release);
    }

    /// A copy of the counters.
    pub fn counters(&self) -> DriverCounters {
        *self.counters.lock().expect("counters lock")
    }

    pub(crate) fn count(&self, update: impl FnOnce(&mut DriverCounters)) {
        update(&mut self.counters.lock().expect("counters lock"));
    }

    /// Binds `store_id`'s outbound stream (replacing an older one).
    pub fn bind_stream(&self, store_id: u64, sender: StreamSender) {
        let mut streams = self.streams.lock().expect("streams lock");
        streams.insert(store_id, sender);
    }

    /// Pushes an instruction to a store; dropped if its stream is missing or full.
    pub(crate) fn push(&self, store_id: u64, response: pdpb::RegionHeartbeatResponse) -> bool {
        let streams = self.streams.lock().expect("streams lock");
        streams
            .get(&store_id)
            .is_some_and(|sender| sender.try_send(Ok(response)).is_ok())
    }

    /// Ends every store stream with `Unavailable` (leadership moved): stores reconnect to
    /// the new leader.
    pub(crate) fn end_streams(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().expect("streams lock"));
        for sender in streams.into_values() {
            let _ = sender.try_send(Err(tonic::Status::unavailable("PD leader changed")));
        }
    }
}
