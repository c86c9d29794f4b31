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
    /// A refresher claimed the account's refresh (appended at the revision it read, so only one
    /// refresher calls the platform). `interrupted` says an earlier claim never recorded an outcome:
    /// a rotating platform may already have consumed the stored refresh token.
    TokenRefreshStarted {
        attempt: Uuid,
        started_at: DateTime<Utc>,
        #[serde(default)]
        interrupted: bool,
    },
    /// New tokens from the platform (refresh grant, or Meta's long-lived re-exchange).
    TokenRefreshed {
        attempt: Uuid,
        tokens: StoredTokens,
    },
    /// A refresh failed for a passing reason (network, 5xx, 429); the account stays active.
    TokenRefreshFailed {
        attempt: Uuid,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<DateTime<Utc>>,
    },
    /// The platform says access was revoked. `incident` keys the one notification mail.
    AccountRevoked {
        incident: Uuid,
        message: String,
    },
    /// The platform needs the user again (expired, invalid, password changed…).
    AccountNeedsReauth {
        incident: Uuid,
        message: String,
    },
    /// Engagement metrics of the account's posts were synced.
    AccountSynced {
        at: DateTime<Utc>,
    },
    /// The token expires soon and nothing can renew it (LinkedIn without a refresh token).
    AccountExpiring {
        incident: Uuid,
        expires_at: DateTime<Utc>,
        message: String,
    },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &[
        "AccountConnected",
        "AccountReconnected",
        "AccountDisconnected",
        "TokensReencrypted",
        "TokenRefreshStarted",
        "TokenRefreshed",
        "TokenRefreshFailed",
        "AccountRevoked",
        "AccountNeedsReauth",
        "AccountExpiring",
        "AccountSynced",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountConnected { .. } => "AccountConnected",
            AccountEvent::AccountReconnected { .. } => "AccountReconnected",
            AccountEvent::AccountDisconnected { .. } => "AccountDisconnected",
            AccountEvent::TokensReencrypted { .. } => "TokensReencrypted",
            AccountEvent::TokenRefreshStarted { .. } => "TokenRefreshStarted",
            AccountEvent::TokenRefreshed { .. } => "TokenRefreshed",
            AccountEvent::TokenRefreshFailed { .. } => "TokenRefreshFailed",
            AccountEvent::AccountRevoked { .. } => "AccountRevoked",
            AccountEvent::AccountNeedsReauth { .. } => "AccountNeedsReauth",
            AccountEvent::AccountExpiring { .. } => "AccountExpiring",
            AccountEvent::AccountSynced { .. } => "AccountSynced",
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
    /// Claim the refresh of this account.
    StartRefresh {
        attempt: Uuid,
    },
    /// Record the refresh's new tokens.
    CompleteRefresh {
        attempt: Uuid,
        tokens: StoredTokens,
    },
    /// Record a failed refresh (or a revocation learnt elsewhere, with `attempt: None`).
    FailRefresh {
        attempt: Option<Uuid>,
        failure: RefreshFailure,
    },
    /// Record a metrics sync.
    RecordSync {
        at: DateTime<Utc>,
    },
    /// Warn that the token expires soon and cannot be renewed.
    MarkExpiring {
        expires_at: DateTime<Utc>,
    },
    /// Replace ciphertexts of the *current* tokens (same plaintexts, new key).
    Reencrypt {
        /// Ciphertexts the rotation read; if tokens changed since, the rotation re-reads.
        expected_access: String,
        tokens: StoredTokens,
    },
}

/// Why a refresh failed, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    Transient {
        message: String,
        retry_at: Option<DateTime<Utc>>,
    },
    Revoked {
        message: String,
    },
    NeedsReauth {
        message: String,
    },
}

/// How long a refresh claim is honoured before it counts as interrupted.
pub const REFRESH_CLAIM_TTL: chrono::Duration = chrono::Duration::minutes(2);

/// Connection health as the aggregate knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Active,
    NeedsReauth,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("account not found")]
    NotFound,
    #[error("the account belongs to another user")]
    OtherUser,
    #[error("the tokens changed since they were read")]
    TokensChanged,
    #[error("another refresh of this account is in progress")]
    RefreshInProgress,
    #[error("this refresh attempt is no longer the current one")]
    StaleAttempt,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub user_id: Option<String>,
    pub platform: Option<Platform>,
    pub profile: Option<AccountProfile>,
    pub tokens: Option<StoredTokens>,
    pub connected: bool,
    pub ever_connected: bool,
    pub health: Health,
    /// The platform's message behind `health`, when not active.
    pub health_message: Option<String>,
    /// Connections so far (connect + reconnects): incidents are per generation, so a reconnection
    /// opens a new one and an old incident never mails twice.
    pub generation: u32,
    /// Current refresh claim and when it was made.
    pub refresh_in_flight: Option<(Uuid, DateTime<Utc>)>,
    /// Expiry already warned about.
    pub expiring_warned: Option<DateTime<Utc>>,
    /// When the claim of the last successful refresh was made.
    pub last_refresh_started: Option<DateTime<Utc>>,
}

/// Namespace of incident ids (UUIDv5).
const INCIDENT_NAMESPACE: Uuid = Uuid::from_u128(0x6e696b61_7261_4963_8000_696e63696465);

impl Account {
    /// The incident id of `kind` in the current generation (and at `expires_at` for expiry).
    pub fn incident(&self, account: &str, kind: &str, expires_at: Option<DateTime<Utc>>) -> Uuid {
        let key = format!(
            "{account}/{}/{kind}/{}",
            self.generation,
            expires_at.map(|t| t.timestamp()).unwrap_or_default()
        );
        Uuid::new_v5(&INCIDENT_NAMESPACE, key.as_bytes())
    }

