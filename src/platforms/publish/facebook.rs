//! Facebook: a Page post, as the Page (the account's token is the Page token). Text goes to
//! `/{page_id}/feed`; with media, the first URL is published as a photo with the text as caption.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{PublishRequest, Published, account_id, in_window, parse_meta_time, same_text};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// The Page's latest posts, newest first: enough to find one published moments before a crash.
const FEED_FIELDS: &str = "fields=id,message,created_time&limit=100";

/// `POST /{page_id}/feed` (text) or `POST /{page_id}/photos` (first media URL, text as caption).
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let page_id = account_id(ctx.platform, req)?;
    let (path, form) = publish_call(page_id, req);
    let json = http::send_json(ctx.platform, meta_form(ctx, &path, token, form)).await?;
    map_published(ctx, &json)
}

/// The edge and form fields of the publish call (without the token).
pub fn publish_call(page_id: &str, req: &PublishRequest<'_>) -> (String, Vec<(&'static str, String)>) {
    match req.media_urls.first() {
        None => (format!("/{page_id}/feed"), vec![("message", req.text.to_string())]),
        Some(media) => (
            format!("/{page_id}/photos"),
            vec![("url", media.clone()), ("caption", req.text.to_string())],
        ),
    }
}

/// `/feed` answers `{"id":"{page_id}_{post_id}"}`; `/photos` answers `{"id":"{photo_id}","post_id"}`.
/// A photo answer without `post_id` still names a published photo, whose own page works as a URL.
pub fn map_published(ctx: &ApiCtx<'_>, json: &Value) -> Result<Published, PlatformError> {
    let id = str_at(json, "/post_id")
        .or_else(|| str_at(json, "/id"))
        .ok_or_else(|| PlatformError::invalid(ctx.platform, "the publish answer has no `id`"))?;
    Ok(Published {
        url: Some(post_url(&id)),
        platform_post_id: id,
    })
}

pub fn post_url(post_id: &str) -> String {
    format!("https://www.facebook.com/{post_id}")
}

/// A Graph API form POST to `{api}{path}`, the token as the `access_token` field.
pub fn meta_form(
    ctx: &ApiCtx<'_>,
    path: &str,
    token: &SecretString,
    mut form: Vec<(&'static str, String)>,
) -> reqwest::RequestBuilder {
    form.push(("access_token", token.expose_secret().to_string()));
    ctx.http
        .post(format!("{}{}", ctx.api_url, path))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .form(&form)
}

/// Looks through the Page's latest posts for one with the same message, dated at or after `since`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn reconcile(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    since: DateTime<Utc>,
) -> Result<Option<Published>, PlatformError> {
    let page_id = account_id(ctx.platform, req)?;
    let path = format!("/{page_id}/feed?{FEED_FIELDS}");
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Query)).await?;
    let found = find_in_feed(&json, req.text, since).map_err(|m| PlatformError::invalid(ctx.platform, m))?;
    Ok(found.map(|id| Published {
        url: Some(post_url(&id)),
        platform_post_id: id,
    }))
}

