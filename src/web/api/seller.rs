//! A seller's own things, behind a bearer token: products (list, create, read, edit, hide,
//! show, delete), the leads inbox and analytics. Another seller's product is simply not found.
//! Every product write queues its vector sync in the same transaction (see `store::catalogue`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::SellerCaller;
use super::catalogue::{Price, price};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::market::money::Currency;
use crate::market::product::{PriceInput, ProductDraft, StockInput};
use crate::market::states::{Moderation, ProductStatus, SellerStatus};
use crate::market::{FieldError, FieldErrors};
use crate::store::catalogue::{self, Product, ProductChanges};
use crate::store::sellers::Seller;

#[derive(Serialize, ToSchema)]
pub struct SellerOut {
    pub id: u64,
    pub store_name: String,
    pub slug: String,
    pub city: String,
    pub whatsapp_phone: String,
    /// `pending`, `approved`, `rejected` or `suspended`.
    #[schema(value_type = String)]
    pub status: SellerStatus,
    /// An admin's reason for the status, if any.
    pub status_reason: String,
}

impl From<Seller> for SellerOut {
    fn from(s: Seller) -> Self {
        SellerOut {
            id: s.id,
            store_name: s.store_name,
            slug: s.slug,
            city: s.city,
            whatsapp_phone: s.whatsapp_phone,
            status: s.status,
            status_reason: s.status_reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OwnProduct {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub price: Option<Price>,
    pub stock: u32,
    pub category_id: Option<u64>,
    /// The seller's switch: `active` or `hidden`.
    #[schema(value_type = String)]
    pub status: ProductStatus,
    /// The admin's decision: `approved`, `flagged` or `rejected`.
    #[schema(value_type = String)]
    pub moderation: Moderation,
    pub moderation_reason: String,
}

impl From<Product> for OwnProduct {
    fn from(p: Product) -> Self {
        OwnProduct {
            price: price(p.price),
            id: p.id,
            name: p.name,
            description: p.description,
            stock: p.stock,
            category_id: p.category_id,
            status: p.status,
            moderation: p.moderation,
            moderation_reason: p.moderation_reason,
        }
    }
}

/// Present-and-null (`Some(None)`) differs from absent (`None`) in an edit.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A new product (`POST`) or an edit (`PATCH`: only the fields sent change).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// 2 to 200 characters.
    pub name: Option<String>,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// Integer minor units (KSh 4,500 is 450000); null: "contact for price".
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub price_minor: Option<Option<i64>>,
    /// ISO 4217; default: the shop's currency.
    pub currency: Option<String>,
    pub stock: Option<u32>,
    /// A category slug; null clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
}

/// Validated input, ready for the store.
struct Checked {
    name: Option<String>,
    description: Option<String>,
    price_minor: Option<Option<i64>>,
    currency: Option<String>,
    stock: Option<u32>,
    category_id: Option<Option<u64>>,
}

/// The input as a `market::product` draft.
fn draft(i: &ProductInput) -> ProductDraft<'_> {
    ProductDraft {
        name: i.name.as_deref(),
        description: i.description.as_deref(),
        price: i.price_minor.map(PriceInput::Minor),
        currency: i.currency.as_deref(),
        stock: i.stock.map(StockInput::Count),
    }
}

/// The draft's rules (`market::product`, the same as the seller pages'), then the category.
async fn check(s: &ApiState, i: ProductInput) -> Result<Checked, ApiError> {
    let (checked, mut errors) = match draft(&i).validate(Currency::KES) {
        Ok(p) => (Some(p), FieldErrors::default()),
        Err(errors) => (None, errors),
    };
    let category_id = match i.category {
        Some(Some(slug)) if !slug.trim().is_empty() => {
            match catalogue::category_by_slug(&s.app.db, slug.trim()).await? {
                Some(c) => Some(Some(c.id)),
                None => {
                    errors
                        .0
                        .push(FieldError::new("category", "is not a known category slug"));
                    None
                }
            }
        }
        Some(_) => Some(None),
        None => None,
    };
    let Some(p) = checked.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    Ok(Checked {
        name: p.name,
        description: p.description,
        price_minor: p.price.map(|m| m.map(|m| m.minor)),
        currency: p.currency.map(|c| c.code().to_owned()),
        stock: p.stock,
        category_id,
    })
}

/// Pending and approved sellers may change their catalogue; rejected and suspended may not.
fn may_write(seller: &Seller) -> Result<(), ApiError> {
    if !seller.status.may_edit() {
        return Err(ApiError::forbidden(
            "seller_not_allowed",
            "this seller is rejected or suspended and cannot change products",
        ));
    }
    Ok(())
}

async fn own(s: &ApiState, seller: &Seller, id: u64) -> Result<OwnProduct, ApiError> {
    catalogue::own_product(&s.app.db, seller.id, id)
        .await?
        .map(OwnProduct::from)
        .ok_or_else(ApiError::not_found)
}

/// The caller's products (hidden and rejected ones too), newest first.
#[utoipa::path(get, path = "/seller/products", tag = "seller", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Vec<OwnProduct>), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "not_a_seller", body = ErrorBody)))]
pub async fn list(
    State(s): State<ApiState>,
    c: SellerCaller,
) -> Result<axum::Json<Vec<OwnProduct>>, ApiError> {
    let all = catalogue::seller_products(&s.app.db, c.seller.id).await?;
    Ok(axum::Json(all.into_iter().map(OwnProduct::from).collect()))
}

/// List a new product.
#[utoipa::path(post, path = "/seller/products", tag = "seller", security(("bearer" = [])),
    request_body = ProductInput,
    responses((status = 201, description = "Created", body = OwnProduct), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody),
        (status = 403, description = "forbidden, not_a_seller, seller_not_allowed, account_suspended, or quota_exceeded: the seller has as many products as their status allows (the message names the quota)", body = ErrorBody), (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn create(
    State(s): State<ApiState>,
    c: SellerCaller,
    Json(input): Json<ProductInput>,
) -> Result<(StatusCode, axum::Json<OwnProduct>), ApiError> {
    may_write(&c.seller)?;
    draft(&input).require_new().map_err(ApiError::from)?;
    let v = check(&s, input).await?;
    let id = catalogue::create_product_within(
        &s.app.db,
        &catalogue::NewProduct {
            seller_id: c.seller.id,
            category_id: v.category_id.flatten(),
            name: v.name.as_deref().unwrap_or_default(),
            description: v.description.as_deref().unwrap_or_default(),
            price_minor: v.price_minor.flatten(),
            currency: v.currency.as_deref().unwrap_or(&s.currency),
            stock: v.stock.unwrap_or_default(),
        },
        &s.app.settings.guard.quotas,
    )
    .await?
    .map_err(|over| ApiError::forbidden("quota_exceeded", &over.to_string()))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(own(&s, &c.seller, id).await?),
    ))
}

