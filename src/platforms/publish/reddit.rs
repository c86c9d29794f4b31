//! Reddit: a self (text) or link submission to `options.subreddit`. Reddit reports refusals on
//! HTTP 200 in `json.errors`, classified by [`http::read_json`]; its `RATELIMIT` refusal ("try again
//! in 9 minutes") becomes a [`PlatformError::RateLimited`] with that wait. Every call sends the
//! User-Agent Reddit requires.

use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{PublishRequest, Published, in_window, is_path_safe, refusal, same_text};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::reddit::decode_entities;
use crate::platforms::{ApiCtx, PlatformError, str_at};

const REDDIT: &str = "https://www.reddit.com";

/// `POST /api/submit`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let form = submit_form(req).map_err(|(code, message)| refusal(ctx.platform, code, message))?;
    let request = ctx
        .http
        .post(format!("{}/api/submit", ctx.api_url))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .bearer_auth(token.expose_secret())
        .form(&form);
    let json = http::send_json(ctx.platform, request)
        .await
        .map_err(rate_limit_from_message)?;
    map_submitted(&json)
        .ok_or_else(|| PlatformError::invalid(ctx.platform, "the submission was accepted without `json.data.name`"))
}

/// The submit form, or the refusal code and message when the request cannot be a submission.
pub fn submit_form(req: &PublishRequest<'_>) -> Result<Vec<(&'static str, String)>, (&'static str, String)> {
    let subreddit = req
        .option("subreddit")
        .map(subreddit_name)
        .filter(|s| !s.is_empty())
        .ok_or(("missing_subreddit", "a Reddit post needs a subreddit".to_string()))?;
    let title = req
        .title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(("missing_title", "a Reddit post needs a title".to_string()))?;
    let mut form = vec![
        ("api_type", "json".to_string()),
        ("sr", subreddit.to_string()),
        ("title", title.to_string()),
    ];
    if req.option("kind") == Some("link") {
        let url = req
            .media_urls
            .first()
            .filter(|u| !u.trim().is_empty())
            .ok_or(("missing_media", "a Reddit link post needs a URL".to_string()))?;
        form.insert(1, ("kind", "link".to_string()));
        form.push(("url", url.clone()));
    } else {
        form.insert(1, ("kind", "self".to_string()));
        form.push(("text", req.text.to_string()));
    }
    Ok(form)
}

/// `r/rust`, `/r/rust/` and `rust` all name `rust`.
pub fn subreddit_name(s: &str) -> &str {
    let s = s.trim().trim_matches('/');
    s.strip_prefix("r/").unwrap_or(s)
}

/// `{"json":{"errors":[],"data":{"url","id","name":"t3_…"}}}`; the fullname is the post id.
pub fn map_submitted(json: &Value) -> Option<Published> {
    let name =
        str_at(json, "/json/data/name").or_else(|| str_at(json, "/json/data/id").map(|id| format!("t3_{id}")))?;
    Some(Published {
        url: str_at(json, "/json/data/url"),
        platform_post_id: name,
    })
}

/// Reddit's `RATELIMIT` refusal as a rate limit, with the wait its message names.
pub fn rate_limit_from_message(err: PlatformError) -> PlatformError {
    match err {
        PlatformError::Api {
            platform,
            code: Some(code),
            message,
            ..
        } if code == "RATELIMIT" => PlatformError::RateLimited {
            platform,
            retry_after_s: wait_in_message(&message),
            message,
        },
        other => other,
    }
}

/// "…try again in 9 minutes." / "…Take a break for 30 seconds…" → seconds.
pub fn wait_in_message(message: &str) -> Option<u64> {
    let words: Vec<String> = message
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_ascii_lowercase())
        .collect();
    words.windows(2).find_map(|pair| {
        let n: u64 = pair[0].parse().ok()?;
        let unit = pair[1].as_str();
        if unit.starts_with("millisecond") {
            Some(n.div_ceil(1000).max(1))
        } else if unit.starts_with("second") {
            Some(n)
        } else if unit.starts_with("minute") {
            Some(n * 60)
        } else if unit.starts_with("hour") {
            Some(n * 3600)
        } else {
            None
        }
    })
}

