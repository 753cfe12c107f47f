//! Registration, login (email or phone + password), logout, and "log out everywhere".

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use super::audit::{self, Event};
use super::auth::{Login, Refused, authenticate};
use super::pages::{Field, FormPage, PageCtx, render};
use super::session::{Visitor, clear_session_cookie, hash_token, start_session};
use super::{AppState, Error};
use crate::store::{sessions, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", get(register_form).post(register))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/logout/everywhere", post(logout_everywhere))
}

#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

fn register_page(v: &Visitor, f: &RegisterForm) -> FormPage {
    let l = v.lang;
    FormPage {
        page: PageCtx::new(v),
        title: l.t("register_title"),
        action: "/register".into(),
        submit: l.t("register_submit"),
        notice: None,
        fields: vec![
            Field::new("name", l.t("your_name"), "text", &f.name),
            Field::new("login", l.t("email_or_phone"), "text", &f.login),
            Field::new("password", l.t("password_8"), "password", ""),
        ],
    }
}

async fn register_form(v: Visitor) -> Result<Response, Error> {
    Ok(render(&register_page(&v, &RegisterForm::default()))?.into_response())
}

/// The client's address (behind a trusted proxy: the forwarded one).
fn client(
    s: &AppState,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> IpAddr {
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
    s.settings.limits.0.client_ip(peer, headers)
}

async fn register(
    State(s): State<AppState>,
    v: Visitor,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<RegisterForm>,
) -> Result<Response, Error> {
    let outcome = super::auth::register(
        &s.settings.limits.0,
        &s.db,
        &super::api::limit::client_key(client(&s, peer, &headers)),
        &f.name,
        &f.login,
        &f.password,
    )
    .await?;
    match outcome {
        // A new account and a login that had one get the same answer (no session either
        // way): registering tells nobody who has an account.
        Ok(_) | Err(Refused::Taken) => Ok(Redirect::to("/login?registered=1").into_response()),
        Err(Refused::Invalid(errors)) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            render(&register_page(&v, &f).with_errors(&errors))?,
        )
            .into_response()),
    }
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

fn login_page(v: &Visitor, f: &LoginForm, notice: Option<String>) -> FormPage {
    let l = v.lang;
    FormPage {
        page: PageCtx::new(v),
        title: l.t("log_in"),
        action: "/login".into(),
        submit: l.t("log_in"),
        notice,
        fields: vec![
            Field::new("login", l.t("email_or_phone"), "text", &f.login),
            Field::new("password", l.t("password"), "password", ""),
        ],
    }
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    registered: Option<String>,
    reset: Option<String>,
}

async fn login_form(v: Visitor, Query(q): Query<LoginQuery>) -> Result<Response, Error> {
    let notice = if q.registered.is_some() {
        v.lang.t("login_registered")
    } else if q.reset.is_some() {
        v.lang.t("login_after_reset")
    } else {
        v.lang.t("login_hint")
    };
    Ok(render(&login_page(&v, &LoginForm::default(), Some(notice.into())))?.into_response())
}

/// Login attempts are metered per client (`api.rate_limit.login_requests`) and failures per
/// account (`login_failures`), with the same limiters as the API's `/auth/token`.
async fn login(
    State(s): State<AppState>,
    v: Visitor,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, Error> {
    let ip = client(&s, peer, &headers);
    let outcome = authenticate(
        &s.settings.limits.0,
        &s.db,
        ip,
        "form",
        &f.login,
        f.password.clone(),
    )
    .await?;
    match outcome {
        Login::Ok(u) => {
            let target = audit::user_target(u.id);
            audit::record(&s.db, Event::Login, Some(u.id), &target, "form", ip).await?;
            let cookie = start_session(&s, &u, &v, user_agent(&headers)).await?;
            let to = if u.is_admin() { "/admin" } else { "/sell" };
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response())
        }
        Login::Suspended(_) => Ok((
            axum::http::StatusCode::FORBIDDEN,
            render(&login_page(
                &v,
                &f,
                Some(v.lang.t("account_suspended").into()),
            ))?,
        )
            .into_response()),
        Login::Wrong => Ok((
            axum::http::StatusCode::UNAUTHORIZED,
            render(&login_page(&v, &f, Some(v.lang.t("login_wrong").into())))?,
        )
            .into_response()),
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = super::session::cookie(&headers, super::session::SESSION) {
        sessions::delete(&s.db, &hash_token(&token)).await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            clear_session_cookie(s.settings.secure_cookies),
        )],
        Redirect::to("/"),
    )
        .into_response())
}

async fn logout_everywhere(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let user = v.require_user()?;
    users::bump_token_version(&s.db, user.id).await?;
    sessions::delete_for_user(&s.db, user.id).await?;
    let target = audit::user_target(user.id);
    audit::record(
        &s.db,
        Event::LogoutEverywhere,
        Some(user.id),
        &target,
        "form",
        v.client_ip(),
    )
    .await?;
    Ok((
        [(
            header::SET_COOKIE,
            clear_session_cookie(s.settings.secure_cookies),
        )],
        Redirect::to("/"),
    )
        .into_response())
}
