//! Snapshots on the wire: a snapshot message is cut into checksummed chunks, and the
//! receiver reassembles them.
//!
//! The first chunk carries the Raft message without its data; later chunks carry data at
//! increasing offsets; the last carries the crc32c of the whole data. The `Assembler` holds
//! at most `SNAPSHOTS_RECEIVING_MAX` transfers of at most `SNAPSHOT_BYTES_MAX` bytes each
//! and `SNAPSHOT_RECEIVE_BYTES_MAX` bytes in all, and evicts a transfer that made no progress for `idle_timeout_ms`, so abandoned transfers
//! (a sender that crashed or gave up) never block later snapshots. Out-of-order, duplicate,
//! oversized or corrupt input is refused with a typed error and never installed.

use std::collections::BTreeMap;

use ferrokv_core::limits::{
    SNAPSHOTS_RECEIVING_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_RECEIVE_BYTES_MAX,
};
use ferrokv_proto::ferrokv_raftpb::{RaftMessage, SnapshotChunk, SnapshotKey};
use protobuf::Message as _;

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk is malformed (no key, header not at offset 0, bad message).
    #[error("invalid snapshot chunk: {0}")]
    Invalid(String),
    /// Too many transfers at once, or the snapshot is too large.
    #[error("snapshot refused: {0}")]
    Exhausted(String),
    /// A chunk for a transfer this store does not know (evicted, or never started).
    #[error("snapshot chunk for an unknown transfer")]
    UnknownTransfer,
    /// A chunk at an unexpected offset: the transfer is abandoned.
    #[error("snapshot chunk out of order")]
    OutOfOrder,
    /// The reassembled data fails its checksum.
    #[error("snapshot checksum mismatch")]
    Corrupt,
}

/// Splits a snapshot message into chunks; the first carries the message without its data.
pub fn snapshot_chunks(mut message: RaftMessage) -> Result<Vec<SnapshotChunk>, String> {
    let mut wire =
        raft::eraftpb::Message::parse_from_bytes(&message.message).map_err(|e| e.to_string())?;
    let data = std::mem::take(&mut wire.mut_snapshot().data);
    let meta = wire.get_snapshot().get_metadata();
    let key = SnapshotKey {
        region_id: message.region_id,
        term: meta.term,
        index: meta.index,
        to_peer_id: message.to_peer.map_or(0, |peer| peer.id),
    };
    message.message = wire.write_to_bytes().map_err(|e| e.to_string())?;
    let checksum = crc32c::crc32c(&data);
    let pieces: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(SNAPSHOT_CHUNK_BYTES).collect()
    };
    let count = pieces.len();
    let mut chunks = Vec::with_capacity(count);
    let mut offset = 0u64;
    for (position, piece) in pieces.into_iter().enumerate() {
        let last = position + 1 == count;
        chunks.push(SnapshotChunk {
            key: Some(key),
            message: (position == 0).then(|| message.clone()),
            offset,
            data: piece.to_vec(),
            last,
            checksum: if last { checksum } else { 0 },
        });
        offset += piece.len() as u64;
    }
    Ok(chunks)
}

type TransferId = (u64, u64, u64, u64);

struct Transfer {
    message: RaftMessage,
    data: Vec<u8>,
    last_progress_ms: u64,
}

/// Reassembles snapshots from chunks.
pub struct Assembler {
    transfers: BTreeMap<TransferId, Transfer>,
    idle_timeout_ms: u64,
    /// Data bytes held over all transfers.
    held_bytes: u64,
    held_bytes_max: u64,
}

impl Assembler {
    /// An assembler that evicts transfers idle for `idle_timeout_ms`.
    pub fn new(idle_timeout_ms: u64) -> Assembler {
        Assembler::with_budget(idle_timeout_ms, SNAPSHOT_RECEIVE_BYTES_MAX)
    }

    /// An assembler holding at most `held_bytes_max` data bytes over all transfers.
    pub fn with_budget(idle_timeout_ms: u64, held_bytes_max: u64) -> Assembler {
        Assembler {
            transfers: BTreeMap::new(),
            idle_timeout_ms,
            held_bytes: 0,
            held_bytes_max,
        }
    }

