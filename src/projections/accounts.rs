//! Account health: one row per connected account, what `GET /api/accounts` serves.
//! See `projections/accounts/README.md` for the contract and the golden fixtures.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Projection, ProjectionError, time, ts};
use crate::crypto::TokenCipher;
use crate::domain::DomainEvent;
use crate::domain::account::{AccountEvent, StoredTokens};
use crate::domain::platform::Platform;
use crate::store::RecordedEvent;

#[derive(Debug, Clone, Copy)]
pub struct Accounts;

/// Window in which an account that cannot refresh itself shows as `expiring`.
pub const EXPIRING_WINDOW: Duration = Duration::days(7);

impl Projection for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn version(&self) -> u32 {
        2
    }

    fn event_types(&self) -> &'static [&'static str] {
        AccountEvent::TYPES
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS accounts (
             id                 TEXT PRIMARY KEY,
             user_id            TEXT NOT NULL,
             platform           TEXT NOT NULL,
             external_id        TEXT NOT NULL,
             display_name       TEXT,
             username           TEXT,
             avatar_url         TEXT,
             metadata           TEXT NOT NULL,
             status             TEXT NOT NULL,
             token_expires_at   TEXT,
             refresh_expires_at TEXT,
             has_refresh_token  INTEGER NOT NULL,
             access_kid         TEXT,
             refresh_kid        TEXT,
             last_synced_at     TEXT,
             last_error         TEXT,
             last_error_at      TEXT,
             connected_at       TEXT NOT NULL,
             disconnected_at    TEXT,
             refresh_started_at TEXT,
             last_refreshed_at  TEXT,
             position           INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS accounts_by_user ON accounts (user_id, id);"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["accounts"]
    }

    fn apply(&self, tx: &Transaction<'_>, ev: &RecordedEvent) -> Result<(), ProjectionError> {
        let Some(event) = AccountEvent::from_recorded(ev).map_err(|e| ProjectionError::Apply {
            projection: "accounts",
            position: ev.position.0,
            message: e.to_string(),
        })?
        else {
            return Ok(());
        };
        let id = ev.stream.strip_prefix("account-").unwrap_or(&ev.stream);
        let at = ts(ev.metadata.occurred_at);
        let pos = ev.position.0 as i64;
        // Every write is guarded by `position < ?`: re-applying an event is a no-op.
        match event {
            AccountEvent::AccountConnected {
                user_id,
                platform,
                profile,
                tokens,
            } => {
                let (ak, rk) = kids(&tokens);
                tx.prepare_cached(
                    "INSERT INTO accounts (id, user_id, platform, external_id, display_name, username, avatar_url,
                         metadata, status, token_expires_at, refresh_expires_at, has_refresh_token, access_kid,
                         refresh_kid, connected_at, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                     ON CONFLICT(id) DO NOTHING",
                )?
                .execute(params![
                    id,
                    user_id,
                    platform.as_str(),
                    profile.external_id,
                    profile.display_name,
                    profile.username,
                    profile.avatar_url,
                    profile.metadata.to_string(),
                    tokens.expires_at.map(ts),
                    tokens.refresh_expires_at.map(ts),
                    tokens.refresh_token.is_some(),
                    ak,
                    rk,
                    at,
                    pos,
                ])?;
            }
            AccountEvent::AccountReconnected { profile, tokens } => {
                let (ak, rk) = kids(&tokens);
                tx.prepare_cached(
                    "UPDATE accounts SET display_name = ?2, username = ?3, avatar_url = ?4, metadata = ?5,
                         status = 'active', token_expires_at = ?6, refresh_expires_at = ?7, has_refresh_token = ?8,
                         access_kid = ?9, refresh_kid = ?10, last_error = NULL, last_error_at = NULL,
                         connected_at = CASE WHEN disconnected_at IS NULL THEN connected_at ELSE ?11 END,
                         disconnected_at = NULL, refresh_started_at = NULL, position = ?12
                     WHERE id = ?1 AND position < ?12",
                )?
                .execute(params![
                    id,
                    profile.display_name,
                    profile.username,
                    profile.avatar_url,
                    profile.metadata.to_string(),
                    tokens.expires_at.map(ts),
                    tokens.refresh_expires_at.map(ts),
                    tokens.refresh_token.is_some(),
                    ak,
                    rk,
                    at,
                    pos,
                ])?;
            }
            AccountEvent::AccountDisconnected { .. } => {
                tx.prepare_cached(
                    "UPDATE accounts SET disconnected_at = ?2, position = ?3 WHERE id = ?1 AND position < ?3",
                )?
                .execute(params![id, at, pos])?;
            }
            AccountEvent::TokensReencrypted { tokens } => {
                let (ak, rk) = kids(&tokens);
                tx.prepare_cached(
                    "UPDATE accounts SET access_kid = ?2, refresh_kid = ?3, position = ?4
                     WHERE id = ?1 AND position < ?4",
                )?
                .execute(params![id, ak, rk, pos])?;
            }
            AccountEvent::TokenRefreshStarted { started_at, .. } => {
                tx.prepare_cached(
                    "UPDATE accounts SET refresh_started_at = ?2, position = ?3 WHERE id = ?1 AND position < ?3",
                )?
                .execute(params![id, ts(started_at), pos])?;
            }
            AccountEvent::TokenRefreshed { tokens, .. } => {
                let (ak, rk) = kids(&tokens);
                tx.prepare_cached(
                    "UPDATE accounts SET token_expires_at = ?2, refresh_expires_at = ?3, has_refresh_token = ?4,
                         access_kid = ?5, refresh_kid = ?6, status = 'active', last_error = NULL,
                         last_error_at = NULL, refresh_started_at = NULL, last_refreshed_at = ?7, position = ?8
                     WHERE id = ?1 AND position < ?8",
                )?
                .execute(params![
                    id,
                    tokens.expires_at.map(ts),
                    tokens.refresh_expires_at.map(ts),
                    tokens.refresh_token.is_some(),
                    ak,
                    rk,
                    at,
                    pos
                ])?;
            }
            AccountEvent::TokenRefreshFailed { message, .. } => {
                tx.prepare_cached(
                    "UPDATE accounts SET refresh_started_at = NULL,
                         last_error = CASE WHEN ?2 = '' THEN last_error ELSE ?2 END,
                         last_error_at = CASE WHEN ?2 = '' THEN last_error_at ELSE ?3 END, position = ?4
                     WHERE id = ?1 AND position < ?4",
                )?
                .execute(params![id, message, at, pos])?;
            }
            AccountEvent::AccountRevoked { message, .. } => {
                tx.prepare_cached(
                    "UPDATE accounts SET status = 'revoked', last_error = ?2, last_error_at = ?3,
                         refresh_started_at = NULL, position = ?4
                     WHERE id = ?1 AND position < ?4",
                )?
                .execute(params![id, message, at, pos])?;
            }
            AccountEvent::AccountNeedsReauth { message, .. } => {
                tx.prepare_cached(
                    "UPDATE accounts SET status = CASE WHEN status = 'revoked' THEN status ELSE 'needs_reauth' END,
                         last_error = ?2, last_error_at = ?3, refresh_started_at = NULL, position = ?4
                     WHERE id = ?1 AND position < ?4",
                )?
                .execute(params![id, message, at, pos])?;
            }
            AccountEvent::AccountSynced { at } => {
                tx.prepare_cached(
                    "UPDATE accounts SET last_synced_at = ?2, position = ?3 WHERE id = ?1 AND position < ?3",
                )?
                .execute(params![id, ts(at), pos])?;
            }
            AccountEvent::AccountExpiring { .. } => {
                tx.prepare_cached("UPDATE accounts SET position = ?2 WHERE id = ?1 AND position < ?2")?
                    .execute(params![id, pos])?;
            }
        }
        Ok(())
    }
}

