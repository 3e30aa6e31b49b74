//! Personal data at rest: ID numbers (and whole submissions, which contain them) are encrypted
//! with AES-256-GCM under a key derived from the master secret, and matched through a keyed
//! hash (HMAC-SHA256) so that finding "the same person" never needs decryption and the hashes
//! are worthless without the key (ID numbers are too few to hide behind a plain hash).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::IdNumber;
use crate::secrets::Keys;

const NONCE_LEN: usize = 12;

/// What a sealed value is, bound into its authentication tag so one kind cannot be passed off
/// as another.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    IdNumber,
    Phone,
    Submission,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::IdNumber => b"taizhang/v1/id-number",
            Purpose::Phone => b"taizhang/v1/phone",
            Purpose::Submission => b"taizhang/v1/submission",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed value could not be opened: wrong key or damaged data")]
pub struct OpenError;

#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    index_key: [u8; 32],
}

impl Vault {
    pub fn new(keys: &Keys) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(keys.id_encryption)),
            index_key: keys.id_index,
        }
    }

    /// Encrypts with a fresh random nonce: `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext,
            aad: purpose.aad(),
        };
        // Encryption in memory with a valid key and nonce cannot fail.
        let ciphertext = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.aad(),
                },
            )
            .map_err(|_| OpenError)
    }

    pub fn seal_id(&self, id: &IdNumber) -> String {
        self.seal(Purpose::IdNumber, id.expose().as_bytes())
    }

    pub fn open_id(&self, sealed: &str) -> Result<IdNumber, OpenError> {
        let bytes = self.open(Purpose::IdNumber, sealed)?;
        let text = String::from_utf8(bytes).map_err(|_| OpenError)?;
        IdNumber::parse(&text).map_err(|_| OpenError)
    }

    /// The keyed hash that identifies an ID number across households and surveys.
    pub fn index_id(&self, id: &IdNumber) -> String {
        self.keyed_hash(id.expose().as_bytes())
    }

    /// The token that names a person to the phone inside one household (`person_ref`): keyed,
    /// so it reveals nothing of the ID number, and bound to the household, so a token copied
    /// into another household's survey names no one there. 72 bits, 12 characters.
    pub fn person_ref(&self, household_id: &str, person_key: &str) -> String {
        self.short_token(&["person_ref", household_id, person_key])
    }

    /// The token that names a special-post or temporary-post worker to the village committee's
    /// phone inside one village (`worker_ref`), on the same terms as [`Vault::person_ref`].
    pub fn worker_ref(&self, village_code: &str, person_key: &str) -> String {
        self.short_token(&["worker_ref", village_code, person_key])
    }

    fn short_token(&self, parts: &[&str]) -> String {
        #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes keys of any length");
        for part in parts {
            // Length-prefixed, so that no two part lists hash alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9])
    }

    /// HMAC-SHA256 under the index key, hex.
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes keys of any length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(seed: u8) -> Vault {
        Vault::new(&Keys::from_master(&[seed; 32]))
    }

    #[test]
    fn sealed_ids_open_only_with_the_key_and_purpose() {
        let id = IdNumber::parse("220802197001011238").expect("valid");
        let v = vault(1);
        let sealed = v.seal_id(&id);
        assert!(!sealed.contains("220802197001011238"));
        assert_ne!(sealed, v.seal_id(&id), "a fresh nonce each time");
        assert_eq!(v.open_id(&sealed).expect("opens"), id);
        assert!(vault(2).open_id(&sealed).is_err());
        assert!(v.open(Purpose::Submission, &sealed).is_err());
    }

    #[test]
    fn references_are_bound_to_their_household_and_keyed() {
        let v = vault(1);
        let r = v.person_ref("h1", "k");
        assert_eq!(r.len(), 12);
        assert_eq!(r, v.person_ref("h1", "k"));
        assert_ne!(r, v.person_ref("h2", "k"));
        assert_ne!(r, vault(2).person_ref("h1", "k"));
        assert_ne!(r, v.worker_ref("h1", "k"));
    }

    #[test]
    fn the_index_is_stable_and_keyed() {
        let id = IdNumber::parse("220802197001011238").expect("valid");
        assert_eq!(vault(1).index_id(&id), vault(1).index_id(&id));
        assert_ne!(vault(1).index_id(&id), vault(2).index_id(&id));
    }
}
