//! The operations endpoints of the worker and scheduler processes: `/metrics` (Prometheus),
//! `/healthz` (the process is up) and `/readyz` (Postgres answers, and Redis when given, each
//! within its own short timeout: [`crate::readiness`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::readiness;

#[derive(Clone)]
struct Probe {
    db: PgPool,
    redis: Option<ezpulze_common::redis_conn::RedisConn>,
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

async fn metrics(State(p): State<Probe>) -> String {
    p.handle.render()
}

/// 200 `ready`, or 503 naming each dependency that failed or did not answer within
/// [`readiness::CHECK_TIMEOUT`] (see [`crate::readiness`]).
async fn ready(State(p): State<Probe>) -> (StatusCode, String) {
    let r = readiness::check(&p.db, p.redis.as_ref(), readiness::CHECK_TIMEOUT).await;
    let status = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, r.summary())
}

/// The three routes; `/readyz` checks `db`, and `redis` when given.
pub fn router(db: PgPool, redis: Option<ezpulze_common::redis_conn::RedisConn>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Probe {
            db,
            redis,
            handle: crate::telemetry::metrics_handle(),
        })
}

/// Serves [`router`] on `listener` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: PgPool,
    redis: Option<ezpulze_common::redis_conn::RedisConn>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(db, redis))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}
