//! The L1 packet simulator: delayed, lossy, duplicating, reordering delivery between stores,
//! with directional link cuts for partitions. All randomness comes from the seeded rng.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use ferrokv_core::env::{Instant, Rng, SeededRng, SendError, Transport};
use ferrokv_core::types::StoreId;
use ferrokv_proto::ferrokv_raftpb::RaftMessage;

/// Network fault settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest one-way delay (uniform between; differing delays reorder packets).
    pub delay_max: Duration,
    /// Packets lost, per thousand.
    pub loss_per_mille: u64,
    /// Packets delivered twice, per thousand.
    pub duplicate_per_mille: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(5),
            loss_per_mille: 0,
            duplicate_per_mille: 0,
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Sender.
    pub from: StoreId,
    /// Receiver.
    pub to: StoreId,
    /// Payload.
    pub message: RaftMessage,
}

/// A filter deciding per packet whether to drop it (true = drop).
pub type PacketFilter = Box<dyn Fn(&Packet) -> bool + Send>;

/// A rule adding delay to matching packets (a slow link, a message held back).
pub type PacketDelay = Box<dyn Fn(&Packet) -> Option<Duration> + Send>;

/// The raft-rs message type of a packet (None for a tombstone or an undecodable message).
pub fn message_type(packet: &Packet) -> Option<raft::eraftpb::MessageType> {
    use protobuf::Message as _;
    if packet.message.is_tombstone {
        return None;
    }
    raft::eraftpb::Message::parse_from_bytes(&packet.message.message)
        .ok()
        .map(|m| m.get_msg_type())
}

/// Packets in flight and the faults applied to them.
pub struct Network {
    pub(crate) config: NetConfig,
    in_flight: BTreeMap<(Instant, u64), Packet>,
    seq: u64,
    cut: BTreeSet<(StoreId, StoreId)>,
    filters: Vec<PacketFilter>,
    delays: Vec<PacketDelay>,
    /// Packets sent (before loss), by raft message type name.
    pub sent_by_type: std::collections::BTreeMap<String, u64>,
    /// Packets delivered so far.
    pub delivered: u64,
    /// Packets dropped (loss, cut links, filters).
    pub dropped: u64,
    /// How snapshot packets ended (`(sender, region, to_peer, delivered)`), for the senders'
    /// transports to report, as the real transport does.
    snapshot_reports: Vec<(StoreId, u64, u64, bool)>,
}

impl Network {
    /// A network with `config`.
    pub fn new(config: NetConfig) -> Network {
        Network {
            config,
            in_flight: BTreeMap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            filters: Vec::new(),
            delays: Vec::new(),
            sent_by_type: std::collections::BTreeMap::new(),
            delivered: 0,
            dropped: 0,
            snapshot_reports: Vec::new(),
        }
    }

    /// The fault settings, to change mid-run.
    pub fn config_mut(&mut self) -> &mut NetConfig {
        &mut self.config
    }

    /// Cuts the link `from -> to` (one direction).
    pub fn cut(&mut self, from: StoreId, to: StoreId) {
        self.cut.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: StoreId, b: StoreId) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Restores every link and removes every filter and delay rule.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.filters.clear();
        self.delays.clear();
    }

    /// Adds a delay rule.
    pub fn add_delay(&mut self, delay: PacketDelay) {
        self.delays.push(delay);
    }

    /// Removes every delay rule (packets already in flight keep their delay).
    pub fn clear_delays(&mut self) {
        self.delays.clear();
    }

    /// Adds a drop filter.
    pub fn add_filter(&mut self, filter: PacketFilter) {
        self.filters.push(filter);
    }

    /// True if `from -> to` is cut.
    pub fn is_cut(&self, from: StoreId, to: StoreId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Sends `packet` at `now`, applying loss, duplication and delay.
    pub fn send(&mut self, packet: Packet, now: Instant, rng: &mut SeededRng) {
        let kind = message_type(&packet).map_or("Other".to_string(), |t| format!("{t:?}"));
        *self.sent_by_type.entry(kind).or_default() += 1;
        let extra: Duration = self.delays.iter().filter_map(|d| d(&packet)).sum();
        let dropped = self.is_cut(packet.from, packet.to)
            || self.filters.iter().any(|filter| filter(&packet))
            || rng.ratio(self.config.loss_per_mille, 1000);
        if dropped {
            self.dropped += 1;
            self.report_snapshot(&packet, false);
            return;
        }
        let copies = if rng.ratio(self.config.duplicate_per_mille, 1000) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let low = self.config.delay_min.as_micros() as u64;
            let high = self.config.delay_max.as_micros() as u64 + 1;
            let delay = Duration::from_micros(rng.range(low, high.max(low + 1))) + extra;
            self.seq += 1;
            self.in_flight
                .insert((now + delay, self.seq), packet.clone());
        }
    }

    fn report_snapshot(&mut self, packet: &Packet, delivered: bool) {
        if packet.message.is_snapshot {
            let to_peer = packet.message.to_peer.map_or(0, |peer| peer.id);
            let report = (packet.from, packet.message.region_id, to_peer, delivered);
            self.snapshot_reports.push(report);
        }
    }

    /// How snapshot packets ended since the last call.
    pub fn take_snapshot_reports(&mut self) -> Vec<(StoreId, u64, u64, bool)> {
        std::mem::take(&mut self.snapshot_reports)
    }

    /// When the next packet arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every packet due by `now`, in arrival order. A link cut while a
    /// packet was in flight drops it too.
    pub fn due(&mut self, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let packet = entry.remove();
            if self.is_cut(packet.from, packet.to) {
                self.dropped += 1;
                self.report_snapshot(&packet, false);
                continue;
            }
            self.delivered += 1;
            self.report_snapshot(&packet, true);
            out.push(packet);
        }
        out
    }
}

/// A `Transport` that collects a store's outgoing messages for the harness to route.
#[derive(Default)]
pub struct Outbox {
    messages: Mutex<Vec<(StoreId, RaftMessage)>>,
    /// Snapshot sends still to refuse with `SendError::Full` (a full snapshot queue).
    refuse_snapshots: Mutex<u64>,
}

impl Outbox {
    /// Takes everything sent since the last call.
    pub fn take(&self) -> Vec<(StoreId, RaftMessage)> {
        std::mem::take(&mut *self.messages.lock().expect("outbox lock"))
    }

    /// Refuses the next `count` snapshot sends, as a full transport queue does.
    pub fn refuse_snapshot_sends(&self, count: u64) {
        *self.refuse_snapshots.lock().expect("outbox lock") = count;
    }
}

impl Transport for Outbox {
    fn send(&self, to: StoreId, message: RaftMessage) -> Result<(), SendError> {
        if message.is_snapshot {
            let mut refuse = self.refuse_snapshots.lock().expect("outbox lock");
            if *refuse > 0 {
                *refuse -= 1;
                return Err(SendError::Full(to));
            }
        }
        self.messages
            .lock()
            .expect("outbox lock")
            .push((to, message));
        Ok(())
    }
}
