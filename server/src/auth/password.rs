//! Argon2id password hashing (the RustCrypto `argon2` crate with its default, OWASP-level
//! parameters). Hashing costs tens of milliseconds by design: call it on a blocking thread.

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::domain::Invalid;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 128;

/// Checks a new password against the policy (length only: long passphrases beat rules).
pub fn check_policy(password: &str) -> Result<(), Invalid> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(Invalid::new(
            "password_too_short",
            format!("must have at least {MIN_LENGTH} characters"),
        ));
    }
    if chars > MAX_LENGTH {
        return Err(Invalid::new(
            "password_too_long",
            format!("must have at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Verifies `password` against a stored hash; a malformed hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same time as a real verification, so an unknown phone number cannot be told
/// from a wrong password by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("dummy password for timing").unwrap_or_default());
    let _ = verify(stored, password);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let stored = hash("correct horse").expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify(&stored, "correct horse"));
        assert!(!verify(&stored, "wrong horse"));
        assert!(!verify("not a hash", "correct horse"));
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("长密码长密码长密码").is_ok());
        assert!(check_policy(&"x".repeat(129)).is_err());
    }
}
