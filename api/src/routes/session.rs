//! `POST /ui/session` and `DELETE /ui/session`: the web UI signs in with an admin token and
//! gets the session cookie (the store: `auth::session`).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::admin_account;
use crate::auth::session::{self, COOKIE, SESSION_TTL_SECS};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// Web UI sign-in
///
/// `POST /ui/session {"token": "adm_..."}` -> 204 with the session cookie.
#[utoipa::path(post, path = "/ui/session", operation_id = "signIn")]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let account_id = admin_account(&state, body.token.trim()).await?;
    let sid = session::create(&state, account_id).await?;
    let cookie =
        format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_TTL_SECS}");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(resp)
}

/// Web UI sign-out
///
/// `DELETE /ui/session` -> 204, the session forgotten and the cookie cleared.
#[utoipa::path(delete, path = "/ui/session", operation_id = "signOut")]
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(sid) = session::session_id(&headers) {
        session::forget(&state, sid).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ezp_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}
