//! The OpenAPI document (`api/openapi.json`, served at `/openapi.json`) cannot drift from the
//! router: every route the api serves is in `ROUTES` (checked against the router's source), and
//! `ROUTES` and the document's `paths` list exactly the same paths and methods, with the scope
//! each public route requires.
//!
//! `real_answers_match_the_document` then runs the real api (Postgres and Redis, like the other
//! integration tests) through every API route and checks each answer's status, body and headers
//! against the document.
//!
//! Adding a route: add it to the router, to `ROUTES` below, to the flow of
//! `real_answers_match_the_document`, and to `api/openapi.json` (then validate it:
//! `python3 -m openapi_spec_validator api/openapi.json`).

use std::collections::BTreeSet;

use serde_json::Value;

const DOC: &str = include_str!("../openapi.json");

/// Every route the api serves: (path, method, required scope of a public route). Derived from
/// `api/src/routes/mod.rs`, the modules it merges and `api/src/ui.rs`.
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    // Admin API (account admin token or UI session; the root token for accounts).
    ("/admin/v1/accounts", "post", None),
    ("/admin/v1/scopes", "get", None),
    ("/admin/v1/api-keys", "post", None),
    ("/admin/v1/api-keys", "get", None),
    ("/admin/v1/api-keys/{id}", "get", None),
    ("/admin/v1/api-keys/{id}", "patch", None),
    ("/admin/v1/api-keys/{id}", "delete", None),
    ("/admin/v1/api-keys/{id}/regenerate", "post", None),
    ("/admin/v1/api-keys/{id}/usage", "get", None),
    ("/admin/v1/api-keys/{id}/docs", "get", None),
    ("/admin/v1/whatsapp", "get", None),
    ("/admin/v1/whatsapp", "put", None),
    ("/admin/v1/broadcasts", "get", None),
    ("/admin/v1/broadcasts/{id}/example", "get", None),
    ("/admin/v1/chatbot-flows", "get", None),
    ("/admin/v1/chatbot-flows", "post", None),
    ("/admin/v1/chatbot-flows/{id}", "get", None),
    ("/admin/v1/chatbot-flows/{id}", "patch", None),
    ("/admin/v1/chatbot-flows/{id}", "delete", None),
    // Public API (API key, or admin token with full access).
    ("/api/v1/me", "get", None),
    ("/api/v1/ping", "get", None),
    ("/api/v1/templates", "get", Some("template:read")),
    ("/api/v1/templates", "post", Some("template:create")),
    ("/api/v1/templates/{id}", "get", Some("template:read")),
    ("/api/v1/templates/{id}", "patch", Some("template:update")),
    ("/api/v1/templates/{id}", "delete", Some("template:delete")),
    ("/api/v1/broadcasts", "get", Some("broadcast:read")),
    ("/api/v1/broadcasts", "post", Some("broadcast:create")),
    ("/api/v1/broadcasts/{id}", "get", Some("broadcast:read")),
    (
        "/api/v1/broadcasts/{id}",
        "delete",
        Some("broadcast:delete"),
    ),
    (
        "/api/v1/broadcasts/{id}/send",
        "post",
        Some("broadcast:send"),
    ),
    // Dispatch reads accept broadcast:read or broadcast:send (403 names broadcast:read).
    ("/api/v1/dispatches/{id}", "get", Some("broadcast:read")),
    (
        "/api/v1/dispatches/{id}/messages",
        "get",
        Some("broadcast:read"),
    ),
    (
        "/api/v1/dispatches/{id}/cancel",
        "post",
        Some("broadcast:send"),
    ),
    (
        "/api/v1/dispatches/{id}/resume",
        "post",
        Some("broadcast:send"),
    ),
    ("/api/v1/messages/{id}", "get", Some("broadcast:read")),
    ("/api/v1/contacts", "get", Some("contacts:read_all")),
    ("/api/v1/contacts", "post", Some("contacts:create")),
    ("/api/v1/contacts/{id}", "get", Some("contacts:read")),
    ("/api/v1/contacts/{id}", "patch", Some("contacts:update")),
    ("/api/v1/contacts/{id}", "delete", Some("contacts:delete")),
    ("/api/v1/leads", "get", Some("leads:read_all")),
    ("/api/v1/leads", "post", Some("leads:create")),
    ("/api/v1/leads/{id}", "get", Some("leads:read")),
    ("/api/v1/leads/{id}", "patch", Some("leads:update")),
    ("/api/v1/leads/{id}", "delete", Some("leads:delete")),
    ("/api/v1/leads/{id}/assign", "post", Some("leads:assign")),
    (
        "/api/v1/chatbot-flows/{id}/webhook",
        "post",
        Some("chatbot_flows:webhook"),
    ),
    // Web UI session and assets.
    ("/ui/session", "post", None),
    ("/ui/session", "delete", None),
    ("/", "get", None),
    ("/ui/app.css", "get", None),
    ("/ui/favicon.svg", "get", None),
    ("/ui/app.js", "get", None),
    ("/ui/api.js", "get", None),
    ("/ui/dom.js", "get", None),
    ("/ui/dialog.js", "get", None),
    ("/ui/validate.js", "get", None),
    ("/ui/keys.js", "get", None),
    ("/ui/key_form.js", "get", None),
    ("/ui/docs.js", "get", None),
    // WhatsApp webhooks and operations.
    ("/webhooks/whatsapp", "get", None),
    ("/webhooks/whatsapp", "post", None),
    ("/healthz", "get", None),
    ("/readyz", "get", None),
    ("/metrics", "get", None),
    ("/openapi.json", "get", None),
    ("/ping", "get", None),
];