    /// Data bytes held over all transfers in progress.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    fn remove(&mut self, id: &TransferId) -> Option<Transfer> {
        let transfer = self.transfers.remove(id)?;
        self.held_bytes -= transfer.data.len() as u64;
        Some(transfer)
    }

    /// Transfers in progress.
    pub fn in_progress(&self) -> usize {
        self.transfers.len()
    }

    /// Takes one chunk at time `now_ms`; returns the whole snapshot message after the last.
    pub fn accept(
        &mut self,
        chunk: SnapshotChunk,
        now_ms: u64,
    ) -> Result<Option<RaftMessage>, ChunkError> {
        self.evict_idle(now_ms);
        let key = chunk
            .key
            .ok_or_else(|| ChunkError::Invalid("no transfer key".into()))?;
        let id = (key.region_id, key.term, key.index, key.to_peer_id);
        if let Some(message) = chunk.message {
            self.start(id, message, chunk.offset, now_ms)?;
        }
        let transfer = self
            .transfers
            .get_mut(&id)
            .ok_or(ChunkError::UnknownTransfer)?;
        let size = chunk.data.len() as u64;
        let refused = if chunk.offset != transfer.data.len() as u64 {
            Some(ChunkError::OutOfOrder)
        } else if transfer.data.len() as u64 + size > SNAPSHOT_BYTES_MAX {
            Some(ChunkError::Exhausted("snapshot too large".into()))
        } else if self.held_bytes + size > self.held_bytes_max {
            Some(ChunkError::Exhausted(
                "too many snapshot bytes being received".into(),
            ))
        } else {
            None
        };
        if let Some(error) = refused {
            self.remove(&id);
            return Err(error);
        }
        transfer.data.extend_from_slice(&chunk.data);
        transfer.last_progress_ms = now_ms;
        self.held_bytes += size;
        if !chunk.last {
            return Ok(None);
        }
        let transfer = self.remove(&id).expect("present");
        finish(transfer, chunk.checksum).map(Some)
    }

    fn start(
        &mut self,
        id: TransferId,
        message: RaftMessage,
        offset: u64,
        now_ms: u64,
    ) -> Result<(), ChunkError> {
        if offset != 0 {
            return Err(ChunkError::Invalid("header chunk must start at 0".into()));
        }
        if !self.transfers.contains_key(&id) && self.transfers.len() >= SNAPSHOTS_RECEIVING_MAX {
            return Err(ChunkError::Exhausted("too many snapshots in flight".into()));
        }
        let transfer = Transfer {
            message,
            data: Vec::new(),
            last_progress_ms: now_ms,
        };
        if let Some(restarted) = self.transfers.insert(id, transfer) {
            self.held_bytes -= restarted.data.len() as u64;
        }
        Ok(())
    }

    fn evict_idle(&mut self, now_ms: u64) {
        let timeout = self.idle_timeout_ms;
        let idle: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| now_ms.saturating_sub(t.last_progress_ms) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            tracing::info!(region_id = id.0, "abandoned snapshot transfer evicted");
            self.remove(&id);
        }
        debug_assert_eq!(
            self.held_bytes,
            self.transfers
                .values()
                .map(|t| t.data.len() as u64)
                .sum::<u64>()
        );
    }
}

