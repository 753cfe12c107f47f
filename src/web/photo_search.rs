//! The storefront's "Search by photo" page and the "Similar items" block of product pages.
//! The form works without JavaScript (a plain multipart POST, CSRF token in the action URL as
//! for photo uploads); `app.js` downscales the photo to ~512 px in a canvas first when it can,
//! so a 4 MB phone photo travels as ~60 KB.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::pages::{PageCtx, render};
use super::session::Visitor;
use super::storefront::{CardView, views};
use super::visual::{self, BUSY_RETRY_AFTER_SECS, RETRY_AFTER_SECS, Scored, VisualError};
use super::{AppState, Error};
use crate::imaging::codec::MAX_BYTES;
use crate::market::money::{Currency, Money};
use crate::store::catalogue;
use crate::vectors::Filter;

/// Results per photo search.
const RESULTS: u32 = 24;
/// Similar items on a product page.
pub const SIMILAR: u32 = 8;
/// How long a product page waits for its similar items.
const PAGE_WAIT: std::time::Duration = std::time::Duration::from_millis(800);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/search/photo", get(form).post(submit))
        .route("/fragment/similar/{id}", get(similar_fragment))
        .layer(DefaultBodyLimit::max(MAX_BYTES + 64 * 1024))
}

pub struct ScoredView {
    pub card: CardView,
    pub similarity: u8,
}

pub fn scored_views(results: Vec<Scored>) -> Vec<ScoredView> {
    let similarity: Vec<u8> = results.iter().map(|r| r.similarity).collect();
    views(results.into_iter().map(|r| r.card).collect())
        .into_iter()
        .zip(similarity)
        .map(|(card, similarity)| ScoredView { card, similarity })
        .collect()
}

#[derive(Template)]
#[template(path = "photo_search.html")]
struct PhotoSearch {
    page: PageCtx,
    categories: Vec<catalogue::Category>,
    category: String,
    min: String,
    max: String,
    city: String,
    notice: Option<String>,
    searched: bool,
    filtered: bool,
    results: Vec<ScoredView>,
}

async fn form(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let page = PhotoSearch {
        page: PageCtx::new(&v),
        categories: catalogue::categories(&s.db).await?,
        category: String::new(),
        min: String::new(),
        max: String::new(),
        city: String::new(),
        notice: None,
        searched: false,
        filtered: false,
        results: Vec::new(),
    };
    Ok(render(&page)?.into_response())
}

/// The form's fields: the photo and the filters.
#[derive(Default)]
struct Submitted {
    photo: Vec<u8>,
    category: String,
    min: String,
    max: String,
    city: String,
    too_large: bool,
}

async fn read_form(mut form: Multipart) -> Result<Submitted, String> {
    let mut out = Submitted::default();
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| format!("the upload was cut off or malformed: {}", e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| e.body_text())? {
            if bytes.len() + chunk.len() > MAX_BYTES {
                out.too_large = true;
                return Ok(out);
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = || {
            String::from_utf8_lossy(&bytes)
                .trim()
                .chars()
                .take(100)
                .collect()
        };
        match name.as_str() {
            "photo" | "image" => out.photo = bytes,
            "category" => out.category = text(),
            "min" => out.min = text(),
            "max" => out.max = text(),
            "city" => out.city = text(),
            _ => {}
        }
    }
    Ok(out)
}

async fn submit(State(s): State<AppState>, v: Visitor, form: Multipart) -> Result<Response, Error> {
    let categories = catalogue::categories(&s.db).await?;
    let lang = v.lang;
    // Room to receive the photo, before reading it: the same refusal as a busy slot.
    let receiving = s.settings.guard.photo_upload();
    let submitted = match receiving {
        Some(_) => read_form(form).await,
        None => Ok(Submitted::default()),
    };
    let f = match &submitted {
        Ok(f) => f,
        Err(_) => &Submitted::default(),
    };
    let mut page = PhotoSearch {
        page: PageCtx::new(&v),
        category: f.category.clone(),
        min: f.min.clone(),
        max: f.max.clone(),
        city: f.city.clone(),
        notice: None,
        searched: false,
        filtered: false,
        results: Vec::new(),
        categories,
    };
    let money = |m: &str| {
        (!m.is_empty())
            .then(|| Money::parse(m, Currency::KES).map(|m| m.minor))
            .transpose()
    };
    let refuse = |mut page: PhotoSearch, status: StatusCode, notice: String| {
        page.notice = Some(notice);
        Ok::<_, Error>((status, render(&page)?).into_response())
    };
    if receiving.is_none() {
        return busy(page);
    }
    let f = match submitted {
        Err(e) => return refuse(page, StatusCode::UNPROCESSABLE_ENTITY, lang.message(&e)),
        Ok(f) if f.too_large => {
            let notice = lang.tf1("photo_too_large", MAX_BYTES / (1024 * 1024));
            return refuse(page, StatusCode::PAYLOAD_TOO_LARGE, notice);
        }
        Ok(f) if f.photo.is_empty() => {
            return refuse(
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
                lang.t("photo_choose_first").into(),
            );
        }
        Ok(f) => f,
    };
    let (Ok(min_minor), Ok(max_minor)) = (money(&f.min), money(&f.max)) else {
        let notice = lang.t("photo_prices_hint").to_owned();
        return refuse(page, StatusCode::UNPROCESSABLE_ENTITY, notice);
    };
    if !Filter::plain(&f.city) {
        let notice = lang.t("photo_city_plain").to_owned();
        return refuse(page, StatusCode::UNPROCESSABLE_ENTITY, notice);
    }
    let category = page
        .categories
        .iter()
        .find(|c| c.slug == f.category)
        .map(|c| c.id);
    let filter = Filter {
        category,
        min_minor,
        max_minor,
        city: (!f.city.is_empty()).then(|| f.city.clone()),
        exclude: None,
    };
    page.filtered = filter != Filter::default();
    match visual::by_photo(&s, f.photo, &filter, RESULTS).await {
        Ok((results, _)) => {
            page.searched = true;
            page.results = scored_views(results);
            Ok(render(&page)?.into_response())
        }
        Err(VisualError::BadImage(e)) => refuse(
            page,
            StatusCode::UNPROCESSABLE_ENTITY,
            lang.tf1("photo_unusable", lang.message(&e.to_string())),
        ),
        Err(VisualError::Unavailable(_)) => {
            let notice = lang.t("photo_unavailable").to_owned();
            let mut resp = refuse(page, StatusCode::SERVICE_UNAVAILABLE, notice)?;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
            Ok(resp)
        }
        Err(VisualError::Busy) => busy(page),
        Err(VisualError::NotFound) => Err(Error::NotFound),
        Err(VisualError::Store(e)) => Err(e.into()),
    }
}

/// Every photo-search slot (or all room to receive photos) is taken: 503 at once.
fn busy(mut page: PhotoSearch) -> Result<Response, Error> {
    page.notice = Some(page.page.lang.t("photo_busy").to_owned());
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, render(&page)?).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, BUSY_RETRY_AFTER_SECS.into());
    Ok(resp)
}

