//! X: `public_metrics` of up to [`X_BATCH`] posts per `GET /2/tweets?ids=…`. likes = `like_count`,
//! comments = `reply_count`, shares = `retweet_count` + `quote_count`, impressions =
//! `impression_count` (`bookmark_count` has no field in [`Metrics`]). Posts X cannot give come back
//! one by one in `errors` (`resource-not-found` → [`super::not_found`]), with HTTP 200.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, X_BATCH, batched, id_of, int_at};
use crate::domain::platform::Platform;
use crate::platforms::http::{self, TokenIn};
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// One lookup per [`X_BATCH`] ids.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    batched(ctx.platform, posts, X_BATCH, tweet_id, move |ids| {
        lookup(ctx, token, ids)
    })
    .await
}

async fn lookup(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    ids: Vec<String>,
) -> Result<HashMap<String, PostMetrics>, PlatformError> {
    let json = http::send_json(ctx.platform, http::get(ctx, &lookup_path(&ids), token, TokenIn::Bearer)).await?;
    map_lookup(&json).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// A tweet id is digits.
pub fn tweet_id(id: &str) -> Option<String> {
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

pub fn lookup_path(ids: &[String]) -> String {
    format!("/2/tweets?ids={}&tweet.fields=public_metrics", ids.join(","))
}

/// `{"data":[{"id","text","public_metrics":{…}}],"errors":[{"resource_id","type","title","detail"}]}`;
/// either part may be absent, not both.
pub fn map_lookup(json: &Value) -> Result<HashMap<String, PostMetrics>, String> {
    let data = json.get("data").and_then(Value::as_array);
    let errors = json.get("errors").and_then(Value::as_array);
    if data.is_none() && errors.is_none() {
        return Err("the lookup answered neither `data` nor `errors`".to_string());
    }
    let mut out = HashMap::new();
    for tweet in data.into_iter().flatten() {
        let id = id_of(tweet.get("id")).ok_or("a post of the lookup has no `id`")?;
        out.insert(id, Ok(map_public_metrics(tweet)));
    }
    for error in errors.into_iter().flatten() {
        if let Some(id) = id_of(error.get("resource_id")).or_else(|| id_of(error.get("value"))) {
            out.entry(id.clone()).or_insert_with(|| Err(post_error(error)));
        }
    }
    Ok(out)
}

fn map_public_metrics(tweet: &Value) -> Metrics {
    let pm = |name: &str| int_at(tweet, &format!("/public_metrics/{name}"));
    let shares = match (pm("retweet_count"), pm("quote_count")) {
        (None, None) => None,
        (r, q) => Some(r.unwrap_or(0).saturating_add(q.unwrap_or(0))),
    };
    Metrics {
        likes: pm("like_count"),
        comments: pm("reply_count"),
        shares,
        views: None,
        impressions: pm("impression_count"),
        reactions: Default::default(),
    }
}

/// One entry of `errors`: not found → [`super::not_found`]; not authorized (a protected or suspended
/// account) → 403; else 400, the code the problem type's last segment.
fn post_error(error: &Value) -> PlatformError {
    let kind = str_at(error, "/type").unwrap_or_default();
    let kind = kind.rsplit('/').next().unwrap_or_default().to_string();
    let message = str_at(error, "/detail")
        .or_else(|| str_at(error, "/title"))
        .unwrap_or_else(|| kind.clone());
    if kind == "resource-not-found" {
        return PlatformError::Api {
            platform: Platform::X,
            status: 404,
            code: Some("not_found".to_string()),
            message,
        };
    }
    PlatformError::Api {
        platform: Platform::X,
        status: if kind == "not-authorized-for-resource" {
            403
        } else {
            400
        },
        code: Some(if kind.is_empty() { "error".to_string() } else { kind }),
        message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::platforms::metrics::is_not_found;
    use serde_json::json;

    #[test]
    fn ids_and_path() {
        assert_eq!(tweet_id("1861234567890").as_deref(), Some("1861234567890"));
        assert_eq!(tweet_id("18612,1"), None);
        assert_eq!(tweet_id(""), None);
        assert_eq!(
            lookup_path(&["1".into(), "2".into()]),
            "/2/tweets?ids=1,2&tweet.fields=public_metrics"
        );
    }

    #[test]
    fn maps_found_and_missing_posts() {
        let json = json!({
            "data": [{"id": "1861", "text": "hello", "edit_history_tweet_ids": ["1861"],
                      "public_metrics": {"retweet_count": 2, "reply_count": 3, "like_count": 10, "quote_count": 1,
                                         "bookmark_count": 4, "impression_count": 250}}],
            "errors": [
                {"value": "1862", "detail": "Could not find tweet with ids: [1862].", "title": "Not Found Error",
                 "resource_type": "tweet", "parameter": "ids", "resource_id": "1862",
                 "type": "https://api.twitter.com/2/problems/resource-not-found"},
                {"value": "1863", "detail": "Sorry, you are not authorized to see the Tweet with ids: [1863].",
                 "title": "Authorization Error", "resource_type": "tweet", "parameter": "ids", "resource_id": "1863",
                 "type": "https://api.twitter.com/2/problems/not-authorized-for-resource"}
            ]
        });
        let out = map_lookup(&json).unwrap();
        let m = out["1861"].as_ref().unwrap();
        assert_eq!(
            *m,
            Metrics {
                likes: Some(10),
                comments: Some(3),
                shares: Some(3),
                impressions: Some(250),
                ..Metrics::default()
            }
        );
        let missing = out["1862"].as_ref().unwrap_err();
        assert!(is_not_found(missing), "{missing:?}");
        assert!(missing.to_string().contains("Could not find tweet"));
        assert!(matches!(out["1863"], Err(PlatformError::Api { status: 403, .. })));
    }

    #[test]
    fn only_errors_or_nothing() {
        let all_missing =
            json!({"errors": [{"resource_id": "9", "type": "https://api.twitter.com/2/problems/resource-not-found"}]});
        assert!(is_not_found(
            map_lookup(&all_missing).unwrap()["9"].as_ref().unwrap_err()
        ));
        assert!(map_lookup(&json!({"meta": {}})).is_err());
        let bare = json!({"data": [{"id": "5", "text": "no metrics"}]});
        assert_eq!(map_lookup(&bare).unwrap()["5"], Ok(Metrics::default()));
    }
}
