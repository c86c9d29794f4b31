//! Keeping tokens alive: refresh grants, Meta's long-lived re-exchange, and what happens when the
//! platform says no.
//!
//! Two refreshers must never both spend a rotating refresh token (X, TikTok): inside one process a
//! per-account lock makes concurrent needs share one platform call (single flight); across
//! processes the refresher first appends `TokenRefreshStarted` at the revision it read, so exactly
//! one claim wins and the others wait for its outcome and use the winner's token. A claim that never
//! records an outcome (crash between the platform's answer and the append) is detected after
//! [`REFRESH_CLAIM_TTL`]: the next refresh is marked `interrupted`, and if the platform then refuses
//! the stored refresh token, the account turns `needs_reauth` with a message saying exactly that.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::app::{App, AppError};
use crate::domain::account::{
    Account, AccountCommand, AccountError, Health, REFRESH_CLAIM_TTL, RefreshFailure, StoredTokens,
};
use crate::domain::platform::Platform;
use crate::oauth::token::{self, Grant};
use crate::platforms::PlatformError;
use crate::store::Metadata;

/// Meta tokens are re-exchanged this long before the long-lived user token expires: an expired one
/// cannot be exchanged any more.
pub const META_RENEWAL_WINDOW: Duration = Duration::days(7);

/// In-call retries of a transient platform failure before giving up until the next sweep.
const TRANSIENT_RETRIES: u32 = 2;

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New tokens were stored.
    Refreshed,
    /// Nothing to do: the token is valid beyond the margin (possibly thanks to another refresher).
    Fresh,
    /// The token cannot be renewed and expires soon; the user was warned (once).
    Expiring,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("account not found")]
    NotFound,
    #[error("{0} is not configured on this hub")]
    NotConfigured(Platform),
    /// The platform gave no way to renew this token (LinkedIn without a refresh token).
    #[error("{0}")]
    CannotRefresh(String),
    #[error("{0}")]
    Revoked(String),
    #[error("{0}")]
    NeedsReauth(String),
    /// Network, 5xx, 429, or another refresh still running: try again later.
    #[error("{0}")]
    Transient(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AppError> for RefreshError {
    fn from(e: AppError) -> Self {
        RefreshError::Internal(e.to_string())
    }
}

/// When to refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only when the token expires within the margin (or, for Meta, the user token within 7 days).
    IfDue(Duration),
    /// Now (manual refresh, interrupted claims).
    Force,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    NotNeeded,
    RefreshGrant,
    MetaExchange,
    /// Nothing can renew the token; `expired` says whether it already has.
    CannotRefresh {
        expires_at: Option<DateTime<Utc>>,
        expired: bool,
    },
}

fn plan(platform: Platform, t: &StoredTokens, now: DateTime<Utc>, mode: Mode) -> Plan {
    let due = |at: Option<DateTime<Utc>>, margin: Duration| at.is_some_and(|at| at <= now + margin);
    let force = mode == Mode::Force;
    let margin = match mode {
        Mode::IfDue(m) => m,
        Mode::Force => Duration::zero(),
    };
    if platform.is_meta() {
        // The refresh slot holds the long-lived user token; its expiry is `refresh_expires_at`.
        if t.refresh_token.is_none() {
            return Plan::CannotRefresh {
                expires_at: t.expires_at,
                expired: due(t.expires_at, Duration::zero()),
            };
        }
        if due(t.refresh_expires_at, Duration::zero()) {
            return Plan::CannotRefresh {
                expires_at: t.refresh_expires_at,
                expired: true,
            };
        }
        if force || due(t.expires_at, margin) || due(t.refresh_expires_at, META_RENEWAL_WINDOW) {
            return Plan::MetaExchange;
        }
        return Plan::NotNeeded;
    }
    if t.refresh_token.is_some() {
        if due(t.refresh_expires_at, Duration::zero()) {
            return Plan::CannotRefresh {
                expires_at: t.refresh_expires_at,
                expired: true,
            };
        }
        if force || due(t.expires_at, margin) {
            return Plan::RefreshGrant;
        }
        return Plan::NotNeeded;
    }
    match t.expires_at {
        None => Plan::NotNeeded,
        Some(at) if at <= now => Plan::CannotRefresh {
            expires_at: Some(at),
            expired: true,
        },
        Some(at) if force || at - now <= crate::projections::accounts::EXPIRING_WINDOW => Plan::CannotRefresh {
            expires_at: Some(at),
            expired: false,
        },
        Some(_) => Plan::NotNeeded,
    }
}

