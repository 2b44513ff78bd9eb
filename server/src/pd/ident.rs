//! The store's identity on disk: which cluster and store id a data directory belongs to
//! (`StoreIdent` under `keys::STORE_IDENT_KEY` in the Raft column family, written with a
//! sync before the id is used anywhere), so a restarted store keeps its id.

use ferrokv_core::env::{Cf, EngineError, KvEngine, WriteBatch, WriteOptions};
use ferrokv_core::raft::keys::STORE_IDENT_KEY;
use ferrokv_proto::ferrokv_raftpb::StoreIdent;
use prost::Message as _;

/// Why the identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The record does not decode or names id 0.
    #[error("corrupt store identity: {0}")]
    Corrupt(String),
}

/// The identity this data directory holds, if any.
pub fn load<E: KvEngine>(engine: &E) -> Result<Option<StoreIdent>, IdentError> {
    let Some(bytes) = engine.get(Cf::Raft, STORE_IDENT_KEY)? else {
        return Ok(None);
    };
    let ident = StoreIdent::decode(bytes.as_slice())
        .map_err(|error| IdentError::Corrupt(error.to_string()))?;
    if ident.store_id == 0 || ident.cluster_id == 0 {
        return Err(IdentError::Corrupt(format!("{ident:?}")));
    }
    Ok(Some(ident))
}

/// Persists `ident` durably.
pub fn save<E: KvEngine>(engine: &E, ident: &StoreIdent) -> Result<(), EngineError> {
    assert!(
        ident.store_id != 0 && ident.cluster_id != 0,
        "identity ids are non-zero"
    );
    let mut batch = WriteBatch::new();
    batch.put(Cf::Raft, STORE_IDENT_KEY, &ident.encode_to_vec());
    engine.write(&batch, WriteOptions::SYNC)
}
