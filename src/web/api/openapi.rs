//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations as the
//! router registers them (`utoipa_axum::routes!`), so a route cannot exist undocumented.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::ApiState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Soko marketplace API",
        version = "1",
        description = "Public catalogue, WhatsApp lead events, seller and admin endpoints. \
            Authenticate with `POST /auth/token` and send `Authorization: Bearer <token>`. \
            Prices are integer minor units. Errors are `{\"error\": {\"code\", \"message\", \
            \"field\"?}, \"request_id\"}`; over a rate limit the answer is 429 with Retry-After."
    ),
    servers((url = "/api/v1")),
    modifiers(&Bearer),
    tags(
        (name = "catalogue", description = "Public: categories, products, search, sellers"),
        (name = "events", description = "Public: views and WhatsApp leads"),
        (name = "auth", description = "Tokens and accounts"),
        (name = "seller", description = "A seller's products, leads and analytics"),
        (name = "admin", description = "Needs the admin role"),
        (name = "recommendations", description = "Public: for you, also viewed, trending"),
        (name = "meta", description = "This document")
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn document(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        s.openapi.clone(),
    )
}
