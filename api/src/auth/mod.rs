//! Who is calling: API keys on `/api/v1`, account admin tokens on `/admin/v1` (and with full
//! access on `/api/v1`), the root token for account creation.

pub mod client_ip;
pub mod key_cache;
pub mod known;
pub mod last_used;
pub mod rate_limit;
pub mod session;

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use ezpulze_common::keys;
use key_cache::KeyRecord;

/// The authenticated caller of a `/api/v1` request.
#[derive(Clone, Debug)]
pub enum Principal {
    Key(Arc<KeyRecord>),
    /// An account admin (the web UI): every scope, no key usage counted.
    Admin {
        account_id: Uuid,
    },
}

impl Principal {
    pub fn account_id(&self) -> Uuid {
        match self {
            Principal::Key(k) => k.account_id,
            Principal::Admin { account_id } => *account_id,
        }
    }

    /// The key whose usage a Broadcast API send counts toward (none for the admin UI).
    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Principal::Key(k) => Some(k.id),
            Principal::Admin { .. } => None,
        }
    }

    /// Whether the caller is a `sk_test_` key (its sends never reach the real Graph API).
    pub fn test_mode(&self) -> bool {
        matches!(self, Principal::Key(k) if k.test_mode)
    }

    /// The dispatches the caller may see by mode: a key only those of its own mode
    /// (`Some(test_mode)`), the account's admin both (`None`). Bound as `$3` of the
    /// dispatch statements: `($3::bool IS NULL OR d.test_mode = $3)`.
    pub fn dispatch_mode(&self) -> Option<bool> {
        match self {
            Principal::Key(k) => Some(k.test_mode),
            Principal::Admin { .. } => None,
        }
    }

    /// Whether the caller holds `scope` (nothing is counted: for what a response shows).
    pub fn holds(&self, scope: &str) -> bool {
        match self {
            Principal::Admin { .. } => true,
            Principal::Key(k) => ezpulze_common::scopes::allows(&k.scopes, scope),
        }
    }

    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        match self {
            Principal::Admin { .. } => Ok(()),
            Principal::Key(k) if ezpulze_common::scopes::allows(&k.scopes, scope) => Ok(()),
            Principal::Key(_) => {
                metrics::counter!("ezpulze_auth_failures_total", "reason" => "insufficient_scope")
                    .increment(1);
                Err(ApiError::InsufficientScope(scope))
            }
        }
    }
}

/// A scope a route requires, as a type, so a handler cannot forget to check it.
pub trait RequiredScope {
    const SCOPE: &'static str;
}

/// Extractor: the caller, checked to hold `S` (or `S`'s resource `:all`).
pub struct Authorized<S: RequiredScope>(pub Principal, pub PhantomData<S>);

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let p = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::MissingApiKey)?;
        p.require(S::SCOPE)?;
        Ok(Authorized(p, PhantomData))
    }
}

/// Extractor: any authenticated caller of `/api/v1`.
impl<St: Send + Sync> FromRequestParts<St> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::MissingApiKey)
    }
}

/// Declares scope marker types: `scope!(BroadcastSend = "broadcast:send");`.
#[macro_export]
macro_rules! scope {
    ($($name:ident = $scope:literal),* $(,)?) => {
        $(
            pub struct $name;
            impl $name {
                /// The scope, also without the trait in scope (the route annotations name it).
                pub const SCOPE: &'static str = $scope;
            }
            impl $crate::auth::RequiredScope for $name {
                const SCOPE: &'static str = $scope;
            }
        )*
    };
}

pub mod scope {
    crate::scope!(
        BroadcastCreate = "broadcast:create",
        BroadcastRead = "broadcast:read",
        BroadcastSend = "broadcast:send",
        BroadcastDelete = "broadcast:delete",
        ContactsCreate = "contacts:create",
        ContactsRead = "contacts:read",
        ContactsReadAll = "contacts:read_all",
        ContactsUpdate = "contacts:update",
        ContactsDelete = "contacts:delete",
        LeadsCreate = "leads:create",
        LeadsRead = "leads:read",
        LeadsReadAll = "leads:read_all",
        LeadsUpdate = "leads:update",
        LeadsAssign = "leads:assign",
        LeadsDelete = "leads:delete",
        TemplateRead = "template:read",
        TemplateCreate = "template:create",
        TemplateUpdate = "template:update",
        TemplateDelete = "template:delete",
        ChatbotFlowsWebhook = "chatbot_flows:webhook",
        WebhooksManage = "webhooks:manage",
    );
}

