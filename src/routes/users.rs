//! `POST /users` (sign up) and `POST /auth/login`.

use actix_web::{HttpResponse, post, web};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::ROLE_READER,
    entities::user,
    error::{ApiError, FieldErrors, on_unique},
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub(crate) struct NewUser {
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) name: String,
}

fn validate(new: &NewUser) -> Result<(), ApiError> {
    let mut fields = FieldErrors::new();
    let email = new.email.trim();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace);
    if !valid_email {
        fields.insert("email", "must be an email address".into());
    }
    let chars = new.password.chars().count();
    if !(8..=128).contains(&chars) {
        fields.insert("password", "must be 8 to 128 characters".into());
    }
    let name = new.name.trim().chars().count();
    if !(1..=100).contains(&name) {
        fields.insert("name", "must be 1 to 100 characters".into());
    }
    if fields.is_empty() { Ok(()) } else { Err(ApiError::Validation(fields)) }
}

/// 201 `{id, email, name}`; 409 `email_taken`; 422 `validation_failed`.
#[post("/users")]
pub(crate) async fn register(
    state: web::Data<AppState>,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let model = sign_up(&state, body.into_inner()).await?;
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

#[derive(Debug, Deserialize)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// 200 `{access_token, token_type, expires_in}`; 401 on wrong credentials; 429 after too
/// many failures for one email.
#[post("/auth/login")]
pub(crate) async fn login(
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { email, password } = body.into_inner();
    let user = sign_in(&state, &email, password).await?;
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
) -> Result<user::Model, ApiError> {
    let email = email.trim().to_lowercase();
    state.logins.check(&email)?;
    let found = user::Entity::find().filter(user::Column::Email.eq(&email)).one(&state.db).await?;
    let verified = match &found {
        Some(u) => state.passwords.verify(u.password_hash.clone(), password).await?,
        None => false,
    };
    let Some(user) = found.filter(|_| verified) else {
        state.logins.failed(&email);
        return Err(ApiError::Unauthorized("wrong email or password"));
    };
    state.logins.succeeded(&email);
    Ok(user)
}
