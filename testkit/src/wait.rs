//! Waiting for a condition by polling it with a deadline, never by
//! sleeping and hoping: a wait that runs out panics naming what it waited
//! for and, when the check says, what it saw last.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns something, or panics naming `what`.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for(what, limit, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// Like [`wait_until`], for a check that says what it saw when it fails:
/// the panic quotes the last such observation.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    poll_for(what, limit, Duration::from_millis(50), check).await
}

/// [`wait_for`], checking every `every`: for a wait that is itself
/// measured, where 50 ms would blur the figure.
pub async fn poll_for<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        tokio::time::sleep(every).await;
    }
}
