//! Web UI sessions, the store: a random session id in an HttpOnly, SameSite=Strict cookie
//! (`__Host-` prefixed and `Secure` when `PUBLIC_BASE_URL` is https); Redis maps it to the
//! account for `SESSION_TTL_SECS` and keeps the set of each account's session ids, so signing
//! out or rotating the admin token ends them all (signing in and out: `routes::session`).
//!
//! A request authenticated by the cookie rather than a bearer credential is held to
//! [`check_cookie_request`]: an unsafe method needs the web UI's `Origin` and, with a body, a
//! JSON content type (no form or `text/plain` post from another site passes).

use axum::http::{header, HeaderMap, Method};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The cookie's name over plain http (development).
pub const COOKIE: &str = "ezp_session";
/// The cookie's name when the public base URL is https: the browser then only accepts it with
/// `Secure`, `Path=/` and no `Domain`, so no other host (e.g. a sibling subdomain) can set it.
pub const SECURE_COOKIE: &str = "__Host-ezp_session";
pub const SESSION_TTL_SECS: u64 = 12 * 3600;

/// The session cookie's name and attributes for one configuration.
#[derive(Debug, Clone)]
pub struct CookieRules {
    pub name: &'static str,
    secure: bool,
}

impl CookieRules {
    pub fn new(config: &ezpulze_common::Config) -> Self {
        let secure = config.public_base_is_https();
        Self {
            name: if secure { SECURE_COOKIE } else { COOKIE },
            secure,
        }
    }

    /// `Set-Cookie` of a new session.
    pub fn set(&self, sid: &str) -> String {
        self.render(sid, SESSION_TTL_SECS)
    }

    /// `Set-Cookie` that clears the session cookie.
    pub fn clear(&self) -> String {
        self.render("", 0)
    }

    fn render(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; HttpOnly{secure}; SameSite=Strict; Path=/; Max-Age={max_age}",
            self.name
        )
    }
}

/// The session id sent in the cookie named `name` (a well-formed one only).
pub fn session_id<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 43 && ezpulze_common::base62::is_base62(v))
}

/// The CSRF rules of a cookie-authenticated request: safe methods pass; any other needs an
/// `Origin` equal to the public base URL's origin, and a body (or any `Content-Type`) must be
/// `application/json`. Bearer-authenticated requests never come here.
pub fn check_cookie_request(
    expected_origin: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refuse("a request signed in by the session cookie must send Origin"))?;
    if origin == "null" || ezpulze_common::config::origin_of(origin) != expected_origin {
        return Err(refuse(
            "Origin is not the web UI's origin (PUBLIC_BASE_URL)",
        ));
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    match headers.get(header::CONTENT_TYPE) {
        Some(ct) if is_json(ct.to_str().unwrap_or_default()) => Ok(()),
        Some(_) => Err(refuse(
            "a request signed in by the session cookie must send Content-Type: application/json",
        )),
        None if has_body => Err(refuse(
            "a request signed in by the session cookie must send Content-Type: application/json",
        )),
        None => Ok(()),
    }
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn refuse(reason: &'static str) -> ApiError {
    metrics::counter!("ezpulze_auth_failures_total", "reason" => "csrf").increment(1);
    ApiError::CsrfRejected(reason)
}

/// The account a session belongs to (None: unknown, expired or ended).
pub async fn account(state: &AppState, sid: &str) -> ApiResult<Option<Uuid>> {
    let mut redis = state.redis();
    let raw: Option<String> = redis.get(state.keyspace().session(sid)).await?;
    Ok(raw.and_then(|s| s.parse().ok()))
}

/// A new session of `account_id`, listed among the account's sessions; returns its id.
pub async fn create(state: &AppState, account_id: Uuid) -> ApiResult<String> {
    let sid = ezpulze_common::base62::random(43);
    let keyspace = state.keyspace();
    let sessions = keyspace.account_sessions(&account_id);
    let mut redis = state.redis();
    // The account's list first, then the session: a session exists only once it is listed,
    // so signing out (which ends every listed session) can never miss one. Two keys in two
    // slots on a Redis Cluster: two steps, in this order.
    let _: () = redis::pipe()
        .sadd(&sessions, &sid)
        .ignore()
        .expire(&sessions, SESSION_TTL_SECS as i64)
        .ignore()
        .query_async(&mut redis)
        .await?;
    let _: () = redis
        .set_ex(
            keyspace.session(&sid),
            account_id.to_string(),
            SESSION_TTL_SECS,
        )
        .await?;
    Ok(sid)
}

/// Ends every session of `account_id`; returns how many were listed.
pub async fn end_all(state: &AppState, account_id: Uuid) -> ApiResult<usize> {
    let keyspace = state.keyspace();
    let sessions = keyspace.account_sessions(&account_id);
    let mut redis = state.redis();
    let mut ended = 0;
    loop {
        // SPOP takes each id once even with concurrent callers; a session made after the
        // last pop is a sign-in after this call (rotation re-checks its token for that).
        let ids: Vec<String> = redis::cmd("SPOP")
            .arg(&sessions)
            .arg(256)
            .query_async(&mut redis)
            .await?;
        if ids.is_empty() {
            return Ok(ended);
        }
        ended += ids.len();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.del(keyspace.session(id)).ignore();
        }
        let _: () = pipe.query_async(&mut redis).await?;
    }
}

/// Forgets one session (and its place in the account's set).
pub async fn forget(state: &AppState, account_id: Uuid, sid: &str) -> ApiResult<()> {
    let keyspace = state.keyspace();
    let mut redis = state.redis();
    let _: () = redis::pipe()
        .del(keyspace.session(sid))
        .ignore()
        .srem(keyspace.account_sessions(&account_id), sid)
        .ignore()
        .query_async(&mut redis)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn cookie_requests_need_the_origin_and_json() {
        let ui = "https://ezpulze.test";
        let ok = headers(&[
            (header::ORIGIN, "https://ezpulze.test"),
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CONTENT_LENGTH, "2"),
        ]);
        assert!(check_cookie_request(ui, &Method::POST, &ok).is_ok());
        assert!(check_cookie_request(ui, &Method::GET, &HeaderMap::new()).is_ok());
        let no_body = headers(&[(header::ORIGIN, "https://ezpulze.test")]);
        assert!(check_cookie_request(ui, &Method::DELETE, &no_body).is_ok());
        for bad in [
            headers(&[(header::CONTENT_TYPE, "application/json")]),
            headers(&[(header::ORIGIN, "null")]),
            headers(&[(header::ORIGIN, "https://evil.test")]),
            headers(&[(header::ORIGIN, "http://ezpulze.test")]),
            headers(&[
                (header::ORIGIN, "https://ezpulze.test"),
                (header::CONTENT_TYPE, "text/plain"),
            ]),
            headers(&[
                (header::ORIGIN, "https://ezpulze.test"),
                (header::CONTENT_LENGTH, "10"),
            ]),
        ] {
            assert!(
                check_cookie_request(ui, &Method::POST, &bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cookie_attributes() {
        let plain = CookieRules {
            name: COOKIE,
            secure: false,
        };
        assert_eq!(
            plain.set("x"),
            "ezp_session=x; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        );
        let secure = CookieRules {
            name: SECURE_COOKIE,
            secure: true,
        };
        assert_eq!(
            secure.clear(),
            "__Host-ezp_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"
        );
    }
}
