//! TikTok: up to [`TIKTOK_BATCH`] of the creator's videos per `POST /v2/video/query/`. likes =
//! `like_count`, comments = `comment_count`, shares = `share_count`, views = `view_count`. Videos
//! TikTok does not know are just absent; errors come in the envelope, possibly on HTTP 200.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Metrics, MetricsRequest, PostMetrics, TIKTOK_BATCH, batched, id_of, int_at};
use crate::platforms::http;
use crate::platforms::{ApiCtx, PlatformError};

/// The query and the fields asked for.
pub const QUERY_PATH: &str = "/v2/video/query/?fields=id,like_count,comment_count,share_count,view_count";

/// One query per [`TIKTOK_BATCH`] video ids.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    batched(ctx.platform, posts, TIKTOK_BATCH, video_id, move |ids| {
        query(ctx, token, ids)
    })
    .await
}

async fn query(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    ids: Vec<String>,
) -> Result<HashMap<String, PostMetrics>, PlatformError> {
    let request = ctx
        .http
        .post(format!("{}{QUERY_PATH}", ctx.api_url))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .bearer_auth(token.expose_secret())
        .json(&query_body(&ids));
    let json = http::send_json(ctx.platform, request).await?;
    map_videos(&json).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// A public video id is digits; a publish id (`v_pub_…`, a private post's) is not one.
pub fn video_id(id: &str) -> Option<String> {
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

pub fn query_body(ids: &[String]) -> Value {
    json!({ "filters": { "video_ids": ids } })
}

/// `{"data":{"videos":[{"id","like_count",…}],"cursor","has_more"},"error":{"code":"ok"}}`.
pub fn map_videos(json: &Value) -> Result<HashMap<String, PostMetrics>, String> {
    let videos = json
        .pointer("/data/videos")
        .and_then(Value::as_array)
        .ok_or("the query answered without `data.videos`")?;
    videos
        .iter()
        .map(|v| {
            let id = id_of(v.get("id")).ok_or("a video of the query has no `id`")?;
            let m = Metrics {
                likes: int_at(v, "/like_count"),
                comments: int_at(v, "/comment_count"),
                shares: int_at(v, "/share_count"),
                views: int_at(v, "/view_count"),
                ..Metrics::default()
            };
            Ok((id, Ok(m)))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_body() {
        assert_eq!(video_id("7301000000000000001").as_deref(), Some("7301000000000000001"));
        assert_eq!(video_id("v_pub_url~v2-1.7440000000000000001"), None);
        assert_eq!(
            query_body(&["1".into(), "2".into()]),
            json!({"filters": {"video_ids": ["1", "2"]}})
        );
    }

    #[test]
    fn maps_videos() {
        let json = json!({"data": {"videos": [
            {"id": "7301000000000000001", "like_count": 11, "comment_count": 2, "share_count": 1, "view_count": 340},
            {"id": 7301000000000000002u64, "like_count": 0, "comment_count": 0, "share_count": 0, "view_count": 5}
        ], "cursor": 1700000000000u64, "has_more": false}, "error": {"code": "ok", "message": "", "log_id": "2023"}});
        let out = map_videos(&json).unwrap();
        assert_eq!(
            out["7301000000000000001"],
            Ok(Metrics {
                likes: Some(11),
                comments: Some(2),
                shares: Some(1),
                views: Some(340),
                ..Metrics::default()
            })
        );
        assert_eq!(out["7301000000000000002"].as_ref().unwrap().views, Some(5));
        assert!(map_videos(&json!({"data": {}, "error": {"code": "ok"}})).is_err());
        assert!(map_videos(&json!({"data": {"videos": []}})).unwrap().is_empty());
    }
}