const ROUTER: &str = include_str!("../src/routes/mod.rs");
const UI: &str = include_str!("../src/ui.rs");

/// The route modules whose `routes()`/`admin_routes()` the router merges.
const MODULES: &[(&str, &str)] = &[
    ("templates", include_str!("../src/routes/templates.rs")),
    ("broadcasts", include_str!("../src/routes/broadcasts.rs")),
    ("send", include_str!("../src/routes/send.rs")),
    ("dispatches", include_str!("../src/routes/dispatches.rs")),
    ("contacts", include_str!("../src/routes/contacts.rs")),
    ("leads", include_str!("../src/routes/leads.rs")),
    ("flows", include_str!("../src/routes/flows.rs")),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

type RouteSet = BTreeSet<(String, String)>;

fn doc() -> Value {
    serde_json::from_str(DOC).expect("api/openapi.json is valid JSON")
}

fn table() -> RouteSet {
    let set: RouteSet = ROUTES
        .iter()
        .map(|(p, m, _)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(set.len(), ROUTES.len(), "ROUTES lists a route twice");
    set
}

/// The text between `start` and `end` (exclusive) in `src`, or a panic naming the marker.
fn between<'a>(src: &'a str, start: &str, end: &str) -> &'a str {
    let from = src.find(start).unwrap_or_else(|| {
        panic!("marker {start:?} not found: update tests/openapi.rs to the router's shape")
    });
    let rest = &src[from + start.len()..];
    let to = rest.find(end).unwrap_or_else(|| {
        panic!("marker {end:?} not found: update tests/openapi.rs to the router's shape")
    });
    &rest[..to]
}

/// The arguments of every call `name(...)` in `src` (balanced parentheses).
fn calls<'a>(src: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = src[at..].find(name) {
        let open = at + i + name.len();
        let mut depth = 1;
        let mut end = open;
        for (j, c) in src[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        assert!(depth == 0, "unbalanced call {name} in the router's source");
        out.push(&src[open..end]);
        at = end;
    }
    out
}

/// The method routers in a `.route(...)` argument list: `get(`, `.post(`, ... (not `x::get)`).
fn methods(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in HTTP_METHODS {
        let pat = format!("{m}(");
        let mut at = 0;
        while let Some(i) = args[at..].find(&pat) {
            let pos = at + i;
            let before = args[..pos].chars().last();
            if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                out.push(m.to_string());
            }
            at = pos + pat.len();
        }
    }
    out
}

/// `.route("/path", get(..).post(..))` calls with a literal path, prefixed.
fn literal_routes(section: &str, prefix: &str, out: &mut RouteSet) {
    for args in calls(section, ".route(") {
        let args = args.trim_start();
        let Some(rest) = args.strip_prefix('"') else {
            continue;
        };
        let path = &rest[..rest.find('"').expect("closing quote")];
        let ms = methods(&rest[path.len() + 1..]);
        assert!(!ms.is_empty(), "no method found for route {path:?}");
        for m in ms {
            out.insert((format!("{prefix}{path}"), m));
        }
    }
}

