//! The protobuf shapes of commands and snapshots (FerroKV-internal, prost-derived).
//!
//! Field numbers are a stored format: never renumber, only add. `codec` wraps each message
//! behind a one-byte format version.

use ferrokv_proto::metapb;

/// One `PdCommand`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommandPb {
    #[prost(oneof = "CommandKindPb", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub kind: Option<CommandKindPb>,
}

/// The command variants.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum CommandKindPb {
    #[prost(message, tag = "1")]
    Bootstrap(BootstrapPb),
    #[prost(message, tag = "2")]
    PutStore(metapb::Store),
    #[prost(message, tag = "3")]
    SetStoreState(StoreStatePb),
    #[prost(uint64, tag = "4")]
    SetIdLimit(u64),
    #[prost(uint64, tag = "5")]
    SetTsoLimit(u64),
    #[prost(uint64, tag = "6")]
    UpdateGcSafePoint(u64),
    #[prost(message, tag = "7")]
    PutRegion(metapb::Region),
}

/// `PdCommand::Bootstrap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BootstrapPb {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(message, optional, tag = "2")]
    pub store: Option<metapb::Store>,
    #[prost(message, optional, tag = "3")]
    pub region: Option<metapb::Region>,
}

/// `PdCommand::SetStoreState`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoreStatePb {
    #[prost(uint64, tag = "1")]
    pub store_id: u64,
    #[prost(enumeration = "metapb::StoreState", tag = "2")]
    pub state: i32,
}

/// A whole `PdState`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotPb {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(message, repeated, tag = "2")]
    pub stores: Vec<metapb::Store>,
    #[prost(message, repeated, tag = "3")]
    pub regions: Vec<metapb::Region>,
    #[prost(uint64, tag = "4")]
    pub id_limit: u64,
    #[prost(uint64, tag = "5")]
    pub tso_limit_ms: u64,
    #[prost(uint64, tag = "6")]
    pub gc_safe_point: u64,
}
