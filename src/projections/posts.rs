//! Posts: the publishing queue (scheduled posts by due time) and post history, with every attempt.
//! See `projections/posts/README.md`.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Projection, ProjectionError, time, ts};
use crate::domain::DomainEvent;
use crate::domain::post::PostEvent;
use crate::store::RecordedEvent;

#[derive(Debug, Clone, Copy)]
pub struct Posts;

impl Projection for Posts {
    fn name(&self) -> &'static str {
        "posts"
    }

    fn version(&self) -> u32 {
        1
    }

    fn event_types(&self) -> &'static [&'static str] {
        PostEvent::TYPES
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS posts (
             id                 TEXT PRIMARY KEY,
             user_id            TEXT NOT NULL,
             account_id         TEXT NOT NULL,
             platform           TEXT NOT NULL,
             status             TEXT NOT NULL,
             text               TEXT NOT NULL,
             title              TEXT,
             media_urls         TEXT NOT NULL,
             options            TEXT NOT NULL,
             scheduled_at       TEXT NOT NULL,
             due_at             TEXT NOT NULL,
             attempts           INTEGER NOT NULL DEFAULT 0,
             attempt_started_at TEXT,
             platform_post_id   TEXT,
             url                TEXT,
             error              TEXT,
             published_at       TEXT,
             created_at         TEXT NOT NULL,
             position           INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS posts_queue ON posts (status, due_at);
         CREATE INDEX IF NOT EXISTS posts_by_user ON posts (user_id, id);
         CREATE INDEX IF NOT EXISTS posts_by_account ON posts (account_id, status);
         CREATE INDEX IF NOT EXISTS posts_by_platform_id ON posts (platform, platform_post_id);
         CREATE TABLE IF NOT EXISTS post_attempts (
             post_id      TEXT NOT NULL,
             attempt_id   TEXT NOT NULL,
             n            INTEGER NOT NULL,
             started_at   TEXT NOT NULL,
             outcome      TEXT,
             class        TEXT,
             status_code  INTEGER,
             message      TEXT,
             retry_at     TEXT,
             finished_at  TEXT,
             PRIMARY KEY (post_id, attempt_id)
         );"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["posts", "post_attempts"]
    }

    fn apply(&self, tx: &Transaction<'_>, ev: &RecordedEvent) -> Result<(), ProjectionError> {
        let Some(event) = PostEvent::from_recorded(ev).map_err(|e| ProjectionError::Apply {
            projection: "posts",
            position: ev.position.0,
            message: e.to_string(),
        })?
        else {
            return Ok(());
        };
        let id = ev.stream.strip_prefix("post-").unwrap_or(&ev.stream);
        let at = ts(ev.metadata.occurred_at);
        let pos = ev.position.0 as i64;
        match event {
            PostEvent::PostScheduled {
                user_id,
                account_id,
                platform,
                text,
                title,
                media_urls,
                options,
                scheduled_at,
            } => {
                tx.prepare_cached(
                    "INSERT INTO posts (id, user_id, account_id, platform, status, text, title, media_urls, options,
                         scheduled_at, due_at, created_at, position)
                     VALUES (?1, ?2, ?3, ?4, 'scheduled', ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)
                     ON CONFLICT(id) DO NOTHING",
                )?
                .execute(params![
                    id,
                    user_id,
                    account_id,
                    platform.as_str(),
                    text,
                    title,
                    serde_json::to_string(&media_urls).unwrap_or_default(),
                    Value::Object(options).to_string(),
                    ts(scheduled_at),
                    at,
                    pos
                ])?;
            }
            PostEvent::PublishAttemptStarted {
                attempt_id,
                attempt,
                started_at,
                ..
            } => {
                let n = tx
                    .prepare_cached(
                        "UPDATE posts SET status = 'publishing', attempts = ?2, attempt_started_at = ?3, position = ?4
                         WHERE id = ?1 AND position < ?4",
                    )?
                    .execute(params![id, attempt, ts(started_at), pos])?;
                if n > 0 {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO post_attempts (post_id, attempt_id, n, started_at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, attempt_id.to_string(), attempt, ts(started_at)])?;
                }
            }
            PostEvent::PostPublished {
                attempt_id,
                platform_post_id,
                url,
                published_at,
                reconciled,
            } => {
                let n = tx
                    .prepare_cached(
                        "UPDATE posts SET status = 'published', platform_post_id = ?2, url = ?3, published_at = ?4,
                             error = NULL, position = ?5
                         WHERE id = ?1 AND position < ?5",
                    )?
                    .execute(params![id, platform_post_id, url, ts(published_at), pos])?;
                if n > 0 {
                    finish_attempt(
                        tx,
                        id,
                        &attempt_id.to_string(),
                        if reconciled {
                            "published (reconciled)"
                        } else {
                            "published"
                        },
                        None,
                        None,
                        None,
                        None,
                        &at,
                    )?;
                }
            }
            PostEvent::PublishFailed {
                attempt_id,
                class,
                status,
                message,
                retry_at,
                ..
            } => {
                let (state, due) = match retry_at {
                    Some(r) => ("scheduled", Some(ts(r))),
                    None => ("failed", None),
                };
                let n = tx
                    .prepare_cached(
                        "UPDATE posts SET status = ?2, due_at = COALESCE(?3, due_at), error = ?4, position = ?5
                         WHERE id = ?1 AND position < ?5",
                    )?
                    .execute(params![id, state, due, message, pos])?;
                if n > 0 {
                    let class = serde_json::to_value(class)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string));
                    finish_attempt(
                        tx,
                        id,
                        &attempt_id.to_string(),
                        "failed",
                        class.as_deref(),
                        status,
                        Some(&message),
                        retry_at.map(ts).as_deref(),
                        &at,
                    )?;
                }
            }
            PostEvent::PostOutcomeUnknown { attempt_id, message } => {
                let n = tx
                    .prepare_cached(
                        "UPDATE posts SET status = 'outcome_unknown', error = ?2, position = ?3
                         WHERE id = ?1 AND position < ?3",
                    )?
                    .execute(params![id, message, pos])?;
                if n > 0 {
                    finish_attempt(
                        tx,
                        id,
                        &attempt_id.to_string(),
                        "unknown",
                        None,
                        None,
                        Some(&message),
                        None,
                        &at,
                    )?;
                }
            }
            PostEvent::PostRetryRequested { .. } => {
                tx.prepare_cached(
                    "UPDATE posts SET status = 'scheduled', due_at = ?2, position = ?3 WHERE id = ?1 AND position < ?3",
                )?
                .execute(params![id, at, pos])?;
            }
            PostEvent::PostCancelled { reason } => {
                tx.prepare_cached(
                    "UPDATE posts SET status = 'cancelled', error = ?2, position = ?3 WHERE id = ?1 AND position < ?3",
                )?
                .execute(params![id, reason, pos])?;
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)] // one row's columns
fn finish_attempt(
    tx: &Transaction<'_>,
    post: &str,
    attempt: &str,
    outcome: &str,
    class: Option<&str>,
    status: Option<u16>,
    message: Option<&str>,
    retry_at: Option<&str>,
    at: &str,
) -> Result<(), ProjectionError> {
    tx.prepare_cached(
        "UPDATE post_attempts SET outcome = ?3, class = ?4, status_code = ?5, message = ?6, retry_at = ?7, finished_at = ?8
         WHERE post_id = ?1 AND attempt_id = ?2",
    )?
    .execute(params![post, attempt, outcome, class, status, message, retry_at, at])?;
    Ok(())
}

