//! Passwords (argon2id), access tokens (HS256 JWT), the `AuthUser` extractor, and the admin
//! bootstrap. The login limits live in `limits`.

use std::{
    future::{Ready, ready},
    sync::Arc,
    time::Duration,
};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
    password_hash::{Output, ParamsString, SaltString},
};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::{
    configuration::{Argon2Settings, AuthSettings},
    entities::user,
    error::ApiError,
    limits::HashGate,
};

/// Why the start is refused when `auth.admin_email` belongs to a reader.
const NOT_ADMIN: &str = "auth.admin_email belongs to an account that is not an admin (it was registered, \
                         not created at start-up); it is never promoted — set APP__AUTH__ADMIN_EMAIL to \
                         another address, or change that account's role in the database";

/// Role names as stored.
pub const ROLE_ADMIN: &str = "admin";
/// The default role.
pub const ROLE_READER: &str = "reader";

/// Hashes and verifies passwords with argon2id at the configured cost, never more at once
/// than its [`HashGate`] allows.
#[derive(Clone)]
pub struct PasswordService {
    params: Params,
    gate: Arc<HashGate>,
    /// A hash of a random password at the configured cost: what an unknown email is checked
    /// against, so it takes as long as a known one (no user enumeration by timing).
    dummy: String,
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
        Self::gated(cfg, HashGate::new(0, Duration::from_secs(10)))
    }

    /// As [`PasswordService::new`], behind `gate`.
    ///
    /// # Errors
    ///
    /// See [`PasswordService::new`].
    pub fn gated(cfg: &Argon2Settings, gate: HashGate) -> Result<Self, String> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| format!("auth.argon2: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt =
            SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| format!("auth.argon2: {e}"))?;
        let dummy = argon2
            .hash_password(&rand::random::<[u8; 16]>(), &salt)
            .map_err(|e| format!("auth.argon2: {e}"))?
            .to_string();
        Ok(Self { params, gate: Arc::new(gate), dummy })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on the hashing threads: argon2 is deliberately slow and would stall a worker.
    ///
    /// # Errors
    ///
    /// Only an internal argon2 failure.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2();
        self.gate
            .run(move || {
                let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
                hash_reusing_memory(&argon2, password.as_bytes(), &salt)
            })
            .await?
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
    }

    /// True when `password` matches the stored PHC string (its own parameters apply); with
    /// no stored hash, checks against the dummy one (same cost) and answers false.
    ///
    /// # Errors
    ///
    /// 503 `overloaded` when no hashing slot freed in time; 500 if the hash panicked.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let matched = self.gate.run(move || verify_reusing_memory(&hash, password.as_bytes())).await?;
        Ok(known && matched)
    }
}

thread_local! {
    /// This hashing thread's argon2 memory (`memory_kib`), kept for every hash it runs: one
    /// allocation per thread for the process's life, instead of a fresh 19 MiB per login
    /// that malloc would keep around afterwards.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_blocks<T>(count: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() != count {
            *blocks = vec![Block::default(); count];
        }
        work(&mut blocks)
    })
}

/// The PHC string of `password` (argon2id, the same string `PasswordHasher` writes).
fn hash_reusing_memory(argon2: &Argon2<'_>, password: &[u8], salt: &SaltString) -> Result<String, String> {
    let params = argon2.params().clone();
    let mut salt_bytes = [0_u8; 64];
    let salt_raw = salt.as_salt().decode_b64(&mut salt_bytes).map_err(|e| e.to_string())?;
    let mut out = vec![0_u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    with_blocks(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt_raw, &mut out, blocks)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// True when `password` matches the PHC string `phc` (whose own parameters apply).
fn verify_reusing_memory(phc: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed))
    else {
        return false;
    };
    let Ok(version) = parsed.version.map_or(Ok(Version::V0x13), Version::try_from) else { return false };
    let mut salt_bytes = [0_u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0_u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_blocks(params.block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
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

    /// The token's role, confirmed against the database: the account must still exist and
    /// still be an admin (a token outlives a demotion, and a token forged with a leaked
    /// secret names whatever it likes).
    ///
    /// # Errors
    ///
    /// 403 when the caller is not an admin; 401 when the account does not exist.
    pub async fn require_admin(&self, db: &DatabaseConnection) -> Result<(), ApiError> {
        if !self.is_admin() {
            return Err(ApiError::Forbidden("this action needs an admin"));
        }
        match user::Entity::find_by_id(self.id).one(db).await? {
            Some(u) if u.role == ROLE_ADMIN => Ok(()),
            Some(_) => Err(ApiError::Forbidden("this action needs an admin")),
            None => Err(ApiError::Unauthorized("the access token names no account")),
        }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = authenticate(req);
        if let Ok(user) = &user {
            // For the access log line (`logging`): the user id, never the token.
            req.extensions_mut().insert(user.clone());
        }
        ready(user)
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    // the token keys only, registered beside the application state (see `startup`)
    let tokens = req
        .app_data::<web::Data<TokenService>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("TokenService missing from the app data")))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("sign in: the Authorization header is missing"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let claims = tokens.check(token.trim())?;
    Ok(AuthUser { id: claims.sub, role: claims.role })
}

/// Creates the configured admin when no account has that email. An existing account is
/// never promoted: whoever registered the address first would otherwise become admin with
/// their own password.
///
/// # Errors
///
/// Database errors, or the address belongs to an account that is not an admin.
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
        Some(_) => return Err(ApiError::Conflict(NOT_ADMIN)),
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

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[test]
    fn hashes_made_with_reused_memory_are_standard_phc_strings() {
        let params = Params::new(256, 1, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let ours = hash_reusing_memory(&argon2, b"correct horse", &salt).unwrap();
        let theirs = argon2.hash_password(b"correct horse", &salt).unwrap().to_string();
        assert_eq!(ours, theirs);
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2.verify_password(b"correct horse", &parsed).is_ok());
        assert!(verify_reusing_memory(&theirs, b"correct horse"));
        assert!(!verify_reusing_memory(&theirs, b"wrong horse"));
        assert!(!verify_reusing_memory("not a hash", b"correct horse"));
    }
}
