//! Sellers: onboarding (one seller per account, pending until approved), the dashboard (views,
//! leads, conversion, notifications, products, lead inbox) and adding products.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::{Field, FormPage, PageCtx, category_name, render};
use super::session::Visitor;
use super::{AppState, Error};
use crate::market::i18n::{Lang, format};
use crate::market::money::{Currency, Money};
use crate::market::phone::Phone;
use crate::market::product::{PriceInput, ProductDraft, StockInput, ValidProduct};
use crate::market::states::{Moderation, SellerStatus};
use crate::market::{FieldError, FieldErrors, text};
use crate::store::{self, catalogue, leads, notifications, sellers};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sell", get(sell).post(onboard))
        .route(
            "/sell/products/new",
            get(new_product_form).post(create_product),
        )
        .route("/sell/notifications/read", post(mark_read))
}

#[derive(Deserialize, Default)]
pub struct OnboardForm {
    #[serde(default)]
    store_name: String,
    #[serde(default)]
    whatsapp: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    catalogue_url: String,
}

async fn category_options(s: &AppState, lang: Lang) -> Result<Vec<(String, String)>, Error> {
    let mut options = vec![(String::new(), lang.t("choose").to_owned())];
    options.extend(
        catalogue::categories(&s.db)
            .await?
            .into_iter()
            .map(|c| (c.slug.clone(), category_name(lang, &c))),
    );
    Ok(options)
}

async fn onboard_page(s: &AppState, v: &Visitor, f: &OnboardForm) -> Result<FormPage, Error> {
    let l = v.lang;
    Ok(FormPage {
        page: PageCtx::new(v),
        title: l.t("sell_title"),
        action: "/sell".into(),
        submit: l.t("sell_submit"),
        notice: Some(l.t("sell_notice").into()),
        fields: vec![
            Field::new("store_name", l.t("business_name"), "text", &f.store_name),
            Field::new("whatsapp", l.t("whatsapp_number"), "tel", &f.whatsapp),
            Field::new(
                "city",
                l.t("city"),
                "text",
                if f.city.is_empty() {
                    "Nairobi"
                } else {
                    &f.city
                },
            ),
            Field::new("category", l.t("main_category"), "select", &f.category)
                .options(category_options(s, l).await?),
            Field::new("description", l.t("about_shop"), "textarea", &f.description),
            Field::new(
                "catalogue_url",
                l.t("catalogue_link"),
                "url",
                &f.catalogue_url,
            )
            .optional(),
        ],
    })
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    page: PageCtx,
    store_name: String,
    status: SellerStatus,
    status_reason: String,
    views: i64,
    leads: i64,
    conversion: String,
    products: Vec<(u64, String, String, u32, String, String)>,
    inbox: Vec<leads::Lead>,
    notifications: Vec<notifications::Notification>,
    unread: u64,
}

async fn sell(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let user = v.require_user()?;
    let Some(seller) = sellers::by_user(&s.db, user.id).await? else {
        return Ok(render(&onboard_page(&s, &v, &OnboardForm::default()).await?)?.into_response());
    };
    let totals = leads::totals(
        &s.db,
        seller.id,
        &store::analytics::Window::last(&s.settings.zone, 7),
    )
    .await?;
    let lang = v.lang;
    let conversion = format::percent(
        lang,
        (totals.views > 0).then(|| totals.leads as f64 * 100.0 / totals.views as f64),
    );
    let products = catalogue::seller_products(&s.db, seller.id)
        .await?
        .into_iter()
        .map(|p| {
            let state = if p.moderation != Moderation::Approved {
                format!(
                    "{} {}",
                    lang.state(p.moderation.as_str()),
                    p.moderation_reason
                )
            } else {
                lang.state(p.status.as_str()).to_owned()
            };
            (
                p.id,
                p.name,
                format::money(lang, p.price),
                p.stock,
                state,
                p.status.to_string(),
            )
        })
        .collect();
    Ok(render(&Dashboard {
        page: PageCtx::new(&v),
        store_name: seller.store_name,
        status: seller.status,
        status_reason: seller.status_reason,
        views: totals.views,
        leads: totals.leads,
        conversion,
        products,
        inbox: super::insights::in_zone(&s, leads::inbox(&s.db, seller.id, 50).await?),
        notifications: notifications::list(&s.db, seller.id, 30).await?,
        unread: notifications::unread(&s.db, seller.id).await?,
    })?
    .into_response())
}

