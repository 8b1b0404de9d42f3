//! Passwords (argon2id), access tokens (HS256 JWT), the `AuthUser` extractor, the login
//! throttle, and the admin bootstrap.

use std::{
    collections::HashMap,
    future::{Ready, ready},
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::{
    configuration::{Argon2Settings, AuthSettings},
    entities::user,
    error::ApiError,
    state::AppState,
};

/// Role names as stored.
pub const ROLE_ADMIN: &str = "admin";
/// The default role.
pub const ROLE_READER: &str = "reader";

/// Hashes and verifies passwords with argon2id at the configured cost.
#[derive(Clone)]
pub struct PasswordService {
    params: Params,
}

impl std::fmt::Debug for PasswordService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordService").finish_non_exhaustive()
    }
}

impl PasswordService {
    /// # Errors
    ///
    /// Parameters argon2 rejects (e.g. memory below 8 KiB per lane).
    pub fn new(cfg: &Argon2Settings) -> Result<Self, String> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| format!("auth.argon2: {e}"))?;
        Ok(Self { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on the blocking pool: argon2 is deliberately slow and would stall a worker.
    ///
    /// # Errors
    ///
    /// Only an internal argon2 failure.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2();
        web::block(move || {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
            argon2.hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
    }

    /// True when `password` matches the stored PHC string (its own parameters apply).
    ///
    /// # Errors
    ///
    /// Only a failure of the blocking pool.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, ApiError> {
        let argon2 = self.argon2();
        web::block(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// What an access token carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: i64,
    /// Role at issue time.
    pub role: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issue time.
    pub iat: u64,
}

/// Issues and checks access tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenService {
    /// From `[auth]`.
    pub fn new(cfg: &AuthSettings) -> Self {
        Self::with_secret(cfg.jwt_secret.expose(), Duration::from_secs(cfg.token_ttl_secs))
    }

    /// From a secret and a lifetime.
    pub fn with_secret(secret: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl,
        }
    }

    /// Token lifetime in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// # Errors
    ///
    /// Only an internal signing failure.
    pub fn issue(&self, user: &user::Model) -> Result<String, ApiError> {
        self.issue_for(user.id, &user.role)
    }

    /// A token for user `id` with `role`, without loading the user: what `nanum loadtest
    /// --jwt-secret` and `nanum compare` mint for thousands of readers at once.
    ///
    /// # Errors
    ///
    /// Only an internal signing failure.
    pub fn issue_for(&self, id: i64, role: &str) -> Result<String, ApiError> {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let claims = Claims { sub: id, role: role.to_owned(), iat: now, exp: now + self.ttl.as_secs() };
        encode(&Header::default(), &claims, &self.encoding).map_err(ApiError::internal)
    }

    pub(crate) fn check(&self, token: &str) -> Result<Claims, ApiError> {
        // No leeway: an expired token is expired (tests check exactly that).
        let validation = Validation { leeway: 0, ..Validation::default() };
        decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::Unauthorized("the access token is invalid or expired"))
    }
}

/// The signed-in caller, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Role.
    pub role: String,
}

impl AuthUser {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == ROLE_ADMIN
    }

    /// # Errors
    ///
    /// 403 when the caller is not an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("this action needs an admin")) }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing")))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("sign in: the Authorization header is missing"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let claims = state.tokens.check(token.trim())?;
    Ok(AuthUser { id: claims.sub, role: claims.role })
}

/// Counts failed logins per email in a fixed window; past the limit, logins answer 429.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    // std Mutex: held for a map lookup only, never across an await.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// From `[auth]`.
    pub fn new(cfg: &AuthSettings) -> Self {
        Self {
            max_failures: cfg.login_max_failures,
            window: Duration::from_secs(cfg.login_window_secs),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// # Errors
    ///
    /// 429 with the seconds left in the window when the limit is reached.
    pub fn check(&self, email: &str) -> Result<(), ApiError> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(email) {
            Some((count, since)) if *count >= self.max_failures && since.elapsed() < self.window => {
                Err(ApiError::RateLimited((self.window - since.elapsed()).as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(email.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets the failures after a success.
    pub fn succeeded(&self, email: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(email);
    }
}

/// Creates the configured admin, or promotes an existing account of that email.
///
/// # Errors
///
/// Database errors.
pub async fn bootstrap_admin(
    db: &DatabaseConnection,
    cfg: &AuthSettings,
    passwords: &PasswordService,
) -> Result<(), ApiError> {
    let email = cfg.admin_email.trim().to_lowercase();
    if email.is_empty() {
        return Ok(());
    }
    match user::Entity::find().filter(user::Column::Email.eq(&email)).one(db).await? {
        Some(existing) if existing.role == ROLE_ADMIN => {}
        Some(existing) => {
            let mut active: user::ActiveModel = existing.into();
            active.role = Set(ROLE_ADMIN.into());
            active.update(db).await?;
        }
        None => {
            let hash = passwords.hash(cfg.admin_password.expose().to_owned()).await?;
            let admin = user::ActiveModel {
                email: Set(email),
                password_hash: Set(hash),
                name: Set("admin".into()),
                role: Set(ROLE_ADMIN.into()),
                created_at: Set(chrono::Utc::now()),
                ..Default::default()
            };
            // Several instances may start at once; the loser of that race finds the row.
            if let Err(e) = admin.insert(db).await
                && !strategies::dberr::is_unique_violation(&e)
            {
                return Err(e.into());
            }
        }
    }
    Ok(())
}
