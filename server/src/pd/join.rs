//! Joining a cluster through PD (TiKV's `bootstrap_store` / `bootstrap_cluster`).
//!
//! A new data directory gets its store id from `AllocID` and persists it (with PD's cluster
//! id) before anything else. If the cluster is not bootstrapped, this store creates it: it
//! allocates the first region's id and peer id, asks PD to `Bootstrap` with itself and that
//! region, and on success writes the region locally. Then it registers with `PutStore`.
//!
//! Crash safety: the region is written locally only after PD accepted it. A store that
//! crashed between the two finds, on its next start, that PD's first region (epoch 1/1, one
//! peer, on this store) is missing here and writes it (`finish_bootstrap`); an epoch of 1/1
//! with a single peer on this store can only be that bootstrap. A store that lost the race
//! to bootstrap writes nothing.

use crate::config::Addresses;
use ferrokv_client::pd::{PdClient, PdClientError};
use ferrokv_core::env::KvEngine;
use ferrokv_core::store::bootstrap_region;
use ferrokv_proto::ferrokv_raftpb::StoreIdent;
use ferrokv_proto::metapb;
use ferrokv_proto::pdpb::ErrorType;

use super::ident::{self, IdentError};

/// Why a store could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// PD did not answer or refused.
    #[error("PD: {0}")]
    Pd(#[from] PdClientError),
    /// The identity record is unreadable.
    #[error(transparent)]
    Ident(#[from] IdentError),
    /// The engine failed.
    #[error("storage: {0}")]
    Engine(#[from] ferrokv_core::env::EngineError),
    /// The data directory belongs to another cluster.
    #[error("data directory belongs to cluster {local}, PD serves cluster {pd}")]
    ClusterMismatch { local: u64, pd: u64 },
}

/// The store's registration record.
pub fn store_meta(store_id: u64, addresses: &Addresses) -> metapb::Store {
    metapb::Store {
        id: store_id,
        address: addresses.client.clone(),
        peer_address: addresses.peer.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// This data directory's identity, allocating and persisting a new one if it has none.
pub async fn identity<E: KvEngine>(engine: &E, pd: &PdClient) -> Result<StoreIdent, JoinError> {
    if let Some(ident) = ident::load(engine)? {
        return Ok(ident);
    }
    let cluster_id = pd.cluster_id().await?;
    let store_id = pd.alloc_id().await?;
    let ident = StoreIdent {
        cluster_id,
        store_id,
    };
    ident::save(engine, &ident)?;
    tracing::info!(store_id, cluster_id, "store identity allocated by PD");
    Ok(ident)
}

/// Bootstraps the cluster if needed, registers the store and finishes an interrupted
/// bootstrap. Checks the cluster id against the identity's.
pub async fn register<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    ident: &StoreIdent,
    addresses: &Addresses,
) -> Result<(), JoinError> {
    let pd_cluster = pd.cluster_id().await?;
    if pd_cluster != ident.cluster_id {
        return Err(JoinError::ClusterMismatch {
            local: ident.cluster_id,
            pd: pd_cluster,
        });
    }
    let store = store_meta(ident.store_id, addresses);
    if !pd.is_bootstrapped().await? {
        bootstrap_cluster(engine, pd, &store).await?;
    }
    pd.put_store(store).await?;
    finish_bootstrap(engine, pd, ident.store_id).await
}

async fn bootstrap_cluster<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    store: &metapb::Store,
) -> Result<(), JoinError> {
    let region_id = pd.alloc_id().await?;
    let peer_id = pd.alloc_id().await?;
    let region = metapb::Region {
        id: region_id,
        region_epoch: Some(metapb::RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![metapb::Peer {
            id: peer_id,
            store_id: store.id,
            ..Default::default()
        }],
        ..Default::default()
    };
    match pd.bootstrap(store.clone(), region.clone()).await {
        Ok(()) => {
            bootstrap_region(engine, &region)?;
            tracing::info!(region_id, store_id = store.id, "bootstrapped the cluster");
            Ok(())
        }
        Err(PdClientError::Header {
            kind: ErrorType::AlreadyBootstrapped,
            ..
        }) => {
            tracing::info!("another store bootstrapped the cluster first");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Writes PD's first region here if PD recorded it on this store and this store never
/// wrote it (a crash between `Bootstrap` and the local write).
async fn finish_bootstrap<E: KvEngine>(
    engine: &E,
    pd: &PdClient,
    store_id: u64,
) -> Result<(), JoinError> {
    let Some(route) = pd.get_region(b"").await? else {
        return Ok(());
    };
    let region = route.region;
    let epoch = region.region_epoch.unwrap_or_default();
    let first = epoch.conf_ver == 1 && epoch.version == 1;
    let only_here = region.peers.len() == 1 && region.peers[0].store_id == store_id;
    if first && only_here && bootstrap_region(engine, &region)? {
        tracing::warn!(region_id = region.id, "finished an interrupted bootstrap");
    }
    Ok(())
}
