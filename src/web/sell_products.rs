//! A seller's own products after creation: edit, hide or show, delete. Every change goes
//! through `store::catalogue`, which queues the vector re-sync in the same transaction, and
//! answers 404 for someone else's product so nobody learns which ids exist.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::pages::render;
use super::sell::{FormKind, ProductForm, active_seller, product_page, validate};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::money::Money;
use crate::market::states::ProductStatus;
use crate::store::catalogue;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/sell/products/{id}/edit",
            get(edit_form).post(save_product),
        )
        .route("/sell/products/{id}/hide", post(hide))
        .route("/sell/products/{id}/show", post(show))
        .route("/sell/products/{id}/delete", post(delete))
}

fn edit_kind(lang: crate::market::i18n::Lang, id: u64) -> FormKind {
    FormKind {
        title: lang.t("edit_product"),
        action: format!("/sell/products/{id}/edit"),
    }
}

/// The stored product as the form shows it: the price as plain digits a seller can edit.
async fn form_of(s: &AppState, p: &catalogue::Product) -> Result<ProductForm, Error> {
    let category = match p.category_id {
        Some(id) => catalogue::categories(&s.db)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.slug)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(ProductForm {
        name: p.name.clone(),
        price: p.price.map(|m| plain_amount(m.minor)).unwrap_or_default(),
        stock: p.stock.to_string(),
        category,
        description: p.description.clone(),
    })
}

/// 150000 minor units → "1500", 150050 → "1500.50": what `Money::parse` reads back.
fn plain_amount(minor: i64) -> String {
    let (units, cents) = (minor / 100, (minor % 100).abs());
    if cents == 0 {
        units.to_string()
    } else {
        format!("{units}.{cents:02}")
    }
}

async fn edit_form(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    let p = catalogue::own_product(&s.db, seller.id, id)
        .await?
        .ok_or(Error::NotFound)?;
    let form = form_of(&s, &p).await?;
    Ok(render(&product_page(&s, &v, &form, edit_kind(v.lang, id)).await?)?.into_response())
}

async fn save_product(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
    Form(f): Form<ProductForm>,
) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    let p = match validate(&s, &f).await {
        Ok(p) => p,
        Err(errors) => {
            let page = product_page(&s, &v, &f, edit_kind(v.lang, id))
                .await?
                .with_errors(&errors);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
        }
    };
    let price: Money = p.price;
    catalogue::update_product(
        &s.db,
        seller.id,
        id,
        &catalogue::ProductChanges {
            category_id: Some(p.category_id),
            name: Some(&p.name),
            description: Some(&p.description),
            price_minor: Some(Some(price.minor)),
            currency: Some(price.currency.code()),
            stock: Some(p.stock),
        },
    )
    .await?;
    Ok(Redirect::to("/sell").into_response())
}

async fn set_status(
    s: &AppState,
    v: &Visitor,
    id: u64,
    status: ProductStatus,
) -> Result<Response, Error> {
    let seller = active_seller(s, v).await?;
    catalogue::set_product_status(&s.db, seller.id, id, status).await?;
    Ok(Redirect::to("/sell").into_response())
}

async fn hide(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    set_status(&s, &v, id, ProductStatus::Hidden).await
}

async fn show(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    set_status(&s, &v, id, ProductStatus::Active).await
}

async fn delete(
    State(s): State<AppState>,
    v: Visitor,
    Path(id): Path<u64>,
) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    catalogue::delete_product(&s.db, seller.id, id).await?;
    Ok(Redirect::to("/sell").into_response())
}

#[cfg(test)]
mod tests {
    use super::plain_amount;
    use crate::market::money::{Currency, Money};

    #[test]
    fn the_edit_form_price_reads_back_as_the_same_amount() {
        for minor in [0, 100, 150_000, 150_050, 199, 5] {
            let text = plain_amount(minor);
            assert_eq!(
                Money::parse(&text, Currency::KES).unwrap().minor,
                minor,
                "{text}"
            );
        }
    }
}
