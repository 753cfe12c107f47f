//! The storefront: feed, search, product page, the WhatsApp funnel, seller pages.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::guard::ClientKey;
use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::money::{Currency, Money};
use crate::market::phone::Phone;
use crate::market::whatsapp;
use crate::store::catalogue::{self, Card, SearchFilter};
use crate::store::{leads, reviews, sellers};

pub const PAGE_SIZE: u32 = 40;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/search/suggest", get(suggest))
        .route("/p/{id}", get(product))
        .route("/p/{id}/whatsapp", get(whatsapp_start))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route("/robots.txt", get(robots))
        .route("/lang/{code}", get(switch_language))
}

pub struct CardView {
    pub id: u64,
    pub name: String,
    pub price: String,
    pub seller: String,
    pub city: String,
    pub image: Option<String>,
}

pub fn price_text(price: Option<Money>) -> String {
    match price {
        Some(m) => m.to_string(),
        None => "Contact for price".to_owned(),
    }
}

pub(crate) fn views(cards: Vec<Card>) -> Vec<CardView> {
    cards
        .into_iter()
        .map(|c| CardView {
            price: price_text(c.price),
            id: c.id,
            name: c.name,
            seller: c.seller_name,
            city: c.city,
            image: c.image,
        })
        .collect()
}

fn pick_views(picks: Vec<super::recommend::Pick>) -> Vec<CardView> {
    views(picks.into_iter().map(|p| p.card).collect())
}

#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct Home {
    pub page: PageCtx,
    pub heading: String,
    pub categories: Vec<catalogue::Category>,
    pub active_category: String,
    pub cards: Vec<CardView>,
    pub next: Option<String>,
    pub empty_message: String,
    /// "Recommended for you" and "Trending" strips (the feed's first page only).
    pub for_you: Vec<CardView>,
    pub trending: Vec<CardView>,
    /// The search page's facet counts (matches per category and city).
    pub facets: Vec<FacetGroup>,
}

pub(crate) struct FacetGroup {
    pub title: String,
    pub links: Vec<FacetLink>,
}

pub(crate) struct FacetLink {
    pub label: String,
    pub href: String,
    pub count: u64,
    /// This filter is applied (its link removes it).
    pub on: bool,
}

#[derive(Deserialize)]
struct FeedQuery {
    category: Option<String>,
    before: Option<u64>,
}

async fn home(
    State(s): State<AppState>,
    v: Visitor,
    Query(q): Query<FeedQuery>,
) -> Result<Html<String>, Error> {
    let categories = catalogue::categories(&s.db).await?;
    let active = q.category.unwrap_or_default();
    let category = categories.iter().find(|c| c.slug == active);
    let cards = catalogue::feed(&s.db, q.before, category.map(|c| c.id), None, PAGE_SIZE).await?;
    let next = (cards.len() == PAGE_SIZE as usize).then(|| {
        let last = cards.last().map(|c| c.id).unwrap_or_default();
        match category {
            Some(c) => format!("/?category={}&before={last}", c.slug),
            None => format!("/?before={last}"),
        }
    });
    let (for_you, trending) = if category.is_none() && q.before.is_none() {
        let user = v.user.as_ref().map(|u| u.id);
        let mine =
            super::recommend::for_actors(&s.db, user, Some(&v.visitor), super::recommend::STRIP);
        let hot = super::recommend::trending(&s.db, None, super::recommend::STRIP);
        let (mine, hot) = tokio::join!(mine, hot);
        (pick_views(mine?), pick_views(hot?))
    } else {
        (Vec::new(), Vec::new())
    };
    render(&Home {
        facets: Vec::new(),
        for_you,
        trending,
        page: PageCtx::new(&v),
        heading: category.map_or_else(|| v.lang.t("fresh").to_owned(), |c| c.name.clone()),
        active_category: active,
        categories: categories.clone(),
        cards: views(cards),
        next,
        empty_message: v.lang.t("empty_feed").into(),
    })
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    category: Option<String>,
    min: Option<String>,
    max: Option<String>,
    city: Option<String>,
    /// 1-based; pages past the first come from the index only.
    page: Option<String>,
}