/// The "Similar items" block of a product page: the neighbours, or a friendly line when the
/// vector index is away (the page itself never fails because of it), or — on the product page,
/// when no recent answer is cached — the address of the block alone (`/fragment/similar/{id}`),
/// which `app.js` fetches after the page (a link without JS). A vector search then never holds
/// up a page (with milvus-lite it takes about 1.2 ms per 1,000 products, one at a time).
pub struct SimilarBlock {
    pub items: Vec<ScoredView>,
    /// The vector index is away: the block says so ("similar_unavailable").
    pub unavailable: bool,
    pub fragment: Option<String>,
}

/// The block for a product page: from the neighbours cache, or deferred to the fragment.
pub async fn similar_block_now(s: &AppState, id: u64) -> SimilarBlock {
    match visual::similar_cached(s, id, SIMILAR).await {
        Ok(Some(results)) => SimilarBlock {
            items: scored_views(results),
            unavailable: false,
            fragment: None,
        },
        Ok(None) => SimilarBlock {
            items: Vec::new(),
            unavailable: false,
            fragment: Some(format!("/fragment/similar/{id}")),
        },
        Err(e) => {
            tracing::warn!(product = id, "similar items: {e}");
            SimilarBlock {
                items: Vec::new(),
                unavailable: true,
                fragment: None,
            }
        }
    }
}

#[derive(Template)]
#[template(path = "similar_fragment.html")]
struct SimilarFragment {
    page: PageCtx,
    similar: SimilarBlock,
}

/// `/fragment/similar/{id}`: the block alone, searched now (bounded by the page wait).
async fn similar_fragment(
    State(s): State<AppState>,
    v: Visitor,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> Result<Response, Error> {
    if catalogue::public_product(&s.db, id).await?.is_none() {
        return Err(Error::NotFound);
    }
    let similar = similar_block(&s, id).await;
    Ok(render(&SimilarFragment {
        page: PageCtx::shared(v.lang),
        similar,
    })?
    .into_response())
}

pub async fn similar_block(s: &AppState, id: u64) -> SimilarBlock {
    // The page must not wait on a struggling index: a short bound, then the notice.
    let found = tokio::time::timeout(PAGE_WAIT, visual::similar(s, id, SIMILAR))
        .await
        .unwrap_or_else(|_| Err(VisualError::Unavailable("slow".into())));
    match found {
        Ok((results, _)) => SimilarBlock {
            items: scored_views(results),
            unavailable: false,
            fragment: None,
        },
        Err(e) => {
            if !matches!(e, VisualError::Unavailable(_)) {
                tracing::warn!(product = id, "similar items: {e}");
            }
            SimilarBlock {
                items: Vec::new(),
                unavailable: true,
                fragment: None,
            }
        }
    }
}
