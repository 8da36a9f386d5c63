//! `POST /admin/v1/admin-token/rotate`: a new admin token for the account, shown once; the old
//! one stops working at once and every web UI session of the account ends.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::{session, AdminAccount};
use crate::error::ApiResult;
use crate::state::AppState;
use ezpulze_common::keys;

/// Rotate the account's admin token
#[utoipa::path(post, path = "/admin-token/rotate", operation_id = "rotateAdminToken")]
pub async fn rotate(
    State(state): State<AppState>,
    AdminAccount(account_id): AdminAccount,
) -> ApiResult<Response> {
    let token = keys::generate_admin_token();
    let hash = state.hasher().hash(&token);
    // Sessions end first: if this fails nothing else has changed (and signing in again
    // works); the old token is replaced in one transaction.
    session::end_all(&state, account_id).await?;
    let mut tx = state.db().begin().await?;
    super::accounts::set_admin_token(&mut tx, account_id, &hash).await?;
    tx.commit().await?;
    // Every replica's known-credentials filter holds the new token before it is shown.
    let told = super::api_keys::announce_created(&state, &hash).await;
    // A sign-in with the old token between the two steps made a session after the first
    // sweep; sweep again. The new token is committed and must be shown, so a failure here is
    // only logged (such a sign-in also re-checks its token).
    if let Err(err) = session::end_all(&state, account_id).await {
        tracing::warn!(%account_id, error = %err, "ending sessions after rotating the admin token");
    }
    tracing::info!(%account_id, "admin token rotated");
    let mut resp = (
        told,
        Json(json!({"account_id": account_id, "admin_token": token})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
