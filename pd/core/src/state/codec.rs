//! Encoding of commands (Raft entry payloads) and snapshots (Raft snapshot data).
//!
//! Format: one version byte (`FORMAT_VERSION`) followed by a protobuf message from `pb`.
//! Decoding rejects an empty input, an unknown version, malformed protobuf, a missing
//! required field, an unknown enum value and (for snapshots) a state that breaks an
//! invariant, each with a typed `CodecError`. `decode(encode(x)) == x` for every command and
//! state; encoding is deterministic (maps are ordered), so equal states give equal bytes.

use std::collections::BTreeMap;

use ferrokv_core::types::StoreId;
use ferrokv_proto::metapb;
use prost::Message;

use super::pb::{BootstrapPb, CommandKindPb, CommandPb, SnapshotPb, StoreStatePb};
use super::{PdCommand, PdState};
use crate::limits::ENCODED_BYTES_MAX;
use crate::registry::RegionRegistry;

/// The current format version byte.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// More than `ENCODED_BYTES_MAX` bytes.
    #[error("input of {0} bytes is too large")]
    TooLarge(usize),
    /// A version byte this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The protobuf body did not parse.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// An enum holds a value outside its range.
    #[error("unknown store state {0}")]
    UnknownStoreState(i32),
    /// A snapshot's contents break a state invariant.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
}

fn frame(body: &impl Message) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + body.encoded_len());
    bytes.push(FORMAT_VERSION);
    body.encode(&mut bytes).expect("a Vec grows as needed");
    assert!(bytes.len() <= ENCODED_BYTES_MAX, "encoded state too large");
    bytes
}

fn unframe<M: Message + Default>(bytes: &[u8]) -> Result<M, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if bytes.len() > ENCODED_BYTES_MAX {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    M::decode(body).map_err(|error| CodecError::Malformed(error.to_string()))
}

impl PdCommand {
    /// The command's bytes for a Raft entry.
    pub fn encode(&self) -> Vec<u8> {
        let kind = match self.clone() {
            PdCommand::Bootstrap {
                cluster_id,
                store,
                region,
            } => CommandKindPb::Bootstrap(BootstrapPb {
                cluster_id,
                store: Some(store),
                region: Some(region),
            }),
            PdCommand::PutStore { store } => CommandKindPb::PutStore(store),
            PdCommand::SetStoreState { store_id, state } => {
                CommandKindPb::SetStoreState(StoreStatePb {
                    store_id: store_id.0,
                    state: state as i32,
                })
            }
            PdCommand::SetIdLimit { limit } => CommandKindPb::SetIdLimit(limit),
            PdCommand::SetTsoLimit { limit_ms } => CommandKindPb::SetTsoLimit(limit_ms),
            PdCommand::UpdateGcSafePoint { safe_point } => {
                CommandKindPb::UpdateGcSafePoint(safe_point)
            }
            PdCommand::PutRegion { region } => CommandKindPb::PutRegion(region),
        };
        let bytes = frame(&CommandPb { kind: Some(kind) });
        debug_assert_eq!(PdCommand::decode(&bytes).as_ref(), Ok(self));
        bytes
    }

    /// Parses a Raft entry's bytes.
    pub fn decode(bytes: &[u8]) -> Result<PdCommand, CodecError> {
        let body: CommandPb = unframe(bytes)?;
        let command = match body.kind.ok_or(CodecError::MissingField("kind"))? {
            CommandKindPb::Bootstrap(bootstrap) => PdCommand::Bootstrap {
                cluster_id: bootstrap.cluster_id,
                store: bootstrap.store.ok_or(CodecError::MissingField("store"))?,
                region: bootstrap.region.ok_or(CodecError::MissingField("region"))?,
            },
            CommandKindPb::PutStore(store) => PdCommand::PutStore { store },
            CommandKindPb::SetStoreState(change) => PdCommand::SetStoreState {
                store_id: StoreId(change.store_id),
                state: metapb::StoreState::try_from(change.state)
                    .map_err(|_| CodecError::UnknownStoreState(change.state))?,
            },
            CommandKindPb::SetIdLimit(limit) => PdCommand::SetIdLimit { limit },
            CommandKindPb::SetTsoLimit(limit_ms) => PdCommand::SetTsoLimit { limit_ms },
            CommandKindPb::UpdateGcSafePoint(safe_point) => {
                PdCommand::UpdateGcSafePoint { safe_point }
            }
            CommandKindPb::PutRegion(region) => PdCommand::PutRegion { region },
        };
        Ok(command)
    }
}

impl PdState {
    /// The whole state as snapshot bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let body = SnapshotPb {
            cluster_id: self.cluster_id,
            stores: self.stores.values().cloned().collect(),
            regions: self.regions.iter().cloned().collect(),
            id_limit: self.id_limit,
            tso_limit_ms: self.tso_limit_ms,
            gc_safe_point: self.gc_safe_point,
        };
        frame(&body)
    }

    /// Rebuilds a state from snapshot bytes, checking every invariant.
    pub fn restore(bytes: &[u8]) -> Result<PdState, CodecError> {
        let body: SnapshotPb = unframe(bytes)?;
        let mut stores = BTreeMap::new();
        for store in body.stores {
            if metapb::StoreState::try_from(store.state).is_err() {
                return Err(CodecError::UnknownStoreState(store.state));
            }
            if stores.insert(StoreId(store.id), store).is_some() {
                return Err(CodecError::InvalidSnapshot("duplicate store id".into()));
            }
        }
        let regions = restore_regions(body.regions)?;
        let state = PdState {
            cluster_id: body.cluster_id,
            stores,
            regions,
            id_limit: body.id_limit,
            tso_limit_ms: body.tso_limit_ms,
            gc_safe_point: body.gc_safe_point,
        };
        state
            .check_invariants()
            .map_err(CodecError::InvalidSnapshot)?;
        Ok(state)
    }
}

fn restore_regions(regions: Vec<metapb::Region>) -> Result<RegionRegistry, CodecError> {
    let mut registry = RegionRegistry::new();
    let count = regions.len();
    for region in regions {
        crate::meta::validate_region(&region)
            .map_err(|error| CodecError::InvalidSnapshot(error.to_string()))?;
        let id = crate::meta::region_id(&region);
        if registry.get(id).is_some() || !registry.overlapping(&region).is_empty() {
            return Err(CodecError::InvalidSnapshot(format!(
                "region {id} is duplicated or overlaps another"
            )));
        }
        registry.put(region);
    }
    assert_eq!(registry.len(), count);
    Ok(registry)
}
