//! Web UI sessions: signing in with an admin token sets an HttpOnly, SameSite=Strict cookie
//! holding a random session id; Redis maps it to the account for `SESSION_TTL`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use redis::AsyncCommands;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::admin_account;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub const COOKIE: &str = "ezp_session";
const SESSION_TTL_SECS: u64 = 12 * 3600;

fn key(state: &AppState, sid: &str) -> String {
    format!("{}:session:{sid}", state.config().redis_prefix)
}

pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 43 && ezpulze_common::base62::is_base62(v))
}

pub async fn account(state: &AppState, sid: &str) -> ApiResult<Option<Uuid>> {
    let mut redis = state.redis();
    let raw: Option<String> = redis.get(key(state, sid)).await?;
    Ok(raw.and_then(|s| s.parse().ok()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// `POST /ui/session {"token": "adm_..."}` -> 204 with the session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let account_id = admin_account(&state, body.token.trim()).await?;
    let sid = ezpulze_common::base62::random(43);
    let mut redis = state.redis();
    let _: () = redis
        .set_ex(key(&state, &sid), account_id.to_string(), SESSION_TTL_SECS)
        .await?;
    let cookie =
        format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_TTL_SECS}");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(resp)
}

/// `DELETE /ui/session` -> 204, the session forgotten and the cookie cleared.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(sid) = session_id(&headers) {
        let mut redis = state.redis();
        let _: () = redis.del(key(&state, sid)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ezp_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}
