//! Bootstrap, ids, stores and the GC safe point.
//!
//! State changes go through the driver as `PdCommand`s and answer with the applied outcome;
//! refusals become typed header errors (`ALREADY_BOOTSTRAPPED`, `NOT_BOOTSTRAPPED`,
//! `STORE_TOMBSTONE`, `INVALID_VALUE`, `UNKNOWN`), never panics.

use ferrokv_core::types::StoreId;
use ferrokv_pd_core::state::ApplyError;
use ferrokv_pd_core::{PdCommand, PdOutcome};
use ferrokv_proto::metapb::StoreState;
use ferrokv_proto::pdpb::{self, ErrorType};
use tonic::Status;

use super::{header, validate, PdService};

type Header = Option<pdpb::ResponseHeader>;

impl PdService {
    async fn apply(&self, command: PdCommand) -> Result<PdOutcome, Status> {
        self.driver.propose(command).await.map_err(header::status)
    }

    fn refusal(&self, error: &ApplyError) -> Header {
        let kind = match error {
            ApplyError::AlreadyBootstrapped { .. } => ErrorType::AlreadyBootstrapped,
            ApplyError::NotBootstrapped => ErrorType::NotBootstrapped,
            ApplyError::StoreTombstone(_) => ErrorType::StoreTombstone,
            ApplyError::InvalidBootstrap(_)
            | ApplyError::InvalidStore(_)
            | ApplyError::InvalidRegion(_)
            | ApplyError::DuplicateAddress(_) => ErrorType::InvalidValue,
            _ => ErrorType::Unknown,
        };
        header::error(self.cluster_id(), kind, error.to_string())
    }

    fn header_for(&self, outcome: &PdOutcome) -> Header {
        match outcome {
            PdOutcome::Refused(error) => self.refusal(error),
            _ => header::ok(self.cluster_id()),
        }
    }

    pub(super) async fn do_bootstrap(
        &self,
        request: pdpb::BootstrapRequest,
    ) -> Result<pdpb::BootstrapResponse, Status> {
        self.check(request.header.as_ref())?;
        let (Some(store), Some(region)) = (request.store, request.region) else {
            let message = "bootstrap needs a store and a region";
            return Ok(pdpb::BootstrapResponse {
                header: header::error(self.cluster_id(), ErrorType::InvalidValue, message),
            });
        };
        if !validate::store_id_ok(&store) || !validate::region_ids_ok(&region) {
            let header = header::error(
                self.cluster_id(),
                ErrorType::InvalidValue,
                validate::ID_OUT_OF_RANGE,
            );
            return Ok(pdpb::BootstrapResponse { header });
        }
        let cluster_id = self.cluster_id();
        let command = PdCommand::Bootstrap {
            cluster_id,
            store,
            region,
        };
        let outcome = self.apply(command).await?;
        Ok(pdpb::BootstrapResponse {
            header: self.header_for(&outcome),
        })
    }

    pub(super) async fn do_is_bootstrapped(&self) -> Result<pdpb::IsBootstrappedResponse, Status> {
        let bootstrapped = self
            .driver
            .query(|serving| serving.state.is_bootstrapped())
            .await
            .map_err(header::status)?;
        Ok(pdpb::IsBootstrappedResponse {
            header: header::ok(self.cluster_id()),
            bootstrapped,
        })
    }

    pub(super) async fn do_alloc_id(&self) -> Result<pdpb::AllocIdResponse, Status> {
        let id = self.driver.alloc_id().await.map_err(header::status)?;
        assert_ne!(id, 0, "ids are never 0");
        Ok(pdpb::AllocIdResponse {
            header: header::ok(self.cluster_id()),
            id,
        })
    }

    pub(super) async fn do_put_store(
        &self,
        request: pdpb::PutStoreRequest,
    ) -> Result<pdpb::PutStoreResponse, Status> {
        self.check(request.header.as_ref())?;
        let Some(store) = request.store else {
            let header = header::error(self.cluster_id(), ErrorType::InvalidValue, "no store");
            return Ok(pdpb::PutStoreResponse { header });
        };
        if !validate::store_id_ok(&store) {
            let header = header::error(
                self.cluster_id(),
                ErrorType::InvalidValue,
                validate::ID_OUT_OF_RANGE,
            );
            return Ok(pdpb::PutStoreResponse { header });
        }
        let outcome = self.apply(PdCommand::PutStore { store }).await?;
        Ok(pdpb::PutStoreResponse {
            header: self.header_for(&outcome),
        })
    }

    pub(super) async fn do_get_store(
        &self,
        request: pdpb::GetStoreRequest,
    ) -> Result<pdpb::GetStoreResponse, Status> {
        self.check(request.header.as_ref())?;
        let store_id = StoreId(request.store_id);
        let (store, stats) = self
            .driver
            .query(move |serving| {
                let store = serving.state.store(store_id).cloned();
                let coordinator = serving.leader.coordinator();
                let stats = coordinator
                    .memory()
                    .store(store_id)
                    .map(|s| s.stats.clone());
                (store, stats)
            })
            .await
            .map_err(header::status)?;
        let Some(store) = store else {
            let message = format!("invalid store ID {}, not found", request.store_id);
            return Ok(pdpb::GetStoreResponse {
                header: header::error(self.cluster_id(), ErrorType::Unknown, message),
                ..Default::default()
            });
        };
        Ok(pdpb::GetStoreResponse {
            header: header::ok(self.cluster_id()),
            store: Some(store),
            stats,
        })
    }

    pub(super) async fn do_get_all_stores(
        &self,
        request: pdpb::GetAllStoresRequest,
    ) -> Result<pdpb::GetAllStoresResponse, Status> {
        self.check(request.header.as_ref())?;
        let exclude = request.exclude_tombstone_stores;
        let stores = self
            .driver
            .query(move |serving| {
                let all = serving.state.stores();
                all.filter(|store| !(exclude && store.state() == StoreState::Tombstone))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(header::status)?;
        Ok(pdpb::GetAllStoresResponse {
            header: header::ok(self.cluster_id()),
            stores,
        })
    }

    pub(super) async fn do_get_gc_safe_point(
        &self,
    ) -> Result<pdpb::GetGcSafePointResponse, Status> {
        let safe_point = self
            .driver
            .query(|serving| serving.state.gc_safe_point())
            .await
            .map_err(header::status)?;
        Ok(pdpb::GetGcSafePointResponse {
            header: header::ok(self.cluster_id()),
            safe_point,
        })
    }

    /// Upstream v8.5 semantics: the safe point never decreases; the answer is
    /// `max(current, requested)` and a smaller request is not an error.
    pub(super) async fn do_update_gc_safe_point(
        &self,
        request: pdpb::UpdateGcSafePointRequest,
    ) -> Result<pdpb::UpdateGcSafePointResponse, Status> {
        self.check(request.header.as_ref())?;
        let requested = request.safe_point;
        let command = PdCommand::UpdateGcSafePoint {
            safe_point: requested,
        };
        let (header, new_safe_point) = match self.apply(command).await? {
            PdOutcome::Refused(ApplyError::GcSafePointBelow { current, .. }) => {
                (header::ok(self.cluster_id()), current)
            }
            PdOutcome::Refused(error) => (self.refusal(&error), 0),
            _ => (header::ok(self.cluster_id()), requested),
        };
        Ok(pdpb::UpdateGcSafePointResponse {
            header,
            new_safe_point,
        })
    }
}
