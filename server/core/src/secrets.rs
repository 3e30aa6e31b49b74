//! The one master secret and the keys derived from it.
//!
//! The master secret (32 bytes) comes from `TAIZHANG_SECRET_KEY` (hex or base64), from the
//! file `TAIZHANG_SECRET_KEY_FILE` names, or, in embedded mode, from `secret.key` in the data
//! directory, generated on first start. It is never accepted on the command line and never
//! logged. Independent keys are derived from it with HKDF-SHA256, one per purpose, so no key is
//! used for two things. A fingerprint of it is stored in the database at first start: a server
//! started with another secret refuses to run rather than issue tokens other servers reject or
//! index ID numbers under a different key.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

/// Where the master secret comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// The value itself (from the environment).
    Value(String),
    /// A file holding it.
    File(PathBuf),
    /// `secret.key` in the data directory, generated if absent.
    DataDir,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("Value(***)"),
            SecretSource::File(path) => write!(f, "File({})", path.display()),
            SecretSource::DataDir => f.write_str("DataDir"),
        }
    }
}

/// Keys for each purpose, derived from the master secret.
#[derive(Clone)]
pub struct Keys {
    /// HMAC-SHA256 key signing access tokens.
    pub jwt: [u8; 32],
    /// AES-256-GCM key encrypting ID numbers at rest.
    pub id_encryption: [u8; 32],
    /// HMAC-SHA256 key of the blind index that matches ID numbers without decrypting them.
    pub id_index: [u8; 32],
    /// HMAC-SHA256 key of the tag that makes a download (`/sync`) cursor unforgeable.
    pub sync_cursor: [u8; 32],
    fingerprint: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys(fingerprint {})", self.fingerprint)
    }
}

impl Keys {
    pub fn from_master(master: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"taizhang/v1"), master);
        let derive = |info: &[u8]| {
            let mut key = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
            hk.expand(info, &mut key).unwrap_or_default();
            key
        };
        let fingerprint = hex::encode(&derive(b"fingerprint")[..8]);
        Self {
            jwt: derive(b"jwt-hs256"),
            id_encryption: derive(b"id-number-aes-256-gcm"),
            id_index: derive(b"id-number-hmac-index"),
            sync_cursor: derive(b"sync-cursor-hmac"),
            fingerprint,
        }
    }

    /// A short public value that identifies the master secret without revealing it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn load(source: &SecretSource, data_dir: &Path) -> anyhow::Result<Self> {
        let master = match source {
            SecretSource::DataDir => load_or_generate(&data_dir.join("secret.key"))?,
            given => read_given(given)?,
        };
        Ok(Self::from_master(&master))
    }
}

/// The master secret given in the environment or a file, read without writing anything (a
/// restore checks it before it writes). `DataDir` is no key given: an error.
pub fn read_given(source: &SecretSource) -> anyhow::Result<Vec<u8>> {
    match source {
        SecretSource::Value(value) => decode(value).context("TAIZHANG_SECRET_KEY"),
        SecretSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret key file {}", path.display()))?;
            decode(&text).with_context(|| format!("the secret key file {}", path.display()))
        }
        SecretSource::DataDir => {
            bail!("no secret key given: set TAIZHANG_SECRET_KEY or TAIZHANG_SECRET_KEY_FILE")
        }
    }
}

/// Writes `master` as a new key file readable by this user only; an existing file is an error.
pub fn write_key_file(path: &Path, master: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(hex::encode(master).as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Accepts 64 hex digits or base64 of at least 32 bytes.
fn decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    let bytes = if text.len() >= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text)?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| anyhow::anyhow!("must be 64 hex digits or base64"))?
    };
    if bytes.len() < 32 {
        bail!("must hold at least 32 bytes (got {})", bytes.len());
    }
    Ok(bytes)
}

fn load_or_generate(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex::encode(key).as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new secret key");
            Ok(key.to_vec())
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            decode(&text).with_context(|| format!("the secret key file {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_per_purpose_and_are_stable() {
        let a = Keys::from_master(&[7u8; 32]);
        let b = Keys::from_master(&[7u8; 32]);
        assert_eq!(a.jwt, b.jwt);
        assert_ne!(a.jwt, a.id_encryption);
        assert_ne!(a.id_encryption, a.id_index);
        assert_ne!(a.fingerprint(), Keys::from_master(&[8u8; 32]).fingerprint());
    }

    #[test]
    fn accepts_hex_and_base64_and_refuses_short_keys() {
        assert_eq!(decode(&"ab".repeat(32)).map(|k| k.len()).ok(), Some(32));
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(decode(&b64).map(|k| k.len()).ok(), Some(32));
        assert!(decode("abcd").is_err());
    }

    #[test]
    fn generated_key_is_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Keys::load(&SecretSource::DataDir, dir.path()).expect("generates");
        let b = Keys::load(&SecretSource::DataDir, dir.path()).expect("reads");
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is private");
        }
    }
}