/// Pages of search results one can walk through (40 each).
const MAX_SEARCH_PAGES: usize = 25;

async fn search(
    State(s): State<AppState>,
    v: Visitor,
    Query(q): Query<SearchQuery>,
) -> Result<Html<String>, Error> {
    // Bounded: a 10 KB query is cut, not fed to the index or the full-text parser whole.
    let text: String = q.q.trim().chars().take(200).collect();
    let categories = catalogue::categories(&s.db).await?;
    let category = q
        .category
        .as_deref()
        .and_then(|slug| categories.iter().find(|c| c.slug == slug));
    let money = |m: &Option<String>| {
        m.as_deref()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| Money::parse(s, Currency::KES).ok())
            .map(|m| m.minor)
    };
    let filter = SearchFilter {
        category: category.map(|c| c.id),
        min_minor: money(&q.min),
        max_minor: money(&q.max),
        city: q
            .city
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    };
    let page_no = q
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_SEARCH_PAGES);
    let offset = (page_no - 1) * PAGE_SIZE as usize;
    let found = if text.is_empty() {
        None
    } else {
        Some(s.search.search(&text, &filter, offset, PAGE_SIZE).await?)
    };
    // Links keep the other filters; `set` replaces (or with "" removes) one of them.
    let href = |set: &[(&str, &str)]| {
        let mut pairs: Vec<(&str, String)> = vec![("q", text.clone())];
        let mut keep = |k: &'static str, v: Option<String>| {
            let v = set
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
                .or(v);
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                pairs.push((k, v));
            }
        };
        keep("category", category.map(|c| c.slug.clone()));
        keep("min", q.min.clone());
        keep("max", q.max.clone());
        keep("city", filter.city.clone());
        keep("page", None);
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", url_escape(v)))
            .collect();
        format!("/search?{}", query.join("&"))
    };
    let mut facets = Vec::new();
    let mut next = None;
    if let Some(found) = &found {
        let cats: Vec<FacetLink> = found
            .facets
            .categories
            .iter()
            .filter_map(|(id, n)| {
                let c = categories.iter().find(|c| c.id == *id)?;
                let on = category.is_some_and(|a| a.id == c.id);
                Some(FacetLink {
                    label: if v.lang.code() == "sw" && !c.name_sw.is_empty() {
                        c.name_sw.clone()
                    } else {
                        c.name.clone()
                    },
                    href: href(&[("category", if on { "" } else { &c.slug })]),
                    count: *n,
                    on,
                })
            })
            .collect();
        let cities: Vec<FacetLink> = found
            .facets
            .cities
            .iter()
            .take(12)
            .map(|(city, n)| {
                let on = filter
                    .city
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(city));
                FacetLink {
                    label: city.clone(),
                    href: href(&[("city", if on { "" } else { city })]),
                    count: *n,
                    on,
                }
            })
            .collect();
        let major = |minor: i64| (minor / 100).to_string();
        let kes = |minor: i64| Money::new(minor, Currency::KES).to_string();
        let prices: Vec<FacetLink> = crate::search::query::PRICE_BANDS
            .iter()
            .zip(found.facets.price_bands)
            .filter(|(_, n)| *n > 0)
            .map(|(&(lo, hi), n)| {
                let on = filter.min_minor.unwrap_or(0) == lo && filter.max_minor == hi;
                let (min, max) = if on {
                    (String::new(), String::new())
                } else {
                    (
                        if lo > 0 { major(lo) } else { String::new() },
                        hi.map(major).unwrap_or_default(),
                    )
                };
                FacetLink {
                    label: match hi {
                        Some(hi) if lo == 0 => format!("up to {}", kes(hi)),
                        Some(hi) => format!("{} – {}", kes(lo), kes(hi)),
                        None => format!("{} and up", kes(lo)),
                    },
                    href: href(&[("min", &min), ("max", &max)]),
                    count: n,
                    on,
                }
            })
            .collect();
        for (title, links) in [("Category", cats), ("City", cities), ("Price", prices)] {
            if !links.is_empty() {
                facets.push(FacetGroup {
                    title: title.into(),
                    links,
                });
            }
        }
        if found.total.is_some_and(|t| t > offset + found.cards.len())
            && found.cards.len() == PAGE_SIZE as usize
            && page_no < MAX_SEARCH_PAGES
        {
            let n = (page_no + 1).to_string();
            next = Some(href(&[("page", &n)]));
        }
    }
    let cards = found.map(|f| f.cards).unwrap_or_default();
    let mut page = PageCtx::new(&v);
    page.query = text.clone();
    render(&Home {
        page,
        heading: if text.is_empty() {
            "Search".into()
        } else {
            format!("Results for “{text}”")
        },
        active_category: category.map(|c| c.slug.clone()).unwrap_or_default(),
        categories,
        cards: views(cards),
        next,
        for_you: Vec::new(),
        trending: Vec::new(),
        facets,
        empty_message: if text.is_empty() {
            v.lang.t("search_hint").into()
        } else {
            v.lang.t("no_results").into()
        },
    })
}

