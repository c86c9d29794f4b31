//! Activity log per user: every event done by or for a user, newest first, with a one-line summary.
//! See `projections/activity/README.md` for the contract and the golden fixtures.

use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::{Projection, ProjectionError};
use crate::store::RecordedEvent;

#[derive(Debug, Clone, Copy)]
pub struct Activity;

/// Event types the activity log shows. Later capabilities add theirs here with a summary below.
pub const EVENT_TYPES: &[&str] = &[
    "UserFirstSeen",
    "UserEmailClaimChanged",
    "UserProfileUpdated",
    "AccountConnectionFailed",
    "AccountsSkipped",
    "AccountConnected",
    "AccountReconnected",
    "AccountDisconnected",
    "TokenRefreshed",
    "AccountRevoked",
    "AccountNeedsReauth",
    "AccountExpiring",
    "NotificationSent",
    "NotificationSkipped",
    "NotificationFailed",
    "PostScheduled",
    "PublishAttemptStarted",
    "PostPublished",
    "PublishFailed",
    "PostOutcomeUnknown",
    "PostRetryRequested",
    "PostCancelled",
];

impl Projection for Activity {
    fn name(&self) -> &'static str {
        "activity"
    }

    fn version(&self) -> u32 {
        4
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS activity (
             position    INTEGER PRIMARY KEY,
             event_id    TEXT    NOT NULL,
             user_id     TEXT    NOT NULL,
             stream      TEXT    NOT NULL,
             event_type  TEXT    NOT NULL,
             occurred_at TEXT    NOT NULL,
             summary     TEXT    NOT NULL
         );
         CREATE INDEX IF NOT EXISTS activity_by_user ON activity (user_id, position DESC);"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["activity"]
    }

    fn apply(&self, tx: &Transaction<'_>, ev: &RecordedEvent) -> Result<(), ProjectionError> {
        let Some(user) = ev.metadata.user_id.as_deref() else {
            return Ok(());
        };
        let data: Value = serde_json::from_slice(&ev.data).map_err(|e| ProjectionError::Apply {
            projection: "activity",
            position: ev.position.0,
            message: format!("{} data is not JSON: {e}", ev.event_type),
        })?;
        // Keyed by position: re-applying the same event is a no-op.
        tx.prepare_cached(
            "INSERT OR IGNORE INTO activity (position, event_id, user_id, stream, event_type, occurred_at, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            ev.position.0 as i64,
            ev.id.to_string(),
            user,
            ev.stream,
            ev.event_type,
            ev.metadata
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            summarize(&ev.event_type, &data),
        ])?;
        Ok(())
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// One human line per event type.
pub fn summarize(event_type: &str, data: &Value) -> String {
    match event_type {
        "UserFirstSeen" => match text(data, "email_claim") {
            Some(e) => format!("Signed in for the first time as {e}"),
            None => "Signed in for the first time".to_string(),
        },
        "UserEmailClaimChanged" => match text(data, "email_claim") {
            Some(e) => format!("Sign-in email changed to {e}"),
            None => "Sign-in email removed".to_string(),
        },
        "UserProfileUpdated" => {
            let notif = if data.get("notifications").and_then(Value::as_bool).unwrap_or(true) {
                "on"
            } else {
                "off"
            };
            match text(data, "email") {
                Some(e) => format!("Notification email set to {e}; notifications {notif}"),
                None => format!("Notification email cleared; notifications {notif}"),
            }
        }
        "AccountConnectionFailed" => format!(
            "Could not connect {}: {}",
            platform_name(data.get("platform")),
            text(data, "message").unwrap_or("unknown error")
        ),
        "AccountsSkipped" => {
            let notes: Vec<&str> = data
                .get("notes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("{}: skipped {}", platform_name(data.get("platform")), notes.join("; "))
        }
        "AccountConnected" => format!(
            "Connected {} account {}",
            platform_name(data.get("platform")),
            account_name(data)
        ),
        "AccountReconnected" => format!("Reconnected account {}", account_name(data)),
        "AccountDisconnected" => match text(data, "reason") {
            Some(r) => format!("Disconnected an account ({r})"),
            None => "Disconnected an account".to_string(),
        },
        "TokenRefreshed" => "Token refreshed".to_string(),
        "AccountRevoked" => format!("Access revoked: {}", text(data, "message").unwrap_or("no reason given")),
        "AccountNeedsReauth" => format!(
            "Needs reconnecting: {}",
            text(data, "message").unwrap_or("no reason given")
        ),
        "AccountExpiring" => format!("Expiring: {}", text(data, "message").unwrap_or("soon")),
        "NotificationSent" => format!("Mail sent to {}", text(data, "to").unwrap_or("you")),
        "NotificationSkipped" => format!("No mail sent: {}", text(data, "reason").unwrap_or("no reason")),
        "NotificationFailed" => format!("Mail failed: {}", text(data, "reason").unwrap_or("no reason")),
        "PostScheduled" => format!(
            "Scheduled a {} post for {}: “{}”",
            platform_name(data.get("platform")),
            text(data, "scheduled_at").unwrap_or("now"),
            excerpt(text(data, "text").unwrap_or(""))
        ),
        "PublishAttemptStarted" => format!(
            "Publishing (attempt {})",
            data.get("attempt").and_then(Value::as_u64).unwrap_or(1)
        ),
        "PostPublished" => {
            let how = if data.get("reconciled").and_then(Value::as_bool).unwrap_or(false) {
                " (found on the platform after an interrupted attempt)"
            } else {
                ""
            };
            match text(data, "url") {
                Some(u) => format!("Published: {u}{how}"),
                None => format!("Published as {}{how}", text(data, "platform_post_id").unwrap_or("?")),
            }
        }
        "PublishFailed" => {
            let msg = text(data, "message").unwrap_or("unknown error");
            match text(data, "retry_at") {
                Some(at) => format!("Publish failed, retrying at {at}: {msg}"),
                None => format!("Publish failed: {msg}"),
            }
        }
        "PostOutcomeUnknown" => format!("Outcome unknown: {}", text(data, "message").unwrap_or("")),
        "PostRetryRequested" => "Retry requested".to_string(),
        "PostCancelled" => format!("Post cancelled ({})", text(data, "reason").unwrap_or("no reason")),
        other => other.to_string(),
    }
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn platform_name(v: Option<&Value>) -> &'static str {
    v.and_then(Value::as_str)
        .and_then(|p| p.parse::<crate::domain::platform::Platform>().ok())
        .map_or("a platform", |p| p.display_name())
}

fn account_name(data: &Value) -> String {
    let profile = data.get("profile").unwrap_or(&Value::Null);
    match (text(profile, "display_name"), text(profile, "username")) {
        (_, Some(u)) => format!("@{u}"),
        (Some(d), None) => d.to_string(),
        (None, None) => text(profile, "external_id").unwrap_or("(unnamed)").to_string(),
    }
}

/// One entry of `GET /api/activity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ActivityRow {
    pub position: u64,
    pub event_id: String,
    pub stream: String,
    pub event_type: String,
    pub occurred_at: String,
    pub summary: String,
}

/// The user's activity, newest first, strictly before `before` (a position cursor) when given.
pub fn list(conn: &Connection, user: &str, limit: usize, before: Option<u64>) -> rusqlite::Result<Vec<ActivityRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, event_id, stream, event_type, occurred_at, summary FROM activity
         WHERE user_id = ?1 AND position < ?2 ORDER BY position DESC LIMIT ?3",
    )?;
    let before = before.map_or(i64::MAX, |b| b as i64);
    let rows = stmt.query_map(params![user, before, limit as i64], |r| {
        Ok(ActivityRow {
            position: r.get::<_, i64>(0)? as u64,
            event_id: r.get(1)?,
            stream: r.get(2)?,
            event_type: r.get(3)?,
            occurred_at: r.get(4)?,
            summary: r.get(5)?,
        })
    })?;
    rows.collect()
}
