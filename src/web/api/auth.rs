//! Who is calling: bearer-token extractors ([`Caller`], [`SellerCaller`], [`AdminCaller`]) and
//! the endpoints that issue and revoke tokens. No cookies and no CSRF here: a bearer token is
//! never sent by a browser on its own, so a cross-site page cannot use one it does not hold.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ClientIp, Json};
use super::limit::client_key;
use super::{ApiState, seller::SellerOut};
use crate::market::states::Role;
use crate::store::sellers::{self, Seller};
use crate::store::users::{self, User};
use crate::web::audit::{self, Event};
use crate::web::auth::{Login, Refused, authenticate};
use std::net::IpAddr;

/// A caller with a valid, unrevoked token of an active account.
pub struct Caller(pub User);

/// No `Authorization` header: anonymous; a header with a bad token is still refused.
pub struct MaybeCaller(pub Option<User>);

/// A caller who has a seller profile (any status; writes check it).
pub struct SellerCaller {
    pub seller: Seller,
}

/// A caller whose account has the admin role.
pub struct AdminCaller(pub User);

fn bearer(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    Some(token.ok_or_else(|| {
        ApiError::unauthorized(
            "invalid_token",
            "send the token as `Authorization: Bearer <token>`",
        )
    }))
}

async fn resolve(s: &ApiState, token: &str) -> Result<User, ApiError> {
    let claims = s.keys.verify(token)?;
    let invalid = || ApiError::unauthorized("invalid_token", "the token is not valid");
    let id = claims.user_id().ok_or_else(invalid)?;
    let user = users::by_id(&s.app.db, id).await?.ok_or_else(invalid)?;
    if user.token_version != claims.ver {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "the token was revoked (password change or log out everywhere); log in again",
        ));
    }
    if !user.is_active() {
        return Err(ApiError::forbidden(
            "account_suspended",
            "this account is suspended",
        ));
    }
    Ok(user)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts).unwrap_or_else(|| {
            Err(ApiError::unauthorized(
                "missing_token",
                "log in at POST /api/v1/auth/token and send `Authorization: Bearer <token>`",
            ))
        })?;
        resolve(s, token).await.map(Caller)
    }
}

impl FromRequestParts<ApiState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, ApiError> {
        match bearer(parts) {
            None => Ok(MaybeCaller(None)),
            Some(token) => resolve(s, token?).await.map(|u| MaybeCaller(Some(u))),
        }
    }
}

impl FromRequestParts<ApiState> for SellerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, ApiError> {
        let Caller(user) = Caller::from_request_parts(parts, s).await?;
        let seller = sellers::by_user(&s.app.db, user.id).await?.ok_or_else(|| {
            ApiError::forbidden(
                "not_a_seller",
                "this account has no seller profile; apply at /sell",
            )
        })?;
        Ok(SellerCaller { seller })
    }
}

impl FromRequestParts<ApiState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, ApiError> {
        let Caller(user) = Caller::from_request_parts(parts, s).await?;
        if !user.is_admin() {
            return Err(ApiError::forbidden(
                "forbidden",
                "this needs the admin role",
            ));
        }
        Ok(AdminCaller(user))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address or phone number (`0712 345 678`, `+254712345678`).
    pub login: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub name: String,
    /// Email address or phone number.
    pub login: String,
    /// 8 to 200 characters.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub user: UserOut,
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `user` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
}

