//! Web UI sessions, the store: a random session id in an HttpOnly, SameSite=Strict cookie;
//! Redis maps it to the account for `SESSION_TTL_SECS` (signing in and out:
//! `routes::session`).

use axum::http::{header, HeaderMap};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::state::AppState;

pub const COOKIE: &str = "ezp_session";
pub const SESSION_TTL_SECS: u64 = 12 * 3600;

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

/// The account a session belongs to (None: unknown or expired).
pub async fn account(state: &AppState, sid: &str) -> ApiResult<Option<Uuid>> {
    let mut redis = state.redis();
    let raw: Option<String> = redis.get(state.keyspace().session(sid)).await?;
    Ok(raw.and_then(|s| s.parse().ok()))
}

/// A new session of `account_id`; returns its id.
pub async fn create(state: &AppState, account_id: Uuid) -> ApiResult<String> {
    let sid = ezpulze_common::base62::random(43);
    let mut redis = state.redis();
    let _: () = redis
        .set_ex(
            state.keyspace().session(&sid),
            account_id.to_string(),
            SESSION_TTL_SECS,
        )
        .await?;
    Ok(sid)
}

/// Forgets a session.
pub async fn forget(state: &AppState, sid: &str) -> ApiResult<()> {
    let mut redis = state.redis();
    let _: () = redis.del(state.keyspace().session(sid)).await?;
    Ok(())
}
