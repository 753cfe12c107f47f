//! "Forgot your password?": a reset link by mail (when `mail:` is configured) or from the
//! operator (`soko admin reset-password`). The link carries a random token; only its SHA-256
//! is stored; it works once, for `mail.reset_ttl_secs`. The answer to a request is the same
//! page, at the same speed, whether or not the address has an account: the mail is sent in the
//! background.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::audit::{self, Event};
use super::pages::{Field, FormPage, PageCtx, render};
use super::session::{Visitor, hash_token};
use super::{AppState, Error};
use crate::market::i18n::Lang;
use crate::market::{FieldError, FieldErrors};
use crate::store::{resets, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", get(forgot_form).post(forgot))
        .route("/password/reset/{token}", get(reset_form).post(reset))
}

/// The path of a reset link for `token` (the site's base URL goes in front).
pub fn link_path(token: &str) -> String {
    format!("/password/reset/{token}")
}

/// A new link for `user_id`, valid `ttl_secs`: the token to put in it.
pub async fn new_link(
    db: &sqlx::MySqlPool,
    user_id: u64,
    ttl_secs: u64,
    via: &str,
) -> Result<String, Error> {
    let token = crate::accounts::random_token();
    resets::create(db, user_id, &hash_token(&token), ttl_secs, via).await?;
    Ok(token)
}

#[derive(Deserialize, Default)]
struct ForgotForm {
    #[serde(default)]
    login: String,
}

fn forgot_page(v: &Visitor, login: &str, notice: &str) -> FormPage {
    let l = v.lang;
    FormPage {
        page: PageCtx::new(v),
        title: l.t("forgot_title"),
        action: "/password/forgot".into(),
        submit: l.t("forgot_submit"),
        notice: (!notice.is_empty()).then(|| notice.to_owned()),
        fields: vec![Field::new("login", l.t("your_email"), "email", login)],
    }
}

async fn forgot_form(State(s): State<AppState>, v: Visitor) -> Result<Response, Error> {
    let notice = if s.settings.mail.is_some() {
        v.lang.t("forgot_we_mail")
    } else {
        v.lang.t("forgot_no_mail")
    };
    Ok(render(&forgot_page(&v, "", notice))?.into_response())
}

/// The same answer whoever asks: a valid address gets "a link is on its way" whether or not it
/// has an account; only a malformed one is refused (422 naming `login`).
async fn forgot(
    State(s): State<AppState>,
    v: Visitor,
    Form(f): Form<ForgotForm>,
) -> Result<Response, Error> {
    let limits = &s.settings.limits.0;
    let ip = v.client_ip();
    limits
        .login_ip
        .check(&super::api::limit::client_key(ip))
        .map_err(Error::Throttled)?;
    let email = match crate::market::text::email("login", &f.login) {
        Ok(email) => email,
        Err(e) => {
            let page = forgot_page(&v, &f.login, "").with_errors(&FieldErrors(vec![e]));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
        }
    };
    let Some(mailer) = s.settings.mail.clone() else {
        return Ok(render(&forgot_page(&v, &f.login, v.lang.t("forgot_no_mail")))?.into_response());
    };
    // At most `login_failures` mails per address a window: the same answer when over it.
    let allowed = limits
        .login_account
        .check(&format!("reset:{email}"))
        .is_ok();
    // Everything that depends on whether the account exists happens in the background, so
    // that the answer takes the same time either way (and never waits for the SMTP server).
    let (db, base_url, ttl, lang) = (
        s.db.clone(),
        s.settings.base_url.clone(),
        s.settings.reset_ttl_secs,
        v.lang,
    );
    tokio::spawn(async move {
        let asked = Asked {
            email: &email,
            allowed,
            ip,
            lang,
        };
        if let Err(e) = mail_link(&db, &mailer, &base_url, ttl, &asked).await {
            tracing::warn!("password reset mail not sent: {e}");
        }
    });
    Ok(render(&forgot_page(&v, "", v.lang.t("forgot_sent")))?.into_response())
}

/// A reset request: the address, whether its allowance is not spent, where it came from and
/// the language of the page it was asked on.
struct Asked<'a> {
    email: &'a str,
    allowed: bool,
    ip: std::net::IpAddr,
    lang: Lang,
}

