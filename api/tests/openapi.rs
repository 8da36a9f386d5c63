//! The OpenAPI document is generated from the router (`ezpulze_api::routes::openapi`): each
//! route is registered once with its annotated handler, which gives its path, method,
//! parameters and required scope. The tests here check what the generation cannot: that the
//! hand-kept fragments (`api/openapi/base.json`, `api/openapi/operations.json`) describe exactly
//! the generated operations, that `api/openapi.json` (the document written out for tools) is
//! current, that each documented scope is the one the route enforces, and, in
//! `real_answers_match_the_document`, that the real api (Postgres and Redis, like the other
//! integration tests) answers every documented operation at its documented path, with a status,
//! body and headers the document lists.
//!
//! Adding a route: annotate its handler with `#[utoipa::path]`, register it with `routes!` in
//! its module's router, add its prose (description, request body, responses) to
//! `api/openapi/operations.json` and a call to `real_answers_match_the_document`, then rewrite
//! `api/openapi.json`: `EZPULZE_WRITE_OPENAPI=1 cargo test -p ezpulze-api --test openapi` (and
//! validate it: `python3 -m openapi_spec_validator api/openapi.json`).

use std::collections::BTreeSet;

use serde_json::Value;

use ezpulze_api::routes::openapi::{self, METHODS};

const COMMITTED: &str = include_str!("../openapi.json");
const OPERATIONS: &str = include_str!("../openapi/operations.json");

type RouteSet = BTreeSet<(String, String)>;

fn doc() -> Value {
    openapi::document().json.clone()
}

/// Every (path, method) the document lists, each an operation object.
fn documented_routes(doc: &Value) -> RouteSet {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = RouteSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("paths[{path:?}] is an object"));
        for (method, op) in item {
            if METHODS.contains(&method.as_str()) {
                assert!(op.is_object(), "{method} {path} is an operation object");
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

/// (path, method, operation) of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    documented_routes(doc)
        .into_iter()
        .map(|(p, m)| {
            let op = doc["paths"][&p][&m].clone();
            (p, m, op)
        })
        .collect()
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = openapi::document();
    if std::env::var_os("EZPULZE_WRITE_OPENAPI").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        std::fs::write(path, format!("{}\n", generated.text)).expect("write api/openapi.json");
        return;
    }
    let committed: Value = serde_json::from_str(COMMITTED).expect("api/openapi.json is JSON");
    assert!(
        committed == generated.json,
        "api/openapi.json is not the generated document: rewrite it with \
         EZPULZE_WRITE_OPENAPI=1 cargo test -p ezpulze-api --test openapi"
    );
}

#[test]
fn the_fragment_describes_exactly_the_generated_operations() {
    let doc = doc();
    let prose: serde_json::Map<String, Value> =
        serde_json::from_str(OPERATIONS).expect("api/openapi/operations.json is a JSON object");
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has an operationId"))
            .to_string();
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        assert!(
            prose.contains_key(&id),
            "{method} {path} ({id}) has no entry in api/openapi/operations.json"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has a summary"
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} documents its responses"
        );
        for p in path.split('/').filter(|s| s.starts_with('{')) {
            let name = p.trim_matches(|c| c == '{' || c == '}');
            let declared = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|x| x["name"] == name && x["in"] == "path" && x["required"] == true)
            });
            assert!(
                declared,
                "{method} {path} declares its path parameter {name}"
            );
        }
    }
    let stale: Vec<&String> = prose.keys().filter(|k| !ids.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "api/openapi/operations.json describes operations the router does not register: {stale:?}"
    );
}

#[test]
fn public_routes_state_their_scope_and_rate_limit_headers() {
    let doc = doc();
    for (path, method, op) in operations(&doc) {
        let scope = op.get("x-required-scope").and_then(Value::as_str);
        let public = path.starts_with("/api/v1/");
        let unscoped = ["/api/v1/me", "/api/v1/ping"].contains(&path.as_str());
        assert_eq!(
            scope.is_some(),
            public && !unscoped,
            "x-required-scope of {method} {path}: every /api/v1 route but me and ping has one"
        );
        if let Some(scope) = scope {
            let description = op["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(scope),
                "the description of {method} {path} names {scope}"
            );
            for requirement in op["security"].as_array().into_iter().flatten() {
                for (scheme, scopes) in requirement.as_object().into_iter().flatten() {
                    assert_eq!(
                        scopes,
                        &serde_json::json!([scope]),
                        "{method} {path}: {scheme} requires {scope}"
                    );
                }
            }
        }
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let security = op["security"]
            .as_array()
            .expect("public routes declare security");
        assert!(!security.is_empty(), "{method} {path} requires credentials");
        let responses = op["responses"].as_object().expect("responses");
        for status in ["401", "403", "429"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} documents {status}"
            );
        }
        let ok = responses
            .iter()
            .find(|(s, _)| s.starts_with('2'))
            .unwrap_or_else(|| panic!("{method} {path} documents a success"))
            .1;
        for header in [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "RateLimit-Policy",
            "RateLimit",
        ] {
            assert!(
                ok["headers"].get(header).is_some(),
                "{method} {path} success documents {header}"
            );
        }
    }
}

