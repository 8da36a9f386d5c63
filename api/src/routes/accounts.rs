//! `POST /admin/v1/accounts` (root token): a new account and its admin token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::contacts::fields;
use crate::auth::Root;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::state::AppState;
use ezpulze_common::keys;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    name: String,
}

/// Create an account and its admin token
#[utoipa::path(post, path = "/accounts", operation_id = "createAccount",
    security(("RootToken" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _root: Root,
    ApiJson(body): ApiJson<CreateAccount>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = fields::short_name(&body.name)?;
    let (id, token) = create_account(&state, name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": name, "admin_token": token})),
    ))
}

/// Creates an account and its first admin token (returned once, stored hashed).
pub async fn create_account(state: &AppState, name: &str) -> ApiResult<(Uuid, String)> {
    let id = Uuid::now_v7();
    let token = keys::generate_admin_token();
    let hash = state.hasher().hash(&token);
    let mut tx = state.db().begin().await?;
    sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    set_admin_token(&mut tx, id, &hash).await?;
    tx.commit().await?;
    // Retried in the background if it fails: the token may take a moment to work on other
    // replicas then (and at once once they reload, within a minute).
    let _ = super::api_keys::announce_created(state, &hash).await;
    Ok((id, token))
}

/// Makes `hash` the account's only admin token (any earlier one stops working).
pub async fn set_admin_token(
    tx: &mut sqlx::PgConnection,
    account: Uuid,
    hash: &[u8; 32],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_tokens WHERE account_id = $1")
        .bind(account)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO admin_tokens (token_hash, account_id) VALUES ($1, $2)")
        .bind(&hash[..])
        .bind(account)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