fn kids(t: &StoredTokens) -> (Option<String>, Option<String>) {
    let kid = |c: &str| TokenCipher::kid_of(c).ok().map(str::to_string);
    (kid(&t.access_token), t.refresh_token.as_deref().and_then(kid))
}

/// A row of the account read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: String,
    pub user_id: String,
    pub platform: String,
    pub external_id: String,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub metadata: Value,
    /// Stored status; see [`AccountRow::status_at`] for what the API shows.
    pub stored_status: String,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub has_refresh_token: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
    /// A refresh claim without an outcome yet (in progress, or interrupted by a crash).
    pub refresh_started_at: Option<DateTime<Utc>>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
}

impl AccountRow {
    /// What the API shows: `revoked` and `needs_reauth` as stored; an active account whose token
    /// has expired needs the user again; one that cannot refresh itself (no refresh token, not
    /// Meta's re-exchange) shows `expiring` within 7 days of expiry.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        match self.stored_status.as_str() {
            "revoked" => return "revoked",
            "needs_reauth" => return "needs_reauth",
            _ => {}
        }
        let Some(exp) = self.token_expires_at else {
            return "active";
        };
        let platform: Option<Platform> = self.platform.parse().ok();
        let self_renewing = self.has_refresh_token || platform.is_some_and(Platform::is_meta);
        if exp <= now && !self.has_refresh_token {
            "needs_reauth"
        } else if !self_renewing && exp - now <= EXPIRING_WINDOW {
            "expiring"
        } else {
            "active"
        }
    }
}

