//! Runs CPU-bound work (snapshot generation, data hashing) off the event loop: on tokio's
//! blocking pool in production, as an ordinary task under madsim (which has one thread and
//! forbids blocking calls). Under madsim it also charges simulated time for the inputs a
//! node handles (`charge`): compute is otherwise free in virtual time, and a loop that
//! costs nothing can never be overloaded, so load-dependent bugs (a starved tick) would be
//! invisible. The `cfg` switch lives here, not in the callers.

/// Simulated CPU time per input a node loop handles.
#[cfg(madsim)]
const SIMULATED_COST_PER_INPUT: std::time::Duration = std::time::Duration::from_micros(10);

/// Charges the time `inputs` handled inputs cost: simulated time under madsim, nothing in
/// production (where the work itself takes the time).
pub async fn charge(inputs: usize) {
    #[cfg(madsim)]
    if inputs > 0 {
        tokio::time::sleep(SIMULATED_COST_PER_INPUT * inputs as u32).await;
    }
    #[cfg(not(madsim))]
    let _ = inputs;
}

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
