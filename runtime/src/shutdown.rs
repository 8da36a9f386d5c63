//! Graceful shutdown: SIGTERM (what orchestrators send) or Ctrl-C.

use tokio_util::sync::CancellationToken;

/// Resolves at the first SIGTERM or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Cancels `cancel` at the first SIGTERM or Ctrl-C, logging `what` happens next.
pub fn cancel_on_signal(cancel: CancellationToken, what: &'static str) {
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down: {what}");
        cancel.cancel();
    });
}
