//! `POST /ui/session` and `DELETE /ui/session`: the web UI signs in with an admin token and
//! gets the session cookie; signing out ends every session of the account (the store:
//! `auth::session`).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::admin_account;
use crate::auth::session;
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
    let token = body.token.trim();
    let account_id = admin_account(&state, token).await?;
    let sid = session::create(&state, account_id).await?;
    // A rotation that committed while this session was being made ends the sessions it can
    // see after its commit; this one is only listed now, so check the token once more.
    if admin_account(&state, token).await.is_err() {
        session::forget(&state, account_id, &sid).await?;
        return Err(ApiError::InvalidApiKey);
    }
    with_cookie(&state.session_cookie().set(&sid))
}

/// Web UI sign-out
///
/// `DELETE /ui/session` -> 204: every session of the account ended and the cookie cleared.
#[utoipa::path(delete, path = "/ui/session", operation_id = "signOut")]
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let cookie = state.session_cookie();
    if let Some(sid) = session::session_id(&headers, cookie.name) {
        if let Some(account_id) = session::account(&state, sid).await? {
            session::check_cookie_request(state.ui_origin(), &Method::DELETE, &headers)?;
            session::end_all(&state, account_id).await?;
        }
    }
    with_cookie(&cookie.clear())
}

fn with_cookie(cookie: &str) -> ApiResult<Response> {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(resp)
}
