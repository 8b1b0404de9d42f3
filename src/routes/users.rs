//! `POST /users` (sign up) and `POST /auth/login`.

use crate::limits::client_key;
use actix_web::{HttpRequest, HttpResponse, post, web};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::Object;
use crate::{
    auth::ROLE_READER,
    entities::user,
    error::{ApiError, FieldErrors, on_unique},
    limits::per_ip,
    state::AppState,
};

/// Longest email accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Longest password accepted, in characters.
const MAX_PASSWORD_CHARS: usize = 128;

/// The throttle's key for this client: its address (`client_ip::client_addr`, then
/// `limits::client_key`), or the unspecified address when the connection has none.
pub(crate) fn client_of(req: &HttpRequest, state: &AppState) -> std::net::IpAddr {
    crate::client_ip::client_addr(req, &state.settings.server.trusted_proxies)
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), client_key)
}

/// A sign-up.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewUser {
    /// Trimmed and lower-cased; at most 254 characters, printable ASCII only.
    #[schema(max_length = 254)]
    pub(crate) email: String,
    /// 8–128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub(crate) password: String,
    /// 1–100 characters after trimming.
    #[schema(min_length = 1, max_length = 100)]
    pub(crate) name: String,
}

fn validate(new: &NewUser) -> Result<(), ApiError> {
    let mut fields = FieldErrors::new();
    let email = new.email.trim();
    let valid_email = email.len() <= MAX_EMAIL_LEN
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        // Printable ASCII only: no zero-width or control character, no Cyrillic `а` or
        // fullwidth `ａ` that would read like another reader's (or the admin's) address.
        // An international domain is written in its ASCII form (`xn--…`).
        && email.bytes().all(|b| b.is_ascii_graphic());
    if !valid_email {
        fields.insert("email", "must be an email address of printable ASCII characters".into());
    }
    let chars = new.password.chars().count();
    if !(8..=MAX_PASSWORD_CHARS).contains(&chars) {
        fields.insert("password", format!("must be 8 to {MAX_PASSWORD_CHARS} characters"));
    }
    let name = new.name.trim().chars().count();
    if !(1..=100).contains(&name) {
        fields.insert("name", "must be 1 to 100 characters".into());
    } else if crate::text::refused(&new.name) {
        fields.insert("name", crate::text::REFUSED.into());
    }
    if fields.is_empty() { Ok(()) } else { Err(ApiError::Validation(fields)) }
}

/// 201 `{id, email, name}`; 409 `email_taken`; 422 `validation_failed`.
#[utoipa::path(
    operation_id = "register",
    request_body = NewUser,
    tag = "users",
    responses((status = 201, description = "Signed up (a reader)", body = crate::routes::openapi::UserCreated))
)]
#[post("/users")]
pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Object<NewUser>>,
) -> Result<HttpResponse, ApiError> {
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.register_per_ip.as_ref())?;
    let model = sign_up(&state, body.into_inner().0).await?;
    Ok(HttpResponse::Created().json(json!({ "id": model.id, "email": model.email, "name": model.name })))
}

/// Validates and stores a new reader (shared by the API and the web pages).
pub(crate) async fn sign_up(state: &AppState, new: NewUser) -> Result<user::Model, ApiError> {
    validate(&new)?;
    let email = new.email.trim().to_lowercase();
    let hash = state.passwords.hash(new.password).await?;
    let model = user::ActiveModel {
        email: Set(email),
        password_hash: Set(hash),
        name: Set(new.name.trim().to_owned()),
        role: Set(ROLE_READER.into()),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(|e| on_unique(e, ApiError::EmailTaken))?;
    Ok(model)
}

/// Login credentials.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// 200 `{access_token, token_type, expires_in}`; 401 on wrong credentials; 422 for an
/// email or password longer than sign-up accepts; 429 after too many attempts from one
/// address (at all, or for one account) or for one account from addresses it never signed
/// in from (`throttle`).
#[utoipa::path(
    operation_id = "login",
    request_body = Credentials,
    tag = "users",
    responses((status = 200, description = "A bearer token", body = crate::routes::openapi::Token))
)]
#[post("/auth/login")]
pub(crate) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Object<Credentials>>,
) -> Result<HttpResponse, ApiError> {
    per_ip(&req, &state.settings.server.trusted_proxies, state.limits.login_per_ip.as_ref())?;
    let Credentials { email, password } = body.into_inner().0;
    let user = sign_in(&state, &email, password, client_of(&req, &state)).await?;
    let token = state.tokens.issue(&user)?;
    Ok(HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.tokens.ttl_secs(),
    })))
}

/// Checks credentials under the login throttle (shared by the API and the web pages).
pub(crate) async fn sign_in(
    state: &AppState,
    email: &str,
    password: String,
    client: std::net::IpAddr,
) -> Result<user::Model, ApiError> {
    let email = email.trim().to_lowercase();
    // No account can have a longer one, and the limits below must not store it.
    let mut fields = FieldErrors::new();
    if email.len() > MAX_EMAIL_LEN {
        fields.insert("email", format!("must be at most {MAX_EMAIL_LEN} bytes"));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        fields.insert("password", format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    if !fields.is_empty() {
        return Err(ApiError::Validation(fields));
    }
    // Counted before the password is checked: concurrent guesses cannot all slip through.
    state.logins.attempt(&email, client)?;
    let found = user::Entity::find().filter(user::Column::Email.eq(&email)).one(&state.db).await?;
    // An unknown email is checked against a dummy hash: both answers take as long.
    let verified = state.passwords.verify(found.as_ref().map(|u| u.password_hash.clone()), password).await?;
    let Some(user) = found.filter(|_| verified) else {
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
    state.logins.succeeded(&email, client);
    Ok(user)
}