/// A query-string value, percent-encoded (everything but unreserved characters).
fn url_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct SuggestQuery {
    #[serde(default)]
    q: String,
}

/// The search box's suggestions: `{"q": "...", "suggestions": [{"id", "name"}]}`, at most 8.
async fn suggest(
    State(s): State<AppState>,
    Query(q): Query<SuggestQuery>,
) -> Result<Response, Error> {
    let text: String = q.q.trim().chars().take(100).collect();
    let suggestions = if text.is_empty() {
        Vec::new()
    } else {
        s.search.suggest(&text, 8).await?
    };
    Ok(axum::Json(serde_json::json!({ "q": text, "suggestions": suggestions })).into_response())
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    page: PageCtx,
    id: u64,
    name: String,
    price: String,
    summary: String,
    description: String,
    stock: u32,
    image: Option<String>,
    canonical: String,
    base_url: String,
    seller_name: String,
    seller_slug: String,
    seller_city: String,
    seller_rating: Option<f32>,
    reviews: Vec<reviews::Review>,
    favourite: bool,
    logged_in: bool,
    /// "Buyers also viewed": precomputed neighbours, cold start from popularity.
    also: Vec<CardView>,
    similar: super::photo_search::SimilarBlock,
}

fn device_of(headers: &HeaderMap) -> &'static str {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ua.contains("bot")
        || ua.contains("spider")
        || ua.contains("crawl")
        || ua.contains("whatsapp")
    {
        "bot"
    } else if ua.contains("ipad") || ua.contains("tablet") {
        "tablet"
    } else if ua.contains("mobile") || ua.contains("android") || ua.contains("iphone") {
        "mobile"
    } else if ua.is_empty() {
        "other"
    } else {
        "desktop"
    }
}

