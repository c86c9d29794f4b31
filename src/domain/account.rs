//! The account aggregate (`account-{id}`): one connected social account of one user, its profile
//! and its encrypted tokens.
//!
//! The id is derived from (user, platform, external id), so connecting the same external account
//! again lands on the same stream: a reconnection, never a duplicate, even when two callbacks race.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ids::{AccountId, UserId};
use super::platform::Platform;
use super::{Aggregate, DomainEvent};

/// Namespace of account ids (UUIDv5).
const ACCOUNT_NAMESPACE: Uuid = Uuid::from_u128(0x6e696b61_7261_4163_8000_6163636f756e);

impl AccountId {
    /// The account id of `external_id` on `platform` connected by `user`.
    pub fn derive(user: &UserId, platform: Platform, external_id: &str) -> AccountId {
        let key = format!("{}\u{0}{}\u{0}{}", user.as_str(), platform.as_str(), external_id);
        AccountId::from_uuid(Uuid::new_v5(&ACCOUNT_NAMESPACE, key.as_bytes()))
    }
}

/// Tokens as stored: ciphertexts (`v1.{kid}.…`, associated data = account id + kind) and lifetimes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTokens {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What the platform says about the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountProfile {
    pub external_id: String,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    AccountConnected {
        user_id: String,
        platform: Platform,
        profile: AccountProfile,
        tokens: StoredTokens,
    },
    /// The same user connected the same external account again: profile and tokens replaced (a
    /// refresh token missing from the new grant keeps the stored one).
    AccountReconnected {
        profile: AccountProfile,
        tokens: StoredTokens,
    },
    AccountDisconnected {
        reason: String,
    },
    /// `nikara keys rotate`: the same tokens under the primary key.
    TokensReencrypted {
        tokens: StoredTokens,
    },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &[
        "AccountConnected",
        "AccountReconnected",
        "AccountDisconnected",
        "TokensReencrypted",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountConnected { .. } => "AccountConnected",
            AccountEvent::AccountReconnected { .. } => "AccountReconnected",
            AccountEvent::AccountDisconnected { .. } => "AccountDisconnected",
            AccountEvent::TokensReencrypted { .. } => "TokensReencrypted",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Connect {
        user_id: UserId,
        platform: Platform,
        profile: AccountProfile,
        tokens: StoredTokens,
    },
    Disconnect {
        reason: String,
    },
    /// Replace ciphertexts of the *current* tokens (same plaintexts, new key).
    Reencrypt {
        /// Ciphertexts the rotation read; if tokens changed since, the rotation re-reads.
        expected_access: String,
        tokens: StoredTokens,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account not found")]
    NotFound,
    #[error("the account belongs to another user")]
    OtherUser,
    #[error("the tokens changed since they were read")]
    TokensChanged,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub user_id: Option<String>,
    pub platform: Option<Platform>,
    pub profile: Option<AccountProfile>,
    pub tokens: Option<StoredTokens>,
    pub connected: bool,
    pub ever_connected: bool,
}

impl Aggregate for Account {
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountConnected {
                user_id,
                platform,
                profile,
                tokens,
            } => {
                self.user_id = Some(user_id.clone());
                self.platform = Some(*platform);
                self.profile = Some(profile.clone());
                self.tokens = Some(tokens.clone());
                self.connected = true;
                self.ever_connected = true;
            }
            AccountEvent::AccountReconnected { profile, tokens } => {
                self.profile = Some(profile.clone());
                self.tokens = Some(tokens.clone());
                self.connected = true;
            }
            AccountEvent::AccountDisconnected { .. } => self.connected = false,
            AccountEvent::TokensReencrypted { tokens } => self.tokens = Some(tokens.clone()),
        }
    }

    fn decide(&self, command: &AccountCommand, _now: DateTime<Utc>) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Connect {
                user_id,
                platform,
                profile,
                tokens,
            } => {
                if !self.ever_connected {
                    return Ok(vec![AccountEvent::AccountConnected {
                        user_id: user_id.as_str().to_string(),
                        platform: *platform,
                        profile: profile.clone(),
                        tokens: tokens.clone(),
                    }]);
                }
                if self.user_id.as_deref() != Some(user_id.as_str()) {
                    return Err(AccountError::OtherUser);
                }
                let mut tokens = tokens.clone();
                if tokens.refresh_token.is_none()
                    && let Some(old) = &self.tokens
                {
                    tokens.refresh_token = old.refresh_token.clone();
                    tokens.refresh_expires_at = old.refresh_expires_at;
                }
                Ok(vec![AccountEvent::AccountReconnected {
                    profile: profile.clone(),
                    tokens,
                }])
            }
            AccountCommand::Disconnect { reason } => {
                if !self.connected {
                    return Err(AccountError::NotFound);
                }
                Ok(vec![AccountEvent::AccountDisconnected { reason: reason.clone() }])
            }
            AccountCommand::Reencrypt {
                expected_access,
                tokens,
            } => {
                let current = self.tokens.as_ref().ok_or(AccountError::NotFound)?;
                if &current.access_token != expected_access {
                    return Err(AccountError::TokensChanged);
                }
                Ok(vec![AccountEvent::TokensReencrypted { tokens: tokens.clone() }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn user() -> UserId {
        UserId::parse("u1").expect("id")
    }

    fn profile(name: &str) -> AccountProfile {
        AccountProfile {
            external_id: "ext-1".into(),
            display_name: Some(name.into()),
            username: None,
            avatar_url: None,
            metadata: Value::Null,
        }
    }

    fn tokens(access: &str, refresh: Option<&str>) -> StoredTokens {
        StoredTokens {
            access_token: access.into(),
            refresh_token: refresh.map(str::to_string),
            expires_at: None,
            refresh_expires_at: None,
            scopes: vec![],
        }
    }

    fn connected() -> AccountEvent {
        AccountEvent::AccountConnected {
            user_id: "u1".into(),
            platform: Platform::X,
            profile: profile("first"),
            tokens: tokens("a1", Some("r1")),
        }
    }

    fn connect(access: &str, refresh: Option<&str>) -> AccountCommand {
        AccountCommand::Connect {
            user_id: user(),
            platform: Platform::X,
            profile: profile("second"),
            tokens: tokens(access, refresh),
        }
    }

    #[test]
    fn first_connection_connects() {
        let out = given::<Account>(vec![]).when(connect("a1", Some("r1"))).expect("ok");
        assert!(matches!(out.as_slice(), [AccountEvent::AccountConnected { .. }]));
    }

    #[test]
    fn connecting_again_reconnects_and_keeps_a_refresh_token_the_new_grant_lacks() {
        let out = given::<Account>(vec![connected()])
            .when(connect("a2", None))
            .expect("ok");
        assert_eq!(
            out,
            vec![AccountEvent::AccountReconnected {
                profile: profile("second"),
                tokens: tokens("a2", Some("r1")),
            }]
        );
        let out = given::<Account>(vec![connected()])
            .when(connect("a2", Some("r2")))
            .expect("ok");
        assert!(
            matches!(&out[0], AccountEvent::AccountReconnected { tokens, .. } if tokens.refresh_token.as_deref() == Some("r2"))
        );
    }

    #[test]
    fn reconnecting_after_a_disconnect_revives_the_account() {
        let history = vec![connected(), AccountEvent::AccountDisconnected { reason: "user".into() }];
        let out = given::<Account>(history.clone()).when(connect("a3", None)).expect("ok");
        let mut all = history;
        all.extend(out);
        assert!(Account::fold(all.iter()).connected);
    }

    #[test]
    fn disconnect_only_a_connected_account() {
        assert_eq!(
            given::<Account>(vec![])
                .when(AccountCommand::Disconnect { reason: "x".into() })
                .err(),
            Some(AccountError::NotFound)
        );
        let gone = vec![connected(), AccountEvent::AccountDisconnected { reason: "user".into() }];
        assert_eq!(
            given::<Account>(gone)
                .when(AccountCommand::Disconnect { reason: "x".into() })
                .err(),
            Some(AccountError::NotFound)
        );
    }

    #[test]
    fn reencryption_refuses_when_tokens_moved_on() {
        let cmd = AccountCommand::Reencrypt {
            expected_access: "old".into(),
            tokens: tokens("new", None),
        };
        assert_eq!(
            given::<Account>(vec![connected()]).when(cmd).err(),
            Some(AccountError::TokensChanged)
        );
        let ok = AccountCommand::Reencrypt {
            expected_access: "a1".into(),
            tokens: tokens("a1-rotated", Some("r1-rotated")),
        };
        assert!(given::<Account>(vec![connected()]).when(ok).is_ok());
    }

    #[test]
    fn ids_are_stable_per_user_platform_and_external_id() {
        let a = AccountId::derive(&user(), Platform::X, "42");
        assert_eq!(a, AccountId::derive(&user(), Platform::X, "42"));
        assert_ne!(a, AccountId::derive(&user(), Platform::Reddit, "42"));
        assert_ne!(
            a,
            AccountId::derive(&UserId::parse("u2").expect("id"), Platform::X, "42")
        );
        assert!(AccountId::parse(a.as_str()).is_ok());
    }
}
