//! Engagement (embedded): facts normalised from verified webhook deliveries, and metric snapshots.
//! Serves the engagement API when ClickHouse is not configured. See `projections/engagement/README.md`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{Projection, ProjectionError, time, ts};
use crate::domain::DomainEvent;
use crate::domain::engagement::EngagementEvent;
use crate::engagement::{self, Normalized};
use crate::metrics::{self, PlatformLabels};
use crate::platforms::metrics::Metrics;
use crate::store::RecordedEvent;

#[derive(Debug, Clone, Copy)]
pub struct Engagement {
    /// Keep comment and reply text (off by default: people's words are not needed for counts).
    pub capture_text: bool,
}

/// Normalises a stored delivery (shared with the ClickHouse sink and the revocation reactor).
pub fn normalize(platform: &str, body: &str, capture_text: bool) -> Option<Normalized> {
    let out = match platform {
        "meta" => engagement::meta::normalize_meta(body.as_bytes(), capture_text),
        "x" => engagement::x::normalize_x(body.as_bytes(), capture_text),
        _ => return None,
    };
    match out {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(platform, error = %e, "a verified delivery could not be normalised; kept raw");
            metrics::global()
                .engagement_unknown
                .get_or_create(&PlatformLabels {
                    platform: platform.to_string(),
                })
                .inc();
            None
        }
    }
}

impl Projection for Engagement {
    fn name(&self) -> &'static str {
        "engagement"
    }

    fn version(&self) -> u32 {
        1
    }

    fn event_types(&self) -> &'static [&'static str] {
        EngagementEvent::TYPES
    }

    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS engagement_facts (
             position            INTEGER NOT NULL,
             item_index          INTEGER NOT NULL,
             platform            TEXT NOT NULL,
             account_external_id TEXT NOT NULL,
             platform_post_id    TEXT NOT NULL,
             kind                TEXT NOT NULL,
             delta               INTEGER NOT NULL,
             verb                TEXT NOT NULL,
             reaction_type       TEXT,
             actor_id            TEXT,
             comment_id          TEXT,
             text                TEXT,
             occurred_at         TEXT NOT NULL,
             PRIMARY KEY (position, item_index)
         );
         CREATE INDEX IF NOT EXISTS facts_by_post ON engagement_facts (platform, platform_post_id, position);
         CREATE INDEX IF NOT EXISTS facts_by_account ON engagement_facts (platform, account_external_id, occurred_at);
         CREATE TABLE IF NOT EXISTS engagement_snapshots (
             position         INTEGER PRIMARY KEY,
             post_id          TEXT NOT NULL,
             user_id          TEXT NOT NULL,
             account_id       TEXT NOT NULL,
             platform         TEXT NOT NULL,
             platform_post_id TEXT NOT NULL,
             taken_at         TEXT NOT NULL,
             metrics          TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS snapshots_by_post ON engagement_snapshots (post_id, position);
         CREATE INDEX IF NOT EXISTS snapshots_by_user ON engagement_snapshots (user_id, taken_at);"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["engagement_facts", "engagement_snapshots"]
    }

    fn apply(&self, tx: &Transaction<'_>, ev: &RecordedEvent) -> Result<(), ProjectionError> {
        let Some(event) = EngagementEvent::from_recorded(ev).map_err(|e| ProjectionError::Apply {
            projection: "engagement",
            position: ev.position.0,
            message: e.to_string(),
        })?
        else {
            return Ok(());
        };
        match event {
            EngagementEvent::WebhookDeliveryReceived { platform, body, .. } => {
                let Some(n) = normalize(&platform, &body, self.capture_text) else {
                    return Ok(());
                };
                let m = metrics::global();
                if !n.unknown.is_empty() {
                    m.engagement_unknown
                        .get_or_create(&PlatformLabels {
                            platform: platform.clone(),
                        })
                        .inc_by(n.unknown.len() as u64);
                }
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO engagement_facts (position, item_index, platform, account_external_id,
                         platform_post_id, kind, delta, verb, reaction_type, actor_id, comment_id, text, occurred_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )?;
                for f in &n.facts {
                    insert.execute(params![
                        ev.position.0 as i64,
                        f.item_index,
                        f.platform.as_str(),
                        f.account_external_id,
                        f.platform_post_id,
                        f.kind.as_str(),
                        f.delta,
                        f.verb,
                        f.reaction_type,
                        f.actor_id,
                        f.comment_id,
                        f.text,
                        ts(f.occurred_at),
                    ])?;
                    m.engagement_facts
                        .get_or_create(&PlatformLabels {
                            platform: f.platform.as_str().to_string(),
                        })
                        .inc();
                }
            }
            EngagementEvent::EngagementSnapshotTaken {
                post_id,
                user_id,
                account_id,
                platform,
                platform_post_id,
                taken_at,
                metrics,
            } => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO engagement_snapshots (position, post_id, user_id, account_id, platform,
                         platform_post_id, taken_at, metrics)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    ev.position.0 as i64,
                    post_id,
                    user_id,
                    account_id,
                    platform,
                    platform_post_id,
                    ts(taken_at),
                    serde_json::to_string(&metrics).unwrap_or_default(),
                ])?;
            }
        }
        Ok(())
    }
}