#[test]
fn errors_rate_limits_and_idempotency_are_described() {
    let doc = doc();
    let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    for field in ["code", "message", "request_id", "details", "required_scope"] {
        assert!(
            error["properties"].get(field).is_some(),
            "the error body documents {field}"
        );
    }
    let codes: Vec<&str> = error["properties"]["code"]["enum"]
        .as_array()
        .expect("error codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in [
        "missing_api_key",
        "invalid_api_key",
        "key_inactive",
        "key_expired",
        "insufficient_scope",
        "ip_not_allowed",
        "rate_limited",
        "not_found",
        "conflict",
        "idempotency_conflict",
        "payload_too_large",
        "validation_failed",
        "unsupported_media_type",
        "invalid_encoding",
        "malformed_csv",
        "invalid_header",
        "too_many_rows",
        "internal",
    ] {
        assert!(codes.contains(&code), "error code {code} is documented");
    }
    let limited = &doc["components"]["responses"]["RateLimitedRL"];
    assert!(
        limited["headers"].get("Retry-After").is_some(),
        "429 documents Retry-After"
    );
    let send = &doc["paths"]["/api/v1/broadcasts/{id}/send"]["post"];
    let params = send["parameters"].as_array().expect("send parameters");
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "the send route documents Idempotency-Key"
    );
    assert!(send["responses"]["202"]["headers"]
        .get("Idempotent-Replayed")
        .is_some());
    assert!(
        send["responses"].get("409").is_some(),
        "the send route documents idempotency_conflict"
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for scheme in ["ApiKeyBearer", "ApiKeyHeader", "AdminToken", "RootToken"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme}");
    }
    assert_eq!(
        doc["paths"]["/admin/v1/accounts"]["post"]["security"][0]["RootToken"],
        Value::Array(vec![])
    );
}

// ---------------------------------------------------------------------------------------------
// The document against the real server: every call below is answered with a status the
// document lists for that route, a body that fits the documented schema, and the documented
// headers (request id everywhere, rate-limit headers on `/api/v1` for a limited key).

mod support;

use serde_json::json;
use support::{TestApp, ROOT};

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        schema = doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    schema
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        other => panic!("unknown schema type {other}"),
    }
}