fn referrer_of(headers: &HeaderMap) -> &str {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn product(
    State(s): State<AppState>,
    v: Visitor,
    client: ClientKey,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let p = catalogue::public_product(&s.db, id)
        .await?
        .ok_or(Error::NotFound)?;
    let seller = sellers::by_id(&s.db, p.seller_id)
        .await?
        .ok_or(Error::NotFound)?;
    let image = catalogue::first_image(&s.db, id).await?;
    let device = device_of(&headers);
    if device != "bot" {
        leads::record_once(
            &s.db,
            &leads::Event {
                kind: leads::Kind::View,
                product_id: id,
                seller_id: p.seller_id,
                user_id: v.user.as_ref().map(|u| u.id),
                visitor: &v.visitor,
                referrer: referrer_of(&headers),
                device,
            },
            &s.settings.guard.once(&client.0),
        )
        .await?;
    }
    let summary: String = p.description.chars().take(160).collect();
    let favourite = match &v.user {
        Some(u) => reviews::is_favourite(&s.db, u.id, id).await?,
        None => false,
    };
    let page = ProductPage {
        page: PageCtx::new(&v),
        id,
        price: price_text(p.price),
        canonical: format!("{}/p/{id}", s.settings.base_url),
        base_url: s.settings.base_url.clone(),
        summary,
        description: p.description,
        stock: p.stock,
        image,
        name: p.name,
        seller_rating: seller.rating(),
        seller_name: seller.store_name,
        seller_slug: seller.slug,
        seller_city: seller.city,
        reviews: reviews::for_product(&s.db, id, 50).await?,
        favourite,
        logged_in: v.user.is_some(),
        also: pick_views(
            super::recommend::for_product(&s.db, id, p.category_id, super::recommend::STRIP)
                .await?,
        ),
        similar: super::photo_search::similar_block(&s, id).await,
    };
    Ok(render(&page)?.into_response())
}

/// Record the lead (once per visitor, product and day), then send the buyer to the seller's
/// own WhatsApp number: a repeated tap still opens WhatsApp.
async fn whatsapp_start(
    State(s): State<AppState>,
    v: Visitor,
    client: ClientKey,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let p = catalogue::public_product(&s.db, id)
        .await?
        .ok_or(Error::NotFound)?;
    let seller = sellers::by_id(&s.db, p.seller_id)
        .await?
        .ok_or(Error::NotFound)?;
    let phone = Phone::parse("whatsapp_phone", &seller.whatsapp_phone)
        .map_err(|e| Error::Internal(format!("seller {} has a bad number: {e}", seller.id)))?;
    leads::start_whatsapp_once(
        &s.db,
        &leads::Event {
            kind: leads::Kind::WhatsappStart,
            product_id: id,
            seller_id: seller.id,
            user_id: v.user.as_ref().map(|u| u.id),
            visitor: &v.visitor,
            referrer: referrer_of(&headers),
            device: device_of(&headers),
        },
        &s.settings.guard.once(&client.0),
    )
    .await?;
    let text = whatsapp::message(&p.name, p.price, &format!("{}/p/{id}", s.settings.base_url));
    Ok(Redirect::to(&whatsapp::link(&phone, &text)).into_response())
}

async fn css() -> impl IntoResponse {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/app.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("static/app.js"),
    )
}

async fn robots(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "User-agent: *\nDisallow: /sell\nDisallow: /admin\nDisallow: /p/*/whatsapp\nSitemap: {}/sitemap.xml\n",
            s.settings.base_url
        ),
    )
}

#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}

/// A path on this site to send a visitor back to: it starts with one `/`, and carries no
/// backslash and no control character. Browsers drop tabs and newlines from a URL before
/// reading it, so `/%09/evil.example` would become `//evil.example`, another site.
fn same_site_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
}

/// Switch the storefront language: remembered in a cookie, and on the account when logged in.
async fn switch_language(
    State(s): State<AppState>,
    v: Visitor,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(b): Query<Back>,
) -> Result<Response, Error> {
    let lang = crate::market::i18n::Lang::parse(&code).ok_or(Error::NotFound)?;
    if let Some(u) = &v.user {
        crate::store::users::set_locale(&s.db, u.id, lang.code()).await?;
    }
    // Back to where the visitor was, on this site only (no open redirect).
    let referer_path = referrer_of(&headers)
        .strip_prefix(&s.settings.base_url)
        .map(str::to_owned);
    let back = b
        .back
        .or(referer_path)
        .filter(|p| same_site_path(p))
        .unwrap_or_else(|| "/".into());
    let secure = if s.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age=31536000; SameSite=Lax{secure}",
        super::session::LANG,
        lang.code()
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response())
}
