//! `ezpulze-scheduler`: the engine's periodic work, one active replica at a time.
#![forbid(unsafe_code)]

use clap::Parser;
use ezpulze_common::Config;
use ezpulze_runtime::telemetry;
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
    ezpulze_runtime::shutdown::cancel_on_signal(cancel.clone(), "releasing the lease");
    ezpulze_scheduler::run(config, cancel).await
}