/// The body of `pub fn name()` in a module's source.
fn fn_body<'a>(src: &'a str, name: &str) -> &'a str {
    between(src, &format!("pub fn {name}()"), "\n}\n")
}

/// Routes of one section of the router: its literal routes plus the modules it merges.
fn section_routes(section: &str, prefix: &str, out: &mut RouteSet) {
    literal_routes(section, prefix, out);
    for args in calls(section, ".merge(") {
        let target = args.trim().trim_end_matches("()");
        let target = target.strip_prefix("crate::").unwrap_or(target);
        if target == "public" {
            // The public section, read on its own (its routes carry their full paths).
            continue;
        }
        let (module, func) = target
            .rsplit_once("::")
            .unwrap_or_else(|| panic!("unexpected merge of {args:?}"));
        if module == "ui" {
            for lit in UI.split("path: \"").skip(1) {
                let path = &lit[..lit.find('"').expect("closing quote")];
                out.insert((format!("{prefix}{path}"), "get".to_string()));
            }
            continue;
        }
        let module = module.rsplit("::").next().unwrap_or(module);
        let src = MODULES
            .iter()
            .find(|(name, _)| *name == module)
            .unwrap_or_else(|| panic!("the router merges {module}::{func}: add the module to MODULES and its routes to ROUTES"))
            .1;
        literal_routes(fn_body(src, func), prefix, out);
    }
}

/// Every (path, method) the router's source registers.
fn router_routes() -> RouteSet {
    let mut out = RouteSet::new();
    let admin = between(
        ROUTER,
        "let admin = Router::new()",
        "let public = Router::new()",
    );
    let public = between(ROUTER, "let public = Router::new()", ".nest(\"/admin/v1\"");
    let root = between(ROUTER, ".nest(\"/admin/v1\"", ".with_state(state)");
    section_routes(admin, "/admin/v1", &mut out);
    section_routes(public, "", &mut out);
    section_routes(root, "", &mut out);
    out
}

fn documented_routes(doc: &Value) -> RouteSet {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = RouteSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("paths[{path:?}] is an object"));
        for (method, op) in item {
            if HTTP_METHODS.contains(&method.as_str()) {
                assert!(op.is_object(), "{method} {path} is an operation object");
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

#[test]
fn the_table_lists_exactly_the_routes_the_router_registers() {
    let code = router_routes();
    let table = table();
    let missing: Vec<_> = code.difference(&table).collect();
    let stale: Vec<_> = table.difference(&code).collect();
    assert!(
        missing.is_empty(),
        "routes served but not in ROUTES (add them, and document them): {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "routes in ROUTES that the router no longer serves: {stale:?}"
    );
}

#[test]
fn every_route_is_documented_with_its_methods_and_nothing_else() {
    let doc = doc();
    let documented = documented_routes(&doc);
    let table = table();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from api/openapi.json: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "api/openapi.json documents routes the api does not serve: {phantom:?}"
    );
}

#[test]
fn public_routes_state_their_scope_and_rate_limit_headers() {
    let doc = doc();
    for (path, method, scope) in ROUTES {
        let op = &doc["paths"][path][method];
        let documented = op.get("x-required-scope").and_then(Value::as_str);
        assert_eq!(documented, *scope, "x-required-scope of {method} {path}");
        if let Some(scope) = scope {
            let description = op["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(scope),
                "the description of {method} {path} names {scope}"
            );
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
    assert_eq!(served, v.doc, "/openapi.json serves api/openapi.json");
    for (path, _, _) in ROUTES
        .iter()
        .filter(|(p, _, _)| *p == "/" || p.starts_with("/ui/"))
    {
        if *path != "/ui/session" {
            v.call("GET", path, path, "", None, 200).await;
        }
    }

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
    let skipped: Vec<_> = table()
        .into_iter()
        .filter(|r| !exercised.contains(r))
        .collect();
    assert!(
        skipped.is_empty(),
        "routes this test does not exercise yet: {skipped:?}"
    );
}
