//! X: a text post through `POST /2/tweets`. Reconcile reads the user's timeline since the publish.
//! X refuses a duplicate text with 403 ("duplicate content"): that is a permanent [`PlatformError::Api`].

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{PublishRequest, Published, RECONCILE_PAGE, RECONCILE_SKEW_S, account_id, ensure_covers, in_window};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::reddit::decode_entities;
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// `POST /2/tweets {"text"}` → 201 `{"data":{"id","text"}}`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let request = ctx
        .http
        .post(format!("{}/2/tweets", ctx.api_url))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .bearer_auth(token.expose_secret())
        .json(&json!({ "text": req.text }));
    let json = http::send_json(ctx.platform, request).await?;
    let id = str_at(&json, "/data/id")
        .ok_or_else(|| PlatformError::invalid(ctx.platform, "the post was accepted without `data.id`"))?;
    Ok(Published {
        url: Some(post_url(req.username, &id)),
        platform_post_id: id,
    })
}

/// `https://x.com/{username}/status/{id}`; without a username X's own redirect still finds it.
pub fn post_url(username: Option<&str>, id: &str) -> String {
    match username.map(str::trim).filter(|u| !u.is_empty()) {
        Some(user) => format!("https://x.com/{user}/status/{id}"),
        None => format!("https://x.com/i/web/status/{id}"),
    }
}

/// Reads the user's posts since `since` (less the skew) for one with the same text.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn reconcile(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    since: DateTime<Utc>,
) -> Result<Option<Published>, PlatformError> {
    let user_id = account_id(ctx.platform, req)?;
    let path = timeline_path(user_id, since);
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Bearer)).await?;
    let found = find_in_timeline(&json, req.text, since).map_err(|m| PlatformError::invalid(ctx.platform, m))?;
    Ok(found.map(|id| Published {
        url: Some(post_url(req.username, &id)),
        platform_post_id: id,
    }))
}

/// `/2/users/{id}/tweets?max_results={RECONCILE_PAGE}&start_time=…&tweet.fields=created_at`, the start time
/// `YYYY-MM-DDTHH:mm:ssZ` as X wants it, [`RECONCILE_SKEW_S`] before `since`.
pub fn timeline_path(user_id: &str, since: DateTime<Utc>) -> String {
    let start = (since - chrono::TimeDelta::seconds(RECONCILE_SKEW_S)).format("%Y-%m-%dT%H:%M:%SZ");
    format!("/2/users/{user_id}/tweets?max_results={RECONCILE_PAGE}&start_time={start}&tweet.fields=created_at")
}

/// The newest post of `{"data":[{"id","text","created_at"}],"meta"}` whose text is ours. An empty
/// timeline has no `data` at all (`{"meta":{"result_count":0}}`).
pub fn find_in_timeline(json: &Value, text: &str, since: DateTime<Utc>) -> Result<Option<String>, String> {
    let data = match json.get("data") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(data)) => data,
        Some(_) => return Err("the timeline's `data` is not an array".to_string()),
    };
    let ours = comparable(text);
    let time = |post: &Value| {
        str_at(post, "/created_at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.to_utc())
    };
    let found = data
        .iter()
        .filter_map(|post| {
            let id = str_at(post, "/id")?;
            let at = time(post)?;
            let theirs = comparable(post.get("text").and_then(Value::as_str)?);
            (theirs == ours && in_window(at, since)).then_some((at, id))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, id)| id);
    if found.is_none() {
        ensure_covers(data.len(), data.iter().filter_map(time).min(), since)?;
    }
    Ok(found)
}

/// A post text as X gives it back, made comparable with ours: X returns `&`, `<`, `>` as HTML
/// entities and replaces every link with a `t.co` one, so entities are decoded, links masked and
/// whitespace collapsed. Otherwise the text must be the same.
pub fn comparable(text: &str) -> String {
    decode_entities(text)
        .split_whitespace()
        .map(|word| {
            if word.starts_with("http://") || word.starts_with("https://") {
                "<link>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn since() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T05:00:00.250Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn urls() {
        assert_eq!(
            post_url(Some("XDevelopers"), "1861234567890"),
            "https://x.com/XDevelopers/status/1861234567890"
        );
        assert_eq!(post_url(None, "1"), "https://x.com/i/web/status/1");
        assert_eq!(
            timeline_path("2244994945", since()),
            "/2/users/2244994945/tweets?max_results=100&start_time=2026-11-27T04:59:50Z&tweet.fields=created_at"
        );
    }

    #[test]
    fn finds_our_post_despite_entities_and_links() {
        let text = "Bread & butter <3 https://bakery.example/menu?a=1";
        let timeline = json!({"data": [
            {"id": "1862", "text": "Another one", "created_at": "2026-11-27T05:00:20.000Z", "edit_history_tweet_ids": ["1862"]},
            {"id": "1861", "text": "Bread &amp; butter &lt;3 https://t.co/AbC123", "created_at": "2026-11-27T05:00:01.000Z", "edit_history_tweet_ids": ["1861"]},
            {"id": "1860", "text": "Bread &amp; butter &lt;3 https://t.co/AbC122", "created_at": "2026-11-27T04:00:00.000Z"}
        ], "meta": {"result_count": 3, "newest_id": "1862", "oldest_id": "1860"}});
        assert_eq!(
            find_in_timeline(&timeline, text, since()).unwrap().as_deref(),
            Some("1861")
        );
        assert_eq!(find_in_timeline(&timeline, "Bread & butter", since()).unwrap(), None);
        assert_eq!(
            find_in_timeline(&json!({"meta": {"result_count": 0}}), text, since()).unwrap(),
            None
        );
        assert!(find_in_timeline(&json!({"data": {"id": "1"}}), text, since()).is_err());
    }

    #[test]
    fn comparable_text() {
        assert_eq!(comparable("a &amp;  b\nhttp://x.y/z"), "a & b <link>");
        assert_ne!(comparable("hello"), comparable("hello!"));
    }
}