#[derive(Deserialize)]
struct MarkReadForm {
    /// The newest notification the seller saw; empty: all of them.
    #[serde(default)]
    up_to: String,
}

/// Mark the seller's notifications read (up to the one they saw, so one that arrived since
/// stays unread).
async fn mark_read(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<MarkReadForm>,
) -> Result<Response, Error> {
    let user = v.require_user()?;
    let Some(seller) = sellers::by_user(&s.db, user.id).await? else {
        return Err(Error::NotFound);
    };
    let up_to = match f.up_to.trim() {
        "" => None,
        n => match n.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "up_to: must be a notification number",
                )
                    .into_response());
            }
        },
    };
    notifications::mark_read(&s.db, seller.id, up_to).await?;
    Ok(Redirect::to("/sell").into_response())
}

async fn onboard(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<OnboardForm>,
) -> Result<Response, Error> {
    let user = v.require_user()?;
    let mut errors = FieldErrors::default();
    let store_name = errors.check(text::line("store_name", &f.store_name, 2, 120));
    let phone = errors.check(Phone::parse("whatsapp", &f.whatsapp));
    let city = errors.check(text::line("city", &f.city, 2, 80));
    let description = errors.check(text::paragraph("description", &f.description, 2000));
    let catalogue_url = errors.check(optional_url("catalogue_url", &f.catalogue_url));
    let category = match f.category.as_str() {
        "" => None,
        slug => catalogue::category_by_slug(&s.db, slug)
            .await?
            .map(|c| c.id),
    };
    let (Some(store_name), Some(phone), Some(city), Some(description), Some(catalogue_url), true) = (
        store_name,
        phone,
        city,
        description,
        catalogue_url,
        errors.is_empty(),
    ) else {
        let page = onboard_page(&s, &v, &f).await?.with_errors(&errors);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    };
    let created = sellers::create(
        &s.db,
        &sellers::NewSeller {
            user_id: user.id,
            store_name: &store_name,
            slug: &text::slug(&store_name, 60),
            description: &description,
            whatsapp_phone: phone.as_str(),
            city: &city,
            category_id: category,
            catalogue_url: catalogue_url.as_deref(),
        },
    )
    .await;
    match created {
        Ok(_) | Err(store::Error::Conflict("user")) => Ok(Redirect::to("/sell").into_response()),
        Err(store::Error::Conflict(_)) => {
            errors
                .0
                .push(FieldError::new("store_name", "is taken by another shop"));
            let page = onboard_page(&s, &v, &f).await?.with_errors(&errors);
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn optional_url(field: &'static str, input: &str) -> Result<Option<String>, FieldError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !(s.starts_with("https://") || s.starts_with("http://"))
        || s.len() > 2048
        || s.contains(char::is_whitespace)
    {
        return Err(FieldError::new(
            field,
            "must be a web address starting with https://",
        ));
    }
    Ok(Some(s.to_owned()))
}

#[derive(Deserialize, Default)]
pub(super) struct ProductForm {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) price: String,
    #[serde(default)]
    pub(super) stock: String,
    #[serde(default)]
    pub(super) category: String,
    #[serde(default)]
    pub(super) description: String,
}

/// Where a product form posts, and what it says.
pub(super) struct FormKind {
    pub(super) title: &'static str,
    pub(super) action: String,
}

pub(super) async fn product_page(
    s: &AppState,
    v: &Visitor,
    f: &ProductForm,
    kind: FormKind,
) -> Result<FormPage, Error> {
    let l = v.lang;
    Ok(FormPage {
        page: PageCtx::new(v),
        title: kind.title,
        action: kind.action,
        submit: l.t("save_product"),
        notice: None,
        fields: vec![
            Field::new("name", l.t("name"), "text", &f.name),
            Field::new("price", l.t("price_ksh"), "text", &f.price),
            Field::new(
                "stock",
                l.t("in_stock_label"),
                "number",
                if f.stock.is_empty() { "1" } else { &f.stock },
            ),
            Field::new("category", l.t("category"), "select", &f.category)
                .options(category_options(s, l).await?),
            Field::new(
                "description",
                l.t("description"),
                "textarea",
                &f.description,
            ),
        ],
    })
}

fn new_kind(lang: Lang) -> FormKind {
    FormKind {
        title: lang.t("add_product"),
        action: "/sell/products/new".into(),
    }
}

/// A product form that passed validation.
pub(super) struct ValidForm {
    pub(super) name: String,
    pub(super) price: Money,
    pub(super) stock: u32,
    pub(super) description: String,
    pub(super) category_id: Option<u64>,
}

/// Validate a product form with the seller API's rules (`market::product`), prices typed in
/// shillings; every field's problem at once.
pub(super) async fn validate(s: &AppState, f: &ProductForm) -> Result<ValidForm, FieldErrors> {
    let draft = ProductDraft {
        name: Some(&f.name),
        description: Some(&f.description),
        price: Some(PriceInput::Text(&f.price)),
        currency: None,
        stock: Some(StockInput::Text(&f.stock)),
    };
    let (checked, mut errors) = match draft.validate(Currency::KES) {
        Ok(p) => (Some(p), FieldErrors::default()),
        Err(errors) => (None, errors),
    };
    let category_id = match f.category.as_str() {
        "" => None,
        slug => match catalogue::category_by_slug(&s.db, slug).await {
            Ok(Some(c)) => Some(c.id),
            Ok(None) => {
                errors
                    .0
                    .push(FieldError::new("category", "is not one of the categories"));
                None
            }
            Err(e) => {
                tracing::warn!("category lookup: {e}");
                errors.0.push(FieldError::new(
                    "category",
                    "could not be checked; try again",
                ));
                None
            }
        },
    };
    match checked {
        Some(ValidProduct {
            name: Some(name),
            description: Some(description),
            price: Some(Some(price)),
            stock: Some(stock),
            ..
        }) if errors.is_empty() => Ok(ValidForm {
            name,
            price,
            stock,
            description,
            category_id,
        }),
        _ => Err(errors),
    }
}

/// The seller behind this visitor, if they may manage products.
pub(super) async fn active_seller(s: &AppState, v: &Visitor) -> Result<sellers::Seller, Error> {
    let user = v.require_user()?;
    let seller = sellers::by_user(&s.db, user.id)
        .await?
        .ok_or(Error::Forbidden)?;
    if !seller.status.may_edit() {
        return Err(Error::Forbidden);
    }
    Ok(seller)
}

async fn new_product_form(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    v.require_user()?;
    Ok(
        render(&product_page(&s, &v, &ProductForm::default(), new_kind(v.lang)).await?)?
            .into_response(),
    )
}

async fn create_product(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<ProductForm>,
) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    let p = match validate(&s, &f).await {
        Ok(p) => p,
        Err(errors) => {
            let page = product_page(&s, &v, &f, new_kind(v.lang))
                .await?
                .with_errors(&errors);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
        }
    };
    let created = catalogue::create_product_within(
        &s.db,
        &catalogue::NewProduct {
            seller_id: seller.id,
            category_id: p.category_id,
            name: &p.name,
            description: &p.description,
            price_minor: Some(p.price.minor),
            currency: p.price.currency.code(),
            stock: p.stock,
        },
        &s.settings.guard.quotas,
    )
    .await?;
    if let Err(over) = created {
        let mut page = product_page(&s, &v, &f, new_kind(v.lang)).await?;
        page.notice = Some(
            v.lang
                .tf1("product_not_added", v.lang.message(&over.to_string())),
        );
        return Ok((StatusCode::FORBIDDEN, render(&page)?).into_response());
    }
    Ok(Redirect::to("/sell").into_response())
}
