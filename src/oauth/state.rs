//! The OAuth `state`: HMAC-signed, expiring, single-use, and the key to the PKCE verifier.
//!
//! Format: `{base64url(json claims)}.{base64url(hmac-sha256)}`. The claims bind the user, the
//! platform, a random nonce and the expiry. The PKCE verifier is not stored anywhere: it is derived
//! from the nonce with a server key (`HMAC(key, "pkce:" + nonce)`), so only this server can
//! reproduce it, and nothing survives an abandoned attempt. Single use is enforced by the caller
//! appending to `oauth-state-{nonce}` with `ExpectedVersion::NoStream`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::platform::Platform;

type HmacSha256 = Hmac<Sha256>;

/// How long a consent may take.
pub const STATE_TTL: Duration = Duration::minutes(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "p")]
    pub platform: Platform,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "e")]
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state parameter is malformed")]
    Malformed,
    #[error("the state parameter's signature is invalid")]
    BadSignature,
    #[error("the state parameter has expired; start the connection again")]
    Expired,
}

/// Signs and checks states; derives PKCE verifiers.
pub struct StateKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey([redacted])")
    }
}

impl StateKey {
    /// Derives the state key from the JWT secret, so no extra secret needs configuring.
    pub fn derive(jwt_secret: &SecretString) -> StateKey {
        let mut mac = HmacSha256::new_from_slice(jwt_secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"nikara/oauth-state/v1");
        StateKey(SecretBox::new(Box::new(mac.finalize().into_bytes().into())))
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// A fresh state for `user` connecting `platform`.
    pub fn issue(&self, user_id: &str, platform: Platform, now: DateTime<Utc>) -> (String, StateClaims) {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let claims = StateClaims {
            user_id: user_id.to_string(),
            platform,
            nonce: B64.encode(nonce),
            expires_at: (now + STATE_TTL).timestamp(),
        };
        let body = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let sig = B64.encode(self.mac(&[b"state:", body.as_bytes()]).finalize().into_bytes());
        (format!("{body}.{sig}"), claims)
    }

    /// Verifies signature (constant time) and expiry.
    pub fn verify(&self, state: &str, now: DateTime<Utc>) -> Result<StateClaims, StateError> {
        let (body, sig) = state.split_once('.').ok_or(StateError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| StateError::Malformed)?;
        self.mac(&[b"state:", body.as_bytes()])
            .verify_slice(&sig)
            .map_err(|_| StateError::BadSignature)?;
        let claims: StateClaims = B64
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(StateError::Malformed)?;
        if now.timestamp() > claims.expires_at {
            return Err(StateError::Expired);
        }
        Ok(claims)
    }

    /// The PKCE verifier of an attempt (43 characters, RFC 7636's minimum, from 32 bytes).
    pub fn pkce_verifier(&self, nonce: &str) -> SecretString {
        let bytes = self.mac(&[b"pkce:", nonce.as_bytes()]).finalize().into_bytes();
        SecretString::from(B64.encode(bytes))
    }
}

/// `S256` challenge of a verifier.
pub fn pkce_challenge(verifier: &SecretString) -> String {
    B64.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::derive(&SecretString::from("0123456789abcdef0123456789abcdef".to_string()))
    }

    #[test]
    fn issued_states_verify_until_they_expire() {
        let now = Utc::now();
        let (state, claims) = key().issue("u1", Platform::X, now);
        assert_eq!(key().verify(&state, now), Ok(claims.clone()));
        assert_eq!(
            key().verify(&state, now + Duration::minutes(11)),
            Err(StateError::Expired)
        );
        assert_eq!(claims.platform, Platform::X);
    }

    #[test]
    fn tampering_is_detected() {
        let now = Utc::now();
        let (state, _) = key().issue("u1", Platform::X, now);
        let (body, sig) = state.split_once('.').expect("dot");
        let forged_claims = StateClaims {
            user_id: "attacker".into(),
            platform: Platform::X,
            nonce: "n".into(),
            expires_at: now.timestamp() + 600,
        };
        let forged = format!(
            "{}.{sig}",
            B64.encode(serde_json::to_vec(&forged_claims).expect("json"))
        );
        assert_eq!(key().verify(&forged, now), Err(StateError::BadSignature));
        let mut flipped = body.to_string().into_bytes();
        flipped[3] ^= 1;
        let flipped = format!("{}.{sig}", String::from_utf8_lossy(&flipped));
        assert!(key().verify(&flipped, now).is_err());
        assert_eq!(key().verify("garbage", now), Err(StateError::Malformed));
        let other = StateKey::derive(&SecretString::from("another-secret-another-secret-00".to_string()));
        assert_eq!(other.verify(&state, now), Err(StateError::BadSignature));
    }

    #[test]
    fn pkce_verifier_is_deterministic_per_nonce_and_challenge_is_s256() {
        let k = key();
        let v = k.pkce_verifier("nonce-1");
        assert_eq!(v.expose_secret(), k.pkce_verifier("nonce-1").expose_secret());
        assert_ne!(v.expose_secret(), k.pkce_verifier("nonce-2").expose_secret());
        assert_eq!(v.expose_secret().len(), 43);
        // RFC 7636 appendix B test vector.
        let rfc = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_string());
        assert_eq!(pkce_challenge(&rfc), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