    /// What identifies this account in incident ids (the same inputs as its id).
    fn incident_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.user_id.as_deref().unwrap_or_default(),
            self.platform.map(Platform::as_str).unwrap_or_default(),
            self.profile
                .as_ref()
                .map(|p| p.external_id.as_str())
                .unwrap_or_default()
        )
    }
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
                self.generation += 1;
                self.health = Health::Active;
                self.health_message = None;
                self.refresh_in_flight = None;
                self.expiring_warned = None;
            }
            AccountEvent::AccountReconnected { profile, tokens } => {
                self.profile = Some(profile.clone());
                self.tokens = Some(tokens.clone());
                self.connected = true;
                self.generation += 1;
                self.health = Health::Active;
                self.health_message = None;
                self.refresh_in_flight = None;
                self.expiring_warned = None;
            }
            AccountEvent::AccountDisconnected { .. } => self.connected = false,
            AccountEvent::TokensReencrypted { tokens } => self.tokens = Some(tokens.clone()),
            AccountEvent::TokenRefreshStarted {
                attempt, started_at, ..
            } => {
                self.refresh_in_flight = Some((*attempt, *started_at));
            }
            AccountEvent::TokenRefreshed { tokens, .. } => {
                self.tokens = Some(tokens.clone());
                self.last_refresh_started = self.refresh_in_flight.map(|(_, at)| at);
                self.refresh_in_flight = None;
                self.health = Health::Active;
                self.health_message = None;
            }
            AccountEvent::TokenRefreshFailed { .. } => self.refresh_in_flight = None,
            AccountEvent::AccountRevoked { message, .. } => {
                self.refresh_in_flight = None;
                self.health = Health::Revoked;
                self.health_message = Some(message.clone());
            }
            AccountEvent::AccountNeedsReauth { message, .. } => {
                self.refresh_in_flight = None;
                if self.health != Health::Revoked {
                    self.health = Health::NeedsReauth;
                }
                self.health_message = Some(message.clone());
            }
            AccountEvent::AccountExpiring { expires_at, .. } => self.expiring_warned = Some(*expires_at),
            AccountEvent::AccountSynced { .. } => {}
        }
    }

    fn decide(&self, command: &AccountCommand, now: DateTime<Utc>) -> Result<Vec<AccountEvent>, AccountError> {
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
            AccountCommand::StartRefresh { attempt } => {
                if !self.connected {
                    return Err(AccountError::NotFound);
                }
                let interrupted = match self.refresh_in_flight {
                    Some((_, since)) if now - since < REFRESH_CLAIM_TTL => return Err(AccountError::RefreshInProgress),
                    Some(_) => true,
                    None => false,
                };
                Ok(vec![AccountEvent::TokenRefreshStarted {
                    attempt: *attempt,
                    started_at: now,
                    interrupted,
                }])
            }
            AccountCommand::CompleteRefresh { attempt, tokens } => {
                if self.refresh_in_flight.map(|(a, _)| a) != Some(*attempt) {
                    return Err(AccountError::StaleAttempt);
                }
                Ok(vec![AccountEvent::TokenRefreshed {
                    attempt: *attempt,
                    tokens: tokens.clone(),
                }])
            }
            AccountCommand::FailRefresh { attempt, failure } => {
                if let Some(a) = attempt
                    && self.refresh_in_flight.map(|(x, _)| x) != Some(*a)
                {
                    return Err(AccountError::StaleAttempt);
                }
                if !self.connected {
                    return Err(AccountError::NotFound);
                }
                let key = self.incident_key();
                let clear = || AccountEvent::TokenRefreshFailed {
                    attempt: attempt.unwrap_or_default(),
                    message: String::new(),
                    retry_at: None,
                };
                Ok(match failure {
                    RefreshFailure::Transient { message, retry_at } => vec![AccountEvent::TokenRefreshFailed {
                        attempt: attempt.unwrap_or_default(),
                        message: message.clone(),
                        retry_at: *retry_at,
                    }],
                    // Already revoked: this is the same incident; only release the claim.
                    RefreshFailure::Revoked { .. } | RefreshFailure::NeedsReauth { .. }
                        if self.health == Health::Revoked =>
                    {
                        attempt.map(|_| vec![clear()]).unwrap_or_default()
                    }
                    RefreshFailure::NeedsReauth { .. } if self.health == Health::NeedsReauth => {
                        attempt.map(|_| vec![clear()]).unwrap_or_default()
                    }
                    RefreshFailure::Revoked { message } => vec![AccountEvent::AccountRevoked {
                        incident: self.incident(&key, "revoked", None),
                        message: message.clone(),
                    }],
                    RefreshFailure::NeedsReauth { message } => vec![AccountEvent::AccountNeedsReauth {
                        incident: self.incident(&key, "needs_reauth", None),
                        message: message.clone(),
                    }],
                })
            }
            AccountCommand::RecordSync { at } => {
                if !self.connected {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::AccountSynced { at: *at }])
            }
            AccountCommand::MarkExpiring { expires_at } => {
                if !self.connected || self.health != Health::Active || self.expiring_warned == Some(*expires_at) {
                    return Ok(vec![]);
                }
                let key = self.incident_key();
                Ok(vec![AccountEvent::AccountExpiring {
                    incident: self.incident(&key, "expiring", Some(*expires_at)),
                    expires_at: *expires_at,
                    message: format!(
                        "the access token expires on {} and the platform gave no way to renew it",
                        expires_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                }])
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
