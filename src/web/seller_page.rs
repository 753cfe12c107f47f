//! A seller's public page: their store card and products, with OpenGraph and Twitter tags so a
//! link shared on WhatsApp previews with the store's name, city and a product photo.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::page_cache::{PageCache, Shared};
use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::storefront::{CardView, views};
use super::{AppState, Error};
use crate::market::i18n::Lang;
use crate::store::{catalogue, sellers};

pub fn router() -> Router<AppState> {
    Router::new().route("/s/{slug}", get(seller_page))
}

#[derive(Template)]
#[template(path = "seller.html")]
struct SellerPage {
    page: PageCtx,
    store_name: String,
    city: String,
    description: String,
    /// "4.5 ★ (12)", or empty before the first review.
    rating: String,
    summary: String,
    canonical: String,
    base_url: String,
    /// A product photo for the link preview.
    image: Option<String>,
    cards: Vec<CardView>,
    empty_message: String,
}

async fn seller_page(
    State(s): State<AppState>,
    v: Visitor,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, Error> {
    if v.user.is_some() {
        let html = crate::read_on!(s.reads, |db| render_seller(&s, db, v.lang, Some(&v), &slug)
            .await)?;
        return Ok(Html(html).into_response());
    }
    let key = PageCache::key(v.lang, &format!("/s/{slug}"));
    let render = async {
        let generation = s.generation.load(std::sync::atomic::Ordering::Acquire);
        let html = crate::read_on!(s.reads, page generation, |db| async {
                render_seller(&s, db, v.lang, None, &slug).await
            }.await)?;
        Ok((html, 0))
    };
    let (page, hit) = super::storefront::shared_page(&s, key, render).await?;
    let shared = Shared {
        needs_visitor: false,
    };
    Ok(s.settings.pages.respond(&page, &headers, hit, shared))
}

/// The seller page, for a logged-in visitor (`who`) or the same for every anonymous one.
async fn render_seller(
    s: &AppState,
    db: &sqlx::MySqlPool,
    lang: Lang,
    who: Option<&Visitor>,
    slug: &str,
) -> Result<String, Error> {
    let seller = sellers::by_slug(db, slug)
        .await?
        .filter(|s| s.is_approved())
        .ok_or(Error::NotFound)?;
    let cards = views(catalogue::feed(db, None, None, Some(seller.id), 200).await?);
    let image = cards.iter().find_map(|c| c.image.clone());
    let rating = match seller.rating_count {
        0 => String::new(),
        n => format!("{:.1} ★ ({n})", f64::from(seller.rating_sum) / f64::from(n)),
    };
    let summary = if seller.description.is_empty() {
        lang.tf2("seller_summary", &seller.store_name, &seller.city)
    } else {
        seller.description.chars().take(160).collect()
    };
    Ok(render(&SellerPage {
        page: who.map_or_else(|| PageCtx::shared(lang), PageCtx::new),
        canonical: format!("{}/s/{}", s.settings.base_url, seller.slug),
        base_url: s.settings.base_url.clone(),
        store_name: seller.store_name,
        city: seller.city,
        description: seller.description,
        rating,
        summary,
        image,
        cards,
        empty_message: lang.t("seller_empty").into(),
    })?
    .0)
}