/// The credential sent: `Authorization: Bearer <x>` or `X-API-Key: <x>`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn fail(reason: &'static str, err: ApiError) -> ApiError {
    metrics::counter!("ezpulze_auth_failures_total", "reason" => reason).increment(1);
    err
}

/// The `/api/v1` layer: authenticates, checks expiry, status and IP, applies the hourly rate
/// limit, and adds the rate-limit headers to every response it lets through. A hand-written
/// tower service rather than `middleware::from_fn`, which clones and boxes the inner service
/// for every request (measured on `make bench-auth`).
#[derive(Clone)]
pub struct ApiAuthLayer {
    state: AppState,
}

impl ApiAuthLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for ApiAuthLayer {
    type Service = ApiAuth<S>;

    fn layer(&self, inner: S) -> ApiAuth<S> {
        ApiAuth {
            state: self.state.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct ApiAuth<S> {
    state: AppState,
    inner: S,
}

impl<S> tower::Service<Request> for ApiAuth<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone is the one that was not polled ready; take the ready one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            Ok(match authenticate_api(&state, &mut req).await {
                Ok(headers) => with_headers(inner.call(req).await?, headers),
                Err((err, headers)) => with_headers(err.into_response(), headers),
            })
        })
    }
}

fn with_headers(mut resp: Response, headers: HeaderSet) -> Response {
    if let Some(h) = headers {
        let map = resp.headers_mut();
        map.reserve(h.len());
        map.extend(h);
    }
    resp
}

/// The fallback of the whole router: under `/api/v1` the caller is authenticated first (an
/// unknown route answers 401 to a bad key, 404 to a good one), elsewhere plain 404.
pub async fn not_found_after_auth(State(state): State<AppState>, mut req: Request) -> Response {
    if !req.uri().path().starts_with("/api/v1/") {
        return ApiError::NotFound.into_response();
    }
    match authenticate_api(&state, &mut req).await {
        Ok(headers) => with_headers(ApiError::NotFound.into_response(), headers),
        Err((err, headers)) => with_headers(err.into_response(), headers),
    }
}

type HeaderSet = Option<[(HeaderName, HeaderValue); 5]>;

async fn authenticate_api(
    state: &AppState,
    req: &mut Request,
) -> Result<HeaderSet, (ApiError, HeaderSet)> {
    let raw = credential(req.headers())
        .ok_or_else(|| (fail("missing", ApiError::MissingApiKey), None))?;
    if raw.starts_with(keys::ADMIN_PREFIX) {
        let account_id = admin_account(state, raw).await.map_err(|e| (e, None))?;
        req.extensions_mut().insert(Principal::Admin { account_id });
        return Ok(None);
    }
    let hash = state.hasher().hash(raw);
    // A fresh cached key is a well-formed one (only real keys are cached): the format and
    // checksum are checked before anything reaches Postgres.
    let record = match state.key_cache().cached(&hash) {
        Some(record) => record,
        None => {
            keys::parse(raw).map_err(|_| (fail("malformed", ApiError::InvalidApiKey), None))?;
            state
                .key_cache()
                .get(
                    state.db(),
                    (state.redis_ref(), &state.config().redis_prefix),
                    hash,
                )
                .await
                .map_err(|e| (ApiError::from(e), None))?
                .ok_or_else(|| (fail("unknown", ApiError::InvalidApiKey), None))?
        }
    };
    if !record.active {
        return Err((fail("inactive", ApiError::KeyInactive), None));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if record
        .expires_at
        .is_some_and(|t| t.timestamp_millis() <= now_ms)
    {
        return Err((fail("expired", ApiError::KeyExpired), None));
    }
    let ip = client_ip::client_ip(req, &state.config().trusted_proxies);
    if !ip.is_some_and(|ip| record.ip_allowed(ip)) {
        return Err((fail("ip_not_allowed", ApiError::IpNotAllowed), None));
    }
    let headers = match record.rate_limit_per_hour {
        None => None,
        Some(limit) => {
            let mut redis = state.redis();
            let d = state
                .rate_limiter()
                .check(
                    &mut redis,
                    record.id,
                    limit.max(1) as u32,
                    &record.rate_block,
                )
                .await
                .map_err(|e| (ApiError::from(e), None))?;
            let headers = rate_headers(&d, &record, now_ms.div_euclid(1000));
            if !d.allowed {
                metrics::counter!("ezpulze_rate_limited_total").increment(1);
                return Err((
                    ApiError::RateLimited {
                        retry_after_secs: d.retry_after_secs,
                    },
                    Some(headers),
                ));
            }
            Some(headers)
        }
    };
    state.last_used().note(&record, now_ms.div_euclid(1000));
    req.extensions_mut().insert(Principal::Key(record));
    Ok(headers)
}

/// The five rate-limit headers; `now_secs` is the request's clock (Unix seconds).
fn rate_headers(
    d: &rate_limit::Decision,
    key: &KeyRecord,
    now_secs: i64,
) -> [(HeaderName, HeaderValue); 5] {
    let reset_in = d
        .reset_at
        .saturating_sub(u64::try_from(now_secs).unwrap_or(0));
    let (limit, policy) = key.limit_headers.clone().unwrap_or_else(|| {
        (
            HeaderValue::from(d.limit),
            HeaderValue::from_static("\"hourly\""),
        )
    });
    let ratelimit =
        HeaderValue::from_maybe_shared(bytes::Bytes::from(itoa_pair(d.remaining, reset_in)))
            .unwrap_or(HeaderValue::from_static("\"hourly\""));
    [
        (X_RATELIMIT_LIMIT, limit),
        (X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining)),
        (X_RATELIMIT_RESET, HeaderValue::from(d.reset_at)),
        (RATELIMIT_POLICY, policy),
        (RATELIMIT, ratelimit),
    ]
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `"hourly";r=<remaining>;t=<seconds to reset>` (the IETF `RateLimit` field).
fn itoa_pair(remaining: u64, reset_in: u64) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(40);
    let _ = write!(out, "\"hourly\";r={remaining};t={reset_in}");
    out
}

