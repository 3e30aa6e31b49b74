//! Access tokens (JWT, HS256, short-lived) and refresh tokens (random, stored hashed).

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::Role;
use crate::error::{ApiError, ErrorCode};
use crate::secrets::Keys;

const ISSUER: &str = "taizhang";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The session (refresh-token family) the token belongs to, so logout and a detected
    /// refresh-token reuse end it at once.
    pub sid: String,
    pub role: Role,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

pub fn issue_access(
    keys: &Keys,
    user_id: &str,
    session_id: &str,
    role: Role,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<String, ApiError> {
    let claims = AccessClaims {
        sub: user_id.to_owned(),
        sid: session_id.to_owned(),
        role,
        iss: ISSUER.into(),
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&keys.jwt),
    )
    .map_err(ApiError::internal)
}

/// What every access token must be: HS256, signed by this server, with `exp`, `iss`, `sub`.
fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    // The server both issues and checks the token: no clock skew to allow for.
    validation.leeway = 0;
    validation
}

pub fn verify_access(keys: &Keys, token: &str) -> Result<AccessClaims, ApiError> {
    jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_secret(&keys.jwt), &validation())
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => ApiError::unauthenticated(
                ErrorCode::TokenExpired,
                "访问令牌已过期，请用刷新令牌换取新令牌",
            ),
            _ => ApiError::unauthenticated(ErrorCode::InvalidToken, "访问令牌无效"),
        })
}

/// The claims of a token this server signed, expired or not (compare `exp` yourself): the
/// console renews an expired access token of a live session instead of spending a refresh token,
/// which parallel page loads would race for (a refresh token works once).
pub fn verify_access_ignoring_expiry(keys: &Keys, token: &str) -> Result<AccessClaims, ApiError> {
    let mut validation = validation();
    validation.validate_exp = false;
    jsonwebtoken::decode::<AccessClaims>(token, &DecodingKey::from_secret(&keys.jwt), &validation)
        .map(|data| data.claims)
        .map_err(|_| ApiError::unauthenticated(ErrorCode::InvalidToken, "访问令牌无效"))
}

/// A new refresh token: 256 random bits, URL-safe.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a refresh token. A fast hash is enough: the token is 256 random bits, not
/// a password that could be guessed.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_master(&[3u8; 32])
    }

    #[test]
    fn access_tokens_round_trip() {
        let token = issue_access(
            &keys(),
            "u1",
            "s1",
            Role::Enumerator,
            Utc::now(),
            chrono::Duration::minutes(15),
        )
        .expect("issues");
        let claims = verify_access(&keys(), &token).expect("verifies");
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str(), claims.role),
            ("u1", "s1", Role::Enumerator)
        );
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let old = Utc::now() - chrono::Duration::hours(1);
        let token = issue_access(
            &keys(),
            "u1",
            "s1",
            Role::CityAdmin,
            old,
            chrono::Duration::minutes(15),
        )
        .expect("issues");
        assert_eq!(
            verify_access(&keys(), &token).map_err(|e| e.code()).err(),
            Some(ErrorCode::TokenExpired)
        );
        let other = Keys::from_master(&[4u8; 32]);
        let token = issue_access(
            &other,
            "u1",
            "s1",
            Role::CityAdmin,
            Utc::now(),
            chrono::Duration::minutes(15),
        )
        .expect("issues");
        assert_eq!(
            verify_access(&keys(), &token).map_err(|e| e.code()).err(),
            Some(ErrorCode::InvalidToken)
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(refresh_token_hash(&a).len(), 64);
        assert_ne!(refresh_token_hash(&a), a);
    }
}
