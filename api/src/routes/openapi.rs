//! The OpenAPI document served at `/openapi.json`, generated from the router.
//!
//! Every route is registered once, in [`super::api`], with a handler annotated by
//! `#[utoipa::path]`: the annotation gives the path, method, operation id, tag, summary,
//! parameters and (for `/api/v1`) the scope the route requires, as the `x-required-scope`
//! extension naming the handler's scope marker. The sub-router a route is registered in gives
//! its security requirement (API key for `/api/v1`, admin token or session for `/admin/v1`, none
//! at the root), with the required scope as the requirement's scopes.
//!
//! Two hand-kept fragments complete it: `api/openapi/base.json` (info, servers, tags and the
//! components: schemas, shared responses, headers, security schemes) and
//! `api/openapi/operations.json` (per operation id: the prose description, request body and
//! responses with their examples). They cannot add a route: an entry whose operation id the
//! router does not register is ignored here and fails `api/tests/openapi.rs`.
//!
//! `api/openapi.json` is this document, written out for tools (`make check`'s validator,
//! integrators); `api/tests/openapi.rs` checks it is current (`EZPULZE_WRITE_OPENAPI=1` rewrites it).

use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::{Object, ObjectBuilder, Type};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

const BASE: &str = include_str!("../../openapi/base.json");
const OPERATIONS: &str = include_str!("../../openapi/operations.json");

/// `router` with `tag` on each of its operations (every route module's operations share one).
pub fn tagged<S: Clone + Send + Sync + 'static>(
    tag: &str,
    mut router: OpenApiRouter<S>,
) -> OpenApiRouter<S> {
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.tags = Some(vec![tag.to_string()]);
        }
    }
    router
}

/// The router of one `routes!` group.
pub fn single<S: Clone + Send + Sync + 'static>(routes: UtoipaMethodRouter<S>) -> OpenApiRouter<S> {
    OpenApiRouter::default().routes(routes)
}

/// The HTTP methods an OpenAPI path item can hold.
pub const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The generated document, built once.
pub struct Document {
    pub json: Value,
    pub text: String,
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(|| {
    let json = super::document();
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    Document { json, text }
});

/// The document (built on first use; the router forces it at start-up).
pub fn document() -> &'static Document {
    &DOCUMENT
}

/// Who may call the routes of one sub-router.
#[derive(Clone, Copy)]
pub enum Audience {
    /// `/api/v1`: an API key in either header (or an admin token with every scope).
    Integrators,
    /// `/admin/v1`: an account admin token or the web UI's session.
    Admins,
    /// Webhooks, the web UI, operations: no credentials.
    Anyone,
}

impl Audience {
    fn schemes(self) -> &'static [&'static str] {
        match self {
            Audience::Integrators => &["ApiKeyBearer", "ApiKeyHeader"],
            Audience::Admins => &["AdminToken", "AdminSession"],
            Audience::Anyone => &[],
        }
    }
}

/// The paths of one sub-router as JSON, under `prefix`, each operation given the security
/// requirement of `audience` (unless its annotation states its own, like the root token's).
pub fn paths_of(
    api: utoipa::openapi::OpenApi,
    prefix: &str,
    audience: Audience,
) -> Map<String, Value> {
    let paths = serde_json::to_value(api.paths).unwrap_or(Value::Null);
    let mut out = Map::new();
    let Value::Object(paths) = paths else {
        return out;
    };
    for (path, mut item) in paths {
        for (method, op) in item.as_object_mut().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            if !op.contains_key("security") {
                let scopes: Vec<Value> = op.get("x-required-scope").cloned().into_iter().collect();
                let security: Vec<Value> = audience
                    .schemes()
                    .iter()
                    .map(|s| json!({ *s: scopes }))
                    .collect();
                op.insert("security".into(), Value::Array(security));
            }
        }
        let path = match (prefix, path.as_str()) {
            (p, "/") if !p.is_empty() => p.to_string(),
            (p, rest) => format!("{p}{rest}"),
        };
        out.insert(path, item);
    }
    out
}

/// The whole document: the base fragment, the generated paths, and each operation's prose
/// (description, request body, responses) from the operations fragment.
pub fn assemble(paths: Map<String, Value>) -> Value {
    let mut doc: Value = serde_json::from_str(BASE).unwrap_or_else(|_| json!({}));
    let prose: Map<String, Value> = serde_json::from_str(OPERATIONS).unwrap_or_default();
    let mut paths = paths;
    for item in paths.values_mut() {
        for (method, op) in item.as_object_mut().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            // A handler's doc comment is for readers of the code; the document's prose is kept
            // with the operation's examples.
            op.remove("description");
            if op.get("responses").is_some_and(|r| r == &json!({})) {
                op.remove("responses");
            }
            let id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Some(Value::Object(extra)) = prose.get(&id) {
                for key in ["description", "requestBody", "responses"] {
                    if let Some(v) = extra.get(key) {
                        op.insert(key.into(), v.clone());
                    }
                }
            }
        }
    }
    if let Value::Object(doc) = &mut doc {
        doc.insert("paths".into(), Value::Object(paths));
    }
    doc
}

/// A string schema allowing exactly `values`, with an optional default (for `schema_with`).
pub fn string_enum(values: &[&str], default: Option<&str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(default.map(|d| json!(d)))
        .build()
}

/// One documented endpoint of the public API, as the per-key documentation page lists it.
pub struct Endpoint<'a> {
    pub method: String,
    pub path: &'a str,
    /// The scope the route requires (`x-required-scope`).
    pub scope: &'a str,
    /// Every scope that opens the route (`x-accepted-scopes`, else just `scope`).
    pub accepted: Vec<&'a str>,
    pub summary: &'a str,
}

/// Every operation of the document that requires a scope, in the document's order.
pub fn scoped_endpoints(doc: &Value) -> Vec<Endpoint<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let Some(scope) = op.get("x-required-scope").and_then(Value::as_str) else {
                continue;
            };
            let accepted: Vec<&str> = match op.get("x-accepted-scopes").and_then(Value::as_array) {
                Some(all) => all.iter().filter_map(Value::as_str).collect(),
                None => vec![scope],
            };
            out.push(Endpoint {
                method: method.to_uppercase(),
                path,
                scope,
                accepted,
                summary: op["summary"].as_str().unwrap_or_default(),
            });
        }
    }
    out
}
