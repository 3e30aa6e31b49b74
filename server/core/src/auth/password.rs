//! Argon2id password hashing (the RustCrypto `argon2` crate with its default, OWASP-level
//! parameters). Hashing costs tens of milliseconds by design: call it on a blocking thread.
//!
//! Each hash works in 19 MiB of memory. A burst of logins (every first secretary opening the app
//! at eight) ran one hash per blocking thread, and the allocator kept what each had used: 400
//! logins 64 at a time left a server at 2 GiB resident. So the hashes share a pool of working
//! memory, one buffer per core, allocated once and reused; a hash waits for a free buffer.
//! Hashing is CPU-bound, so waiting costs no throughput.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use argon2::password_hash::{
    self, rand_core::OsRng, Output, ParamsString, PasswordHash, Salt, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::domain::Invalid;
use crate::domain::Rule;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 128;

/// Checks a new password against the policy (length only: long passphrases beat rules).
pub fn check_policy(password: &str) -> Result<(), Invalid> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(Invalid::new(
            Rule::PasswordTooShort,
            format!("至少 {MIN_LENGTH} 个字符"),
        ));
    }
    if chars > MAX_LENGTH {
        return Err(Invalid::new(
            Rule::PasswordTooLong,
            format!("最多 {MAX_LENGTH} 个字符"),
        ));
    }
    Ok(())
}

/// Characters of a one-time password: lower-case letters and digits that cannot be mistaken
/// for each other when read aloud or copied by hand (no 0/o, 1/l/i).
const ONE_TIME_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// How long a reset's one-time password is accepted at login: long enough to reach a work team
/// in the field by phone, short enough that a forgotten note is no standing key.
pub const ONE_TIME_VALID_HOURS: i64 = 72;

/// A one-time password for a reset, `xxxx-xxxx-xxxx` (about 59 bits), given to the user by the
/// administrator; the user must replace it at the next login.
pub fn one_time() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let mut out = String::with_capacity(14);
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(
            ONE_TIME_ALPHABET[rng.gen_range(0..ONE_TIME_ALPHABET.len())],
        ));
    }
    out
}

/// Argon2 working memory, one buffer per core, handed out to one hash at a time.
struct Pool {
    state: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
    size: usize,
}

struct Lease(&'static Pool, Option<Vec<Block>>);

impl Pool {
    fn get() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            state: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
            size: std::thread::available_parallelism().map_or(2, |n| n.get()),
        })
    }

    /// A buffer: a free one, a new one while fewer than `size` exist, or the next returned.
    fn lease() -> Lease {
        let pool = Pool::get();
        let mut state = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(buffer) = state.0.pop() {
                return Lease(pool, Some(buffer));
            }
            if state.1 < pool.size {
                state.1 += 1;
                return Lease(pool, Some(Vec::new()));
            }
            state = pool
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(buffer) = self.1.take() {
            self.0
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                .push(buffer);
            self.0.returned.notify_one();
        }
    }
}

/// Argon2 of `password` with `salt`, in pooled memory.
fn compute(
    argon: &Argon2,
    params: &Params,
    password: &[u8],
    salt: Salt,
    len: usize,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let mut lease = Pool::lease();
    let blocks = lease.1.get_or_insert_with(Vec::new);
    blocks.resize(params.block_count(), Block::default());
    Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password, salt_bytes, out, &mut blocks[..])
            .map_err(password_hash::Error::from)
    })
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let fail = |e: password_hash::Error| anyhow::anyhow!("hashing a password: {e}");
    let output = compute(
        &argon,
        &params,
        password.as_bytes(),
        salt.as_salt(),
        Params::DEFAULT_OUTPUT_LEN,
    )
    .map_err(fail)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(fail)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

/// Verifies `password` against a stored hash (with the parameters stored in it); a malformed
/// hash never matches. Outputs compare in constant time.
pub fn verify(stored: &str, password: &str) -> bool {
    let check = || -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(stored)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let argon = Argon2::new(algorithm, version, params.clone());
        let computed = compute(&argon, &params, password.as_bytes(), salt, expected.len())?;
        Ok(computed == expected)
    };
    check().unwrap_or(false)
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
    fn pooled_hashes_are_the_crates_own() {
        use argon2::{PasswordHasher, PasswordVerifier};
        // Stored by the crate's own API (as earlier versions of this module did): still verifies.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .expect("hash")
            .to_string();
        assert!(verify(&theirs, "correct horse") && !verify(&theirs, "wrong horse"));
        // And the crate verifies ours.
        let ours = hash("correct horse").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC string");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // Other parameters (a lighter hash) resize the pooled buffer and still verify.
        let light = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw", &salt)
        .expect("hash")
        .to_string();
        assert!(verify(&light, "pw") && !verify(&light, "px"));
    }

    #[test]
    fn hashes_from_many_threads_share_the_pool() {
        let stored = hash("correct horse").expect("hashes");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let stored = stored.clone();
                std::thread::spawn(move || {
                    verify(&stored, if i % 2 == 0 { "correct horse" } else { "no" })
                })
            })
            .collect();
        let results: Vec<bool> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(
            results,
            [true, false, true, false, true, false, true, false]
        );
        let (free, made) = &*Pool::get().state.lock().expect("pool");
        assert!(
            *made <= Pool::get().size && free.len() == *made,
            "every buffer back, no more than one per core"
        );
    }

    #[test]
    fn one_time_passwords_are_random_and_pass_the_policy() {
        let (a, b) = (one_time(), one_time());
        assert_ne!(a, b);
        assert_eq!(a.len(), 14);
        assert!(check_policy(&a).is_ok());
        assert!(a
            .chars()
            .all(|c| c == '-' || ONE_TIME_ALPHABET.contains(&(c as u8))));
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("长密码长密码长密码").is_ok());
        assert!(check_policy(&"x".repeat(129)).is_err());
    }
}
