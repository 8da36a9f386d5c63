//! Waiting for a condition instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

/// The default bound of a wait: long enough never to trip on a loaded machine, short enough
/// that a hang fails the test instead of the run.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `f` every 20 ms until it is true; panics naming `what` once `deadline` passes.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
