//! Snapshot reassembly from the wire: chunks in any order, duplicated, dropped, truncated or
//! bit-flipped, plus chunks decoded from arbitrary bytes. The assembler never panics, never
//! holds more bytes than its budget, and every snapshot it hands out is exactly the one that
//! was sent: damage is refused by the checksum or the offsets, never installed.
#![no_main]

use arbitrary::Arbitrary;
use ferrokv_proto::ferrokv_raftpb::{RaftMessage, SnapshotChunk};
use ferrokv_server::snapshot_chunks::{snapshot_chunks, Assembler};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{Message as WireMessage, MessageType, Snapshot};

const REGION: u64 = 7;
const BUDGET: u64 = 4096;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Delivers piece `index` (wrapping) of the sent snapshot.
    Deliver { index: u8 },
    /// Delivers piece `index` with its data cut to `keep` bytes.
    Truncated { index: u8, keep: u16 },
    /// Delivers piece `index` with one bit of its data or checksum flipped.
    Flipped { index: u8, bit: u16 },
    /// Delivers a chunk decoded from arbitrary bytes (for another region).
    Foreign { bytes: Vec<u8> },
    /// Time passes.
    Wait { ms: u16 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    /// Where the data is cut into pieces (each cut wraps around the data length).
    cuts: Vec<u16>,
    ops: Vec<Op>,
}

fn sent_message(data: &[u8]) -> RaftMessage {
    let mut wire = WireMessage::default();
    wire.set_msg_type(MessageType::MsgSnapshot);
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 9;
    snapshot.mut_metadata().term = 3;
    snapshot.data = data.to_vec().into();
    wire.set_snapshot(snapshot);
    RaftMessage {
        region_id: REGION,
        message: wire.write_to_bytes().expect("encodes"),
        ..Default::default()
    }
}

/// The sent snapshot as chunks cut at `cuts` (the assembler must not care where).
fn pieces(message: &RaftMessage, cuts: &[u16]) -> Vec<SnapshotChunk> {
    let whole = snapshot_chunks(message.clone()).expect("a valid snapshot message");
    let data: Vec<u8> = whole.iter().flat_map(|chunk| chunk.data.clone()).collect();
    let last = whole.last().expect("at least one chunk");
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|&cut| usize::from(cut) % (data.len() + 1))
        .collect();
    bounds.extend([0, data.len()]);
    bounds.sort_unstable();
    bounds.dedup();
    let count = bounds.len().saturating_sub(1).max(1);
    (0..count)
        .map(|i| {
            let (start, end) = (bounds[i], *bounds.get(i + 1).unwrap_or(&bounds[i]));
            SnapshotChunk {
                key: last.key,
                message: (i == 0).then(|| whole[0].message.clone()).flatten(),
                offset: start as u64,
                data: data[start..end].to_vec(),
                last: i + 1 == count,
                checksum: if i + 1 == count { last.checksum } else { 0 },
            }
        })
        .collect()
}

fn damaged(mut chunk: SnapshotChunk, op: &Op) -> (SnapshotChunk, bool) {
    match *op {
        Op::Truncated { keep, .. } if usize::from(keep) < chunk.data.len() => {
            chunk.data.truncate(usize::from(keep));
            // An emptied middle piece adds nothing: its whole copy may still follow.
            let harmful = keep > 0 || chunk.last;
            (chunk, harmful)
        }
        Op::Flipped { bit, .. } if !chunk.data.is_empty() => {
            let bit = usize::from(bit) % (chunk.data.len() * 8);
            chunk.data[bit / 8] ^= 1 << (bit % 8);
            (chunk, true)
        }
        Op::Flipped { bit, .. } if chunk.last => {
            chunk.checksum ^= 1 << (bit % 32);
            (chunk, true)
        }
        _ => (chunk, false),
    }
}

fuzz_target!(|input: Input| {
    let sent = sent_message(&input.data);
    let pieces = pieces(&sent, &input.cuts);
    let mut assembler = Assembler::with_budget(1_000, BUDGET);
    let mut now = 0u64;
    let mut damage_in_flight = false;
    for op in &input.ops {
        let chunk = match op {
            Op::Wait { ms } => {
                now += u64::from(*ms);
                continue;
            }
            Op::Foreign { bytes } => match SnapshotChunk::decode(bytes.as_slice()) {
                Ok(mut chunk) if chunk.key.is_some_and(|key| key.region_id != REGION) => {
                    chunk.data.truncate(BUDGET as usize * 2);
                    let _ = assembler.accept(chunk, now);
                    assert!(assembler.held_bytes() <= BUDGET);
                    continue;
                }
                _ => continue,
            },
            Op::Deliver { index } | Op::Truncated { index, .. } | Op::Flipped { index, .. } => {
                pieces[usize::from(*index) % pieces.len()].clone()
            }
        };
        let (chunk, is_damaged) = damaged(chunk, op);
        if chunk.message.is_some() {
            damage_in_flight = false;
        }
        damage_in_flight |= is_damaged;
        let result = assembler.accept(chunk, now);
        assert!(assembler.held_bytes() <= BUDGET, "over the byte budget");
        if let Ok(Some(message)) = result {
            assert_eq!(
                message, sent,
                "a reassembled snapshot differs from the sent one"
            );
            assert!(!damage_in_flight, "a damaged transfer was handed out");
        }
    }
});
