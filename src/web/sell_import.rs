//! `/sell/import`: a seller gives the URL of their shop, a sitemap, or product pages; the
//! import runs as a durable job (`workers::catalogue_import`) and this page shows its
//! progress, the products that came from pages (taken down ones with their reason) and the
//! heartbeat re-check's latest rounds.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::pages::{PageCtx, render};
use super::sell::active_seller;
use super::session::Visitor;
use super::{AppState, Error};
use crate::store::imports::{self, ImportedRow, Progress, Run};

pub fn router() -> Router<AppState> {
    Router::new().route("/sell/import", get(page).post(start))
}

#[derive(Template)]
#[template(path = "sell_import.html")]
struct ImportPage {
    page: PageCtx,
    urls: String,
    error: Option<String>,
    max_urls: u32,
    imports: Vec<Progress>,
    products: Vec<ImportedRow>,
    runs: Vec<Run>,
}

#[derive(Deserialize, Default)]
struct ImportForm {
    #[serde(default)]
    urls: String,
}

async fn view(
    s: &AppState,
    v: &Visitor,
    seller_id: u64,
    urls: String,
    error: Option<String>,
) -> Result<ImportPage, Error> {
    Ok(ImportPage {
        page: PageCtx::new(v),
        urls,
        error,
        max_urls: s.settings.import.max_urls,
        imports: imports::seller_imports(&s.db, seller_id, 10).await?,
        products: imports::seller_imported(&s.db, seller_id, 200).await?,
        runs: imports::runs(&s.db, 5).await?,
    })
}

async fn page(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    Ok(render(&view(&s, &v, seller.id, String::new(), None).await?)?.into_response())
}

async fn start(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<ImportForm>,
) -> Result<Response, Error> {
    let seller = active_seller(&s, &v).await?;
    let given = f.urls.split(|c: char| c.is_whitespace() || c == ',');
    match s.settings.import.urls(given) {
        Ok(urls) => {
            imports::create_import(&s.db, seller.id, "page", &urls).await?;
            Ok(Redirect::to("/sell/import").into_response())
        }
        Err(e) => {
            let page = view(&s, &v, seller.id, f.urls, Some(e.message)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}
