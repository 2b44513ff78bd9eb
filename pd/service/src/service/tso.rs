//! The `Tso` stream as tikv-client 0.4 uses it: requests are answered strictly in order,
//! one response per request, `count` timestamps each, the response naming the largest
//! (`suffix_bits` 0). A request naming another cluster or asking for 0 timestamps, or a
//! member that cannot serve (not leader, lease not provable, window not persisted in
//! time), ends the stream with an error status: the client reconnects through
//! `GetMembers` instead of waiting on a silent stream (client-rust #516).

use ferrokv_proto::pdpb;
use tonic::{Status, Streaming};

use super::{header, PdService, PdStream};

impl PdService {
    pub(super) fn tso_stream(
        &self,
        inbound: Streaming<pdpb::TsoRequest>,
    ) -> PdStream<pdpb::TsoResponse> {
        let service = self.clone();
        let stream = futures::stream::unfold(Some(inbound), move |inbound| {
            let service = service.clone();
            async move {
                let mut inbound = inbound?;
                let request = match inbound.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) | Err(_) => return None,
                };
                match service.answer_tso(request).await {
                    Ok(response) => Some((Ok(response), Some(inbound))),
                    Err(status) => Some((Err(status), None)),
                }
            }
        });
        Box::pin(stream)
    }

    async fn answer_tso(&self, request: pdpb::TsoRequest) -> Result<pdpb::TsoResponse, Status> {
        self.check(request.header.as_ref())?;
        if request.count == 0 {
            return Err(Status::invalid_argument("tso count should be positive"));
        }
        let ts = self
            .driver
            .tso(request.count)
            .await
            .map_err(header::status)?;
        assert!(
            ts.logical() >= u64::from(request.count),
            "a batch ends at or above its count"
        );
        let physical = i64::try_from(ts.physical_ms())
            .map_err(|_| Status::internal("physical time overflow"))?;
        Ok(pdpb::TsoResponse {
            header: header::ok(self.cluster_id()),
            count: request.count,
            timestamp: Some(pdpb::Timestamp {
                physical,
                logical: ts.logical() as i64,
                suffix_bits: 0,
            }),
        })
    }
}
