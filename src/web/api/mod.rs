//! The JSON API at `/api/v1`, for apps and integrations. Mounted beside the browser routes, not
//! inside them: no cookies, no sessions, no CSRF; callers authenticate with bearer tokens.
//!
//! Every request passes, outermost first: `error::json_errors` (every error becomes JSON with
//! the request id), `cors::preflight_answer` and `cors::layer` (tower-http's CORS with the
//! allow-list; preflight answers), `limit::per_client` (client address, rate limit), then the
//! handler. Routes are registered with `utoipa_axum::routes!` only, so each one is in the
//! OpenAPI document at `/api/v1/openapi.json`.

mod admin;
mod auth;
mod catalogue;
mod cors;
mod error;
mod events;
mod extract;
mod images;
mod imports;
mod insights;
mod jwt;
pub(crate) mod limit;
mod openapi;
#[cfg(test)]
mod proptests;
mod recommend;
mod seller;
mod visual;

use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::config::Config;

/// Largest JSON body accepted, in bytes.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What API handlers reach: the web state plus the API's keys and limiters.
#[derive(Clone)]
pub struct ApiState {
    pub app: AppState,
    pub keys: Arc<jwt::Keys>,
    pub limits: Arc<limit::Limits>,
    /// Currency of new listings when a request names none.
    pub currency: String,
    /// The serialized OpenAPI document.
    pub openapi: Bytes,
}

/// Every documented route, relative to `/api/v1`.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi::document))
        .routes(routes!(catalogue::categories))
        .routes(routes!(catalogue::products))
        .routes(routes!(catalogue::search))
        .routes(routes!(catalogue::suggest))
        .routes(routes!(catalogue::product))
        .routes(routes!(catalogue::seller))
        .routes(routes!(events::view))
        .routes(routes!(events::lead))
        .routes(routes!(auth::token))
        .routes(routes!(auth::register))
        .routes(routes!(auth::logout_everywhere))
        .routes(routes!(auth::me))
        .routes(routes!(seller::list, seller::create))
        .routes(routes!(seller::read, seller::update, seller::delete))
        .routes(routes!(seller::hide))
        .routes(routes!(seller::show))
        .routes(routes!(imports::create, imports::list))
        .routes(routes!(imports::read))
        .routes({
            // Photos are larger than JSON bodies: their own limit, a little over the photo's.
            let (schemas, paths, method) = routes!(images::upload, images::list);
            let limit = crate::imaging::codec::MAX_BYTES + 64 * 1024;
            (
                schemas,
                paths,
                method.layer(axum::extract::DefaultBodyLimit::max(limit)),
            )
        })
        .routes(routes!(images::remove))
        .routes(routes!(insights::leads_inbox))
        .routes(routes!(insights::analytics_totals))
        .routes(routes!(admin::list_sellers))
        .routes(routes!(admin::set_seller_status))
        .routes(routes!(admin::quality_queue))
        .routes(routes!(admin::decide_quality))
        .routes(routes!(recommend::for_you))
        .routes(routes!(recommend::for_product))
        .routes(routes!(recommend::trending))
        .routes(routes!(visual::search_image))
        .routes(routes!(visual::similar))
}

/// The API router, to be nested at `/api/v1` outside the browser middleware.
pub fn router(app: AppState, cfg: &Config) -> Router<AppState> {
    let (router, doc) = routes().split_for_parts();
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    openapi::declare_errors(&mut doc);
    let state = ApiState {
        keys: Arc::new(jwt::Keys::new(
            app.settings.jwt_secret.expose().as_bytes(),
            cfg.api.token_ttl_secs.get(),
        )),
        limits: app.settings.limits.0.clone(),
        currency: cfg.currency.clone(),
        openapi: Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
        app,
    };
    router
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        // JSON bodies are small; uploads, when the API takes them, get their own limit.
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::per_client,
        ))
        .layer(cors::layer(&cfg.api.cors_origins))
        .layer(axum::middleware::from_fn(cors::preflight_answer))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
