//! Token encryption: a key ring of AES-256-GCM keys and the one cipher every token goes through.
//!
//! Ciphertext format: `v1.{kid}.{base64(nonce ‖ ciphertext ‖ tag)}` with a random 96-bit nonce.
//! The associated data binds a ciphertext to its account and token kind, so a token copied into
//! another account's event does not decrypt. The first key of the ring is the primary: it encrypts;
//! every key decrypts, which is what lets `nikara keys rotate` move tokens off an old key.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("is empty; expected `kid:base64key[,kid:base64key…]`")]
    Empty,
    #[error("entry {0} is not `kid:base64key`")]
    Malformed(usize),
    #[error("key id `{0}` must be 1-32 letters, digits, `-` or `_`")]
    BadKid(String),
    #[error("key `{0}` is not standard base64")]
    BadBase64(String),
    #[error("key `{kid}` is {len} bytes; AES-256 needs exactly 32")]
    BadLength { kid: String, len: usize },
    #[error("key id `{0}` appears twice")]
    Duplicate(String),
}

/// Failures to decrypt. Deliberately vague about *why* authentication failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext uses key `{0}`, which is not in the key ring")]
    UnknownKey(String),
    #[error("ciphertext failed authentication (wrong key, wrong associated data, or tampered)")]
    Authentication,
    #[error("encryption failed")]
    Encrypt,
}

struct Entry {
    kid: String,
    key: SecretBox<[u8; 32]>,
}

/// The configured keys, primary first. `Debug` prints key ids only.
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl Clone for KeyRing {
    fn clone(&self) -> Self {
        KeyRing {
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    kid: e.kid.clone(),
                    key: SecretBox::new(Box::new(*e.key.expose_secret())),
                })
                .collect(),
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.kids())
            .field("keys", &"[redacted]")
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= 32 && kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl KeyRing {
    /// Parses `kid:base64key,kid:base64key` (whitespace and newlines between entries allowed).
    pub fn parse(s: &str) -> Result<KeyRing, KeyRingError> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, part) in s
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let (kid, b64) = part.split_once(':').ok_or(KeyRingError::Malformed(i + 1))?;
            let kid = kid.trim();
            if !valid_kid(kid) {
                return Err(KeyRingError::BadKid(kid.to_string()));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| KeyRingError::BadBase64(kid.to_string()))?;
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyRingError::BadLength {
                kid: kid.to_string(),
                len: bytes.len(),
            })?;
            if entries.iter().any(|e| e.kid == kid) {
                return Err(KeyRingError::Duplicate(kid.to_string()));
            }
            entries.push(Entry {
                kid: kid.to_string(),
                key: SecretBox::new(Box::new(key)),
            });
        }
        if entries.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(KeyRing { entries })
    }

    /// A fresh random key in the ring's text form, `kid:base64key`.
    pub fn generate_entry(kid: &str) -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("{kid}:{}", STANDARD.encode(key))
    }

    /// Key ids, primary first.
    pub fn kids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.kid.as_str()).collect()
    }

    /// The key id new ciphertexts use.
    pub fn primary_kid(&self) -> &str {
        // `parse` guarantees at least one entry.
        self.entries.first().map(|e| e.kid.as_str()).unwrap_or_default()
    }

    /// Loads the ring from `path`, creating it with one fresh key (mode 0600) when missing.
    /// Returns the ring and whether it was generated.
    pub fn load_or_generate(path: &Path) -> std::io::Result<(KeyRing, bool)> {
        let (text, generated) = crate::secrets::read_or_create(path, || {
            let kid = format!("dev{}", chrono::Utc::now().format("%Y%m%d"));
            KeyRing::generate_entry(&kid)
        })?;
        let ring = KeyRing::parse(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds an invalid key ring: {e}", path.display()),
            )
        })?;
        Ok((ring, generated))
    }
}

/// The only way tokens are encrypted or decrypted.
#[derive(Debug, Clone)]
pub struct TokenCipher {
    ring: KeyRing,
}

