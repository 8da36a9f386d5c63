//! The admin web UI: static assets embedded in the binary.
//!
//! `/` serves the single page (`api/ui/index.html`); `/ui/<file>` serves its stylesheet and
//! JavaScript modules. Every asset is answered with its content type, an `ETag` (a hash of its
//! bytes, so a conditional request gets `304 Not Modified`), `Cache-Control: no-cache` (always
//! revalidated: a new binary never leaves an old script in a browser) and headers that keep
//! the page from being framed or sniffed. Only these exact paths are routed: nothing under
//! `/admin`, `/api`, `/ui/session` or the operations endpoints is shadowed.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// One embedded file.
struct Asset {
    /// The URL path it is served at.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("../ui/index.html"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: CSS,
        body: include_bytes!("../ui/app.css"),
    },
    Asset {
        path: "/ui/favicon.svg",
        content_type: SVG,
        body: include_bytes!("../ui/favicon.svg"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: JS,
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        path: "/ui/api.js",
        content_type: JS,
        body: include_bytes!("../ui/api.js"),
    },
    Asset {
        path: "/ui/dom.js",
        content_type: JS,
        body: include_bytes!("../ui/dom.js"),
    },
    Asset {
        path: "/ui/dialog.js",
        content_type: JS,
        body: include_bytes!("../ui/dialog.js"),
    },
    Asset {
        path: "/ui/validate.js",
        content_type: JS,
        body: include_bytes!("../ui/validate.js"),
    },
    Asset {
        path: "/ui/keys.js",
        content_type: JS,
        body: include_bytes!("../ui/keys.js"),
    },
    Asset {
        path: "/ui/key_form.js",
        content_type: JS,
        body: include_bytes!("../ui/key_form.js"),
    },
    Asset {
        path: "/ui/docs.js",
        content_type: JS,
        body: include_bytes!("../ui/docs.js"),
    },
    Asset {
        path: "/ui/webhooks.js",
        content_type: JS,
        body: include_bytes!("../ui/webhooks.js"),
    },
    Asset {
        path: "/ui/webhook_form.js",
        content_type: JS,
        body: include_bytes!("../ui/webhook_form.js"),
    },
];

/// The page's Content-Security-Policy: only its own scripts, styles and API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The assets' routes, each documented as a `GET` operation (`uiAsset<Name>`; the page is
/// `uiAssetPage`) taking `If-None-Match`.
pub fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::default();
    for asset in ASSETS {
        let etag = etag_of(asset.body);
        let content_type = asset.content_type;
        let body = asset.body;
        let is_page = content_type == HTML;
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move {
                serve(&headers, content_type, body, &etag, is_page)
            }),
        );
        router.get_openapi_mut().paths.add_path_operation(
            asset.path,
            vec![HttpMethod::Get],
            operation(asset),
        );
    }
    router
}

/// The documented operation of one asset (its responses are in `api/openapi/operations.json`).
fn operation(asset: &Asset) -> Operation {
    let name = asset.path.rsplit('/').next().unwrap_or_default();
    let id = if name.is_empty() {
        "uiAssetPage".to_string()
    } else {
        let camel: String = name
            .split(['.', '_'])
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("uiAsset{camel}")
    };
    let summary = if name.is_empty() {
        "Web UI page".to_string()
    } else {
        format!("Web UI asset {name}")
    };
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .tag("Web UI")
        .parameter(
            ParameterBuilder::new()
                .name("If-None-Match")
                .parameter_in(ParameterIn::Header)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .build()
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..12]))
}

fn serve(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    etag: &str,
    is_page: bool,
) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if is_page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), clipboard-write=(self)",
            ),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_do_not_shadow_the_api() {
        for asset in ASSETS {
            assert!(
                asset.path == "/" || asset.path.starts_with("/ui/"),
                "{}",
                asset.path
            );
            assert_ne!(asset.path, "/ui/session");
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
    }

    #[test]
    fn conditional_requests_get_not_modified() {
        let etag = etag_of(b"body");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&etag).expect("etag is a header value"),
        );
        let response = serve(&headers, JS, b"body", &etag, false);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        let response = serve(&HeaderMap::new(), JS, b"body", &etag, false);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(JS)
        );
    }
}
