//! gRPC services: `Tikv` (raw KV in `kv`, transactional KV in `txn`), `FerroRaft` (store-to-store Raft traffic) and
//! `FerroAdmin` (operator commands and region status).

pub mod admin;
pub mod kv;
pub mod raft;
pub(crate) mod txn;
pub mod validate;

pub use admin::AdminService;
pub use kv::KvService;
pub use raft::RaftService;
