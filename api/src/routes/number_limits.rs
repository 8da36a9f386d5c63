//! `GET /api/v1/whatsapp/numbers/limits`: each of the account's numbers with the rate in force
//! (`messages_per_second`: 80 by default, 1,000 after Meta's throughput upgrade, or a rate set
//! by hand), its throughput level, whether Meta flagged it for quality, its last quality event
//! and how many of its dispatches are paused for it (`docs/whatsapp-events.md`). The per-number
//! detail the metrics leave out (they carry no per-number labels). A key with `broadcast:read`
//! or `broadcast:send` (or the account's admin token) reads it.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::auth::{scope, Principal};
use crate::error::ApiResult;
use crate::state::AppState;

type Row = (
    String,
    String,
    i32,
    String,
    bool,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
);

/// Read each number's throughput and quality
#[utoipa::path(get, path = "/api/v1/whatsapp/numbers/limits", operation_id = "getNumberLimits",
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
pub async fn get(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    crate::routes::dispatches::can_read(&p)?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.phone_number_id, p.display_phone_number, p.messages_per_second,
                p.throughput_level, p.flagged, p.quality_event, p.quality_changed_at,
                (SELECT count(*) FROM dispatches d
                  WHERE d.account_id = p.account_id AND d.phone_number_id = p.phone_number_id
                    AND d.status = 'paused' AND d.pause_reason = 'number_flagged')
           FROM phone_numbers p WHERE p.account_id = $1
          ORDER BY p.position, p.phone_number_id",
    )
    .bind(p.account_id())
    .fetch_all(state.db())
    .await?;
    let tier: Option<String> =
        sqlx::query_scalar("SELECT messaging_tier FROM accounts WHERE id = $1")
            .bind(p.account_id())
            .fetch_optional(state.db())
            .await?
            .flatten();
    Ok(Json(json!({
        "messaging_tier": tier,
        "numbers": rows.into_iter().map(|(id, display, mps, level, flagged, event, at, paused)| json!({
            "phone_number_id": id,
            "display_phone_number": display,
            "messages_per_second": mps,
            "throughput_level": level,
            "flagged": flagged,
            "quality_event": event,
            "quality_changed_at": at,
            "paused_dispatches": paused,
        })).collect::<Vec<_>>(),
    })))
}