/// The newest post of `{"data":[{"id","message","created_time"}]}` with message `text`, dated at or
/// after `since` (less the skew). Entries without a date or message are not ours.
pub fn find_in_feed(json: &Value, text: &str, since: DateTime<Utc>) -> Result<Option<String>, String> {
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the feed answered without a `data` array")?;
    let found = data
        .iter()
        .filter_map(|post| {
            let id = str_at(post, "/id")?;
            let message = post.get("message").and_then(Value::as_str)?;
            let at = str_at(post, "/created_time").and_then(|t| parse_meta_time(&t))?;
            (same_text(message, text) && in_window(at, since)).then_some((at, id))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, id)| id);
    if found.is_none() {
        let oldest = data
            .iter()
            .filter_map(|p| str_at(p, "/created_time").and_then(|t| parse_meta_time(&t)))
            .min();
        super::ensure_covers(data.len(), oldest, since)?;
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::platform::Platform;
    use serde_json::{Map, json};

    fn req<'a>(media: &'a [String], options: &'a Map<String, Value>, meta: &'a Value) -> PublishRequest<'a> {
        PublishRequest {
            text: "Fresh bread at 7",
            title: None,
            media_urls: media,
            options,
            external_id: "101",
            username: None,
            metadata: meta,
        }
    }

    fn ctx(http: &reqwest::Client) -> ApiCtx<'_> {
        ApiCtx {
            http,
            platform: Platform::Facebook,
            api_url: "https://graph.facebook.com/v21.0",
            user_agent: "nikara",
        }
    }

    #[test]
    fn text_goes_to_the_feed_and_media_to_photos() {
        let (options, meta) = (Map::new(), Value::Null);
        let (path, form) = publish_call("101", &req(&[], &options, &meta));
        assert_eq!(path, "/101/feed");
        assert_eq!(form, vec![("message", "Fresh bread at 7".to_string())]);
        let media = vec!["https://cdn.example/bread.jpg".to_string()];
        let (path, form) = publish_call("101", &req(&media, &options, &meta));
        assert_eq!(path, "/101/photos");
        assert_eq!(
            form,
            vec![
                ("url", "https://cdn.example/bread.jpg".to_string()),
                ("caption", "Fresh bread at 7".to_string())
            ]
        );
    }

    #[test]
    fn maps_feed_and_photo_answers() {
        let http = reqwest::Client::new();
        let c = ctx(&http);
        let feed = map_published(&c, &json!({"id": "101_555"})).unwrap();
        assert_eq!(feed.platform_post_id, "101_555");
        assert_eq!(feed.url.as_deref(), Some("https://www.facebook.com/101_555"));
        let photo = map_published(&c, &json!({"id": "777", "post_id": "101_556"})).unwrap();
        assert_eq!(photo.platform_post_id, "101_556");
        assert!(matches!(
            map_published(&c, &json!({})),
            Err(PlatformError::Invalid { .. })
        ));
    }

    #[test]
    fn a_bad_page_id_never_reaches_a_url() {
        let (options, meta) = (Map::new(), Value::Null);
        let mut r = req(&[], &options, &meta);
        r.external_id = "101/../me";
        assert!(matches!(
            account_id(Platform::Facebook, &r),
            Err(PlatformError::Api { status: 422, ref code, .. }) if code.as_deref() == Some("invalid_account")
        ));
    }

    #[test]
    fn finds_the_newest_matching_post_in_the_window() {
        let since = DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z").unwrap().to_utc();
        let feed = json!({"data": [
            {"id": "101_9", "message": "Fresh bread at 7", "created_time": "2026-11-27T05:00:30+0000"},
            {"id": "101_8", "message": "Something else", "created_time": "2026-11-27T05:00:20+0000"},
            {"id": "101_7", "message": "Fresh bread at 7", "created_time": "2026-11-27T04:59:55+0000"},
            {"id": "101_6", "message": "Fresh bread at 7", "created_time": "2026-11-26T05:00:00+0000"},
            {"id": "101_5", "created_time": "2026-11-27T05:01:00+0000"}
        ], "paging": {"cursors": {"before": "a", "after": "b"}}});
        assert_eq!(
            find_in_feed(&feed, "Fresh bread at 7", since).unwrap().as_deref(),
            Some("101_9")
        );
        // Posts older than `since` less the skew are someone else's (an earlier, identical post).
        let later = since + chrono::TimeDelta::seconds(45);
        assert_eq!(find_in_feed(&feed, "Fresh bread at 7", later).unwrap(), None);
        let skewed = json!({"data": [{"id": "101_7", "message": "Fresh bread at 7", "created_time": "2026-11-27T04:59:55+0000"}]});
        assert_eq!(
            find_in_feed(&skewed, "Fresh bread at 7", since).unwrap().as_deref(),
            Some("101_7")
        );
        assert_eq!(find_in_feed(&json!({"data": []}), "x", since).unwrap(), None);
        assert!(find_in_feed(&json!({"error": {}}), "x", since).is_err());
    }
}
