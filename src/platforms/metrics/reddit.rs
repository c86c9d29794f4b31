//! Reddit: up to [`REDDIT_BATCH`] submissions per `GET /api/info?id=t3_a,t3_b`. likes = `ups`
//! (else `score`), comments = `num_comments`; Reddit reports no shares or views. Unknown fullnames
//! are just absent from the listing.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, REDDIT_BATCH, batched, int_at};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// One listing per [`REDDIT_BATCH`] fullnames.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    batched(ctx.platform, posts, REDDIT_BATCH, fullname, move |names| {
        info(ctx, token, names)
    })
    .await
}

async fn info(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    names: Vec<String>,
) -> Result<HashMap<String, PostMetrics>, PlatformError> {
    let json = http::send_json(ctx.platform, http::get(ctx, &info_path(&names), token, TokenIn::Bearer)).await?;
    map_listing(&json).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// The submission's fullname `t3_{base36}` (a bare base36 id gets the prefix).
pub fn fullname(id: &str) -> Option<String> {
    let base36 = id.strip_prefix("t3_").unwrap_or(id);
    (!base36.is_empty() && base36.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .then(|| format!("t3_{base36}"))
}

pub fn info_path(names: &[String]) -> String {
    format!("/api/info?id={}", names.join(","))
}

/// `{"kind":"Listing","data":{"children":[{"kind":"t3","data":{"name","ups","score","num_comments",…}}]}}`.
pub fn map_listing(json: &Value) -> Result<HashMap<String, PostMetrics>, String> {
    let children = json
        .pointer("/data/children")
        .and_then(Value::as_array)
        .ok_or("the listing answered without `data.children`")?;
    children
        .iter()
        .map(|child| {
            let name = str_at(child, "/data/name").ok_or("a listing entry has no `data.name`")?;
            let m = Metrics {
                likes: int_at(child, "/data/ups").or_else(|| int_at(child, "/data/score")),
                comments: int_at(child, "/data/num_comments"),
                ..Metrics::default()
            };
            Ok((name, Ok(m)))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fullnames_and_path() {
        assert_eq!(fullname("t3_1abc2").as_deref(), Some("t3_1abc2"));
        assert_eq!(fullname("1abc2").as_deref(), Some("t3_1abc2"));
        assert_eq!(fullname("t3_"), None);
        assert_eq!(fullname("t3_a,t3_b"), None);
        assert_eq!(fullname("t1_abc").as_deref(), None);
        assert_eq!(info_path(&["t3_a".into(), "t3_b".into()]), "/api/info?id=t3_a,t3_b");
    }

    #[test]
    fn maps_the_listing() {
        let json = json!({"kind": "Listing", "data": {"after": null, "dist": 2, "modhash": "", "geo_filter": "",
            "children": [
                {"kind": "t3", "data": {"name": "t3_1abc2", "id": "1abc2", "title": "Hi", "score": 15, "ups": 15,
                                        "downs": 0, "upvote_ratio": 0.94, "num_comments": 4, "subreddit": "test"}},
                {"kind": "t3", "data": {"name": "t3_1abc3", "score": 2, "num_comments": 0}}
            ], "before": null}});
        let out = map_listing(&json).unwrap();
        assert_eq!(
            out["t3_1abc2"],
            Ok(Metrics {
                likes: Some(15),
                comments: Some(4),
                ..Metrics::default()
            })
        );
        assert_eq!(out["t3_1abc3"].as_ref().unwrap().likes, Some(2));
        assert!(map_listing(&json!({"json": {"errors": []}})).is_err());
    }
}
