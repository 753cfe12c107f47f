//! The storefront: feed, search, product page, the WhatsApp funnel, seller pages.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use sqlx::MySqlPool;

use super::guard::ClientKey;
use super::page_cache::{Page, PageCache, Shared};
use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::i18n::Lang;
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
        .route("/fragment/for-you", get(for_you_fragment))
        .route("/robots.txt", get(robots))
        .route("/lang/{code}", get(switch_language))
}

pub struct CardView {
    pub id: u64,
    pub name: String,
    /// Shown through `page.price`, in the reader's language.
    pub price: Option<Money>,
    pub seller: String,
    pub city: String,
    pub image: Option<String>,
}

pub(crate) fn views(cards: Vec<Card>) -> Vec<CardView> {
    cards
        .into_iter()
        .map(|c| CardView {
            price: c.price,
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
    /// The shared (anonymous) feed: a placeholder that `app.js` fills from
    /// `/fragment/for-you`, in place of `for_you`.
    pub for_you_fragment: bool,
    /// The search page's facet counts (matches per category and city).
    pub facets: Vec<FacetGroup>,
}

/// "Recommended for you" alone: the feed's strip for one visitor.
#[derive(Template)]
#[template(path = "for_you.html")]
struct ForYou {
    page: PageCtx,
    for_you: Vec<CardView>,
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

/// Serve an anonymous page from the page cache, or render it (at the generation read before
/// its queries) and keep it. `render` returns the HTML and the product page's seller.
pub(crate) async fn shared_page<F>(
    s: &AppState,
    key: String,
    render: F,
) -> Result<(Arc<Page>, bool), Error>
where
    F: std::future::Future<Output = Result<(String, u64), Error>>,
{
    let generation = s.generation.load(std::sync::atomic::Ordering::Acquire);
    if let Some(page) = s.settings.pages.get(&key, generation) {
        return Ok((page, true));
    }
    let (html, seller_id) = render.await?;
    let page = Arc::new(Page::new(html, seller_id, generation));
    s.settings.pages.put(key, page.clone());
    Ok((page, false))
}

async fn home(
    State(s): State<AppState>,
    v: Visitor,
    headers: HeaderMap,
    Query(q): Query<FeedQuery>,
) -> Result<Response, Error> {
    if v.user.is_some() {
        let html = crate::read_on!(s.reads, |db| render_home(db, v.lang, Some(&v), &q).await)?;
        return Ok(Html(html).into_response());
    }
    let path = format!("/?category={:?}&before={:?}", q.category, q.before);
    let key = PageCache::key(v.lang, &path);
    let render = async {
        let generation = s.generation.load(std::sync::atomic::Ordering::Acquire);
        let html = crate::read_on!(s.reads, page generation, |db| async {
                render_home(db, v.lang, None, &q).await
            }.await)?;
        Ok((html, 0))
    };
    let (page, hit) = shared_page(&s, key, render).await?;
    let shared = Shared {
        needs_visitor: false,
    };
    Ok(s.settings.pages.respond(&page, &headers, hit, shared))
}

/// The feed: for a logged-in visitor (`who`, with their "recommended for you" strip), or the
/// same for every anonymous one (the strip comes from `/fragment/for-you`).
async fn render_home(
    db: &MySqlPool,
    lang: Lang,
    who: Option<&Visitor>,
    q: &FeedQuery,
) -> Result<String, Error> {
    let categories = catalogue::categories(db).await?;
    let active = q.category.clone().unwrap_or_default();
    let category = categories.iter().find(|c| c.slug == active);
    let cards = catalogue::feed(db, q.before, category.map(|c| c.id), None, PAGE_SIZE).await?;
    let next = (cards.len() == PAGE_SIZE as usize).then(|| {
        let last = cards.last().map(|c| c.id).unwrap_or_default();
        match category {
            Some(c) => format!("/?category={}&before={last}", c.slug),
            None => format!("/?before={last}"),
        }
    });
    let first_page = category.is_none() && q.before.is_none();
    let (for_you, trending) = match who {
        Some(v) if first_page => {
            let user = v.user.as_ref().map(|u| u.id);
            let mine =
                super::recommend::for_actors(db, user, Some(&v.visitor), super::recommend::STRIP);
            let hot = super::recommend::trending(db, None, super::recommend::STRIP);
            let (mine, hot) = tokio::join!(mine, hot);
            (pick_views(mine?), pick_views(hot?))
        }
        None if first_page => {
            let hot = super::recommend::trending(db, None, super::recommend::STRIP).await?;
            (Vec::new(), pick_views(hot))
        }
        _ => (Vec::new(), Vec::new()),
    };
    Ok(render(&Home {
        facets: Vec::new(),
        for_you,
        trending,
        for_you_fragment: who.is_none() && first_page,
        page: who.map_or_else(|| PageCtx::shared(lang), PageCtx::new),
        heading: category.map_or_else(
            || lang.t("fresh").to_owned(),
            |c| super::pages::category_name(lang, c),
        ),
        active_category: active,
        categories: categories.clone(),
        cards: views(cards),
        next,
        empty_message: lang.t("empty_feed").into(),
    })?
    .0)
}

/// The "recommended for you" strip of the feed, for this visitor (fetched by `app.js`; never
/// shared: `private, no-store`); empty when there is nothing to show.
async fn for_you_fragment(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let user = v.user.as_ref().map(|u| u.id);
    let mine = super::recommend::for_actors(&s.db, user, Some(&v.visitor), super::recommend::STRIP)
        .await?;
    let strip = ForYou {
        page: PageCtx::new(&v),
        for_you: pick_views(mine),
    };
    Ok(render(&strip)?.into_response())
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

/// The search page. An anonymous visitor's comes from the page cache like the feed's: keyed
/// by the parsed query (so junk parameters do not multiply entries) and by the change the
/// search index has applied, so a page is never older than a fresh search would be (a write
/// through this node bumps the generation; one through another advances the index).
async fn search(
    State(s): State<AppState>,
    v: Visitor,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Error> {
    if v.user.is_some() {
        let (html, _) =
            crate::read_on!(s.reads, |db| search_on(&s, db, v.lang, Some(&v), &q).await)?;
        return Ok(Html(html).into_response());
    }
    // Looked up under the change the index has applied now, kept under the one the render
    // searched at (the render may wait for the index to catch up first).
    let key = |applied: u64| {
        let path = format!(
            "/search?{:?}|{:?}|{:?}|{:?}|{:?}|{:?}@{applied}",
            search_text(&q),
            q.category,
            q.min,
            q.max,
            q.city,
            search_page_no(&q),
        );
        PageCache::key(v.lang, &path)
    };
    let generation = s.generation.load(std::sync::atomic::Ordering::Acquire);
    let pages = &s.settings.pages;
    // An empty query searches nothing (the hint page): kept under 0.
    let now = if search_text(&q).is_empty() {
        0
    } else {
        s.search.applied()
    };
    let (page, hit) = match pages.get(&key(now), generation) {
        Some(page) => (page, true),
        None => {
            let (html, applied) = crate::read_on!(s.reads, page generation, |db| async {
                search_on(&s, db, v.lang, None, &q).await
            }.await)?;
            let page = Arc::new(Page::new(html, 0, generation));
            pages.put(key(applied), page.clone());
            (page, false)
        }
    };
    let shared = Shared {
        needs_visitor: false,
    };
    Ok(pages.respond(&page, &headers, hit, shared))
}

/// The query's text, bounded: a 10 KB query is cut, not fed to the index or the full-text
/// parser whole.
fn search_text(q: &SearchQuery) -> String {
    q.q.trim().chars().take(200).collect()
}

/// The 1-based page of results asked for, within the pages one can walk through.
fn search_page_no(q: &SearchQuery) -> usize {
    q.page
        .as_deref()
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_SEARCH_PAGES)
}

/// The search page for `who`, or the same for every anonymous visitor (`None`), and the
/// change the index had applied when it was searched (see `search::Results::applied`).
async fn search_on(
    s: &AppState,
    db: &MySqlPool,
    lang: Lang,
    who: Option<&Visitor>,
    q: &SearchQuery,
) -> Result<(String, u64), Error> {
    let text = search_text(q);
    let categories = catalogue::categories(db).await?;
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
    let page_no = search_page_no(q);
    let offset = (page_no - 1) * PAGE_SIZE as usize;
    let found = if text.is_empty() {
        None
    } else {
        Some(
            s.search
                .search_on(db, &text, &filter, offset, PAGE_SIZE)
                .await?,
        )
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
                    label: super::pages::category_name(lang, c),
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
                        Some(hi) if lo == 0 => lang.tf1("price_up_to", kes(hi)),
                        Some(hi) => format!("{} – {}", kes(lo), kes(hi)),
                        None => lang.tf1("price_and_up", kes(lo)),
                    },
                    href: href(&[("min", &min), ("max", &max)]),
                    count: n,
                    on,
                }
            })
            .collect();
        for (title, links) in [("category", cats), ("city", cities), ("price", prices)] {
            if !links.is_empty() {
                facets.push(FacetGroup {
                    title: lang.t(title).into(),
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
    let applied = found.as_ref().map_or(0, |f| f.applied);
    let cards = found.map(|f| f.cards).unwrap_or_default();
    let mut page = who.map_or_else(|| PageCtx::shared(lang), PageCtx::new);
    page.query = text.clone();
    let html = render(&Home {
        page,
        heading: if text.is_empty() {
            lang.t("search").into()
        } else {
            lang.tf1("results_for_q", &text)
        },
        active_category: category.map(|c| c.slug.clone()).unwrap_or_default(),
        categories,
        cards: views(cards),
        next,
        for_you: Vec::new(),
        trending: Vec::new(),
        for_you_fragment: false,
        facets,
        empty_message: if text.is_empty() {
            lang.t("search_hint").into()
        } else {
            lang.t("no_results").into()
        },
    })?
    .0;
    Ok((html, applied))
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
        crate::read_on!(s.reads, |db| s.search.suggest_on(db, &text, 8).await)?
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
    /// OpenGraph's `product:price:amount` (`4500.00`); `None`: contact for price.
    price_amount: Option<String>,
    price_currency: String,
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
    if v.user.is_some() {
        let (html, seller_id) =
            crate::read_on!(s.reads, |db| render_product(&s, db, v.lang, Some(&v), id)
                .await)?;
        count_view(&s, &v, &client, &headers, id, seller_id);
        return Ok(Html(html).into_response());
    }
    let key = PageCache::key(v.lang, &format!("/p/{id}"));
    let render = async {
        let generation = s.generation.load(std::sync::atomic::Ordering::Acquire);
        crate::read_on!(s.reads, page generation, |db| async {
                render_product(&s, db, v.lang, None, id).await
            }.await)
    };
    let (page, hit) = shared_page(&s, key, render).await?;
    // Counted on a hit too: the page is shared, the view is this visitor's.
    let counted = count_view(&s, &v, &client, &headers, id, page.seller_id);
    let shared = Shared {
        needs_visitor: counted,
    };
    Ok(s.settings.pages.respond(&page, &headers, hit, shared))
}

/// Record a view of the product (once per visitor, product and day); bots are not counted.
/// Whether one was recorded under the visitor id.
fn count_view(
    s: &AppState,
    v: &Visitor,
    client: &ClientKey,
    headers: &HeaderMap,
    id: u64,
    seller_id: u64,
) -> bool {
    let device = device_of(headers);
    if device == "bot" {
        return false;
    }
    // Written behind the page, in groups (`view_writer`): the page never waits for it.
    s.views.record(leads::Buffered {
        kind: leads::Kind::View,
        product_id: id,
        seller_id,
        user_id: v.user.as_ref().map(|u| u.id),
        visitor: v.visitor.clone(),
        referrer: referrer_of(headers).to_owned(),
        device,
        address: client.0.clone(),
    });
    true
}

/// The product page and its seller's id: for a logged-in visitor (`who`: their favourite and
/// review forms) or the same for every anonymous one. The page's reads run side by side.
async fn render_product(
    s: &AppState,
    db: &MySqlPool,
    lang: Lang,
    who: Option<&Visitor>,
    id: u64,
) -> Result<(String, u64), Error> {
    let shown = catalogue::public_page(db, id)
        .await?
        .ok_or(Error::NotFound)?;
    let seller_rating = shown.seller_rating();
    let p = shown.product;
    let user = who.and_then(|v| v.user.as_ref());
    let favourite = async {
        match user {
            Some(u) => reviews::is_favourite(db, u.id, id).await,
            None => Ok(false),
        }
    };
    let (reviews, also, similar, favourite) = tokio::join!(
        reviews::for_product(db, id, 50),
        super::recommend::for_product(db, id, p.category_id, super::recommend::STRIP),
        super::photo_search::similar_block_now(s, id),
        favourite,
    );
    let mut summary: String = p
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    summary = summary.chars().take(160).collect();
    if summary.is_empty() {
        summary = format!(
            "{} · {}",
            p.name,
            crate::market::i18n::format::money(lang, p.price)
        );
    }
    let page = ProductPage {
        page: who.map_or_else(|| PageCtx::shared(lang), PageCtx::new),
        id,
        price: crate::market::i18n::format::money(lang, p.price),
        price_amount: p
            .price
            .map(|m| format!("{}.{:02}", m.minor / 100, (m.minor % 100).abs())),
        price_currency: p
            .price
            .map(|m| m.currency.code().to_owned())
            .unwrap_or_default(),
        canonical: format!("{}/p/{id}", s.settings.base_url),
        base_url: s.settings.base_url.clone(),
        summary,
        description: p.description,
        stock: p.stock,
        image: shown.image,
        name: p.name,
        seller_rating,
        seller_name: shown.store_name,
        seller_slug: shown.slug,
        seller_city: shown.city,
        reviews: reviews?,
        favourite: favourite?,
        logged_in: user.is_some(),
        also: pick_views(also?),
        similar,
    };
    Ok((render(&page)?.0, p.seller_id))
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
    let text = whatsapp::message_in(
        v.lang,
        &p.name,
        p.price,
        &format!("{}/p/{id}", s.settings.base_url),
    );
    Ok(Redirect::to(&whatsapp::link(&phone, &text)).into_response())
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
