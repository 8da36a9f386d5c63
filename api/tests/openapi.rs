//! The OpenAPI document (`api/openapi.json`, served at `/openapi.json`) cannot drift from the
//! router: every route the api serves is in `ROUTES` (checked against the router's source), and
//! `ROUTES` and the document's `paths` list exactly the same paths and methods, with the scope
//! each public route requires.
//!
//! Adding a route: add it to the router, to `ROUTES` below, and to `api/openapi.json` (then
//! validate it: `python3 -m openapi_spec_validator api/openapi.json`).

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
    section_routes(public, "/api/v1", &mut out);
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
