//! The dashboard: one HTML shell, a script, a stylesheet and the vendored uPlot chart library, all
//! embedded in the binary (no CDN, works offline) and served at `GET /` and `/ui/…` under a strict
//! Content-Security-Policy. The page is a plain client of the public REST API: it signs in with the
//! user's own bearer JWT (kept in `sessionStorage`) and uses no private endpoint.

use std::sync::LazyLock;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Path;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Route, get, handler};
use sha2::{Digest, Sha256};

/// Scripts, styles and connections only from this origin; avatars from the platforms' CDNs (https)
/// or `data:`; no framing, no `<base>`, forms post only here.
pub const CSP: &str = "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The uPlot release vendored under `src/ui/vendor/` (see its README).
pub const UPLOT_VERSION: &str = "1.6.32";

const INDEX_HTML: &str = include_str!("index.html");

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("favicon.svg"),
    },
    Asset {
        name: "vendor/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("vendor/uPlot.iife.min.js"),
    },
    Asset {
        name: "vendor/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("vendor/uPlot.min.css"),
    },
];

/// Strong ETags of the assets (a content hash), computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// The HTML shell, never cached (it names the assets; they revalidate by ETag).
pub fn index_response() -> Response {
    secure(
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(INDEX_HTML),
    )
}

fn asset_response(req: &Request, name: &str) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return secure(
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .content_type("text/plain; charset=utf-8")
                .body("not found"),
        );
    };
    let (asset, etag) = (&ASSETS[i], ETAGS[i].as_str());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "no-cache");
    secure(if fresh {
        builder.status(StatusCode::NOT_MODIFIED).finish()
    } else {
        builder.content_type(asset.content_type).body(asset.body)
    })
}

#[handler]
fn serve_asset(req: &Request, Path(name): Path<String>) -> Response {
    asset_response(req, &name)
}

/// `/ui/…`: the embedded assets, nest it at `/ui`.
pub fn assets() -> Route {
    Route::new().at("/*name", get(serve_asset))
}

/// Answers `GET /` (and `HEAD /`) with the HTML shell in front of `E`: the API is nested at `/`,
/// which leaves no room for a route of its own there. `/?connected=…` and the like are the same page.
#[derive(Debug, Clone, Copy)]
pub struct Shell;

impl<E: Endpoint> Middleware<E> for Shell {
    type Output = ShellEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ShellEndpoint(ep)
    }
}

#[derive(Debug)]
pub struct ShellEndpoint<E>(E);

impl<E: Endpoint> Endpoint for ShellEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() == "/" && (req.method() == Method::GET || req.method() == Method::HEAD) {
            return Ok(index_response());
        }
        self.0.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_only_embedded_assets_and_has_no_inline_code() {
        for src in INDEX_HTML.split("\"/ui/").skip(1) {
            let name = src.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names /ui/{name}, which is not embedded"
            );
        }
        assert!(!INDEX_HTML.contains("<script>"), "inline script");
        assert!(!INDEX_HTML.contains("<style"), "inline style");
        assert!(!INDEX_HTML.contains(" style="), "style attribute");
        let handler = INDEX_HTML.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX_HTML[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
    }

    #[test]
    fn etags_are_stable_and_distinct() {
        assert_eq!(ETAGS.len(), ASSETS.len());
        let mut tags = ETAGS.clone();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
