//! Bearer JWTs, Supabase-compatible: HS256, `sub` = user id, `aud` = `authenticated`, `exp`
//! required (30 s leeway), optional `email`.
//!
//! Only HS256 is accepted: the algorithm list is fixed server-side, so `alg: none` or an RS256
//! token signed with the HMAC secret as a "public key" can never pass.

use std::fmt;

use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::ids::UserId;

/// Leeway for `exp`/`nbf`, tolerating clock skew between the issuer and us.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    /// The `email` claim, when the token has one.
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token algorithm is not accepted")]
    WrongAlgorithm,
    #[error("token subject is not a valid user id")]
    BadSubject,
    #[error("token is invalid")]
    Invalid,
}

/// Verifies and mints tokens with the configured HS256 secret.
#[derive(Clone)]
pub struct JwtKeys {
    decoding: DecodingKey,
    secret: SecretString,
    audience: String,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("secret", &"[redacted]")
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtKeys {
    pub fn new(secret: SecretString, audience: impl Into<String>) -> Self {
        JwtKeys {
            decoding: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            secret,
            audience: audience.into(),
        }
    }

    /// The HS256 secret, for deriving other keys (OAuth state) from it.
    pub fn secret(&self) -> SecretString {
        self.secret.clone()
    }

    /// Checks a compact JWS and returns the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => AuthError::BadSignature,
                K::ExpiredSignature => AuthError::Expired,
                K::InvalidAudience => AuthError::WrongAudience,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::WrongAlgorithm,
                K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => AuthError::Malformed,
                _ => AuthError::Invalid,
            }
        })?;
        let user_id = UserId::parse(&data.claims.sub).map_err(|_| AuthError::BadSubject)?;
        let email = data.claims.email.filter(|e| e.contains('@'));
        Ok(Caller { user_id, email })
    }

    /// Mints a development token (what `nikara token` prints).
    pub fn mint(&self, user: &UserId, email: Option<&str>, ttl: std::time::Duration) -> Result<String, AuthError> {
        let now = Utc::now();
        let ttl = Duration::from_std(ttl).map_err(|_| AuthError::Invalid)?;
        let claims = Claims {
            sub: user.as_str().to_string(),
            aud: self.audience.clone(),
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
            email: email.map(str::to_string),
            role: Some("authenticated".into()),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose_secret().as_bytes()),
        )
        .map_err(|_| AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            SecretString::from("0123456789abcdef0123456789abcdef".to_string()),
            "authenticated",
        )
    }

    fn sign(claims: &serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    #[test]
    fn minted_tokens_verify() {
        let k = keys();
        let user = UserId::parse("usr_alice").expect("id");
        let t = k
            .mint(&user, Some("a@example.com"), std::time::Duration::from_secs(60))
            .expect("mint");
        let caller = k.verify(&t).expect("verify");
        assert_eq!(caller.user_id, user);
        assert_eq!(caller.email.as_deref(), Some("a@example.com"));
    }

    #[test]
    fn every_bad_token_is_rejected_with_its_reason() {
        let k = keys();
        let secret = "0123456789abcdef0123456789abcdef";
        let exp = Utc::now().timestamp() + 600;
        let ok = serde_json::json!({"sub": "u1", "aud": "authenticated", "exp": exp});
        assert!(k.verify(&sign(&ok, secret)).is_ok());
        assert_eq!(
            k.verify(&sign(&ok, "another-secret-another-secret!!")).err(),
            Some(AuthError::BadSignature)
        );
        let expired = serde_json::json!({"sub": "u1", "aud": "authenticated", "exp": Utc::now().timestamp() - 120});
        assert_eq!(k.verify(&sign(&expired, secret)).err(), Some(AuthError::Expired));
        let within_leeway =
            serde_json::json!({"sub": "u1", "aud": "authenticated", "exp": Utc::now().timestamp() - 10});
        assert!(k.verify(&sign(&within_leeway, secret)).is_ok());
        let aud = serde_json::json!({"sub": "u1", "aud": "anon", "exp": exp});
        assert_eq!(k.verify(&sign(&aud, secret)).err(), Some(AuthError::WrongAudience));
        let no_exp = serde_json::json!({"sub": "u1", "aud": "authenticated"});
        assert!(k.verify(&sign(&no_exp, secret)).is_err());
        assert_eq!(k.verify("not.a.jwt").err(), Some(AuthError::Malformed));
        // alg: none, unsigned.
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(serde_json::to_vec(&ok).expect("json"))
        );
        assert!(matches!(
            k.verify(&none),
            Err(AuthError::Malformed | AuthError::WrongAlgorithm)
        ));
        let bad_sub = serde_json::json!({"sub": "", "aud": "authenticated", "exp": exp});
        assert_eq!(k.verify(&sign(&bad_sub, secret)).err(), Some(AuthError::BadSubject));
    }
}