/// How a failed refresh is recorded: transient failures keep the account active.
pub fn classify(platform: Platform, e: &PlatformError) -> RefreshFailure {
    let retry_at = match e {
        PlatformError::RateLimited {
            retry_after_s: Some(s), ..
        } => Some(Utc::now() + Duration::seconds(*s as i64)),
        _ => None,
    };
    // An unexpected shape is not proof of revocation: one blip never revokes an account.
    if e.is_transient() || matches!(e, PlatformError::Invalid { .. }) {
        return RefreshFailure::Transient {
            message: e.to_string(),
            retry_at,
        };
    }
    let (code, message) = match e {
        PlatformError::Unauthorized { code, message, .. } | PlatformError::Api { code, message, .. } => {
            (code.clone().unwrap_or_default(), message.clone())
        }
        other => (String::new(), other.to_string()),
    };
    let said = format!("{} said: {message}", platform.display_name());
    let revoked = message.to_ascii_lowercase().contains("revoked")
        || code == "65601"
        || code.eq_ignore_ascii_case("REVOKED_ACCESS_TOKEN");
    if revoked {
        RefreshFailure::Revoked { message: said }
    } else {
        RefreshFailure::NeedsReauth { message: said }
    }
}

fn meta(state: &Account) -> Metadata {
    Metadata {
        user_id: state.user_id.clone(),
        ..Metadata::now()
    }
}

fn decrypt(app: &App, account_id: &str, ciphertext: &str, kind: &str) -> Result<SecretString, RefreshError> {
    let plain = app
        .cipher
        .decrypt(ciphertext, format!("{account_id}/{kind}").as_bytes())
        .map_err(|e| RefreshError::Internal(format!("cannot decrypt the {kind} token: {e}")))?;
    String::from_utf8(plain)
        .map(SecretString::from)
        .map_err(|_| RefreshError::Internal(format!("the {kind} token is not UTF-8")))
}

fn encrypt(app: &App, account_id: &str, plain: &SecretString, kind: &str) -> Result<String, RefreshError> {
    app.cipher
        .encrypt(
            plain.expose_secret().as_bytes(),
            format!("{account_id}/{kind}").as_bytes(),
        )
        .map_err(|e| RefreshError::Internal(e.to_string()))
}

/// The stored tokens after a successful grant. A refresh token missing from the response keeps the
/// stored one (Google usually sends none; never overwrite with nothing).
fn merge(
    app: &App,
    account_id: &str,
    old: &StoredTokens,
    grant: &Grant,
    meta_exchange: bool,
) -> Result<StoredTokens, RefreshError> {
    if meta_exchange {
        // The Page token (access slot) does not expire; the user token it derives from was renewed.
        return Ok(StoredTokens {
            refresh_token: Some(encrypt(app, account_id, &grant.access_token, "refresh")?),
            refresh_expires_at: grant.expires_at,
            ..old.clone()
        });
    }
    Ok(StoredTokens {
        access_token: encrypt(app, account_id, &grant.access_token, "access")?,
        refresh_token: match &grant.refresh_token {
            Some(r) => Some(encrypt(app, account_id, r, "refresh")?),
            None => old.refresh_token.clone(),
        },
        expires_at: grant.expires_at,
        refresh_expires_at: grant.refresh_expires_at.or(old.refresh_expires_at),
        scopes: if grant.scopes.is_empty() {
            old.scopes.clone()
        } else {
            grant.scopes.clone()
        },
    })
}