/// One post as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostRow {
    pub id: String,
    pub user_id: String,
    pub account_id: String,
    pub platform: String,
    pub status: String,
    pub text: String,
    pub title: Option<String>,
    pub media_urls: Vec<String>,
    pub options: Value,
    pub scheduled_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub platform_post_id: Option<String>,
    pub url: Option<String>,
    pub error: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub attempt_started_at: Option<DateTime<Utc>>,
}

/// One attempt of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub n: u32,
    pub attempt_id: String,
    pub started_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub class: Option<String>,
    pub status_code: Option<u16>,
    pub message: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, user_id, account_id, platform, status, text, title, media_urls, options, scheduled_at, due_at,
    attempts, platform_post_id, url, error, published_at, created_at, attempt_started_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PostRow> {
    Ok(PostRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        account_id: r.get(2)?,
        platform: r.get(3)?,
        status: r.get(4)?,
        text: r.get(5)?,
        title: r.get(6)?,
        media_urls: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        options: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or(Value::Null),
        scheduled_at: time(Some(r.get(9)?)).unwrap_or_default(),
        due_at: time(Some(r.get(10)?)).unwrap_or_default(),
        attempts: r.get(11)?,
        platform_post_id: r.get(12)?,
        url: r.get(13)?,
        error: r.get(14)?,
        published_at: time(r.get(15)?),
        created_at: time(Some(r.get(16)?)).unwrap_or_default(),
        attempt_started_at: time(r.get(17)?),
    })
}

