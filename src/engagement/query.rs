//! Engagement reads: from ClickHouse when it is configured (what analysts query too), else from the
//! embedded read model. Both use the same arithmetic ([`model::fold_post`]) and a test checks they
//! answer the same. A failing ClickHouse falls back to the embedded model (always maintained).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::analytics::Client;
use crate::analytics::client::unix_seconds;
use crate::app::App;
use crate::platforms::metrics::Metrics;
use crate::projections::engagement::{self as model, DayPoint, PostEngagement, SeriesQuery};
use crate::projections::posts::PostRow;

/// A SQL string literal (the common dialect's escaping: backslash and quote).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A post's engagement now.
pub async fn post_engagement(app: &App, post: &PostRow) -> Result<PostEngagement, String> {
    if let Some(a) = &app.analytics {
        match post_from_clickhouse(&a.client, post).await {
            Ok(e) => return Ok(e),
            Err(e) => tracing::warn!(error = %e, "ClickHouse read failed; answering from the embedded model"),
        }
    }
    let (id, platform, ppid) = (
        post.id.clone(),
        post.platform.clone(),
        post.platform_post_id.clone().unwrap_or_default(),
    );
    app.models
        .read(move |c| model::post_engagement(c, &id, &platform, &ppid))
        .await
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct SnapRow {
    position: u64,
    #[serde(with = "unix_seconds")]
    taken_at: DateTime<Utc>,
    likes: Option<i64>,
    comments: Option<i64>,
    shares: Option<i64>,
    views: Option<i64>,
    impressions: Option<i64>,
    reaction_types: Vec<String>,
    reaction_counts: Vec<i64>,
}

#[derive(Deserialize)]
struct FactRow {
    kind: String,
    delta: i64,
    reaction_type: String,
    #[serde(with = "unix_seconds")]
    occurred_at: DateTime<Utc>,
}

async fn post_from_clickhouse(ch: &Client, post: &PostRow) -> Result<PostEngagement, String> {
    let snaps: Vec<SnapRow> = ch
        .select_json(&format!(
            "SELECT position, taken_at, likes, comments, shares, views, impressions, reaction_types, reaction_counts
             FROM engagement_snapshots WHERE post_id = {} ORDER BY position DESC LIMIT 1",
            lit(&post.id)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let snap = snaps.into_iter().next();
    let after = snap.as_ref().map_or(0, |s| s.position);
    let snapshot = snap.map(|s| {
        (
            s.taken_at,
            Metrics {
                likes: s.likes,
                comments: s.comments,
                shares: s.shares,
                views: s.views,
                impressions: s.impressions,
                reactions: s.reaction_types.into_iter().zip(s.reaction_counts).collect(),
            },
        )
    });
    let facts: Vec<FactRow> = match post.platform_post_id.as_deref().filter(|p| !p.is_empty()) {
        None => Vec::new(),
        Some(ppid) => ch
            .select_json(&format!(
                "SELECT kind, toInt64(delta) AS delta, reaction_type, occurred_at FROM engagement_events
                 WHERE platform = {} AND platform_post_id = {} AND position > {after}
                 ORDER BY position, item_index",
                lit(&post.platform),
                lit(ppid)
            ))
            .await
            .map_err(|e| e.to_string())?,
    };
    Ok(model::fold_post(
        snapshot,
        facts.into_iter().map(|f| {
            let rt = Some(f.reaction_type).filter(|r| !r.is_empty());
            (f.kind, f.delta, rt, f.occurred_at)
        }),
    ))
}

/// Engagement per day and platform.
pub async fn series(app: &App, q: &SeriesQuery) -> Result<Vec<DayPoint>, String> {
    if let Some(a) = &app.analytics {
        match series_from_clickhouse(app, &a.client, q).await {
            Ok(s) => return Ok(s),
            Err(e) => tracing::warn!(error = %e, "ClickHouse read failed; answering from the embedded model"),
        }
    }
    let q = q.clone();
    app.models
        .read(move |c| model::series(c, &q))
        .await
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct SeriesRow {
    day: String,
    platform: String,
    likes: Option<i64>,
    comments: Option<i64>,
    shares: Option<i64>,
}

#[derive(Deserialize)]
struct ViewsRow {
    day: String,
    platform: String,
    views: Option<i64>,
}

async fn series_from_clickhouse(app: &App, ch: &Client, q: &SeriesQuery) -> Result<Vec<DayPoint>, String> {
    let user = q.user_id.clone();
    let accounts = app
        .models
        .read(move |c| model::user_accounts(c, &user))
        .await
        .map_err(|e| e.to_string())?;
    let (from, to) = (q.from.timestamp(), q.to.timestamp());
    let platform_filter = |col: &str| {
        q.platform
            .as_deref()
            .map_or(String::new(), |p| format!(" AND {col} = {}", lit(p)))
    };
    let tuples: Vec<String> = accounts
        .iter()
        .filter(|(id, _, _)| q.account_id.as_deref().is_none_or(|a| a == id))
        .map(|(_, p, ext)| format!("({}, {})", lit(p), lit(ext)))
        .collect();
    let mut points: std::collections::BTreeMap<(String, String), DayPoint> = Default::default();
    if !tuples.is_empty() {
        let rows: Vec<SeriesRow> = ch
            .select_json(&format!(
                "SELECT toString(toDate(occurred_at)) AS day, platform,
                        sumIf(toInt64(delta), kind IN ('like', 'reaction')) AS likes,
                        sumIf(toInt64(delta), kind IN ('comment', 'reply')) AS comments,
                        sumIf(toInt64(delta), kind IN ('share', 'repost', 'quote')) AS shares
                 FROM engagement_events
                 WHERE occurred_at >= toDateTime({from}) AND occurred_at < toDateTime({to})
                   AND (platform, account_external_id) IN ({}){}
                 GROUP BY day, platform",
                tuples.join(", "),
                platform_filter("platform")
            ))
            .await
            .map_err(|e| e.to_string())?;
        for r in rows {
            points.insert(
                (r.day.clone(), r.platform.clone()),
                DayPoint {
                    date: r.day,
                    platform: r.platform,
                    likes: r.likes.unwrap_or(0),
                    comments: r.comments.unwrap_or(0),
                    shares: r.shares.unwrap_or(0),
                    views: 0,
                },
            );
        }
    }
    let account_filter = q
        .account_id
        .as_deref()
        .map_or(String::new(), |a| format!(" AND account_id = {}", lit(a)));
    let views: Vec<ViewsRow> = ch
        .select_json(&format!(
            "SELECT day, platform, sum(v) AS views FROM (
                 SELECT toString(toDate(taken_at)) AS day, platform, post_id, max(views) AS v
                 FROM engagement_snapshots
                 WHERE user_id = {} AND taken_at >= toDateTime({from}) AND taken_at < toDateTime({to})
                   AND isNotNull(views){}{}
                 GROUP BY day, platform, post_id)
             GROUP BY day, platform",
            lit(&q.user_id),
            platform_filter("platform"),
            account_filter
        ))
        .await
        .map_err(|e| e.to_string())?;
    for v in views {
        points
            .entry((v.day.clone(), v.platform.clone()))
            .or_insert_with(|| DayPoint {
                date: v.day,
                platform: v.platform,
                likes: 0,
                comments: 0,
                shares: 0,
                views: 0,
            })
            .views = v.views.unwrap_or(0);
    }
    Ok(points.into_values().collect())
}