/// Audit the request; when `email` has an account (and its allowance is not spent), store a
/// new link and mail it, in the account's language (else the language it was asked in).
async fn mail_link(
    db: &sqlx::MySqlPool,
    mailer: &crate::accounts::mail::Mailer,
    base_url: &str,
    ttl_secs: u64,
    asked: &Asked<'_>,
) -> Result<(), String> {
    let Asked {
        email,
        allowed,
        ip,
        lang,
    } = *asked;
    let user = users::by_login(db, email)
        .await
        .map_err(|e| e.to_string())?;
    let actor = user.as_ref().map(|u| u.id);
    audit::record(db, Event::PasswordResetRequested, actor, email, "form", ip)
        .await
        .map_err(|e| e.to_string())?;
    let (Some(u), true) = (user, allowed) else {
        return Ok(());
    };
    let token = new_link(db, u.id, ttl_secs, "mail")
        .await
        .map_err(|e| e.to_string())?;
    let link = format!("{base_url}{}", link_path(&token));
    let lang = Lang::parse(&u.locale).unwrap_or(lang);
    let (subject, body) = reset_mail(lang, &u.name, ttl_secs / 60, &link);
    mailer.send(email, &subject, body).await
}

/// The reset mail's subject and body in `lang`.
pub fn reset_mail(lang: Lang, name: &str, minutes: u64, link: &str) -> (String, String) {
    let body = lang
        .tf2("reset_mail_body", name, minutes)
        .replace("{2}", link);
    (lang.t("reset_mail_subject").to_owned(), body)
}

#[derive(Deserialize, Default)]
struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

fn reset_page(v: &Visitor, token: &str, errors: &FieldErrors) -> FormPage {
    let l = v.lang;
    FormPage {
        page: PageCtx::new(v),
        title: l.t("reset_title"),
        action: link_path(token),
        submit: l.t("reset_submit"),
        notice: None,
        fields: vec![
            Field::new("password", l.t("new_password_8"), "password", ""),
            Field::new("confirm", l.t("new_password_again"), "password", ""),
        ],
    }
    .with_errors(errors)
}

/// 410 Gone: the link is unknown, used or expired.
fn gone(v: &Visitor) -> Result<Response, Error> {
    let l = v.lang;
    let page = FormPage {
        page: PageCtx::new(v),
        title: l.t("link_gone_title"),
        action: "/password/forgot".into(),
        submit: l.t("link_gone_submit"),
        notice: Some(l.t("link_gone_notice").into()),
        fields: vec![Field::new("login", l.t("your_email"), "email", "")],
    };
    Ok((StatusCode::GONE, render(&page)?).into_response())
}

fn plausible(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn reset_form(
    State(s): State<AppState>,
    v: Visitor,
    Path(token): Path<String>,
) -> Result<Response, Error> {
    if !plausible(&token) || resets::valid(&s.db, &hash_token(&token)).await?.is_none() {
        return gone(&v);
    }
    Ok(render(&reset_page(&v, &token, &FieldErrors::default()))?.into_response())
}

async fn reset(
    State(s): State<AppState>,
    v: Visitor,
    Path(token): Path<String>,
    Form(f): Form<ResetForm>,
) -> Result<Response, Error> {
    if !plausible(&token) || resets::valid(&s.db, &hash_token(&token)).await?.is_none() {
        return gone(&v);
    }
    let mut errors = FieldErrors::default();
    errors.check(crate::accounts::check_new_password(&f.password));
    if f.password != f.confirm {
        errors.0.push(FieldError::new(
            "confirm",
            "does not match the new password",
        ));
    }
    if !errors.is_empty() {
        let body = render(&reset_page(&v, &token, &errors))?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
    }
    let hash = super::auth::hash_password(f.password).await?;
    // Used in one transaction: of two uses at once, one wins and the other is told it is gone.
    let Some(user) = resets::consume(&s.db, &hash_token(&token), &hash).await? else {
        return gone(&v);
    };
    let target = audit::user_target(user);
    audit::record(
        &s.db,
        Event::PasswordReset,
        Some(user),
        &target,
        "link",
        v.client_ip(),
    )
    .await?;
    Ok(Redirect::to("/login?reset=1").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_mail_is_in_the_readers_language() {
        let link = "https://shop.example/password/reset/abc";
        let (subject, body) = reset_mail(Lang::Sw, "Amina", 30, link);
        assert_eq!(subject, "Chagua nenosiri jipya");
        assert!(body.starts_with("Habari Amina,"), "{body}");
        assert!(
            body.contains("ndani ya dakika 30") && body.contains(link),
            "{body}"
        );
        let (subject, body) = reset_mail(Lang::En, "Amina", 30, link);
        assert_eq!(subject, "Choose a new password");
        assert!(body.starts_with("Hello Amina,") && body.contains("within 30 minutes"));
        for (_, body) in [
            reset_mail(Lang::Sw, "A", 1, link),
            reset_mail(Lang::En, "A", 1, link),
        ] {
            assert!(!body.contains('{'), "{body}");
        }
    }
}
