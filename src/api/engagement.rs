//! Engagement: per post now, and per day.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::error::{ApiError, ApiResult};
use super::security::Bearer;
use crate::app::{App, AppError};
use crate::projections::engagement::{self as model, SeriesQuery};
use crate::projections::posts;

#[derive(Tags)]
enum Tag {
    /// Likes, comments, shares and views.
    Engagement,
}

#[derive(Debug, Object)]
pub struct PostEngagement {
    pub post_id: String,
    pub platform: String,
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    /// Where the platform reports them.
    pub views: Option<i64>,
    pub impressions: Option<i64>,
    /// Likes by reaction type (`like`, `love`, `haha`, …).
    pub reactions: BTreeMap<String, i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// `sync` (the latest metrics snapshot, plus webhook deltas received after it), `webhook`
    /// (webhook deltas only), or `none` (nothing known yet).
    pub source: String,
}

#[derive(Debug, Object)]
pub struct DayPoint {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub platform: String,
    /// Sum of like and reaction deltas received by webhook that day.
    pub likes: i64,
    /// Comments and replies.
    pub comments: i64,
    /// Shares, reposts and quotes.
    pub shares: i64,
    /// Views of the posts as of that day's last metrics snapshot.
    pub views: i64,
}

#[derive(Debug, Object)]
pub struct Series {
    pub series: Vec<DayPoint>,
}

#[derive(Debug)]
pub struct EngagementApi;

fn internal(e: impl Into<AppError>) -> ApiError {
    ApiError::from(e.into())
}

/// RFC 3339 time, or a date (`2026-11-01`, meaning that day's start; as an upper bound, its end).
pub fn parse_bound(s: &str, upper: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let d = if upper { d.succ_opt()? } else { d };
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

#[OpenApi]
impl EngagementApi {
    /// A post's engagement now: its latest metrics snapshot plus the webhook deltas received after it.
    #[oai(
        path = "/api/posts/:id/engagement",
        method = "get",
        tag = "Tag::Engagement",
        operation_id = "get_post_engagement"
    )]
    async fn post(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<Json<PostEngagement>> {
        let (user, id) = (auth.0.user_id.as_str().to_string(), id.0);
        let lookup = id.clone();
        let row = app
            .models
            .read(move |c| posts::get(c, &user, &lookup))
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found("post"))?;
        let e = crate::engagement::query::post_engagement(&app, &row)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "engagement query failed");
                ApiError::internal()
            })?;
        Ok(Json(PostEngagement {
            post_id: row.id,
            platform: row.platform,
            likes: e.likes,
            comments: e.comments,
            shares: e.shares,
            views: e.views,
            impressions: e.impressions,
            reactions: e.reactions,
            updated_at: e.updated_at,
            source: e.source,
        }))
    }

    /// Engagement per day and platform of the caller's accounts.
    #[allow(clippy::too_many_arguments)] // one per query parameter of the route
    #[oai(
        path = "/api/analytics/engagement",
        method = "get",
        tag = "Tag::Engagement",
        operation_id = "engagement_series"
    )]
    async fn series(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        /// RFC 3339 date or time; default 30 days before `to`.
        from: Query<Option<String>>,
        /// RFC 3339 date (inclusive) or time (exclusive); default now.
        to: Query<Option<String>>,
        platform: Query<Option<String>>,
        account_id: Query<Option<String>>,
        /// Only `day` for now.
        granularity: Query<Option<String>>,
    ) -> ApiResult<Json<Series>> {
        if granularity.0.as_deref().is_some_and(|g| g != "day") {
            return Err(ApiError::unprocessable(
                "invalid_granularity",
                "granularity must be `day`",
            ));
        }
        let to = match to.0.as_deref() {
            None | Some("") => Utc::now(),
            Some(s) => parse_bound(s, true)
                .ok_or_else(|| ApiError::unprocessable("invalid_to", "`to` must be an RFC 3339 date or time"))?,
        };
        let from = match from.0.as_deref() {
            None | Some("") => to - Duration::days(30),
            Some(s) => parse_bound(s, false)
                .ok_or_else(|| ApiError::unprocessable("invalid_from", "`from` must be an RFC 3339 date or time"))?,
        };
        if from >= to {
            return Err(ApiError::unprocessable("invalid_range", "`from` must be before `to`"));
        }
        if to - from > Duration::days(366) {
            return Err(ApiError::unprocessable(
                "invalid_range",
                "the range is limited to 366 days",
            ));
        }
        if let Some(p) = &platform.0
            && p.parse::<crate::domain::platform::Platform>().is_err()
        {
            return Err(ApiError::unprocessable(
                "invalid_platform",
                format!("unknown platform `{p}`"),
            ));
        }
        let q = SeriesQuery {
            user_id: auth.0.user_id.as_str().to_string(),
            from,
            to,
            platform: platform.0.filter(|p| !p.is_empty()),
            account_id: account_id.0.filter(|a| !a.is_empty()),
        };
        let points = crate::engagement::query::series(&app, &q).await.map_err(|e| {
            tracing::error!(error = %e, "engagement series query failed");
            ApiError::internal()
        })?;
        Ok(Json(Series {
            series: points
                .into_iter()
                .map(|p: model::DayPoint| DayPoint {
                    date: p.date,
                    platform: p.platform,
                    likes: p.likes,
                    comments: p.comments,
                    shares: p.shares,
                    views: p.views,
                })
                .collect(),
        }))
    }
}