const COLUMNS: &str = "id, user_id, platform, external_id, display_name, username, avatar_url, metadata, status,
    token_expires_at, refresh_expires_at, has_refresh_token, last_synced_at, last_error, last_error_at, connected_at,
    refresh_started_at, last_refreshed_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        platform: r.get(2)?,
        external_id: r.get(3)?,
        display_name: r.get(4)?,
        username: r.get(5)?,
        avatar_url: r.get(6)?,
        metadata: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or(Value::Null),
        stored_status: r.get(8)?,
        token_expires_at: time(r.get(9)?),
        refresh_expires_at: time(r.get(10)?),
        has_refresh_token: r.get(11)?,
        last_synced_at: time(r.get(12)?),
        last_error: r.get(13)?,
        last_error_at: time(r.get(14)?),
        connected_at: time(Some(r.get(15)?)).unwrap_or_default(),
        refresh_started_at: time(r.get(16)?),
        last_refreshed_at: time(r.get(17)?),
    })
}

/// The user's connected accounts, by id, after the cursor.
pub fn list(conn: &Connection, user: &str, limit: usize, after: Option<&str>) -> rusqlite::Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE user_id = ?1 AND disconnected_at IS NULL AND id > ?2
         ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![user, after.unwrap_or(""), limit as i64], row)?;
    rows.collect()
}

/// One connected account of the user (another user's, or a disconnected one, is `None`).
pub fn get(conn: &Connection, user: &str, id: &str) -> rusqlite::Result<Option<AccountRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE id = ?1 AND user_id = ?2 AND disconnected_at IS NULL"
    ))?
    .query_row(params![id, user], row)
    .optional()
}

/// Accounts the sweeper should look at: connected, active or refreshing, and either due for a
/// refresh within `margin`, a Meta re-exchange within `meta_window`, an expiry warning within the
/// expiring window, or holding a refresh claim older than `stale_claim`.
pub fn due_for_sweep(
    conn: &Connection,
    now: DateTime<Utc>,
    margin: Duration,
    meta_window: Duration,
    stale_claim: Duration,
) -> rusqlite::Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts
         WHERE disconnected_at IS NULL AND status = 'active'
           AND (   (token_expires_at IS NOT NULL AND token_expires_at <= ?1)
                OR (platform IN ('facebook', 'instagram') AND refresh_expires_at IS NOT NULL AND refresh_expires_at <= ?2)
                OR (has_refresh_token = 0 AND token_expires_at IS NOT NULL AND token_expires_at <= ?3)
                OR (refresh_started_at IS NOT NULL AND refresh_started_at <= ?4))
         ORDER BY id"
    ))?;
    // RFC 3339 strings of one offset compare in time order.
    let rows = stmt.query_map(
        params![
            ts(now + margin),
            ts(now + meta_window),
            ts(now + EXPIRING_WINDOW),
            ts(now - stale_claim),
        ],
        row,
    )?;
    rows.collect()
}

/// Connected accounts of a platform's external id (webhooks address accounts that way).
pub fn by_external_id(conn: &Connection, platform: &str, external_id: &str) -> rusqlite::Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE platform = ?1 AND external_id = ?2 AND disconnected_at IS NULL"
    ))?;
    let rows = stmt.query_map(params![platform, external_id], row)?;
    rows.collect()
}

/// Live (connected) tokens per key id, for `nikara keys status` and the startup check.
pub fn live_tokens_per_kid(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kid, COUNT(*) FROM (
             SELECT access_kid AS kid FROM accounts WHERE disconnected_at IS NULL AND access_kid IS NOT NULL
             UNION ALL
             SELECT refresh_kid FROM accounts WHERE disconnected_at IS NULL AND refresh_kid IS NOT NULL
         ) GROUP BY kid ORDER BY kid",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

/// Connected accounts holding a token under a key other than `primary`.
pub fn needing_rotation(conn: &Connection, primary: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM accounts WHERE disconnected_at IS NULL
           AND ((access_kid IS NOT NULL AND access_kid <> ?1) OR (refresh_kid IS NOT NULL AND refresh_kid <> ?1))
         ORDER BY id",
    )?;
    let rows = stmt.query_map([primary], |r| r.get(0))?;
    rows.collect()
}
