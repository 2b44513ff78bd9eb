//! Runs CPU-bound work (snapshot generation, data hashing) off the event loop: on tokio's
//! blocking pool in production, as an ordinary task under madsim (which has one thread and
//! forbids blocking calls). The `cfg` switch lives here, not in the callers.

/// Runs `work` off the event loop and returns its result.
pub async fn run<T, F>(work: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| error.to_string())
    }
    #[cfg(madsim)]
    {
        tokio::task::yield_now().await;
        Ok(work())
    }
}
