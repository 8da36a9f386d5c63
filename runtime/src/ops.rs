//! The operations endpoints of the worker and scheduler processes: `/metrics` (Prometheus),
//! `/healthz` (the process is up) and `/readyz` (Postgres answers, and Redis when given).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Probe {
    db: PgPool,
    redis: Option<redis::aio::ConnectionManager>,
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

async fn metrics(State(p): State<Probe>) -> String {
    p.handle.render()
}

async fn ready(State(p): State<Probe>) -> (StatusCode, &'static str) {
    if sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&p.db)
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable");
    }
    if let Some(mut conn) = p.redis {
        if redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_err()
        {
            return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable");
        }
    }
    (StatusCode::OK, "ready")
}

/// The three routes; `/readyz` checks `db`, and `redis` when given.
pub fn router(db: PgPool, redis: Option<redis::aio::ConnectionManager>) -> Router {
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
    redis: Option<redis::aio::ConnectionManager>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(db, redis))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
}