fn finish(transfer: Transfer, checksum: u32) -> Result<RaftMessage, ChunkError> {
    if crc32c::crc32c(&transfer.data) != checksum {
        return Err(ChunkError::Corrupt);
    }
    let mut message = transfer.message;
    let mut wire = raft::eraftpb::Message::parse_from_bytes(&message.message)
        .map_err(|e| ChunkError::Invalid(format!("snapshot message: {e}")))?;
    wire.mut_snapshot().data = transfer.data.into();
    message.message = wire
        .write_to_bytes()
        .map_err(|e| ChunkError::Invalid(e.to_string()))?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Message as WireMessage, MessageType, Snapshot};

    fn snapshot_message(data_len: usize) -> RaftMessage {
        let mut wire = WireMessage::default();
        wire.set_msg_type(MessageType::MsgSnapshot);
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 7;
        snapshot.mut_metadata().term = 2;
        snapshot.data = (0..data_len).map(|i| i as u8).collect::<Vec<_>>().into();
        wire.set_snapshot(snapshot);
        RaftMessage {
            region_id: 1,
            message: wire.write_to_bytes().unwrap(),
            is_snapshot: true,
            ..Default::default()
        }
    }

    #[test]
    fn chunks_reassemble_to_the_same_message() {
        let message = snapshot_message(SNAPSHOT_CHUNK_BYTES * 2 + 5);
        let chunks = snapshot_chunks(message.clone()).unwrap();
        assert_eq!(chunks.len(), 3);
        let mut assembler = Assembler::new(1000);
        assert_eq!(assembler.accept(chunks[0].clone(), 0), Ok(None));
        assert_eq!(assembler.accept(chunks[1].clone(), 1), Ok(None));
        let whole = assembler.accept(chunks[2].clone(), 2).unwrap().unwrap();
        assert_eq!(whole, message);
        assert_eq!(assembler.in_progress(), 0);
    }

    #[test]
    fn corruption_order_and_abandonment_are_refused() {
        let chunks = snapshot_chunks(snapshot_message(SNAPSHOT_CHUNK_BYTES + 1)).unwrap();
        let mut assembler = Assembler::new(1000);
        let mut flipped = chunks[1].clone();
        flipped.data[0] ^= 1;
        assembler.accept(chunks[0].clone(), 0).unwrap();
        assert_eq!(assembler.accept(flipped, 0), Err(ChunkError::Corrupt));
        assert_eq!(
            assembler.accept(chunks[1].clone(), 0),
            Err(ChunkError::UnknownTransfer)
        );
        // Fill every slot with transfers that then go silent.
        for region in 0..SNAPSHOTS_RECEIVING_MAX as u64 {
            let mut header = chunks[0].clone();
            header.key.as_mut().unwrap().region_id = 100 + region;
            assembler.accept(header, 0).unwrap();
        }
        let busy = assembler.accept(chunks[0].clone(), 10);
        assert!(matches!(busy, Err(ChunkError::Exhausted(_))));
        // After the idle timeout the abandoned transfers are gone and a new one starts.
        assert_eq!(assembler.accept(chunks[0].clone(), 2000), Ok(None));
        assert_eq!(assembler.in_progress(), 1);
        let skipped = chunks[1].clone();
        let mut late = skipped.clone();
        late.offset += 1;
        assert_eq!(assembler.accept(late, 2001), Err(ChunkError::OutOfOrder));
    }

    /// Review finding R12: transfers together hold at most the assembler's byte budget
    /// (each could hold `SNAPSHOT_BYTES_MAX`, four at once 2 GiB); a chunk past it abandons
    /// its transfer, and bytes are released when transfers finish, fail or go idle.
    #[test]
    fn transfers_together_stay_within_the_byte_budget() {
        let budget = 3 * SNAPSHOT_CHUNK_BYTES as u64;
        let mut assembler = Assembler::with_budget(1000, budget);
        let chunks = snapshot_chunks(snapshot_message(SNAPSHOT_CHUNK_BYTES * 2 + 5)).unwrap();
        let with_region = |chunk: &SnapshotChunk, region: u64| {
            let mut chunk = chunk.clone();
            chunk.key.as_mut().unwrap().region_id = region;
            chunk
        };
        for region in [1, 2] {
            assembler
                .accept(with_region(&chunks[0], region), 0)
                .unwrap();
        }
        assert_eq!(assembler.held_bytes(), 2 * SNAPSHOT_CHUNK_BYTES as u64);
        assembler.accept(with_region(&chunks[1], 1), 0).unwrap();
        let over = assembler.accept(with_region(&chunks[1], 2), 0);
        assert!(matches!(over, Err(ChunkError::Exhausted(_))), "{over:?}");
        assert_eq!(assembler.held_bytes(), 2 * SNAPSHOT_CHUNK_BYTES as u64);
        assert!(assembler.held_bytes() <= budget);
        let whole = assembler.accept(with_region(&chunks[2], 1), 0).unwrap();
        assert!(whole.is_some());
        assert_eq!(assembler.held_bytes(), 0, "released when finished");
        assembler.accept(with_region(&chunks[0], 3), 0).unwrap();
        assembler.accept(chunks[0].clone(), 5000).unwrap();
        assert_eq!(
            assembler.held_bytes(),
            SNAPSHOT_CHUNK_BYTES as u64,
            "idle evicted"
        );
    }
}
