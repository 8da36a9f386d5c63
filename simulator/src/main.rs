//! `ezpulze-simulator`: the Graph API simulator as a process.

use clap::Parser;
use ezpulze_simulator::SimConfig;

/// WhatsApp Cloud API (Graph API) simulator for EzPulze.
///
/// Configuration comes from defaults, then the JSON file given by --config / SIM_CONFIG_FILE,
/// then SIM_CONFIG_JSON, then one SIM_<KEY> variable per top-level key of the configuration
/// (e.g. SIM_MPS_LIMIT=1000, SIM_WEBHOOK_URL=http://localhost:8080/webhooks/whatsapp,
/// SIM_APP_SECRET=..., SIM_NUMBERS=id:display:token[,...] or a JSON array,
/// SIM_ERROR_RATES='{"5xx":0.01}'). It can be changed at run time with PUT /_sim/config.
/// See simulator/README.md for every key.
#[derive(Debug, Parser)]
#[command(name = "ezpulze-simulator", version, about, long_about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SIM_LISTEN", default_value = "0.0.0.0:8090")]
    listen: String,
    /// JSON configuration file (same keys as PUT /_sim/config).
    #[arg(long, env = "SIM_CONFIG_FILE")]
    config: Option<String>,
    /// Print the effective configuration as JSON and exit.
    #[arg(long)]
    print_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cfg = SimConfig::from_env_and_file(args.config.as_deref(), std::env::vars())?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&cfg)?);
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        numbers = cfg.numbers.len(),
        templates = cfg.templates.len(),
        webhook = cfg.webhook_url.is_some(),
        mps_limit = cfg.mps_limit,
        pair_gap_ms = cfg.pair_gap_ms,
        "graph api simulator listening"
    );
    ezpulze_simulator::run(cfg, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
