//! Public endpoints: categories, the product feed (cursor pagination), search, product and
//! seller detail, and the view and WhatsApp-lead events a client app reports.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Path, Query, limit, parse_opt};
use crate::market::FieldErrors;
use crate::market::money::Money;
use crate::store::catalogue::{self, Card, SearchFilter};
use crate::store::sellers;

pub const DEFAULT_LIMIT: u32 = 40;
pub const MAX_LIMIT: u32 = 100;

/// An amount in integer minor units (KSh 4,500 is `450000`), its currency, and its display.
#[derive(Serialize, ToSchema)]
pub struct Price {
    pub minor: i64,
    pub currency: String,
    /// As shown to shoppers: `KSh 4,500`.
    pub display: String,
}

pub fn price(price: Option<Money>) -> Option<Price> {
    price.map(|m| Price {
        minor: m.minor,
        currency: m.currency.code().to_owned(),
        display: m.to_string(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct CategoryOut {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub name_sw: String,
}

/// A product in a list: every list the API answers (catalogue, search, similar items,
/// recommendations) starts its items with these fields.
#[derive(Serialize, ToSchema)]
pub struct CardOut {
    pub id: u64,
    pub name: String,
    /// Absent: "contact for price".
    pub price: Option<Price>,
    pub seller_name: String,
    pub seller_slug: String,
    pub city: String,
    /// 320 px wide WebP.
    pub thumbnail_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CardPage {
    pub items: Vec<CardOut>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<u64>,
}

fn image_url(s: &ApiState, sha: &str, width: u32) -> String {
    format!("{}/img/{sha}/{width}.webp", s.app.settings.base_url)
}

impl CardOut {
    pub fn new(s: &ApiState, c: Card) -> CardOut {
        CardOut {
            price: price(c.price),
            thumbnail_url: c.image.as_deref().map(|sha| image_url(s, sha, 320)),
            id: c.id,
            name: c.name,
            seller_name: c.seller_name,
            seller_slug: c.seller_slug,
            city: c.city,
        }
    }
}

fn card_page(s: &ApiState, cards: Vec<Card>, limit: u32) -> CardPage {
    let next_before = (cards.len() == limit as usize)
        .then(|| cards.last().map(|c| c.id))
        .flatten();
    CardPage {
        items: cards.into_iter().map(|c| CardOut::new(s, c)).collect(),
        next_before,
    }
}

/// `limit`: 1 to 100, default 40.
fn limit_of(value: &Option<String>, errors: &mut FieldErrors) -> u32 {
    errors
        .check(limit(value, MAX_LIMIT, DEFAULT_LIMIT))
        .unwrap_or(DEFAULT_LIMIT)
}

async fn category_id(db: &MySqlPool, slug: &Option<String>) -> Result<Option<u64>, ApiError> {
    match slug.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(slug) => match catalogue::category_by_slug(db, slug).await? {
            Some(c) => Ok(Some(c.id)),
            None => Err(ApiError::invalid(
                "category",
                "is not a known category slug",
            )),
        },
    }
}

/// Every category, in display order.
#[utoipa::path(get, path = "/categories", tag = "catalogue",
    responses((status = 200, description = "OK", body = Vec<CategoryOut>)))]
pub async fn categories(
    State(s): State<ApiState>,
) -> Result<axum::Json<Vec<CategoryOut>>, ApiError> {
    let all = crate::read_on!(s.app.reads, |db| catalogue::categories(db).await)?;
    Ok(axum::Json(
        all.into_iter()
            .map(|c| CategoryOut {
                id: c.id,
                slug: c.slug,
                name: c.name,
                name_sw: c.name_sw,
            })
            .collect(),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Cursor: the `next_before` of the previous page.
    #[param(value_type = Option<u64>)]
    pub before: Option<String>,
    /// 1 to 100 (default 40).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// A category slug.
    pub category: Option<String>,
}

/// Public products, newest first, a page at a time.
#[utoipa::path(get, path = "/products", tag = "catalogue", params(FeedQuery),
    responses((status = 200, description = "OK", body = CardPage), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn products(
    State(s): State<ApiState>,
    Query(q): Query<FeedQuery>,
) -> Result<axum::Json<CardPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let before = errors
        .check(parse_opt::<u64>("before", &q.before, "a product id"))
        .flatten();
    let limit = limit_of(&q.limit, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let cards = crate::read_on!(s.app.reads, |db| async {
        let category = category_id(db, &q.category).await?;
        Ok::<_, ApiError>(catalogue::feed(db, before, category, None, limit).await?)
    }
    .await)?;
    Ok(axum::Json(card_page(&s, cards, limit)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to look for in names, descriptions, sellers and cities (1 to 200 characters).
    pub q: Option<String>,
    /// A category slug.
    pub category: Option<String>,
    /// Lowest price, integer minor units.
    #[param(value_type = Option<i64>)]
    pub min: Option<String>,
    /// Highest price, integer minor units.
    #[param(value_type = Option<i64>)]
    pub max: Option<String>,
    pub city: Option<String>,
    /// 1 to 100 (default 40).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// Full-text search with filters, best match first.
#[utoipa::path(get, path = "/products/search", tag = "catalogue", params(SearchQuery),
    responses((status = 200, description = "OK", body = CardPage), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn search(
    State(s): State<ApiState>,
    Query(q): Query<SearchQuery>,
) -> Result<axum::Json<CardPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let text: String =
        q.q.as_deref()
            .unwrap_or_default()
            .trim()
            .chars()
            .take(200)
            .collect();
    if text.is_empty() {
        errors
            .0
            .push(crate::market::FieldError::new("q", "is required"));
    }
    let amount = "a whole number of minor units, 0 or more";
    let min = errors
        .check(parse_opt::<i64>("min", &q.min, amount))
        .flatten();
    let max = errors
        .check(parse_opt::<i64>("max", &q.max, amount))
        .flatten();
    for (field, v) in [("min", min), ("max", max)] {
        if v.is_some_and(|v| v < 0) {
            errors.0.push(crate::market::FieldError::new(
                field,
                format!("must be {amount}"),
            ));
        }
    }
    let limit = limit_of(&q.limit, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let city = q
        .city
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let cards = crate::read_on!(s.app.reads, |db| async {
        let filter = SearchFilter {
            category: category_id(db, &q.category).await?,
            min_minor: min,
            max_minor: max,
            city: city.clone(),
        };
        Ok::<_, ApiError>(
            s.app
                .search
                .search_on(db, &text, &filter, 0, limit)
                .await?
                .cards,
        )
    }
    .await)?;
    let mut page = card_page(&s, cards, limit);
    page.next_before = None; // relevance order has no id cursor
    Ok(axum::Json(page))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestQuery {
    /// What was typed so far (1 to 100 characters); the last word may be unfinished.
    pub q: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestion {
    pub id: u64,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestions {
    pub q: String,
    /// At most 8 product names, best first; empty while the search index is being built.
    pub suggestions: Vec<Suggestion>,
}

/// Suggestions for a search box: products whose words start with what was typed (typos forgiven).
#[utoipa::path(get, path = "/products/suggest", tag = "catalogue", params(SuggestQuery),
    responses((status = 200, description = "OK", body = Suggestions), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn suggest(
    State(s): State<ApiState>,
    Query(q): Query<SuggestQuery>,
) -> Result<axum::Json<Suggestions>, ApiError> {
    let text = q.q.as_deref().unwrap_or_default().trim();
    if text.is_empty() || text.chars().count() > 100 {
        let mut errors = FieldErrors::default();
        errors.0.push(crate::market::FieldError::new(
            "q",
            "is required, 1 to 100 characters",
        ));
        return Err(errors.into());
    }
    let suggestions =
        crate::read_on!(s.app.reads, |db| s.app.search.suggest_on(db, text, 8).await)?
            .into_iter()
            .map(|x| Suggestion {
                id: x.id,
                name: x.name,
            })
            .collect();
    Ok(axum::Json(Suggestions {
        q: text.to_owned(),
        suggestions,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SellerPublic {
    pub slug: String,
    pub store_name: String,
    pub city: String,
    pub description: String,
    /// Average stars (1 to 5, one decimal), absent until someone rates.
    pub rating: Option<f32>,
    pub rating_count: u32,
    /// The storefront page.
    pub url: String,
}

fn seller_public(s: &ApiState, seller: sellers::Seller) -> SellerPublic {
    SellerPublic {
        url: format!("{}/s/{}", s.app.settings.base_url, seller.slug),
        rating: seller.rating(),
        rating_count: seller.rating_count,
        slug: seller.slug,
        store_name: seller.store_name,
        city: seller.city,
        description: seller.description,
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProductDetail {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub price: Option<Price>,
    pub stock: u32,
    pub category_id: Option<u64>,
    /// 800 px wide WebP.
    pub image_url: Option<String>,
    pub thumbnail_url: Option<String>,
    /// The product page, for sharing.
    pub url: String,
    pub seller: SellerPublic,
}

/// One public product.
#[utoipa::path(get, path = "/products/{id}", tag = "catalogue",
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 200, description = "OK", body = ProductDetail), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn product(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
) -> Result<axum::Json<ProductDetail>, ApiError> {
    let (p, seller, image) = crate::read_on!(s.app.reads, |db| async {
        let p = catalogue::public_product(db, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let seller = sellers::by_id(db, p.seller_id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        let image = catalogue::first_image(db, id).await?;
        Ok::<_, ApiError>((p, seller, image))
    }
    .await)?;
    Ok(axum::Json(ProductDetail {
        price: price(p.price),
        image_url: image.as_deref().map(|sha| image_url(&s, sha, 800)),
        thumbnail_url: image.as_deref().map(|sha| image_url(&s, sha, 320)),
        url: format!("{}/p/{id}", s.app.settings.base_url),
        seller: seller_public(&s, seller),
        id,
        name: p.name,
        description: p.description,
        stock: p.stock,
        category_id: p.category_id,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SellerDetail {
    pub seller: SellerPublic,
    pub products: CardPage,
}

/// An approved seller and a page of their public products.
#[utoipa::path(get, path = "/sellers/{slug}", tag = "catalogue",
    params(("slug" = String, Path, description = "Seller slug"), FeedQuery),
    responses((status = 200, description = "OK", body = SellerDetail), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn seller(
    State(s): State<ApiState>,
    Path(slug): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Result<axum::Json<SellerDetail>, ApiError> {
    let mut errors = FieldErrors::default();
    let before = errors
        .check(parse_opt::<u64>("before", &q.before, "a product id"))
        .flatten();
    let limit = limit_of(&q.limit, &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (seller, cards) = crate::read_on!(s.app.reads, |db| async {
        let seller = sellers::by_slug(db, &slug)
            .await?
            .filter(|x| x.is_approved())
            .ok_or_else(ApiError::not_found)?;
        let category = category_id(db, &q.category).await?;
        let cards = catalogue::feed(db, before, category, Some(seller.id), limit).await?;
        Ok::<_, ApiError>((seller, cards))
    }
    .await)?;
    Ok(axum::Json(SellerDetail {
        products: card_page(&s, cards, limit),
        seller: seller_public(&s, seller),
    }))
}
