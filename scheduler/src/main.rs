//! `ezpulze-scheduler`: the engine's periodic work, one active replica at a time.
#![forbid(unsafe_code)]

/// mimalloc: the JSON-heavy hot paths allocate a lot, and glibc malloc was about a quarter of
/// the queue consumer's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use ezpulze_common::{telemetry, Config};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "ezpulze-scheduler", version, about = "EzPulze scheduler (one active replica through a Redis lease)", after_help = Config::help())]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = Cli::parse();
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            cancel.cancel();
        });
    }
    ezpulze_scheduler::run(config, cancel).await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