/// A small JSON Schema check (the keywords the document uses), collecting mismatches.
fn conform(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, schema);
    for sub in s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        conform(doc, sub, v, at, errors);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = s.get(key).and_then(Value::as_array) {
            let fits = alternatives
                .iter()
                .filter(|a| {
                    let mut e = Vec::new();
                    conform(doc, a, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if fits == 0 || (key == "oneOf" && fits > 1) {
                errors.push(format!("{at}: {v} fits {fits} of the {key} alternatives"));
            }
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Value::Object(map) = v {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !map.contains_key(r) {
                errors.push(format!("{at}: required field {r} is missing"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in map {
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(p), _) => conform(doc, p, val, &format!("{at}.{k}"), errors),
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{at}: field {k} is not documented"))
                }
                (None, Some(extra @ Value::Object(_))) => {
                    conform(doc, extra, val, &format!("{at}.{k}"), errors)
                }
                _ => {}
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (v, s.get("items")) {
        for (i, it) in items.iter().enumerate() {
            conform(doc, item, it, &format!("{at}[{i}]"), errors);
        }
    }
}

struct Verifier<'a> {
    app: &'a TestApp,
    doc: Value,
    errors: Vec<String>,
    seen: BTreeSet<(String, String, u16)>,
}

impl Verifier<'_> {
    /// Calls `method path` (`route` is its documented path) and checks the answer against the
    /// document; returns the body. `want` is the status this call must get.
    async fn call(
        &mut self,
        method: &str,
        route: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let resp = self.app.request(method, path, token, body).await;
        self.check(method, route, path, token, resp, want).await
    }

    /// [`Self::call`] with a raw body of content type `content_type` (a file upload).
    async fn upload(
        &mut self,
        route: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &[u8],
        want: u16,
    ) -> Value {
        let headers = [("content-type", content_type)];
        let resp = self
            .app
            .request_with("POST", path, token, &headers, Some(body.to_vec()))
            .await;
        self.check("POST", route, path, token, resp, want).await
    }

    /// Checks the answer to `method path` against the document; returns the body.
    async fn check(
        &mut self,
        method: &str,
        route: &str,
        path: &str,
        token: &str,
        resp: reqwest::Response,
        want: u16,
    ) -> Value {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let what = format!("{method} {path} -> {status}");
        assert_eq!(status, want, "{what}: {text}");
        self.seen
            .insert((route.to_string(), method.to_lowercase(), status));
        let op = &self.doc["paths"][route][method.to_lowercase()];
        assert!(op.is_object(), "{method} {route} is documented");
        let Some(documented) = op["responses"].get(status.to_string()) else {
            self.errors
                .push(format!("{what}: status {status} is not documented"));
            return value;
        };
        let documented = resolve(&self.doc, documented).clone();
        for (name, _) in documented["headers"].as_object().into_iter().flatten() {
            // Rate-limit headers come only for keys with a limit (not for admin tokens).
            let rate_limited_caller = token.starts_with("sk_");
            let optional = match name.as_str() {
                "Retry-After" => status != 429,
                "Idempotent-Replayed" | "Set-Cookie" => true,
                n if n.starts_with("X-RateLimit") || n.starts_with("RateLimit") => {
                    !rate_limited_caller
                }
                _ => false,
            };
            if !optional && !headers.contains_key(name.as_str()) {
                self.errors
                    .push(format!("{what}: documented header {name} is missing"));
            }
        }
        match documented["content"].get("application/json") {
            Some(media) => {
                let mut errors = Vec::new();
                conform(&self.doc, &media["schema"], &value, "body", &mut errors);
                self.errors
                    .extend(errors.into_iter().map(|e| format!("{what}: {e}")));
            }
            None if documented.get("content").is_none() && !text.is_empty() => {
                self.errors.push(format!(
                    "{what}: a body came that the document does not describe"
                ));
            }
            None => {}
        }
        value
    }
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {v}"))
        .to_string()
}

#[tokio::test]
async fn real_answers_match_the_document() {
    let app = TestApp::spawn().await;
    let mut v = Verifier {
        app: &app,
        doc: doc(),
        errors: Vec::new(),
        seen: BTreeSet::new(),
    };

    // Operations and the account.
    v.call("GET", "/healthz", "/healthz", "", None, 200).await;
    v.call("GET", "/readyz", "/readyz", "", None, 200).await;
    v.call("GET", "/ping", "/ping", "", None, 200).await;
    let account = v
        .call(
            "POST",
            "/admin/v1/accounts",
            "/admin/v1/accounts",
            ROOT,
            Some(json!({"name": "Docs"})),
            201,
        )
        .await;
    let admin = account["admin_token"]
        .as_str()
        .expect("admin token")
        .to_string();
    let admin = admin.as_str();
    v.call(
        "POST",
        "/admin/v1/accounts",
        "/admin/v1/accounts",
        "nope",
        Some(json!({"name": "x"})),
        401,
    )
    .await;
    v.call(
        "POST",
        "/ui/session",
        "/ui/session",
        "",
        Some(json!({"token": admin})),
        204,
    )
    .await;
    v.call("DELETE", "/ui/session", "/ui/session", "", None, 204)
        .await;

    // Keys.
    v.call(
        "GET",
        "/admin/v1/scopes",
        "/admin/v1/scopes",
        admin,
        None,
        200,
    )
    .await;
    let key_body = json!({"name": "docs", "scope_group": "full_access"});
    let key = v
        .call(
            "POST",
            "/admin/v1/api-keys",
            "/admin/v1/api-keys",
            admin,
            Some(key_body),
            201,
        )
        .await;
    let key_id = id(&key);
    let k = format!("/admin/v1/api-keys/{key_id}");
    v.call(
        "GET",
        "/admin/v1/api-keys",
        "/admin/v1/api-keys?per_page=25&sort=name",
        admin,
        None,
        200,
    )
    .await;
    v.call(
        "GET",
        "/admin/v1/api-keys",
        "/admin/v1/api-keys?per_page=7",
        admin,
        None,
        422,
    )
    .await;
    v.call("GET", "/admin/v1/api-keys/{id}", &k, admin, None, 200)
        .await;
    let patch = json!({"name": "docs key", "allowed_ips": ["127.0.0.1", "::1"]});
    v.call(
        "PATCH",
        "/admin/v1/api-keys/{id}",
        &k,
        admin,
        Some(patch),
        200,
    )
    .await;
    v.call(
        "GET",
        "/admin/v1/api-keys/{id}/usage",
        &format!("{k}/usage"),
        admin,
        None,
        200,
    )
    .await;
    v.call(
        "GET",
        "/admin/v1/api-keys/{id}/docs",
        &format!("{k}/docs"),
        admin,
        None,
        200,
    )
    .await;
    let regen = v
        .call(
            "POST",
            "/admin/v1/api-keys/{id}/regenerate",
            &format!("{k}/regenerate"),
            admin,
            None,
            200,
        )
        .await;
    let secret = regen["key"].as_str().expect("key").to_string();
    let sk = secret.as_str();
    let narrow = json!({"name": "narrow", "scopes": ["template:read"]});
    let narrow = v
        .call(
            "POST",
            "/admin/v1/api-keys",
            "/admin/v1/api-keys",
            admin,
            Some(narrow),
            201,
        )
        .await;
    let narrow_key = narrow["key"].as_str().expect("key").to_string();
    let gone = json!({"name": "gone", "scopes": ["contacts:read"]});
    let gone = v
        .call(
            "POST",
            "/admin/v1/api-keys",
            "/admin/v1/api-keys",
            admin,
            Some(gone),
            201,
        )
        .await;
    let g = format!("/admin/v1/api-keys/{}", id(&gone));
    v.call("DELETE", "/admin/v1/api-keys/{id}", &g, admin, None, 204)
        .await;
    v.call("GET", "/admin/v1/api-keys/{id}", &g, admin, None, 404)
        .await;

    // WhatsApp settings.
    let settings = json!({"phone_numbers": [{"phone_number_id": "106540352242922",
        "display_phone_number": "+1 555 0100", "access_token": "EAAG-test"}],
        "app_secret": "0123456789abcdef", "verify_token": "docs-verify"});
    v.call(
        "PUT",
        "/admin/v1/whatsapp",
        "/admin/v1/whatsapp",
        admin,
        Some(settings),
        200,
    )
    .await;
    v.call(
        "GET",
        "/admin/v1/whatsapp",
        "/admin/v1/whatsapp",
        admin,
        None,
        200,
    )
    .await;
    // The portfolio's messaging limit.
    let ml = "/admin/v1/whatsapp/messaging-limit";
    v.call("PUT", ml, ml, admin, Some(json!({"tier": "TIER_2K"})), 200)
        .await;
    v.call("PUT", ml, ml, admin, Some(json!({"tier": "TIER_1K"})), 422)
        .await;
    v.call("GET", ml, ml, admin, None, 200).await;
    let pml = "/api/v1/whatsapp/messaging-limit";
    v.call("GET", pml, pml, sk, None, 200).await;
    let nl = "/api/v1/whatsapp/numbers/limits";
    v.call("GET", nl, nl, sk, None, 200).await;
    v.call("GET", nl, nl, &narrow_key, None, 403).await;
    let wh = "/webhooks/whatsapp";
    let verify = format!("{wh}?hub.mode=subscribe&hub.verify_token=docs-verify&hub.challenge=42");
    v.call("GET", wh, &verify, "", None, 200).await;
    v.call(
        "GET",
        wh,
        &format!("{wh}?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1"),
        "",
        None,
        403,
    )
    .await;
    v.call(
        "POST",
        wh,
        wh,
        "",
        Some(json!({"object": "whatsapp_business_account", "entry": []})),
        401,
    )
    .await;

    // The public API with the key.
    v.call("GET", "/api/v1/me", "/api/v1/me", sk, None, 200)
        .await;
    v.call("GET", "/api/v1/me", "/api/v1/me", admin, None, 200)
        .await;
    v.call("GET", "/api/v1/me", "/api/v1/me", "", None, 401)
        .await;
    v.call("GET", "/api/v1/ping", "/api/v1/ping", sk, None, 200)
        .await;
    let tpl = json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped", "example": {"body_text": [["Ann", "1"]]}}]});
    let t = v
        .call(
            "POST",
            "/api/v1/templates",
            "/api/v1/templates",
            sk,
            Some(tpl.clone()),
            201,
        )
        .await;
    v.call(
        "POST",
        "/api/v1/templates",
        "/api/v1/templates",
        sk,
        Some(tpl),
        409,
    )
    .await;
    v.call(
        "POST",
        "/api/v1/templates",
        "/api/v1/templates",
        &narrow_key,
        Some(json!({})),
        403,
    )
    .await;
    v.call(
        "POST",
        "/api/v1/templates",
        "/api/v1/templates",
        sk,
        Some(json!({"name": "x"})),
        422,
    )
    .await;
    // The account has no WABA id: a sync has nothing to read.
    v.call(
        "POST",
        "/api/v1/templates/sync",
        "/api/v1/templates/sync",
        sk,
        None,
        409,
    )
    .await;
    v.call(
        "POST",
        "/api/v1/templates/sync",
        "/api/v1/templates/sync",
        &narrow_key,
        None,
        403,
    )
    .await;
    let tp = format!("/api/v1/templates/{}", id(&t));
    v.call(
        "GET",
        "/api/v1/templates",
        "/api/v1/templates",
        &narrow_key,
        None,
        200,
    )
    .await;
    v.call("GET", "/api/v1/templates/{id}", &tp, sk, None, 200)
        .await;
    v.call(
        "GET",
        "/api/v1/templates/{id}",
        "/api/v1/templates/not-an-id",
        sk,
        None,
        404,
    )
    .await;
    v.call(
        "PATCH",
        "/api/v1/templates/{id}",
        &tp,
        sk,
        Some(json!({"category": "MARKETING"})),
        200,
    )
    .await;

    let b = json!({"name": "Docs broadcast", "template_id": id(&t)});
    let b = v
        .call(
            "POST",
            "/api/v1/broadcasts",
            "/api/v1/broadcasts",
            sk,
            Some(b),
            201,
        )
        .await;
    let bp = format!("/api/v1/broadcasts/{}", id(&b));
    v.call(
        "GET",
        "/api/v1/broadcasts",
        "/api/v1/broadcasts",
        sk,
        None,
        200,
    )
    .await;
    v.call("GET", "/api/v1/broadcasts/{id}", &bp, sk, None, 200)
        .await;
    v.call(
        "GET",
        "/admin/v1/broadcasts",
        "/admin/v1/broadcasts",
        admin,
        None,
        200,
    )
    .await;
    let example = format!("/admin/v1/broadcasts/{}/example", id(&b));
    v.call(
        "GET",
        "/admin/v1/broadcasts/{id}/example",
        &example,
        admin,
        None,
        200,
    )
    .await;
    v.call("DELETE", "/api/v1/templates/{id}", &tp, sk, None, 409)
        .await;

    let send = "/api/v1/broadcasts/{id}/send";
    let send_path = format!("{bp}/send");
    let recipients = json!({"recipients": [
        {"to": "+14155550123", "ref": "customer-42", "variables": {"body": ["Ann", "4721"]}},
        {"to": "+14155550124", "variables": {"body": ["Bob", "4722"]}},
        {"to": "12"}]});
    let sent = v
        .call("POST", send, &send_path, sk, Some(recipients.clone()), 202)
        .await;
    let scheduled = json!({"recipients": [{"to": "+14155550125", "variables": {"body": ["Cy", "1"]}}],
        "scheduled_at": "2099-01-01T00:00:00Z"});
    v.call("POST", send, &send_path, sk, Some(scheduled), 422)
        .await;
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let scheduled = json!({"recipients": [{"to": "+14155550125", "variables": {"body": ["Cy", "1"]}}],
        "scheduled_at": later});
    let sched = v
        .call("POST", send, &send_path, sk, Some(scheduled), 202)
        .await;
    v.call(
        "POST",
        send,
        &send_path,
        sk,
        Some(json!({"recipients": [{"to": "12"}]})),
        422,
    )
    .await;
    // Idempotency: replay and conflict.
    for (round, (body, want)) in [
        (recipients.clone(), 202),
        (recipients.clone(), 202),
        (json!({"recipients": []}), 409),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = app
            .client
            .post(app.url(&send_path))
            .bearer_auth(sk)
            .header("Idempotency-Key", "docs-1")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), want);
        let replayed = resp
            .headers()
            .get("idempotent-replayed")
            .map(|h| h.as_bytes().to_vec());
        assert_eq!(
            replayed,
            (round == 1).then(|| b"true".to_vec()),
            "Idempotent-Replayed on round {round}"
        );
        v.seen.insert((send.to_string(), "post".to_string(), want));
    }

    // The hourly limit: a key allowed one request an hour gets 429 with Retry-After next.
    let one = json!({"name": "one an hour", "scopes": ["template:read"], "rate_limit_per_hour": 1});
    let one = v
        .call(
            "POST",
            "/admin/v1/api-keys",
            "/admin/v1/api-keys",
            admin,
            Some(one),
            201,
        )
        .await;
    let one = one["key"].as_str().expect("key").to_string();
    v.call("GET", "/api/v1/me", "/api/v1/me", &one, None, 200)
        .await;
    v.call("GET", "/api/v1/me", "/api/v1/me", &one, None, 429)
        .await;

    let d = sent["dispatch_id"].as_str().expect("dispatch id");
    let msg = sent["messages"][0]["id"].as_str().expect("message id");
    let dp = format!("/api/v1/dispatches/{d}");
    v.call("GET", "/api/v1/dispatches/{id}", &dp, sk, None, 200)
        .await;
    v.call(
        "GET",
        "/api/v1/dispatches/{id}/messages",
        &format!("{dp}/messages?limit=1"),
        sk,
        None,
        200,
    )
    .await;
    let rejections = "/api/v1/dispatches/{id}/rejections";
    v.call(
        "GET",
        rejections,
        &format!("{dp}/rejections?limit=1"),
        sk,
        None,
        200,
    )
    .await;
    v.call(
        "GET",
        rejections,
        &format!("{dp}/rejections?cursor=x"),
        sk,
        None,
        422,
    )
    .await;
    v.call(
        "GET",
        "/api/v1/messages/{id}",
        &format!("/api/v1/messages/{msg}"),
        sk,
        None,
        200,
    )
    .await;
    let sp = format!(
        "/api/v1/dispatches/{}/cancel",
        sched["dispatch_id"].as_str().expect("id")
    );
    v.call("POST", "/api/v1/dispatches/{id}/cancel", &sp, sk, None, 200)
        .await;
    v.call("POST", "/api/v1/dispatches/{id}/cancel", &sp, sk, None, 409)
        .await;
    // Only a paused dispatch resumes (tests/broadcasts.rs resumes one a halt paused).
    let rp = sp.replace("/cancel", "/resume");
    v.call("POST", "/api/v1/dispatches/{id}/resume", &rp, sk, None, 409)
        .await;
    v.call(
        "GET",
        "/api/v1/dispatches/{id}",
        &dp,
        &narrow_key,
        None,
        403,
    )
    .await;

    // Contacts and leads.
    let c = json!({"phone": "+1 415 555 0123", "name": "Ann", "tags": ["vip"], "attributes": {"plan": "pro"}});
    let c = v
        .call(
            "POST",
            "/api/v1/contacts",
            "/api/v1/contacts",
            sk,
            Some(c),
            201,
        )
        .await;
    v.call(
        "POST",
        "/api/v1/contacts",
        "/api/v1/contacts",
        sk,
        Some(json!({"phone": "+14155550123"})),
        409,
    )
    .await;
    v.call(
        "POST",
        "/api/v1/contacts",
        "/api/v1/contacts",
        sk,
        Some(json!({})),
        422,
    )
    .await;
    let cp = format!("/api/v1/contacts/{}", id(&c));
    v.call(
        "GET",
        "/api/v1/contacts",
        "/api/v1/contacts?limit=1&tag=vip",
        sk,
        None,
        200,
    )
    .await;
    v.call("GET", "/api/v1/contacts/{id}", &cp, sk, None, 200)
        .await;
    v.call(
        "PATCH",
        "/api/v1/contacts/{id}",
        &cp,
        sk,
        Some(json!({"email": "ann@example.com"})),
        200,
    )
    .await;
    // Contact CSV import: the upload (raw and multipart), its whole-file refusals, the import
    // once done with its rejected rows, and another account's view of it.
    let import = "/api/v1/contacts/import";
    let file = "phone,name,plan\n+14155550131,Cy,pro\n0912,Bad,basic\n";
    let accepted = v
        .upload(import, import, sk, "text/csv", file.as_bytes(), 202)
        .await;
    assert_eq!(accepted["state"], "validating", "{accepted}");
    let boundary = "ezpDocs";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\
         Content-Type: text/csv\r\n\r\nphone\n+14155550132\n\r\n--{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    v.upload(import, import, sk, &ct, multipart.as_bytes(), 202)
        .await;
    for (ct, body, want, code) in [
        (
            "application/json",
            "{}".as_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "text/csv",
            b"phone,name\n+14155550133,Jos\xe9\n".as_slice(),
            422,
            "invalid_encoding",
        ),
        (
            "text/csv",
            b"phone,name\n+14155550133,\"open\n".as_slice(),
            422,
            "malformed_csv",
        ),
        ("text/csv", b"name\nAnn\n".as_slice(), 422, "invalid_header"),
    ] {
        let refused = v.upload(import, import, sk, ct, body, want).await;
        assert_eq!(refused["error"]["code"], code, "{refused}");
    }
    v.upload(
        import,
        &format!("{import}?default_country=XX"),
        sk,
        "text/csv",
        file.as_bytes(),
        422,
    )
    .await;
    v.upload(
        import,
        import,
        &narrow_key,
        "text/csv",
        file.as_bytes(),
        403,
    )
    .await;
    let ip = format!("/api/v1/contacts/imports/{}", id(&accepted));
    support::wait_until(
        "the import to end",
        std::time::Duration::from_secs(60),
        || async { app.get(&ip, sk).await.1["state"] == "done" },
    )
    .await;
    let ir = "/api/v1/contacts/imports/{id}";
    let done = v.call("GET", ir, &ip, sk, None, 200).await;
    assert_eq!(done["rejections"]["items"][0]["row"], 3, "{done}");
    v.call("GET", ir, &ip, &narrow_key, None, 403).await;
    let rr = "/api/v1/contacts/imports/{id}/rejections";
    let rp = format!("{ip}/rejections");
    v.call("GET", rr, &format!("{rp}?limit=1"), sk, None, 200)
        .await;
    v.call("GET", rr, &format!("{rp}?cursor=nope"), sk, None, 422)
        .await;
    v.call("GET", rr, &rp, &narrow_key, None, 403).await;
    let other = v
        .call(
            "POST",
            "/admin/v1/accounts",
            "/admin/v1/accounts",
            ROOT,
            Some(json!({"name": "Docs other"})),
            201,
        )
        .await;
    let other = other["admin_token"].as_str().expect("admin token");
    v.call("GET", ir, &ip, other, None, 404).await;
    v.call("GET", rr, &rp, other, None, 404).await;

    // Suppressions and consent keywords.
    let sup = "/api/v1/suppressions";
    let kw = "/api/v1/suppressions/keywords";
    v.call(
        "POST",
        sup,
        sup,
        sk,
        Some(json!({"phone": "+1 415 555 0123", "scope": "marketing"})),
        201,
    )
    .await;
    v.call("POST", sup, sup, sk, Some(json!({"phone": "123"})), 422)
        .await;
    v.call(
        "GET",
        sup,
        &format!("{sup}?limit=1&scope=marketing"),
        sk,
        None,
        200,
    )
    .await;
    v.call("GET", sup, &format!("{sup}?reason=spam"), sk, None, 422)
        .await;
    v.call("GET", kw, kw, sk, None, 200).await;
    v.call(
        "PUT",
        kw,
        kw,
        sk,
        Some(json!({"opt_out": ["STOP", "BASTA"], "opt_in": ["START"]})),
        200,
    )
    .await;
    v.call(
        "PUT",
        kw,
        kw,
        sk,
        Some(json!({"opt_out": ["STOP"], "opt_in": ["stop"]})),
        422,
    )
    .await;
    let sp = "/api/v1/suppressions/{phone}";
    v.call(
        "DELETE",
        sp,
        &format!("{sup}/%2B14155550123"),
        sk,
        None,
        204,
    )
    .await;
    v.call("DELETE", sp, &format!("{sup}/14155550123"), sk, None, 404)
        .await;

    // Audience sends: contacts:read_all besides broadcast:send; the dispatch shows the fan-out.
    let audience = json!({"audience": {"tags_any": ["vip"], "attributes": {"plan": "pro"}},
        "variables_from": {"body": ["{{contact.name|there}}", "{{attributes.plan}}"]}});
    let expanding = v
        .call("POST", send, &send_path, sk, Some(audience.clone()), 202)
        .await;
    let sender = json!({"name": "sender", "scopes": ["broadcast:send"]});
    let sender = v
        .call(
            "POST",
            "/admin/v1/api-keys",
            "/admin/v1/api-keys",
            admin,
            Some(sender),
            201,
        )
        .await;
    let sender = sender["key"].as_str().expect("key").to_string();
    v.call("POST", send, &send_path, &sender, Some(audience), 403)
        .await;
    let nobody = json!({"audience": {"tags_any": ["nobody"]},
        "variables_from": {"body": ["{{contact.name|there}}", "-"]}});
    v.call("POST", send, &send_path, sk, Some(nobody), 422)
        .await;
    let ap = format!(
        "/api/v1/dispatches/{}",
        expanding["dispatch_id"].as_str().expect("dispatch id")
    );
    support::wait_until(
        "the audience's fan-out to end",
        std::time::Duration::from_secs(60),
        || async { app.get(&ap, sk).await.1["audience"]["state"] != "expanding" },
    )
    .await;
    let done = v
        .call("GET", "/api/v1/dispatches/{id}", &ap, sk, None, 200)
        .await;
    assert_eq!(done["audience"]["audience_total"], 1, "{done}");

    let l =
        json!({"contact_id": id(&c), "title": "Upgrade", "value_cents": 1200, "currency": "usd"});
    let l = v
        .call("POST", "/api/v1/leads", "/api/v1/leads", sk, Some(l), 201)
        .await;
    let lp = format!("/api/v1/leads/{}", id(&l));
    v.call(
        "GET",
        "/api/v1/leads",
        "/api/v1/leads?status=new",
        sk,
        None,
        200,
    )
    .await;
    v.call("GET", "/api/v1/leads/{id}", &lp, sk, None, 200)
        .await;
    v.call(
        "PATCH",
        "/api/v1/leads/{id}",
        &lp,
        sk,
        Some(json!({"status": "won", "notes": null})),
        200,
    )
    .await;
    let assign = json!({"assignee": "maria@example.com"});
    v.call(
        "POST",
        "/api/v1/leads/{id}/assign",
        &format!("{lp}/assign"),
        sk,
        Some(assign),
        200,
    )
    .await;
    v.call("DELETE", "/api/v1/leads/{id}", &lp, sk, None, 204)
        .await;

    // Chatbot flows.
    let f =
        json!({"name": "Welcome", "template_id": id(&t), "variables": {"body": ["there", "-"]}});
    let f = v
        .call(
            "POST",
            "/admin/v1/chatbot-flows",
            "/admin/v1/chatbot-flows",
            admin,
            Some(f),
            201,
        )
        .await;
    let fp = format!("/admin/v1/chatbot-flows/{}", id(&f));
    v.call(
        "GET",
        "/admin/v1/chatbot-flows",
        "/admin/v1/chatbot-flows",
        admin,
        None,
        200,
    )
    .await;
    v.call("GET", "/admin/v1/chatbot-flows/{id}", &fp, admin, None, 200)
        .await;
    v.call(
        "PATCH",
        "/admin/v1/chatbot-flows/{id}",
        &fp,
        admin,
        Some(json!({"name": "Hello"})),
        200,
    )
    .await;
    let hook = format!("/api/v1/chatbot-flows/{}/webhook", id(&f));
    let trigger = json!({"to": "+14155550199", "variables": {"body": ["Ann", "1"]}});
    v.call(
        "POST",
        "/api/v1/chatbot-flows/{id}/webhook",
        &hook,
        sk,
        Some(trigger.clone()),
        202,
    )
    .await;
    v.call(
        "PATCH",
        "/admin/v1/chatbot-flows/{id}",
        &fp,
        admin,
        Some(json!({"active": false})),
        200,
    )
    .await;
    v.call(
        "POST",
        "/api/v1/chatbot-flows/{id}/webhook",
        &hook,
        sk,
        Some(trigger),
        409,
    )
    .await;
    v.call(
        "DELETE",
        "/admin/v1/chatbot-flows/{id}",
        &fp,
        admin,
        None,
        204,
    )
    .await;

    // Webhook endpoints (integrator events), on both APIs.
    let account_id: uuid::Uuid = account["id"]
        .as_str()
        .expect("account id")
        .parse()
        .expect("uuid");
    let pool = app.pool().await;
    for (base, token) in [
        ("/api/v1/webhook-endpoints", sk),
        ("/admin/v1/webhook-endpoints", admin),
    ] {
        let public = base.starts_with("/api/");
        let route = |rest: &str| format!("{base}{rest}");
        let mut create = json!({"url": "https://hooks.example.com/ezpulze",
            "events": ["message.delivered", "message.failed"], "description": "CRM sync"});
        if !public {
            create["mode"] = json!("test");
        }
        let e = v.call("POST", base, base, token, Some(create), 201).await;
        assert!(
            e["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
            "{e}"
        );
        v.call(
            "POST",
            base,
            base,
            token,
            Some(json!({"url": "http://hooks.example.com/"})),
            422,
        )
        .await;
        if public {
            v.call("POST", base, base, &narrow_key, Some(json!({})), 403)
                .await;
        }
        v.call("GET", base, base, token, None, 200).await;
        let one = format!("{base}/{}", id(&e));
        v.call("GET", &route("/{id}"), &one, token, None, 200).await;
        v.call(
            "GET",
            &route("/{id}"),
            &format!("{base}/not-an-id"),
            token,
            None,
            404,
        )
        .await;
        v.call(
            "PATCH",
            &route("/{id}"),
            &one,
            token,
            Some(json!({"active": true, "max_per_second": 100})),
            200,
        )
        .await;
        v.call(
            "POST",
            &route("/{id}/rotate-secret"),
            &format!("{one}/rotate-secret"),
            token,
            None,
            200,
        )
        .await;
        let delivery = uuid::Uuid::now_v7();
        let endpoint: uuid::Uuid = id(&e).parse().expect("uuid");
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body, state,
                 attempts, last_attempt_at, last_status, last_latency_ms)
             VALUES ($1, $2, $3, 'evt_docs', 'message.delivered', '{\"id\": \"evt_docs\"}', 'failed', 1, now(), 410, 12)",
        )
        .bind(delivery)
        .bind(endpoint)
        .bind(account_id)
        .execute(&pool)
        .await
        .expect("a delivery");
        v.call(
            "GET",
            &route("/{id}/deliveries"),
            &format!("{one}/deliveries?limit=1&state=failed"),
            token,
            None,
            200,
        )
        .await;
        v.call(
            "GET",
            &route("/{id}/deliveries"),
            &format!("{one}/deliveries?state=lost"),
            token,
            None,
            422,
        )
        .await;
        v.call(
            "POST",
            &route("/{id}/recover"),
            &format!("{one}/recover"),
            token,
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
            200,
        )
        .await;
        let retry = route("/{id}/deliveries/{delivery_id}/retry");
        v.call(
            "POST",
            &retry,
            &format!("{one}/deliveries/{delivery}/retry"),
            token,
            None,
            202,
        )
        .await;
        v.call(
            "POST",
            &retry,
            &format!("{one}/deliveries/{}/retry", uuid::Uuid::now_v7()),
            token,
            None,
            404,
        )
        .await;
        v.call("DELETE", &route("/{id}"), &one, token, None, 204)
            .await;
    }

    // A signed status webhook, as Meta sends it.
    let status = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": "106540352242922"},
        "statuses": [{"id": "wamid.docs", "status": "sent", "timestamp": "1764151323",
                      "recipient_id": "14155550123"}]}}]}]});
    let raw = serde_json::to_vec(&status).expect("json");
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"0123456789abcdef")
        .expect("hmac key");
    hmac::Mac::update(&mut mac, &raw);
    let signature = format!(
        "sha256={}",
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    );
    let resp = app
        .client
        .post(app.url(wh))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(raw)
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
    let documented = &v.doc["paths"][wh]["post"]["responses"];
    assert!(documented["200"].is_object() && documented["401"].is_object());
    v.seen.insert((wh.to_string(), "post".to_string(), 200));

    // Metrics, this document, and the web UI's assets.
    v.call("GET", "/metrics", "/metrics", "", None, 200).await;
    let served = v
        .call("GET", "/openapi.json", "/openapi.json", "", None, 200)
        .await;
    assert_eq!(served, v.doc, "/openapi.json serves the generated document");
    let assets: Vec<String> = documented_routes(&v.doc)
        .into_iter()
        .filter(|(p, m)| (p == "/" || p.starts_with("/ui/")) && p != "/ui/session" && m == "get")
        .map(|(p, _)| p)
        .collect();
    for path in &assets {
        v.call("GET", path, path, "", None, 200).await;
    }

    // Rotating the admin token (the old one stops working at once).
    let rotate = "/admin/v1/admin-token/rotate";
    let rotated = v.call("POST", rotate, rotate, admin, None, 200).await;
    assert!(
        rotated["admin_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("adm_") && t != admin),
        "{rotated}"
    );
    v.call("POST", rotate, rotate, admin, None, 401).await;

    // Deletes last.
    v.call("DELETE", "/api/v1/contacts/{id}", &cp, sk, None, 204)
        .await;
    v.call("DELETE", "/api/v1/broadcasts/{id}", &bp, sk, None, 204)
        .await;
    v.call("DELETE", "/api/v1/templates/{id}", &tp, sk, None, 204)
        .await;

    assert!(
        v.errors.is_empty(),
        "answers that differ from api/openapi.json:\n{}",
        v.errors.join("\n")
    );
    // The flow above exercised every route.
    let exercised: BTreeSet<(String, String)> = v
        .seen
        .iter()
        .map(|(p, m, _)| (p.clone(), m.clone()))
        .collect();
    let documented = documented_routes(&v.doc);
    let skipped: Vec<_> = documented
        .iter()
        .filter(|r| !exercised.contains(*r))
        .collect();
    assert!(
        skipped.is_empty(),
        "routes this test does not exercise yet: {skipped:?}"
    );
    // And the router matched each of those calls at the documented path and method (the
    // request metrics are labelled with the route the router matched, `unmatched` otherwise):
    // no documented operation is answered by the fallback.
    let metrics = app.get_text("/metrics").await;
    let matched = matched_routes(&metrics);
    let unmatched: Vec<_> = documented.difference(&matched).collect();
    assert!(
        unmatched.is_empty(),
        "documented operations the router did not match: {unmatched:?}"
    );
}

