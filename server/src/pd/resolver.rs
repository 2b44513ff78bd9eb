//! Store addresses from PD (`GetStore`), cached: the transport asks synchronously, so a
//! miss starts one background lookup and the message is dropped (Raft retransmits); the
//! next send finds the address. An address older than `REFRESH_AFTER` is still answered
//! but looked up again in the background, so a store that restarted on another (peer)
//! address is found again (the transport re-resolves on every reconnect).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ferrokv_client::pd::{strip_scheme, PdClient};
use ferrokv_core::types::StoreId;

use crate::transport::StoreResolver;

/// The longest one address lookup may take before another may start.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a looked-up address is used before it is looked up again (TiKV: 60 s).
const REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// A lookup in flight for `store`; dropping it lets the next miss ask again.
struct Asking {
    store: u64,
    set: Arc<Mutex<BTreeSet<u64>>>,
}

impl Drop for Asking {
    fn drop(&mut self) {
        self.set.lock().expect("resolver lock").remove(&self.store);
    }
}

/// Resolves store ids to addresses through PD.
pub struct PdResolver {
    pd: Arc<PdClient>,
    /// Addresses, with when they were looked up.
    known: Arc<Mutex<BTreeMap<u64, (String, tokio::time::Instant)>>>,
    asking: Arc<Mutex<BTreeSet<u64>>>,
    /// Where lookups run: the runtime the resolver was made on. `resolve` is called from
    /// the node's own thread (through the transport), whose runtime blocks in fsyncs and
    /// ends with the node: a PD connection made there would stall and then die.
    runtime: tokio::runtime::Handle,
}

impl PdResolver {
    /// A resolver asking `pd`.
    pub fn new(pd: Arc<PdClient>) -> PdResolver {
        PdResolver {
            pd,
            known: Arc::new(Mutex::new(BTreeMap::new())),
            asking: Arc::new(Mutex::new(BTreeSet::new())),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn look_up(&self, store: u64) {
        if !self.asking.lock().expect("resolver lock").insert(store) {
            return;
        }
        let (pd, known) = (self.pd.clone(), self.known.clone());
        // However the lookup ends (answered, failed, timed out, or its task dropped), the
        // next miss may ask again.
        let asking = Asking {
            store,
            set: self.asking.clone(),
        };
        self.runtime.spawn(async move {
            let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, pd.get_store(store)).await;
            match lookup {
                Ok(Ok(found)) if !found.address.is_empty() => {
                    // Raft goes to the store's peer address (older stores register none).
                    let peer = [&found.peer_address, &found.address];
                    let chosen = peer.into_iter().find(|a| !a.is_empty()).expect("checked");
                    let address = strip_scheme(chosen).to_string();
                    let now = tokio::time::Instant::now();
                    known
                        .lock()
                        .expect("resolver lock")
                        .insert(store, (address, now));
                }
                Ok(Ok(_)) => tracing::warn!(store, "PD knows no address for store"),
                Ok(Err(error)) => tracing::warn!(store, %error, "store address lookup failed"),
                Err(_) => tracing::warn!(store, "store address lookup timed out"),
            }
            drop(asking);
        });
    }
}

impl StoreResolver for PdResolver {
    fn resolve(&self, store: StoreId) -> Option<String> {
        let found = self
            .known
            .lock()
            .expect("resolver lock")
            .get(&store.get())
            .cloned();
        let fresh = found
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < REFRESH_AFTER);
        if !fresh {
            self.look_up(store.get());
        }
        found.map(|(address, _)| address)
    }
}
