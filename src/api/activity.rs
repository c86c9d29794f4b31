//! The caller's activity log.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::error::{ApiError, ApiResult};
use super::security::Bearer;
use crate::app::App;
use crate::projections::activity;

#[derive(Tags)]
enum Tag {
    /// What happened, per user.
    Activity,
}

#[derive(Debug, Object)]
pub struct ActivityItem {
    /// Global log position; pass as `before` to page.
    pub position: u64,
    pub event_id: String,
    #[oai(rename = "type")]
    pub event_type: String,
    pub stream: String,
    /// RFC 3339 UTC.
    pub occurred_at: String,
    pub summary: String,
}

#[derive(Debug, Object)]
pub struct ActivityPage {
    pub items: Vec<ActivityItem>,
    /// Pass as `before` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug)]
pub struct ActivityApi;

#[OpenApi]
impl ActivityApi {
    /// The caller's recent events, newest first.
    #[oai(
        path = "/api/activity",
        method = "get",
        tag = "Tag::Activity",
        operation_id = "list_activity"
    )]
    async fn list(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        /// 1-200, default 50.
        limit: Query<Option<u32>>,
        /// Cursor from a previous page: only events older than it.
        before: Query<Option<String>>,
    ) -> ApiResult<Json<ActivityPage>> {
        let limit = limit.0.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::unprocessable(
                "invalid_limit",
                "limit must be between 1 and 200",
            ));
        }
        let before = match before.0.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request("invalid_cursor", "before must be a cursor from next_cursor"))?,
            ),
        };
        let user = auth.0.user_id.as_str().to_string();
        let take = limit as usize;
        let rows = app
            .models
            .read(move |conn| activity::list(conn, &user, take + 1, before))
            .await
            .map_err(|e| ApiError::from(crate::app::AppError::from(e)))?;
        let more = rows.len() > take;
        let items: Vec<ActivityItem> = rows
            .into_iter()
            .take(take)
            .map(|r| ActivityItem {
                position: r.position,
                event_id: r.event_id,
                event_type: r.event_type,
                stream: r.stream,
                occurred_at: r.occurred_at,
                summary: r.summary,
            })
            .collect();
        let next_cursor = if more {
            items.last().map(|i| i.position.to_string())
        } else {
            None
        };
        Ok(Json(ActivityPage { items, next_cursor }))
    }
}