impl From<&User> for UserOut {
    fn from(u: &User) -> Self {
        UserOut {
            id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            phone: u.phone.clone(),
            role: u.role,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: UserOut,
    /// The caller's seller profile, if any.
    pub seller: Option<SellerOut>,
}

fn throttled(wait: std::time::Duration) -> ApiError {
    ApiError {
        message: "too many login attempts; retry after the time in Retry-After".into(),
        ..ApiError::rate_limited("login_throttled", wait)
    }
}

/// A login or registration error as the API answers it (a throttle names the login limit).
fn login_error(e: crate::web::Error) -> ApiError {
    match e {
        crate::web::Error::Throttled(wait) => throttled(wait),
        e => e.into(),
    }
}

/// A token for `user`, written to the audit log with the client's address.
async fn token_response(s: &ApiState, user: &User, ip: IpAddr) -> Result<TokenResponse, ApiError> {
    let access_token = s.keys.issue(user)?;
    let target = audit::user_target(user.id);
    audit::record(
        &s.app.db,
        Event::TokenIssued,
        Some(user.id),
        &target,
        "api",
        ip,
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: s.keys.ttl_secs(),
        user: user.into(),
    })
}

/// Log in: a short-lived bearer token. Throttled per client address and, on failures, per
/// account; an unknown account costs the same time as a wrong password.
#[utoipa::path(post, path = "/auth/token", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "OK", body = TokenResponse),
        (status = 401, description = "invalid_credentials", body = ErrorBody),
        (status = 403, description = "account_suspended", body = ErrorBody),
        (status = 429, description = "login_throttled / rate_limited", body = ErrorBody),
        (status = 503, description = "busy: every password check slot is taken", body = ErrorBody)))]
pub async fn token(
    State(s): State<ApiState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    if req.login.trim().is_empty() {
        return Err(ApiError::invalid("login", "is required"));
    }
    if req.password.is_empty() {
        return Err(ApiError::invalid("password", "is required"));
    }
    let outcome = authenticate(&s.limits, &s.app.db, ip, "api", &req.login, req.password)
        .await
        .map_err(login_error)?;
    match outcome {
        Login::Ok(u) => Ok(axum::Json(token_response(&s, &u, ip).await?)),
        Login::Suspended(_) => Err(ApiError::forbidden(
            "account_suspended",
            "this account is suspended",
        )),
        Login::Wrong => Err(ApiError::unauthorized(
            "invalid_credentials",
            "wrong email, phone or password",
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Registered {
    /// Always `accepted`.
    pub status: &'static str,
    pub message: &'static str,
}

/// Create an account; then log in at `/auth/token`. The answer is the same whether the login
/// was new or already had an account (no token either way): registering tells nobody who has
/// an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 202, description = "Accepted: log in at /auth/token", body = Registered),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 429, description = "login_throttled / rate_limited", body = ErrorBody),
        (status = 503, description = "busy: every password check slot is taken", body = ErrorBody)))]
pub async fn register(
    State(s): State<ApiState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let outcome = crate::web::auth::register(
        &s.limits,
        &s.app.db,
        &client_key(ip),
        &req.name,
        &req.login,
        &req.password,
    )
    .await
    .map_err(login_error)?;
    match outcome {
        Ok(_) | Err(Refused::Taken) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(Registered {
                status: "accepted",
                message: "if this login was new, its account is ready: log in at \
                          POST /api/v1/auth/token (if it had one, with that account's password)",
            }),
        )
            .into_response()),
        Err(Refused::Invalid(errors)) => Err(errors.into()),
    }
}

/// Revoke every token (and browser session) of the caller.
#[utoipa::path(post, path = "/auth/logout-everywhere", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "every token of this account is revoked"),
        (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody)))]
pub async fn logout_everywhere(
    State(s): State<ApiState>,
    ClientIp(ip): ClientIp,
    Caller(user): Caller,
) -> Result<StatusCode, ApiError> {
    users::bump_token_version(&s.app.db, user.id).await?;
    crate::store::sessions::delete_for_user(&s.app.db, user.id).await?;
    let target = audit::user_target(user.id);
    audit::record(
        &s.app.db,
        Event::LogoutEverywhere,
        Some(user.id),
        &target,
        "api",
        ip,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account and seller profile.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "OK", body = Me), (status = 401, description = "missing_token, invalid_token, token_expired or token_revoked", body = ErrorBody)))]
pub async fn me(
    State(s): State<ApiState>,
    Caller(user): Caller,
) -> Result<axum::Json<Me>, ApiError> {
    let seller = sellers::by_user(&s.app.db, user.id).await?;
    Ok(axum::Json(Me {
        user: (&user).into(),
        seller: seller.map(SellerOut::from),
    }))
}
