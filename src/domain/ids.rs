//! Identifiers. Each is a newtype with a private field and a fallible constructor; the ones nikara
//! mints carry a prefix (`acc_`, `post_`) so logs are greppable and swapping two ids is a type error.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id `{value}`: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// A user: the JWT `sub`, verbatim (Supabase uses UUIDs; `nikara token` accepts any), so ids agree
/// with the identity provider. 1–128 printable ASCII characters without spaces or `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<UserId, IdError> {
        let err = |reason| IdError {
            kind: "user",
            value: s.chars().take(64).collect(),
            reason,
        };
        if s.is_empty() || s.len() > 128 {
            return Err(err("must be 1-128 characters"));
        }
        if !s.chars().all(|c| c.is_ascii_graphic() && c != '/') {
            return Err(err("must be printable ASCII without spaces or '/'"));
        }
        Ok(UserId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user's event stream.
    pub fn stream(&self) -> String {
        format!("user-{}", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UserId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Defines a prefixed id minted by nikara: `{prefix}_{uuid v7 as 32 hex digits}`. v7 sorts by
/// creation time, which keeps index inserts local and makes ids roughly chronological.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $stream:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id.
            pub fn new() -> Self {
                $name(format!(concat!($prefix, "_{}"), uuid::Uuid::now_v7().simple()))
            }

            /// The id of a given UUID (deterministic ids: UUIDv5 of a natural key).
            pub fn from_uuid(u: uuid::Uuid) -> Self {
                $name(format!(concat!($prefix, "_{}"), u.simple()))
            }

            /// Parses `{prefix}_{32 hex}`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let err = |reason| IdError { kind: $prefix, value: s.chars().take(64).collect(), reason };
                let rest = s
                    .strip_prefix(concat!($prefix, "_"))
                    .ok_or_else(|| err(concat!("must start with `", $prefix, "_`")))?;
                if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(err("must end with 32 lower-case hex digits"));
                }
                Ok($name(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The aggregate's event stream.
            pub fn stream(&self) -> String {
                format!(concat!($stream, "-{}"), self.0)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A connected social account (one Facebook Page, one X user, …).
    AccountId, "acc", "account"
);
prefixed_id!(
    /// A scheduled post (one per account).
    PostId, "post", "post"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_round_trip_and_carry_their_prefix() {
        let a = AccountId::new();
        assert!(a.as_str().starts_with("acc_"));
        assert_eq!(AccountId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.stream(), format!("account-{a}"));
        let p = PostId::new();
        assert!(PostId::parse(a.as_str()).is_err(), "an account id is not a post id");
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(serde_json::from_str::<PostId>(&json).expect("parse"), p);
        assert!(serde_json::from_str::<PostId>("\"post_nothex\"").is_err());
    }

    #[test]
    fn user_ids_accept_provider_subjects() {
        assert!(UserId::parse("3fa85f64-5717-4562-b3fc-2c963f66afa6").is_ok());
        assert!(UserId::parse("usr_alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a/b").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
    }
}