impl TokenCipher {
    pub fn new(ring: KeyRing) -> Self {
        TokenCipher { ring }
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Encrypts under the primary key, binding `aad` (account id + token kind).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CipherError> {
        let entry = self.ring.entries.first().ok_or(CipherError::Encrypt)?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(entry.key.expose_secret()));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CipherError::Encrypt)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("v1.{}.{}", entry.kid, STANDARD.encode(blob)))
    }

    /// Key id a ciphertext was made with, without decrypting it.
    pub fn kid_of(ciphertext: &str) -> Result<&str, CipherError> {
        let mut parts = ciphertext.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(kid), Some(_)) if valid_kid(kid) => Ok(kid),
            _ => Err(CipherError::Malformed),
        }
    }

    /// Decrypts, checking the associated data. Every length is checked before slicing.
    pub fn decrypt(&self, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>, CipherError> {
        let kid = Self::kid_of(ciphertext)?;
        let b64 = &ciphertext[3 + kid.len() + 1..];
        let entry = self
            .ring
            .entries
            .iter()
            .find(|e| e.kid == kid)
            .ok_or_else(|| CipherError::UnknownKey(kid.to_string()))?;
        let blob = STANDARD.decode(b64).map_err(|_| CipherError::Malformed)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CipherError::Malformed);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(entry.key.expose_secret()));
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CipherError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(s: &str) -> KeyRing {
        KeyRing::parse(s).expect("valid ring")
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";

    #[test]
    fn round_trip_and_format() {
        let c = TokenCipher::new(ring(K1));
        let ct = c.encrypt(b"secret-token", b"acc_1/access").expect("encrypt");
        assert!(ct.starts_with("v1.k1."), "{ct}");
        assert!(!ct.contains("secret-token"));
        assert_eq!(c.decrypt(&ct, b"acc_1/access").expect("decrypt"), b"secret-token");
        assert_ne!(
            ct,
            c.encrypt(b"secret-token", b"acc_1/access").expect("encrypt"),
            "nonces are random"
        );
    }

    #[test]
    fn tampering_wrong_aad_and_truncation_are_errors_not_panics() {
        let c = TokenCipher::new(ring(K1));
        let ct = c.encrypt(b"secret-token", b"acc_1/access").expect("encrypt");
        assert_eq!(c.decrypt(&ct, b"acc_2/access"), Err(CipherError::Authentication));
        let mut blob = STANDARD.decode(&ct[6..]).expect("b64");
        for bit in [0usize, 7, 8 * 12, 8 * blob.len() - 1] {
            blob[bit / 8] ^= 1 << (bit % 8);
            let flipped = format!("v1.k1.{}", STANDARD.encode(&blob));
            assert_eq!(c.decrypt(&flipped, b"acc_1/access"), Err(CipherError::Authentication));
            blob[bit / 8] ^= 1 << (bit % 8);
        }
        for cut in [0, 5, 6, 10, ct.len() - 1] {
            assert!(c.decrypt(&ct[..cut], b"acc_1/access").is_err(), "cut at {cut}");
        }
        assert_eq!(c.decrypt("v1.k1.AAAA", b""), Err(CipherError::Malformed));
        assert_eq!(c.decrypt("v2.k1.AAAA", b""), Err(CipherError::Malformed));
        assert_eq!(c.decrypt("v1.zz.AAAA", b""), Err(CipherError::UnknownKey("zz".into())));
    }

    #[test]
    fn old_keys_still_decrypt_after_a_new_primary_is_added() {
        let old = TokenCipher::new(ring(K1));
        let ct = old.encrypt(b"t", b"a").expect("encrypt");
        let rotated = TokenCipher::new(ring(&format!("{K2},{K1}")));
        assert_eq!(rotated.decrypt(&ct, b"a").expect("old key decrypts"), b"t");
        assert!(rotated.encrypt(b"t", b"a").expect("encrypt").starts_with("v1.k2."));
        let dropped = TokenCipher::new(ring(K2));
        assert_eq!(dropped.decrypt(&ct, b"a"), Err(CipherError::UnknownKey("k1".into())));
    }

    #[test]
    fn ring_parsing_errors_are_specific_and_debug_is_redacted() {
        assert_eq!(KeyRing::parse("").err(), Some(KeyRingError::Empty));
        assert_eq!(KeyRing::parse("nokey").err(), Some(KeyRingError::Malformed(1)));
        assert_eq!(KeyRing::parse("k:!!").err(), Some(KeyRingError::BadBase64("k".into())));
        assert_eq!(
            KeyRing::parse("k:AAAA").err(),
            Some(KeyRingError::BadLength {
                kid: "k".into(),
                len: 3
            })
        );
        assert_eq!(
            KeyRing::parse(&format!("{K1},{K1}")).err(),
            Some(KeyRingError::Duplicate("k1".into()))
        );
        assert_eq!(
            KeyRing::parse("bad kid:AAAA").err(),
            Some(KeyRingError::BadKid("bad kid".into()))
        );
        let debug = format!("{:?}", ring(K1));
        assert!(debug.contains("k1") && !debug.contains("AAECAwQF"), "{debug}");
    }
}
