//! The storefront's static files (`src/web/static`), embedded in the binary and served under
//! content-hashed URLs (`/static/app.<hash>.css`) with `Cache-Control: public,
//! max-age=31536000, immutable`: pages name the hashed URL (`PageCtx::asset`), so a new
//! release is a new URL and browsers and CDNs may keep each version forever. The plain URLs
//! (`/static/app.css`) keep working with a short max-age, for old pages and bookmarks.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// `/static/<stem>.<hash>.<ext>`
    url: String,
}

fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    let digest = Sha256::digest(body.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let (stem, ext) = name
        .rsplit_once('.')
        .expect("asset names have an extension");
    Asset {
        name,
        content_type,
        body,
        url: format!("/static/{stem}.{hash}.{ext}"),
    }
}

static ASSETS: LazyLock<[Asset; 4]> = LazyLock::new(|| {
    [
        asset(
            "app.css",
            "text/css; charset=utf-8",
            include_str!("static/app.css"),
        ),
        asset(
            "app.js",
            "text/javascript; charset=utf-8",
            include_str!("static/app.js"),
        ),
        asset(
            "photo.js",
            "text/javascript; charset=utf-8",
            include_str!("static/photo.js"),
        ),
        // Named by every page: without it, browsers ask for /favicon.ico, and the 404 lands
        // in the buyer's console.
        asset(
            "favicon.svg",
            "image/svg+xml",
            include_str!("static/favicon.svg"),
        ),
    ]
});

/// The hashed URL of the static file `name` (`app.css`, `app.js`, `photo.js`, `favicon.svg`).
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("/static/missing", |a| a.url.as_str())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{file}", get(serve))
}

async fn serve(Path(file): Path<String>) -> Response {
    let path = format!("/static/{file}");
    for a in ASSETS.iter() {
        let cache = if path == a.url {
            "public, max-age=31536000, immutable"
        } else if file == a.name {
            "public, max-age=300"
        } else {
            continue;
        };
        return (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, cache),
            ],
            a.body,
        )
            .into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}