/// Engagement of one post: the latest snapshot plus webhook deltas received after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostEngagement {
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub views: Option<i64>,
    pub impressions: Option<i64>,
    pub reactions: BTreeMap<String, i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// `sync` (a snapshot, plus any later webhook deltas), `webhook` (deltas only), or `none`.
    pub source: String,
}

/// Which kinds count as what. Kept in one place: the ClickHouse view uses the same mapping.
pub fn bucket(kind: &str) -> Option<&'static str> {
    match kind {
        "like" | "reaction" => Some("likes"),
        "comment" | "reply" => Some("comments"),
        "share" | "repost" | "quote" => Some("shares"),
        _ => None,
    }
}

/// A post's totals from its latest snapshot (if any) and the webhook facts after it, in order.
/// Both backends call this, so they cannot disagree on the arithmetic.
pub fn fold_post(
    snapshot: Option<(DateTime<Utc>, Metrics)>,
    facts: impl IntoIterator<Item = (String, i64, Option<String>, DateTime<Utc>)>,
) -> PostEngagement {
    let mut out = PostEngagement {
        source: "none".into(),
        ..Default::default()
    };
    if let Some((taken, m)) = snapshot {
        out.likes = m.likes.unwrap_or(0);
        out.comments = m.comments.unwrap_or(0);
        out.shares = m.shares.unwrap_or(0);
        out.views = m.views;
        out.impressions = m.impressions;
        out.reactions = m.reactions.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect();
        out.updated_at = Some(taken);
        out.source = "sync".into();
    }
    for (kind, delta, reaction, at) in facts {
        match bucket(&kind) {
            Some("likes") => {
                out.likes += delta;
                let t = reaction
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "like".into())
                    .to_ascii_lowercase();
                *out.reactions.entry(t).or_default() += delta;
            }
            Some("comments") => out.comments += delta,
            Some("shares") => out.shares += delta,
            _ => {}
        }
        if Some(at) > out.updated_at {
            out.updated_at = Some(at);
        }
        if out.source == "none" {
            out.source = "webhook".into();
        }
    }
    out.reactions.retain(|_, n| *n != 0);
    out
}

/// Totals of one post (by its platform id).
pub fn post_engagement(
    conn: &Connection,
    post_id: &str,
    platform: &str,
    platform_post_id: &str,
) -> rusqlite::Result<PostEngagement> {
    let snapshot: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT position, taken_at, metrics FROM engagement_snapshots WHERE post_id = ?1
             ORDER BY position DESC LIMIT 1",
        )?
        .query_row([post_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let after = snapshot.as_ref().map_or(0, |(p, _, _)| *p);
    let snapshot = snapshot.and_then(|(_, taken, json)| {
        Some((
            time(Some(taken))?,
            serde_json::from_str::<Metrics>(&json).unwrap_or_default(),
        ))
    });
    let mut facts = Vec::new();
    if !platform_post_id.is_empty() {
        let mut stmt = conn.prepare_cached(
            "SELECT kind, delta, reaction_type, occurred_at FROM engagement_facts
             WHERE platform = ?1 AND platform_post_id = ?2 AND position > ?3 ORDER BY position, item_index",
        )?;
        let rows = stmt.query_map(params![platform, platform_post_id, after], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (k, d, rt, at) = row?;
            facts.push((k, d, rt, time(Some(at)).unwrap_or_default()));
        }
    }
    Ok(fold_post(snapshot, facts))
}

/// The user's accounts as (account id, platform, external id), for attributing facts.
pub fn user_accounts(conn: &Connection, user: &str) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT id, platform, external_id FROM accounts WHERE user_id = ?1")?;
    let rows = stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// One point of the per-day series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayPoint {
    pub date: String,
    pub platform: String,
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub views: i64,
}