/// The account of an admin token, or 401.
pub async fn admin_account(state: &AppState, raw: &str) -> Result<Uuid, ApiError> {
    if !keys::looks_like_admin_token(raw) {
        return Err(fail("malformed", ApiError::InvalidApiKey));
    }
    let hash = state.hasher().hash(raw);
    if !state.key_cache().known.may_be_admin_token(&hash)
        && !state
            .key_cache()
            .recently_created(
                &mut state.redis(),
                &state.config().redis_prefix,
                &hex::encode(hash),
            )
            .await
    {
        return Err(fail("unknown", ApiError::InvalidApiKey));
    }
    let account: Option<Uuid> =
        sqlx::query_scalar("SELECT account_id FROM admin_tokens WHERE token_hash = $1")
            .bind(&hash[..])
            .fetch_optional(state.db())
            .await?;
    account.ok_or_else(|| fail("unknown", ApiError::InvalidApiKey))
}

/// Extractor for `/admin/v1`: the account whose admin token was sent, or whose web UI session
/// cookie was (then held to the CSRF rules of [`session::check_cookie_request`]).
pub struct AdminAccount(pub Uuid);

impl FromRequestParts<AppState> for AdminAccount {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(Principal::Admin { account_id }) = parts.extensions.get::<Principal>() {
            return Ok(AdminAccount(*account_id));
        }
        let account_id = match credential(&parts.headers) {
            Some(raw) => admin_account(state, raw).await?,
            None => match session::session_id(&parts.headers, state.session_cookie().name) {
                Some(sid) => {
                    let account = session::account(state, sid)
                        .await?
                        .ok_or_else(|| fail("session_expired", ApiError::InvalidApiKey))?;
                    // A browser sends the cookie whoever made the page: the request must
                    // also show it came from the web UI.
                    session::check_cookie_request(
                        state.ui_origin(),
                        &parts.method,
                        &parts.headers,
                    )?;
                    account
                }
                None => return Err(fail("missing", ApiError::MissingApiKey)),
            },
        };
        parts.extensions.insert(Principal::Admin { account_id });
        Ok(AdminAccount(account_id))
    }
}

/// Extractor: the root token (`EZPULZE_ROOT_TOKEN`), compared in constant time.
pub struct Root;

impl FromRequestParts<AppState> for Root {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let sent =
            credential(&parts.headers).ok_or_else(|| fail("missing", ApiError::MissingApiKey))?;
        let Some(root) = state.config().root_token.as_ref() else {
            return Err(fail("unknown", ApiError::InvalidApiKey));
        };
        let expected = root.expose_secret().as_bytes();
        if sent.len() == expected.len() && bool::from(sent.as_bytes().ct_eq(expected)) {
            Ok(Root)
        } else {
            Err(fail("unknown", ApiError::InvalidApiKey))
        }
    }
}
