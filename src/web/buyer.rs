//! What buyers do besides browsing: favourites (the watchlist) and reviews. Plus the sitemap.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::guard::ClientKey;
use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::storefront::{Home, views};
use super::{AppState, Error};
use crate::market::text;
use crate::store::{self, catalogue, leads, reviews};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{id}/favourite", post(toggle_favourite))
        .route("/favourites", get(watchlist))
        .route("/p/{id}/reviews", post(add_review))
        .route("/sitemap.xml", get(sitemap))
}

async fn toggle_favourite(
    State(s): State<AppState>,
    v: Visitor,
    client: ClientKey,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let user = v.require_user()?;
    let p = catalogue::public_product(&s.db, id)
        .await?
        .ok_or(Error::NotFound)?;
    if reviews::toggle_favourite(&s.db, user.id, id).await? {
        // Once a day per visitor: toggling on and off cannot add rows without end.
        leads::record_once(
            &s.db,
            &leads::Event {
                kind: leads::Kind::Wishlist,
                product_id: id,
                seller_id: p.seller_id,
                user_id: Some(user.id),
                visitor: &v.visitor,
                referrer: "",
                device: "other",
            },
            &s.settings.guard.once(&client.0),
        )
        .await?;
    }
    Ok(Redirect::to(&format!("/p/{id}")).into_response())
}

async fn watchlist(State(s): State<AppState>, v: Visitor) -> Result<Html<String>, Error> {
    let user = v.require_user()?;
    let cards = reviews::favourites(&s.db, user.id).await?;
    render(&Home {
        facets: Vec::new(),
        page: PageCtx::new(&v),
        heading: v.lang.t("your_watchlist").into(),
        categories: Vec::new(),
        active_category: String::new(),
        cards: views(cards),
        next: None,
        for_you: Vec::new(),
        trending: Vec::new(),
        for_you_fragment: false,
        empty_message: v.lang.t("empty_watchlist").into(),
    })
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    rating: String,
    #[serde(default)]
    body: String,
}

async fn add_review(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, Error> {
    let user = v.require_user()?;
    catalogue::public_product(&s.db, id)
        .await?
        .ok_or(Error::NotFound)?;
    let rating = f
        .rating
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|r| (1..=5).contains(r));
    let body = text::paragraph("body", &f.body, 2000).ok();
    let (Some(rating), Some(body)) = (rating, body) else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, v.lang.t("review_invalid")).into_response());
    };
    match reviews::add(&s.db, id, user.id, rating, &body).await {
        Ok(()) => Ok(Redirect::to(&format!("/p/{id}#reviews")).into_response()),
        Err(store::Error::Conflict(_)) => {
            Ok((StatusCode::CONFLICT, v.lang.t("review_twice")).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Public products and seller pages, newest first (the first 50,000, as the protocol allows).
async fn sitemap(State(s): State<AppState>) -> Result<Response, Error> {
    let base = &s.settings.base_url;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    xml.push_str(&format!("<url><loc>{base}/</loc></url>\n"));
    for (kind, key) in catalogue::sitemap_entries(&s.db, 50_000).await? {
        xml.push_str(&format!(
            "<url><loc>{base}/{kind}/{}</loc></url>\n",
            xml_escape(&key)
        ));
    }
    xml.push_str("</urlset>\n");
    Ok((
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
