//! YouTube: `statistics` of up to [`YOUTUBE_BATCH`] videos per `GET /youtube/v3/videos`, the counts
//! as strings: views = `viewCount`, likes = `likeCount` (absent when the owner hides it), comments =
//! `commentCount` (absent when comments are off). Unknown ids are just absent from `items`. Quota
//! refusals (403 `quotaExceeded`) are rate limits.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, YOUTUBE_BATCH, batched, id_of, int_at};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::publish::is_path_safe;
use crate::platforms::publish::youtube::classify_google;
use crate::platforms::{ApiCtx, PlatformError};

/// One `videos.list` per [`YOUTUBE_BATCH`] ids.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    batched(ctx.platform, posts, YOUTUBE_BATCH, video_id, move |ids| {
        list(ctx, token, ids)
    })
    .await
}

async fn list(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    ids: Vec<String>,
) -> Result<HashMap<String, PostMetrics>, PlatformError> {
    let platform = ctx.platform;
    let resp = http::get(ctx, &videos_path(&ids), token, TokenIn::Bearer)
        .send()
        .await
        .map_err(|e| http::transport(platform, &e))?;
    let status = resp.status();
    let retry_after = http::retry_after_from_headers(platform, resp.headers(), chrono::Utc::now());
    let text = resp.text().await.map_err(|e| http::transport(platform, &e))?;
    if !status.is_success() {
        return Err(classify_google(status, &text, retry_after));
    }
    let json: Value = serde_json::from_str(&text)
        .map_err(|_| PlatformError::invalid(platform, format!("expected JSON, got: {}", http::snippet(&text))))?;
    map_videos(&json).map_err(|m| PlatformError::invalid(platform, m))
}

/// A video id: letters, digits, `_` and `-`.
pub fn video_id(id: &str) -> Option<String> {
    is_path_safe(id).then(|| id.to_string())
}

pub fn videos_path(ids: &[String]) -> String {
    format!("/youtube/v3/videos?part=statistics&id={}", ids.join(","))
}

/// `{"kind":"youtube#videoListResponse","items":[{"id","statistics":{"viewCount":"12",…}}],…}`.
pub fn map_videos(json: &Value) -> Result<HashMap<String, PostMetrics>, String> {
    let items = json
        .get("items")
        .and_then(Value::as_array)
        .ok_or("the video list answered without `items`")?;
    items
        .iter()
        .map(|item| {
            let id = id_of(item.get("id")).ok_or("a video of the list has no `id`")?;
            let m = Metrics {
                likes: int_at(item, "/statistics/likeCount"),
                comments: int_at(item, "/statistics/commentCount"),
                views: int_at(item, "/statistics/viewCount"),
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
    use serde_json::json;

    #[test]
    fn ids_and_path() {
        assert_eq!(video_id("dQw4w9WgXcQ").as_deref(), Some("dQw4w9WgXcQ"));
        assert_eq!(video_id("a,b"), None);
        assert_eq!(
            videos_path(&["a".into(), "b-_".into()]),
            "/youtube/v3/videos?part=statistics&id=a,b-_"
        );
    }

    #[test]
    fn string_counts_are_parsed() {
        let json = json!({"kind": "youtube#videoListResponse", "etag": "x", "items": [
            {"kind": "youtube#video", "etag": "y", "id": "dQw4w9WgXcQ",
             "statistics": {"viewCount": "1500000000", "likeCount": "17000000", "favoriteCount": "0", "commentCount": "2300000"}},
            {"kind": "youtube#video", "etag": "z", "id": "hidden00000",
             "statistics": {"viewCount": "12", "favoriteCount": "0"}}
        ], "pageInfo": {"totalResults": 2, "resultsPerPage": 2}});
        let out = map_videos(&json).unwrap();
        assert_eq!(
            out["dQw4w9WgXcQ"],
            Ok(Metrics {
                likes: Some(17_000_000),
                comments: Some(2_300_000),
                views: Some(1_500_000_000),
                ..Metrics::default()
            })
        );
        let hidden = out["hidden00000"].as_ref().unwrap();
        assert_eq!((hidden.views, hidden.likes, hidden.comments), (Some(12), None, None));
        assert!(map_videos(&json!({"items": []})).unwrap().is_empty());
        assert!(map_videos(&json!({"error": {}})).is_err());
    }
}
