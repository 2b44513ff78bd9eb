//! Store addresses from PD (`GetStore`), cached: the transport asks synchronously, so a
//! miss starts one background lookup and the message is dropped (Raft retransmits); the
//! next send finds the address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ferrokv_client::pd::{strip_scheme, PdClient};
use ferrokv_core::types::StoreId;

use crate::transport::StoreResolver;

/// Resolves store ids to addresses through PD.
pub struct PdResolver {
    pd: Arc<PdClient>,
    known: Arc<Mutex<BTreeMap<u64, String>>>,
    asking: Arc<Mutex<BTreeSet<u64>>>,
}

impl PdResolver {
    /// A resolver asking `pd`.
    pub fn new(pd: Arc<PdClient>) -> PdResolver {
        PdResolver {
            pd,
            known: Arc::new(Mutex::new(BTreeMap::new())),
            asking: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    fn look_up(&self, store: u64) {
        if !self.asking.lock().expect("resolver lock").insert(store) {
            return;
        }
        let (pd, known, asking) = (self.pd.clone(), self.known.clone(), self.asking.clone());
        tokio::spawn(async move {
            match pd.get_store(store).await {
                Ok(found) if !found.address.is_empty() => {
                    let address = strip_scheme(&found.address).to_string();
                    known.lock().expect("resolver lock").insert(store, address);
                }
                Ok(_) => tracing::warn!(store, "PD knows no address for store"),
                Err(error) => tracing::warn!(store, %error, "store address lookup failed"),
            }
            asking.lock().expect("resolver lock").remove(&store);
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
        if found.is_none() {
            self.look_up(store.get());
        }
        found
    }
}
