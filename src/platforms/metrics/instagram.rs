//! Instagram: a media's lifetime insights, one call per media, the Page token in the query. Of the
//! metrics asked for, likes, comments, shares and views are mapped; `saved`, `reach` and
//! `total_interactions` have no field in [`Metrics`]. Instagram's insights may lag up to 48 hours.

use secrecy::SecretString;
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, int, invalid_id, missing_as_not_found, one_by_one};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::publish::is_path_safe;
use crate::platforms::{ApiCtx, PlatformError};

/// The insights asked for (`impressions` and `plays` were retired on 2025-04-21).
pub const METRICS: &str = "likes,comments,shares,saved,reach,views,total_interactions";

/// `GET /{media-id}/insights?metric=…` per media.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    one_by_one(posts, move |post| fetch_one(ctx, token, post)).await
}

async fn fetch_one(ctx: &ApiCtx<'_>, token: &SecretString, post: MetricsRequest<'_>) -> PostMetrics {
    let id = post.platform_post_id;
    if !is_path_safe(id) {
        return Err(invalid_id(ctx.platform, id));
    }
    let path = format!("/{id}/insights?metric={METRICS}");
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Query))
        .await
        .map_err(missing_as_not_found)?;
    map_insights(&json).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// `{"data":[{"name","period":"lifetime","values":[{"value"}],…}]}` (newer versions may put the
/// number in `total_value.value`: read either).
pub fn map_insights(json: &Value) -> Result<Metrics, String> {
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the insights answered without a `data` array")?;
    let mut m = Metrics::default();
    for entry in data {
        let value = int(entry.pointer("/values/0/value")).or_else(|| int(entry.pointer("/total_value/value")));
        match entry.get("name").and_then(Value::as_str) {
            Some("likes") => m.likes = value,
            Some("comments") => m.comments = value,
            Some("shares") => m.shares = value,
            Some("views") => m.views = value,
            _ => {}
        }
    }
    Ok(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, value: i64) -> Value {
        json!({"name": name, "period": "lifetime", "values": [{"value": value}],
               "title": name, "description": "…", "id": format!("17890000000000001/insights/{name}/lifetime")})
    }

    #[test]
    fn maps_the_insights_nikara_keeps() {
        let json = json!({"data": [entry("likes", 5), entry("comments", 2), entry("shares", 1), entry("saved", 4),
                                   entry("reach", 80), entry("views", 120), entry("total_interactions", 12)]});
        let m = map_insights(&json).unwrap();
        assert_eq!(
            m,
            Metrics {
                likes: Some(5),
                comments: Some(2),
                shares: Some(1),
                views: Some(120),
                ..Metrics::default()
            }
        );
    }

    #[test]
    fn total_value_shape_and_missing_metrics() {
        let json = json!({"data": [{"name": "likes", "period": "lifetime", "total_value": {"value": 7}}]});
        let m = map_insights(&json).unwrap();
        assert_eq!((m.likes, m.comments, m.views), (Some(7), None, None));
        assert!(map_insights(&json!({"error": {}})).is_err());
    }
}
