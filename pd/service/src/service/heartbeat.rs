//! Store heartbeats and the `RegionHeartbeat` stream.
//!
//! A region heartbeat stream becomes the outbound channel of the store whose leader peer
//! reports on it (PD's `hbStreams.BindStream`): instructions for that store's regions go
//! there, as replies to its heartbeats or pushed by the leader's schedulers. A report the
//! core rejects gets an error reply and the stream stays open, except before bootstrap
//! (`NOT_BOOTSTRAPPED`, then the stream ends) and when this member cannot serve (the
//! stream ends with `Unavailable`, so the store reconnects to the leader).

use ferrokv_pd_core::coordinator::HeartbeatOutcome;
use ferrokv_pd_core::heartbeat::HeartbeatError;
use ferrokv_proto::pdpb::{self, ErrorType};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::{header, validate, PdService, PdStream};
use crate::driver::{StreamSender, STREAM_QUEUE_MAX};

fn kind_of(error: &HeartbeatError) -> ErrorType {
    match error {
        HeartbeatError::NotBootstrapped => ErrorType::NotBootstrapped,
        HeartbeatError::TombstoneStore(_) => ErrorType::StoreTombstone,
        _ => ErrorType::Unknown,
    }
}

impl PdService {
    pub(super) async fn do_store_heartbeat(
        &self,
        request: pdpb::StoreHeartbeatRequest,
    ) -> Result<pdpb::StoreHeartbeatResponse, Status> {
        self.check(request.header.as_ref())?;
        let Some(stats) = request.stats else {
            let header = header::error(self.cluster_id(), ErrorType::InvalidValue, "no stats");
            return Ok(pdpb::StoreHeartbeatResponse {
                header,
                ..Default::default()
            });
        };
        let result = self
            .driver
            .store_heartbeat(stats)
            .await
            .map_err(header::status)?;
        let header = match result {
            Ok(()) => header::ok(self.cluster_id()),
            Err(error) => header::error(self.cluster_id(), kind_of(&error), error.to_string()),
        };
        Ok(pdpb::StoreHeartbeatResponse {
            header,
            ..Default::default()
        })
    }

    pub(super) fn heartbeat_stream(
        &self,
        inbound: Streaming<pdpb::RegionHeartbeatRequest>,
    ) -> PdStream<pdpb::RegionHeartbeatResponse> {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE_MAX);
        let service = self.clone();
        tokio::spawn(async move { service.serve_heartbeats(inbound, sender).await });
        let outbound = futures::stream::unfold(receiver, |mut receiver| async move {
            let item = receiver.recv().await?;
            Some((item, receiver))
        });
        Box::pin(outbound)
    }

    async fn serve_heartbeats(
        &self,
        mut inbound: Streaming<pdpb::RegionHeartbeatRequest>,
        sender: StreamSender,
    ) {
        let mut bound = None;
        while let Ok(Some(request)) = inbound.message().await {
            if let Err(status) = self.check(request.header.as_ref()) {
                let _ = sender.send(Err(status)).await;
                return;
            }
            let store_id = request.leader.map(|leader| leader.store_id);
            let region_id = request.region.as_ref().map_or(0, |region| region.id);
            if !request.region.as_ref().is_none_or(validate::region_ids_ok) {
                let kind = ErrorType::InvalidValue;
                let response = pdpb::RegionHeartbeatResponse {
                    header: header::error(self.cluster_id(), kind, validate::ID_OUT_OF_RANGE),
                    region_id,
                    ..Default::default()
                };
                let _ = sender.send(Ok(response)).await;
                continue;
            }
            let reply = match self.driver.region_heartbeat(request).await {
                Ok(reply) => reply,
                Err(error) => {
                    let _ = sender.send(Err(header::status(error))).await;
                    return;
                }
            };
            match reply {
                Ok(reply) => {
                    if let HeartbeatOutcome::Stale(reason) = &reply.outcome {
                        tracing::debug!(region_id, %reason, "stale region heartbeat ignored");
                    }
                    if let Some(store_id) = store_id.filter(|id| bound != Some(*id)) {
                        self.shared.bind_stream(store_id, sender.clone());
                        bound = Some(store_id);
                    }
                    if let Some(response) = reply.response {
                        let _ = sender.try_send(Ok(response));
                    }
                }
                Err(error) => {
                    tracing::info!(region_id, %error, "region heartbeat rejected");
                    let kind = kind_of(&error);
                    let response = pdpb::RegionHeartbeatResponse {
                        header: header::error(self.cluster_id(), kind, error.to_string()),
                        region_id,
                        ..Default::default()
                    };
                    let _ = sender.send(Ok(response)).await;
                    if kind == ErrorType::NotBootstrapped {
                        return;
                    }
                }
            }
        }
    }
}