async fn record(app: &App, stream: &str, state: &Account, cmd: AccountCommand) -> Result<(), RefreshError> {
    match app.execute::<Account>(stream, &cmd, meta(state)).await {
        Ok(done) => {
            app.settle(done.position).await;
            Ok(())
        }
        Err(AppError::Rejected(r)) if r.downcast_ref::<AccountError>() == Some(&AccountError::StaleAttempt) => Err(
            RefreshError::Transient("the refresh claim was taken over by another refresher".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// Refreshes the account's tokens when `mode` says so. See the module docs for the guarantees.
#[tracing::instrument(skip_all, fields(account = %account_id))]
pub async fn refresh(app: &App, account_id: &str, mode: Mode) -> Result<Outcome, RefreshError> {
    let asked_at = Utc::now();
    let lock = app.refresh_lock(account_id);
    let mut last_done = lock.lock().await;
    // A refresh that completed after this caller asked already answers it: concurrent needs in one
    // hub make one platform call.
    if last_done.is_some_and(|done| done >= asked_at) {
        return Ok(Outcome::Refreshed);
    }
    let stream = format!("account-{account_id}");
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let (state, _) = app.load::<Account>(&stream).await?;
        if !state.connected {
            return Err(RefreshError::NotFound);
        }
        let message = || state.health_message.clone().unwrap_or_default();
        match state.health {
            Health::Revoked => return Err(RefreshError::Revoked(message())),
            Health::NeedsReauth => return Err(RefreshError::NeedsReauth(message())),
            Health::Active => {}
        }
        let (Some(platform), Some(tokens)) = (state.platform, state.tokens.clone()) else {
            return Err(RefreshError::NotFound);
        };
        let provider = app
            .registry
            .get(platform)
            .ok_or(RefreshError::NotConfigured(platform))?;
        // Another hub's refresh that started after this caller asked answers it too.
        if state.last_refresh_started.is_some_and(|at| at >= asked_at) {
            return Ok(Outcome::Refreshed);
        }
        let now = Utc::now();
        let in_flight = state.refresh_in_flight;
        let stale_claim = in_flight.is_some_and(|(_, since)| now - since >= REFRESH_CLAIM_TTL);
        // A stale claim must be resolved even when the token is not due: its outcome is unknown.
        let effective = if stale_claim { Mode::Force } else { mode };
        let meta_exchange = match plan(platform, &tokens, now, effective) {
            Plan::NotNeeded => return Ok(Outcome::Fresh),
            Plan::RefreshGrant => false,
            Plan::MetaExchange => true,
            Plan::CannotRefresh {
                expires_at,
                expired: true,
            } => {
                let msg = format!(
                    "the {} token expired{} and cannot be renewed: reconnect the account",
                    platform.display_name(),
                    expires_at
                        .map(|t| format!(" on {}", t.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                );
                let cmd = AccountCommand::FailRefresh {
                    attempt: None,
                    failure: RefreshFailure::NeedsReauth { message: msg.clone() },
                };
                record(app, &stream, &state, cmd).await?;
                return Err(RefreshError::NeedsReauth(msg));
            }
            Plan::CannotRefresh {
                expires_at: Some(at),
                expired: false,
            } => {
                record(app, &stream, &state, AccountCommand::MarkExpiring { expires_at: at }).await?;
                if mode == Mode::Force {
                    return Err(RefreshError::CannotRefresh(format!(
                        "{} granted no refresh token; the token expires on {}: reconnect the account before then",
                        platform.display_name(),
                        at.format("%Y-%m-%d %H:%M UTC")
                    )));
                }
                return Ok(Outcome::Expiring);
            }
            Plan::CannotRefresh { expires_at: None, .. } => return Ok(Outcome::Fresh),
        };
        // Claim. Losing means another refresher is at work: wait for its outcome and re-read.
        let attempt = Uuid::new_v4();
        match app
            .execute::<Account>(&stream, &AccountCommand::StartRefresh { attempt }, meta(&state))
            .await
        {
            Ok(_) => {}
            Err(AppError::Rejected(r))
                if r.downcast_ref::<AccountError>() == Some(&AccountError::RefreshInProgress) =>
            {
                if std::time::Instant::now() > deadline {
                    return Err(RefreshError::Transient(
                        "another refresh of this account is still running; try again shortly".into(),
                    ));
                }
                tokio::time::sleep(StdDuration::from_millis(100)).await;
                if mode == Mode::Force {
                    // The other refresher's result is what a manual refresh wants.
                    let (after, _) = app.load::<Account>(&stream).await?;
                    if after.refresh_in_flight.is_none() {
                        return Ok(Outcome::Refreshed);
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let credential = match (&tokens.refresh_token, meta_exchange) {
            (Some(r), _) => decrypt(app, account_id, r, "refresh")?,
            (None, _) => return Err(RefreshError::Internal("no refresh credential".into())),
        };
        let mut tries = 0;
        let result = loop {
            let r = if meta_exchange {
                token::meta_exchange(provider, &app.http, &credential).await
            } else {
                token::refresh(provider, &app.http, &credential).await
            };
            match r {
                Err(e) if e.is_transient() && tries < TRANSIENT_RETRIES => {
                    tries += 1;
                    tracing::info!(%platform, error = %e, tries, "transient refresh failure; retrying");
                    tokio::time::sleep(StdDuration::from_millis(250 * 4u64.pow(tries - 1))).await;
                }
                other => break other,
            }
        };
        return match result {
            Ok(grant) => {
                let merged = merge(app, account_id, &tokens, &grant, meta_exchange)?;
                let cmd = AccountCommand::CompleteRefresh {
                    attempt,
                    tokens: merged,
                };
                record(app, &stream, &state, cmd).await?;
                *last_done = Some(Utc::now());
                tracing::info!(%platform, "token refreshed");
                Ok(Outcome::Refreshed)
            }
            Err(e) => {
                let mut failure = classify(platform, &e);
                if stale_claim
                    && let RefreshFailure::Revoked { message } | RefreshFailure::NeedsReauth { message } = &failure
                {
                    failure = RefreshFailure::NeedsReauth {
                        message: format!(
                            "an earlier token refresh was interrupted before its result was saved, and {} no \
                             longer accepts the stored refresh token (it may have been rotated by that refresh): \
                             reconnect the account. {message}",
                            platform.display_name()
                        ),
                    };
                }
                tracing::warn!(%platform, failure = ?failure, "token refresh failed");
                let err = match &failure {
                    RefreshFailure::Transient { message, .. } => RefreshError::Transient(message.clone()),
                    RefreshFailure::Revoked { message } => RefreshError::Revoked(message.clone()),
                    RefreshFailure::NeedsReauth { message } => RefreshError::NeedsReauth(message.clone()),
                };
                let cmd = AccountCommand::FailRefresh {
                    attempt: Some(attempt),
                    failure,
                };
                record(app, &stream, &state, cmd).await?;
                Err(err)
            }
        };
    }
}

/// A usable access token for publishing: refreshed first when it expires within `margin`.
pub async fn access_token(app: &App, account_id: &str, margin: Duration) -> Result<SecretString, RefreshError> {
    refresh(app, account_id, Mode::IfDue(margin)).await?;
    let (state, _) = app.load::<Account>(&format!("account-{account_id}")).await?;
    let tokens = state.tokens.ok_or(RefreshError::NotFound)?;
    decrypt(app, account_id, &tokens.access_token, "access")
}

/// A revocation learnt outside a refresh (X's `user_event.revoke` webhook).
pub async fn mark_revoked(app: &App, account_id: &str, message: &str) -> Result<(), RefreshError> {
    let stream = format!("account-{account_id}");
    let (state, _) = app.load::<Account>(&stream).await?;
    if !state.connected {
        return Err(RefreshError::NotFound);
    }
    let cmd = AccountCommand::FailRefresh {
        attempt: None,
        failure: RefreshFailure::Revoked {
            message: message.to_string(),
        },
    };
    record(app, &stream, &state, cmd).await
}

/// The platform refused the access token even after a refresh (publishing's auth path).
pub async fn mark_needs_reauth(app: &App, account_id: &str, message: &str) -> Result<(), RefreshError> {
    let stream = format!("account-{account_id}");
    let (state, _) = app.load::<Account>(&stream).await?;
    if !state.connected {
        return Err(RefreshError::NotFound);
    }
    let cmd = AccountCommand::FailRefresh {
        attempt: None,
        failure: RefreshFailure::NeedsReauth {
            message: message.to_string(),
        },
    };
    record(app, &stream, &state, cmd).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_in_h: Option<i64>, refresh: bool, refresh_expires_in_h: Option<i64>) -> StoredTokens {
        let now = Utc::now();
        StoredTokens {
            access_token: "a".into(),
            refresh_token: refresh.then(|| "r".into()),
            expires_at: expires_in_h.map(|h| now + Duration::hours(h)),
            refresh_expires_at: refresh_expires_in_h.map(|h| now + Duration::hours(h)),
            scopes: vec![],
        }
    }

    #[test]
    fn plans_follow_each_platforms_renewal_style() {
        let now = Utc::now();
        let margin = Mode::IfDue(Duration::minutes(5));
        // Refresh grant only inside the margin.
        assert_eq!(
            plan(Platform::X, &tokens(Some(2), true, None), now, margin),
            Plan::NotNeeded
        );
        let soon = StoredTokens {
            expires_at: Some(now + Duration::minutes(3)),
            ..tokens(None, true, None)
        };
        assert_eq!(plan(Platform::X, &soon, now, margin), Plan::RefreshGrant);
        assert_eq!(
            plan(Platform::X, &tokens(Some(2), true, None), now, Mode::Force),
            Plan::RefreshGrant
        );
        // A dead refresh token cannot refresh.
        assert!(matches!(
            plan(Platform::Tiktok, &tokens(Some(-1), true, Some(-1)), now, margin),
            Plan::CannotRefresh { expired: true, .. }
        ));
        // Meta: re-exchange 7 days before the user token expires, not at expiry.
        assert_eq!(
            plan(Platform::Facebook, &tokens(None, true, Some(24 * 30)), now, margin),
            Plan::NotNeeded
        );
        assert_eq!(
            plan(Platform::Instagram, &tokens(None, true, Some(24 * 6)), now, margin),
            Plan::MetaExchange
        );
        assert!(matches!(
            plan(Platform::Facebook, &tokens(None, true, Some(-1)), now, margin),
            Plan::CannotRefresh { expired: true, .. }
        ));
        // LinkedIn without a refresh token: expiring inside 7 days, needs the user once expired.
        assert_eq!(
            plan(Platform::Linkedin, &tokens(Some(24 * 30), false, None), now, margin),
            Plan::NotNeeded
        );
        assert!(matches!(
            plan(Platform::Linkedin, &tokens(Some(24 * 3), false, None), now, margin),
            Plan::CannotRefresh { expired: false, .. }
        ));
        assert!(matches!(
            plan(Platform::Linkedin, &tokens(Some(-1), false, None), now, margin),
            Plan::CannotRefresh { expired: true, .. }
        ));
    }

    #[test]
    fn blips_never_revoke() {
        let e = PlatformError::Api {
            platform: Platform::X,
            status: 503,
            code: None,
            message: "over capacity".into(),
        };
        assert!(matches!(classify(Platform::X, &e), RefreshFailure::Transient { .. }));
        let e = PlatformError::invalid(Platform::X, "html instead of json");
        assert!(matches!(classify(Platform::X, &e), RefreshFailure::Transient { .. }));
        let e = PlatformError::Unauthorized {
            platform: Platform::Youtube,
            status: 400,
            code: Some("invalid_grant".into()),
            message: "Token has been expired or revoked.".into(),
        };
        assert!(matches!(
            classify(Platform::Youtube, &e),
            RefreshFailure::Revoked { .. }
        ));
        let e = PlatformError::Api {
            platform: Platform::X,
            status: 400,
            code: Some("invalid_request".into()),
            message: "Value passed for the token was invalid.".into(),
        };
        assert!(matches!(classify(Platform::X, &e), RefreshFailure::NeedsReauth { .. }));
    }
}