/// Filters of `GET /api/posts`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub account_id: Option<String>,
    /// Only posts with an id below this (newest first paging).
    pub before: Option<String>,
}

/// The user's posts, newest first.
pub fn list(conn: &Connection, user: &str, f: &Filter, limit: usize) -> rusqlite::Result<Vec<PostRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM posts WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR account_id = ?3) AND (?4 IS NULL OR id < ?4)
         ORDER BY id DESC LIMIT ?5"
    ))?;
    let rows = stmt.query_map(params![user, f.status, f.account_id, f.before, limit as i64], row)?;
    rows.collect()
}

/// One post of the user.
pub fn get(conn: &Connection, user: &str, id: &str) -> rusqlite::Result<Option<PostRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM posts WHERE id = ?1 AND user_id = ?2"))?
        .query_row(params![id, user], row)
        .optional()
}

/// A post's attempts, in order.
pub fn attempts(conn: &Connection, id: &str) -> rusqlite::Result<Vec<AttemptRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n, attempt_id, started_at, outcome, class, status_code, message, retry_at, finished_at
         FROM post_attempts WHERE post_id = ?1 ORDER BY n",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(AttemptRow {
            n: r.get(0)?,
            attempt_id: r.get(1)?,
            started_at: time(Some(r.get(2)?)).unwrap_or_default(),
            outcome: r.get(3)?,
            class: r.get(4)?,
            status_code: r.get(5)?,
            message: r.get(6)?,
            retry_at: time(r.get(7)?),
            finished_at: time(r.get(8)?),
        })
    })?;
    rows.collect()
}

/// A post ready for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub id: String,
    pub account_id: String,
    pub platform: String,
}

/// Scheduled posts due by `now`, oldest first. Posts of accounts that need the user wait (they are
/// left out) until the account is active again or `give_up` has passed since their time, when the
/// scheduler fails them; posts of disconnected accounts are included so the scheduler cancels them.
pub fn due(conn: &Connection, now: DateTime<Utc>, give_up: Duration, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.account_id, p.platform FROM posts p
         LEFT JOIN accounts a ON a.id = p.account_id
         WHERE p.status = 'scheduled' AND p.due_at <= ?1
           AND (a.id IS NULL OR a.disconnected_at IS NOT NULL OR a.status = 'active' OR p.scheduled_at <= ?2)
         ORDER BY p.due_at LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![ts(now), ts(now - give_up), limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            account_id: r.get(1)?,
            platform: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Attempts started before `cutoff` that never recorded an outcome.
pub fn stale_claims(conn: &Connection, cutoff: DateTime<Utc>, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, account_id, platform FROM posts WHERE status = 'publishing' AND attempt_started_at <= ?1
         ORDER BY attempt_started_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![ts(cutoff), limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            account_id: r.get(1)?,
            platform: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The account's posts still waiting to be published (what disconnecting it cancels).
pub fn scheduled_for_account(conn: &Connection, account_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM posts WHERE account_id = ?1 AND status = 'scheduled' ORDER BY id")?;
    let rows = stmt.query_map([account_id], |r| r.get(0))?;
    rows.collect()
}

/// The nikara post behind a platform post id, when there is one (engagement attribution).
pub fn by_platform_post_id(
    conn: &Connection,
    platform: &str,
    platform_post_id: &str,
) -> rusqlite::Result<Option<PostRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM posts WHERE platform = ?1 AND platform_post_id = ?2"
    ))?
    .query_row(params![platform, platform_post_id], row)
    .optional()
}