/// One of the caller's products.
#[utoipa::path(get, path = "/seller/products/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 200, description = "OK", body = OwnProduct), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn read(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<axum::Json<OwnProduct>, ApiError> {
    Ok(axum::Json(own(&s, &c.seller, id).await?))
}

/// Edit a product: only the fields sent change.
#[utoipa::path(patch, path = "/seller/products/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")), request_body = ProductInput,
    responses((status = 200, description = "OK", body = OwnProduct), (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed: `field` names the input to fix", body = ErrorBody)))]
pub async fn update(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
    Json(input): Json<ProductInput>,
) -> Result<axum::Json<OwnProduct>, ApiError> {
    may_write(&c.seller)?;
    let v = check(&s, input).await?;
    catalogue::update_product(
        &s.app.db,
        c.seller.id,
        id,
        &ProductChanges {
            category_id: v.category_id,
            name: v.name.as_deref(),
            description: v.description.as_deref(),
            price_minor: v.price_minor,
            currency: v.currency.as_deref(),
            stock: v.stock,
        },
    )
    .await?;
    Ok(axum::Json(own(&s, &c.seller, id).await?))
}

async fn switch(
    s: &ApiState,
    c: &SellerCaller,
    id: u64,
    status: ProductStatus,
) -> Result<axum::Json<OwnProduct>, ApiError> {
    may_write(&c.seller)?;
    catalogue::set_product_status(&s.app.db, c.seller.id, id, status).await?;
    Ok(axum::Json(own(s, &c.seller, id).await?))
}

/// Hide a product: kept, but no longer shown to buyers.
#[utoipa::path(post, path = "/seller/products/{id}/hide", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 200, description = "OK", body = OwnProduct), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn hide(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<axum::Json<OwnProduct>, ApiError> {
    switch(&s, &c, id, ProductStatus::Hidden).await
}

/// Show a hidden product again.
#[utoipa::path(post, path = "/seller/products/{id}/show", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 200, description = "OK", body = OwnProduct), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn show(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<axum::Json<OwnProduct>, ApiError> {
    switch(&s, &c, id, ProductStatus::Active).await
}

/// Delete a product (its leads and orders keep their history).
#[utoipa::path(delete, path = "/seller/products/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Product id")),
    responses((status = 204, description = "deleted"), (status = 404, description = "not_found", body = ErrorBody)))]
pub async fn delete(
    State(s): State<ApiState>,
    c: SellerCaller,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    may_write(&c.seller)?;
    catalogue::delete_product(&s.app.db, c.seller.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
