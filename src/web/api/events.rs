//! Events a client app reports: a buyer viewed a product, or tapped "Chat on WhatsApp" (the
//! lead funnel: the lead is recorded and the seller's own `wa.me` link comes back).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::MaybeCaller;
use super::error::{ApiError, ErrorBody};
use super::extract::{self, ClientIp, Path};
use super::limit::client_key;
use crate::market::phone::Phone;
use crate::market::whatsapp;
use crate::store::{catalogue, leads, sellers};

/// Optional body of the event endpoints.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// The app's anonymous install id (32 hex characters), for analytics and recommendations.
    pub visitor: Option<String>,
    /// Where the buyer came from (a URL or a screen name).
    pub referrer: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LeadOut {
    /// The lead (a repeated tap today answers the first one's, with 200); absent when this
    /// client address has already recorded its share of leads for the product today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<u64>,
    /// Open this: the seller's own WhatsApp number with a message naming the product.
    pub whatsapp_url: String,
}

struct Event {
    visitor: String,
    referrer: String,
    device: &'static str,
}

fn event(headers: &HeaderMap, body: &Bytes) -> Result<Event, ApiError> {
    let req: EventRequest = if body.is_empty() {
        EventRequest::default()
    } else {
        extract::parse(body)?
    };
    let visitor = req.visitor.unwrap_or_default();
    if !visitor.is_empty()
        && (visitor.len() != 32 || !visitor.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::invalid(
            "visitor",
            "must be 32 hexadecimal characters",
        ));
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // The storefront's device classes (web::storefront), from the client's User-Agent.
    let device = if ["bot", "spider", "crawl", "whatsapp"]
        .iter()
        .any(|w| ua.contains(w))
    {
        "bot"
    } else if ua.contains("ipad") || ua.contains("tablet") {
        "tablet"
    } else if ["mobile", "android", "iphone", "okhttp", "dart"]
        .iter()
        .any(|w| ua.contains(w))
    {
        "mobile"
    } else if ua.is_empty() {
        "other"
    } else {
        "desktop"
    };
    Ok(Event {
        visitor: visitor.to_ascii_lowercase(),
        referrer: req.referrer.unwrap_or_default(),
        device,
    })
}

/// Record that a buyer viewed a product (bots are not counted).
#[utoipa::path(post, path = "/products/{id}/view", tag = "events",
    security((), ("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body(content = Option<EventRequest>, description = "optional"),
    responses((status = 204, description = "recorded"), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn view(
    State(s): State<ApiState>,
    MaybeCaller(user): MaybeCaller,
    ClientIp(ip): ClientIp,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let e = event(&headers, &body)?;
    let p = catalogue::public_product(&s.app.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if e.device != "bot" {
        // Written behind the answer, in groups (`web::view_writer`).
        s.app.views.record(leads::Buffered {
            kind: leads::Kind::View,
            product_id: id,
            seller_id: p.seller_id,
            user_id: user.map(|u| u.id),
            visitor: e.visitor,
            referrer: e.referrer,
            device: e.device,
            address: client_key(ip),
        });
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The WhatsApp lead funnel: records the lead for the seller and answers the `wa.me` link to
/// open, exactly like the storefront's "Chat on WhatsApp" button.
#[utoipa::path(post, path = "/products/{id}/lead", tag = "events",
    security((), ("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    request_body(content = Option<EventRequest>, description = "optional"),
    responses((status = 201, description = "Created", body = LeadOut), (status = 200, description = "A repeated tap: recorded once per visitor, product and day", body = LeadOut), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn lead(
    State(s): State<ApiState>,
    MaybeCaller(user): MaybeCaller,
    ClientIp(ip): ClientIp,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<LeadOut>), ApiError> {
    let e = event(&headers, &body)?;
    let p = catalogue::public_product(&s.app.db, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let seller = sellers::by_id(&s.app.db, p.seller_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let phone = Phone::parse("whatsapp_phone", &seller.whatsapp_phone)
        .map_err(|e| ApiError::internal(format!("seller {} has a bad number: {e}", seller.id)))?;
    let tapped = leads::start_whatsapp_once(
        &s.app.db,
        &leads::Event {
            kind: leads::Kind::WhatsappStart,
            product_id: id,
            seller_id: seller.id,
            user_id: user.map(|u| u.id),
            visitor: &e.visitor,
            referrer: &e.referrer,
            device: e.device,
        },
        &s.app.settings.guard.once(&client_key(ip)),
    )
    .await?;
    let text = whatsapp::message(
        &p.name,
        p.price,
        &format!("{}/p/{id}", s.app.settings.base_url),
    );
    Ok((
        if tapped.new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        axum::Json(LeadOut {
            lead_id: tapped.lead_id,
            whatsapp_url: whatsapp::link(&phone, &text),
        }),
    ))
}