/// Query of the per-day series.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub user_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub platform: Option<String>,
    pub account_id: Option<String>,
}

/// Per day and platform: webhook engagement (sum of deltas) of the user's accounts, and the views
/// of their posts as of each day's last snapshot.
pub fn series(conn: &Connection, q: &SeriesQuery) -> rusqlite::Result<Vec<DayPoint>> {
    let mut points: BTreeMap<(String, String), DayPoint> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT substr(f.occurred_at, 1, 10) AS day, f.platform,
                SUM(CASE WHEN f.kind IN ('like', 'reaction') THEN f.delta ELSE 0 END),
                SUM(CASE WHEN f.kind IN ('comment', 'reply') THEN f.delta ELSE 0 END),
                SUM(CASE WHEN f.kind IN ('share', 'repost', 'quote') THEN f.delta ELSE 0 END)
         FROM engagement_facts f
         JOIN (SELECT DISTINCT id, platform, external_id FROM accounts WHERE user_id = ?1) a
           ON a.platform = f.platform AND a.external_id = f.account_external_id
         WHERE f.occurred_at >= ?2 AND f.occurred_at < ?3
           AND (?4 IS NULL OR f.platform = ?4) AND (?5 IS NULL OR a.id = ?5)
         GROUP BY day, f.platform",
    )?;
    let rows = stmt.query_map(
        params![q.user_id, ts(q.from), ts(q.to), q.platform, q.account_id],
        |r| {
            Ok(DayPoint {
                date: r.get(0)?,
                platform: r.get(1)?,
                likes: r.get(2)?,
                comments: r.get(3)?,
                shares: r.get(4)?,
                views: 0,
            })
        },
    )?;
    for p in rows {
        let p = p?;
        points.insert((p.date.clone(), p.platform.clone()), p);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT day, platform, SUM(v) FROM (
             SELECT substr(taken_at, 1, 10) AS day, platform, post_id,
                    MAX(CAST(json_extract(metrics, '$.views') AS INTEGER)) AS v
             FROM engagement_snapshots
             WHERE user_id = ?1 AND taken_at >= ?2 AND taken_at < ?3
               AND (?4 IS NULL OR platform = ?4) AND (?5 IS NULL OR account_id = ?5)
             GROUP BY day, platform, post_id)
         WHERE v IS NOT NULL GROUP BY day, platform",
    )?;
    let rows = stmt.query_map(
        params![q.user_id, ts(q.from), ts(q.to), q.platform, q.account_id],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    )?;
    for row in rows {
        let (day, platform, views) = row?;
        points
            .entry((day.clone(), platform.clone()))
            .or_insert_with(|| DayPoint {
                date: day,
                platform,
                likes: 0,
                comments: 0,
                shares: 0,
                views: 0,
            })
            .views = views;
    }
    Ok(points.into_values().collect())
}

/// Published posts due for a metrics sync on the decaying schedule.
#[derive(Debug, Clone)]
pub struct SyncDue {
    pub post_id: String,
    pub user_id: String,
    pub account_id: String,
    pub platform: String,
    pub platform_post_id: String,
}

/// Published posts whose last snapshot is older than the schedule allows for their age.
pub fn due_for_sync(
    conn: &Connection,
    now: DateTime<Utc>,
    schedule: &crate::engagement::sync::Schedule,
    limit: usize,
) -> rusqlite::Result<Vec<SyncDue>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.user_id, p.account_id, p.platform, p.platform_post_id, p.published_at,
                (SELECT MAX(s.taken_at) FROM engagement_snapshots s WHERE s.post_id = p.id) AS last
         FROM posts p
         WHERE p.status = 'published' AND p.platform_post_id IS NOT NULL AND p.published_at >= ?1
         ORDER BY last IS NOT NULL, last LIMIT ?2",
    )?;
    let oldest = now - schedule.stop_after;
    let rows = stmt.query_map(params![ts(oldest), (limit * 4) as i64], |r| {
        Ok((
            SyncDue {
                post_id: r.get(0)?,
                user_id: r.get(1)?,
                account_id: r.get(2)?,
                platform: r.get(3)?,
                platform_post_id: r.get(4)?,
            },
            time(r.get(5)?),
            time(r.get(6)?),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (due, published, last) = row?;
        let Some(published) = published else { continue };
        if schedule.is_due(now, published, last) {
            out.push(due);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}
