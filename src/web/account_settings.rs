//! The account page: change the password (which ends every other session and revokes every API
//! token, in the same transaction) and "log out everywhere". Wrong current passwords are
//! metered per account, like failed logins, and answered 401 (429 when throttled, 503 when
//! every hashing slot is busy).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::audit::{self, Event};
use super::auth::{hash_password, verify_metered};
use super::pages::{Field, PageCtx, field_errors, render};
use super::session::{Visitor, start_session};
use super::{AppState, Error};
use crate::accounts::check_new_password;
use crate::market::{FieldError, FieldErrors};
use crate::store::users;

pub fn router() -> Router<AppState> {
    Router::new().route("/account", get(account).post(change_password))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: PageCtx,
    title: &'static str,
    action: String,
    submit: &'static str,
    notice: Option<String>,
    fields: Vec<Field>,
}

fn page(v: &Visitor, notice: Option<String>, errors: &FieldErrors) -> AccountPage {
    let l = v.lang;
    let mut fields = vec![
        Field::new("current", l.t("current_password"), "password", ""),
        Field::new("password", l.t("new_password"), "password", ""),
        Field::new("confirm", l.t("new_password_again"), "password", ""),
    ];
    field_errors(l, &mut fields, errors);
    AccountPage {
        page: PageCtx::new(v),
        title: l.t("your_account"),
        action: "/account".into(),
        submit: l.t("change_password"),
        notice,
        fields,
    }
}

async fn account(v: Visitor) -> Result<Response, Error> {
    v.require_user()?;
    Ok(render(&page(&v, None, &FieldErrors::default()))?.into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn change_password(
    State(s): State<AppState>,
    v: Visitor,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, Error> {
    let user = v.require_user()?.clone();
    // A stolen session must not become a way to guess the password without limit: attempts
    // count like failed logins of the account (`login_failures` a window; a right one clears).
    let limits = &s.settings.limits.0;
    let account_key = format!("account:{}", user.id);
    limits
        .login_account
        .peek(&account_key)
        .map_err(Error::Throttled)?;
    let mut errors = FieldErrors::default();
    // The stored hash, fresh: the session's copy may predate another change.
    let stored = users::by_id(&s.db, user.id)
        .await?
        .ok_or(Error::LoginRequired)?
        .password_hash;
    let right = verify_metered(
        &limits.login_account,
        &account_key,
        f.current.clone(),
        stored,
    )
    .await?;
    if !right {
        errors.0.push(FieldError::new("current", "is not right"));
    }
    errors.check(check_new_password(&f.password));
    if f.password != f.confirm {
        errors.0.push(FieldError::new(
            "confirm",
            "does not match the new password",
        ));
    }
    if !errors.is_empty() {
        // A wrong current password is a failed authentication (401), told apart from a new
        // password that breaks the rules (422).
        let status = if right {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::UNAUTHORIZED
        };
        let body = render(&page(&v, None, &errors))?;
        return Ok((status, body).into_response());
    }
    let hash = hash_password(f.password).await?;
    users::set_password(&s.db, user.id, &hash).await?;
    let target = audit::user_target(user.id);
    audit::record(
        &s.db,
        Event::PasswordChanged,
        Some(user.id),
        &target,
        "form",
        v.client_ip(),
    )
    .await?;
    // Every session ended with the old password; this browser gets a new one.
    let fresh = users::by_id(&s.db, user.id)
        .await?
        .ok_or(Error::LoginRequired)?;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let cookie = start_session(&s, &fresh, &v, agent).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/account")).into_response())
}
