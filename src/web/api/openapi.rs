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

/// The methods an OpenAPI path item holds operations under.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Declare on every operation the errors the API's middleware and extractors can answer it
/// with, each with the `ErrorBody` schema: the handlers declare their success and their own
/// refusals; what every route shares is added here, from what the operation takes (a token,
/// path parameters, a query string, a body). `tests/integration/api/contract.rs` holds the
/// router's real answers to this list.
pub fn declare_errors(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let errors = errors_of(op);
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (status, description) in errors {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(status, description));
            }
        }
    }
}

/// The statuses `op` can be answered with besides its own, and what each means.
fn errors_of(op: &serde_json::Value) -> Vec<(u16, &'static str)> {
    let params: Vec<&str> = op
        .get("parameters")
        .and_then(|p| p.as_array())
        .map(|ps| ps.iter().filter_map(|p| p["in"].as_str()).collect())
        .unwrap_or_default();
    let body = op.get("requestBody").is_some();
    // `security: [{"bearer": []}]` needs a token; `[{}, {"bearer": []}]` takes one (and
    // refuses a bad one).
    let requirements: Vec<bool> = op
        .get("security")
        .and_then(|s| s.as_array())
        .map(|s| {
            s.iter()
                .map(|r| r.as_object().is_some_and(|r| !r.is_empty()))
                .collect()
        })
        .unwrap_or_default();
    let takes_token = requirements.iter().any(|named| *named);
    let needs_token = takes_token && requirements.iter().all(|named| *named);
    let mut out = Vec::new();
    if params.contains(&"query") || body {
        out.push((
            400,
            "malformed_query, malformed_json or malformed_body: the query string or body could not be read",
        ));
        out.push((
            422,
            "validation_failed: `field` (and `fields`) name the input to fix",
        ));
    }
    if takes_token {
        out.push((
            401,
            "missing_token or invalid_token: send `Authorization: Bearer <token>` from POST /auth/token",
        ));
    }
    if needs_token {
        out.push((403, "forbidden: the token's account may not do this"));
    }
    if params.contains(&"path") {
        out.push((
            404,
            "not_found: no such item (or a malformed path parameter)",
        ));
    }
    if body {
        out.push((413, "payload_too_large: the request body is too large"));
        out.push((
            415,
            "unsupported_media_type: send the body as the declared content type",
        ));
    }
    out.push((
        408,
        "timeout: the request took longer than the server allows",
    ));
    out.push((
        429,
        "rate_limited: over a rate limit; retry after the seconds in Retry-After",
    ));
    out.push((
        500,
        "internal: an internal error; quote `request_id` when reporting it",
    ));
    out.push((
        503,
        "unavailable or busy: the service is starting, busy or restarting; retry after Retry-After",
    ));
    out
}

fn error_response(status: u16, description: &str) -> serde_json::Value {
    let mut response = serde_json::json!({ "description": description });
    // The server's timeout answers before the API's error layer: no body.
    if status != 408 {
        response["content"] = serde_json::json!({
            "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
        });
    }
    if status == 429 || status == 503 {
        response["headers"] = serde_json::json!({
            "Retry-After": {
                "description": "Seconds to wait before retrying",
                "schema": { "type": "integer", "minimum": 1 },
            }
        });
    }
    response
}
