//! Single-key raw calls: get, put (with TTL), delete, compare-and-swap, TTL lookup.

use ferrokv_proto::kvrpcpb;

use super::RawClient;
use crate::error::ClientError;

impl RawClient {
    /// Reads one key.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        self.call(key, true, |mut rpc, context, _| {
            let request = kvrpcpb::RawGetRequest {
                context: Some(context),
                key: key.to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_get(request).await?.into_inner();
                let value = (!response.not_found).then_some(response.value);
                Ok((response.region_error, response.error, value))
            }
        })
        .await
    }

    /// Writes one key, with an optional TTL in seconds (0: none). Not retried after an
    /// ambiguous failure (`ClientError::Unknown`): a retry could apply it twice.
    pub async fn put(&self, key: &[u8], value: &[u8], ttl_seconds: u64) -> Result<(), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawPutRequest {
                context: Some(context),
                key: key.to_vec(),
                value: value.to_vec(),
                ttl: ttl_seconds,
                ..Default::default()
            };
            async move {
                let response = rpc.raw_put(request).await?.into_inner();
                Ok((response.region_error, response.error, ()))
            }
        })
        .await
    }

    /// Deletes one key. Not retried after an ambiguous failure (`ClientError::Unknown`).
    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawDeleteRequest {
                context: Some(context),
                key: key.to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_delete(request).await?.into_inner();
                Ok((response.region_error, response.error, ()))
            }
        })
        .await
    }

    /// Compare-and-swap: sets `value` if the current value is `previous` (`None`: absent).
    /// Returns whether it swapped and the value found. Not retried after an ambiguous
    /// failure (`ClientError::Unknown`).
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        previous: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(bool, Option<Vec<u8>>), ClientError> {
        self.call(key, false, |mut rpc, context, _| {
            let request = kvrpcpb::RawCasRequest {
                context: Some(context),
                key: key.to_vec(),
                value: value.to_vec(),
                previous_not_exist: previous.is_none(),
                previous_value: previous.unwrap_or_default().to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_compare_and_swap(request).await?.into_inner();
                let found = (!response.previous_not_exist).then_some(response.previous_value);
                Ok((
                    response.region_error,
                    response.error,
                    (response.succeed, found),
                ))
            }
        })
        .await
    }

    /// The remaining TTL of a key in seconds: `Some(0)` for "no TTL", `None` if absent.
    pub async fn key_ttl(&self, key: &[u8]) -> Result<Option<u64>, ClientError> {
        self.call(key, true, |mut rpc, context, _| {
            let request = kvrpcpb::RawGetKeyTtlRequest {
                context: Some(context),
                key: key.to_vec(),
                ..Default::default()
            };
            async move {
                let response = rpc.raw_get_key_ttl(request).await?.into_inner();
                let ttl = (!response.not_found).then_some(response.ttl);
                Ok((response.region_error, response.error, ttl))
            }
        })
        .await
    }
}