/// (route, method) of every `ezpulze_http_requests_total` series in a metrics page.
fn matched_routes(metrics: &str) -> RouteSet {
    let label = |labels: &str, name: &str| -> Option<String> {
        let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
        let end = labels[start..].find('"')? + start;
        Some(labels[start..end].to_string())
    };
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("ezpulze_http_requests_total{"))
        .filter_map(|rest| {
            let labels = &rest[..rest.rfind('}')?];
            let route = label(labels, "route")?;
            let method = label(labels, "method")?.to_lowercase();
            Some((route, method))
        })
        .collect()
}

/// The events posted to integrators are documented (OpenAPI 3.1 `webhooks`) with exactly the
/// types the engine creates, and their example is signed-body shaped.
#[test]
fn the_integrator_event_is_documented_with_every_type() {
    let d = doc();
    let types: Vec<&str> = d["components"]["schemas"]["IntegratorEvent"]["properties"]["type"]
        ["enum"]
        .as_array()
        .expect("event types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(types, ezpulze_common::hooks::EVENT_TYPES.to_vec());
    let post = &d["webhooks"]["integratorEvent"]["post"];
    let headers: Vec<&str> = post["parameters"]
        .as_array()
        .expect("headers")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        headers,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    let example = &post["requestBody"]["content"]["application/json"]["example"];
    assert!(example["id"]
        .as_str()
        .is_some_and(|i| i.starts_with("evt_")));
    assert!(types.contains(&example["type"].as_str().unwrap_or_default()));
}