/// Looks through the user's latest submissions for one with the same title in the same subreddit.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn reconcile(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    since: DateTime<Utc>,
) -> Result<Option<Published>, PlatformError> {
    let username = req.username.filter(|u| is_path_safe(u)).ok_or_else(|| {
        refusal(
            ctx.platform,
            "invalid_account",
            "the Reddit account has no usable username",
        )
    })?;
    let (Some(title), Some(subreddit)) = (req.title, req.option("subreddit")) else {
        // Nothing without a title and subreddit was ever submitted.
        return Ok(None);
    };
    let path = format!("/user/{username}/submitted?limit={}&sort=new", super::RECONCILE_PAGE);
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Bearer)).await?;
    find_in_listing(&json, title, subreddit_name(subreddit), since).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// The newest `t3` of a `Listing` with our title in our subreddit, created at or after `since`
/// (less the skew). Reddit HTML-escapes titles in JSON, so they are decoded first.
pub fn find_in_listing(
    json: &Value,
    title: &str,
    subreddit: &str,
    since: DateTime<Utc>,
) -> Result<Option<Published>, String> {
    let children = json
        .pointer("/data/children")
        .and_then(Value::as_array)
        .ok_or("the listing has no `data.children` array")?;
    let found = children
        .iter()
        .filter_map(|child| {
            let post = child.get("data")?;
            let name = str_at(post, "/name")?;
            let their_title = decode_entities(post.get("title").and_then(Value::as_str)?);
            let their_sr = str_at(post, "/subreddit")?;
            let created = post.get("created_utc").and_then(Value::as_f64)?;
            let at = Utc.timestamp_opt(created.floor() as i64, 0).single()?;
            let ours = same_text(&their_title, title) && their_sr.eq_ignore_ascii_case(subreddit);
            (ours && in_window(at, since)).then(|| {
                let url = str_at(post, "/permalink")
                    .map(|p| format!("{REDDIT}{p}"))
                    .or_else(|| str_at(post, "/url"));
                (
                    at,
                    Published {
                        platform_post_id: name,
                        url,
                    },
                )
            })
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, published)| published);
    if found.is_none() {
        let oldest = children
            .iter()
            .filter_map(|c| c.pointer("/data/created_utc").and_then(Value::as_f64))
            .filter_map(|t| Utc.timestamp_opt(t.floor() as i64, 0).single())
            .min();
        super::ensure_covers(children.len(), oldest, since)?;
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::platform::Platform;
    use serde_json::{Map, json};

    fn options(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
    }

    fn req<'a>(options: &'a Map<String, Value>, media: &'a [String], title: Option<&'a str>) -> PublishRequest<'a> {
        PublishRequest {
            text: "Body text",
            title,
            media_urls: media,
            options,
            external_id: "1w72",
            username: Some("spez"),
            metadata: &Value::Null,
        }
    }

    #[test]
    fn self_and_link_forms() {
        let opts = options(&[("subreddit", "r/rust")]);
        assert_eq!(
            submit_form(&req(&opts, &[], Some("Hello"))).unwrap(),
            vec![
                ("api_type", "json".to_string()),
                ("kind", "self".to_string()),
                ("sr", "rust".to_string()),
                ("title", "Hello".to_string()),
                ("text", "Body text".to_string())
            ]
        );
        let link = options(&[("subreddit", "rust"), ("kind", "link")]);
        let media = vec!["https://blog.example/post".to_string()];
        assert_eq!(
            submit_form(&req(&link, &media, Some("Hello"))).unwrap(),
            vec![
                ("api_type", "json".to_string()),
                ("kind", "link".to_string()),
                ("sr", "rust".to_string()),
                ("title", "Hello".to_string()),
                ("url", "https://blog.example/post".to_string())
            ]
        );
        assert_eq!(
            submit_form(&req(&link, &[], Some("Hello"))).unwrap_err().0,
            "missing_media"
        );
        assert_eq!(submit_form(&req(&opts, &[], None)).unwrap_err().0, "missing_title");
        assert_eq!(
            submit_form(&req(&Map::new(), &[], Some("x"))).unwrap_err().0,
            "missing_subreddit"
        );
        assert_eq!(subreddit_name("/r/rust/"), "rust");
    }

    #[test]
    fn maps_the_submission() {
        let ok = json!({"json": {"errors": [], "data": {"url": "https://www.reddit.com/r/rust/comments/1h0abc/hello/", "drafts_count": 0, "id": "1h0abc", "name": "t3_1h0abc"}}});
        assert_eq!(
            map_submitted(&ok),
            Some(Published {
                platform_post_id: "t3_1h0abc".into(),
                url: Some("https://www.reddit.com/r/rust/comments/1h0abc/hello/".into())
            })
        );
        assert_eq!(
            map_submitted(&json!({"json": {"errors": [], "data": {"id": "1h0abc"}}}))
                .unwrap()
                .platform_post_id,
            "t3_1h0abc"
        );
        assert_eq!(map_submitted(&json!({"json": {"errors": []}})), None);
    }

    #[test]
    fn ratelimit_refusals_become_rate_limits() {
        let body = json!({"json": {"errors": [["RATELIMIT", "Looks like you've been doing that a lot. Take a break for 9 minutes before trying again.", "ratelimit"]]}});
        let err = http::classify(Platform::Reddit, reqwest::StatusCode::OK, &body, None).unwrap();
        assert!(matches!(
            rate_limit_from_message(err),
            PlatformError::RateLimited {
                retry_after_s: Some(540),
                ..
            }
        ));
        let other = json!({"json": {"errors": [["SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"]]}});
        let err = http::classify(Platform::Reddit, reqwest::StatusCode::OK, &other, None).unwrap();
        assert!(matches!(
            rate_limit_from_message(err),
            PlatformError::Api { status: 400, .. }
        ));
        assert_eq!(
            wait_in_message("you are doing that too much. try again in 30 seconds."),
            Some(30)
        );
        assert_eq!(wait_in_message("try again in 1 minute."), Some(60));
        assert_eq!(wait_in_message("try again later"), None);
    }

    #[test]
    fn finds_our_submission_in_the_listing() {
        let since = DateTime::parse_from_rfc3339("2025-11-27T05:00:00Z").unwrap().to_utc();
        let t = since.timestamp() as f64;
        let listing = json!({"kind": "Listing", "data": {"after": null, "dist": 3, "children": [
            {"kind": "t3", "data": {"name": "t3_c", "title": "Fish &amp; chips", "subreddit": "Food", "created_utc": t + 30.0,
                                     "url": "https://www.reddit.com/r/Food/comments/c/fish_chips/", "permalink": "/r/Food/comments/c/fish_chips/"}},
            {"kind": "t3", "data": {"name": "t3_b", "title": "Fish &amp; chips", "subreddit": "rust", "created_utc": t + 5.0,
                                     "url": "https://blog.example/post", "permalink": "/r/rust/comments/b/fish_chips/"}},
            {"kind": "t3", "data": {"name": "t3_a", "title": "Fish &amp; chips", "subreddit": "rust", "created_utc": t - 3600.0,
                                     "url": "https://www.reddit.com/r/rust/comments/a/fish_chips/", "permalink": "/r/rust/comments/a/fish_chips/"}}
        ]}});
        assert_eq!(
            find_in_listing(&listing, "Fish & chips", "rust", since).unwrap(),
            Some(Published {
                platform_post_id: "t3_b".into(),
                url: Some("https://www.reddit.com/r/rust/comments/b/fish_chips/".into())
            })
        );
        assert_eq!(
            find_in_listing(&listing, "Fish & chips", "food", since)
                .unwrap()
                .unwrap()
                .platform_post_id,
            "t3_c"
        );
        assert_eq!(find_in_listing(&listing, "Fish", "rust", since).unwrap(), None);
        assert!(find_in_listing(&json!({"kind": "Listing"}), "x", "rust", since).is_err());
    }
}
