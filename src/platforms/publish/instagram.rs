//! Instagram: a container from the first media URL (an image, or a Reel for `.mp4`/`.mov`), polled
//! until ready for videos, then published; the permalink is read afterwards. Calls use the Page token.
//!
//! The call that creates the post is `media_publish`: a failure before it (container refused,
//! `ERROR`/`EXPIRED`, still processing after the poll budget) means nothing was published.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use super::facebook::meta_form;
use super::{
    POLL, Poll, PublishRequest, Published, account_id, in_window, is_path_safe, is_video_url, parse_meta_time,
    poll_until, refusal, same_text,
};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// The account's latest media, newest first.
const MEDIA_FIELDS: &str = "fields=id,caption,timestamp&limit=100";

/// `POST /{ig_id}/media` → (video: poll `GET /{container}?fields=status_code`) →
/// `POST /{ig_id}/media_publish` → `GET /{media_id}?fields=permalink`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let platform = ctx.platform;
    let ig_id = account_id(platform, req)?;
    let media = req.first_media(platform)?;
    let video = is_video_url(media);
    let created = http::send_json(
        platform,
        meta_form(ctx, &format!("/{ig_id}/media"), token, container_form(media, req.text)),
    )
    .await?;
    let container = graph_id(ctx, &created, "the media container")?;
    if video {
        let path = format!("/{container}?fields=status_code");
        poll_until(platform, "the Instagram video container", false, POLL, || async {
            let json = http::send_json(platform, http::get(ctx, &path, token, TokenIn::Query)).await?;
            Ok(read_container_status(&json))
        })
        .await?;
    }
    let published = http::send_json(
        platform,
        meta_form(
            ctx,
            &format!("/{ig_id}/media_publish"),
            token,
            vec![("creation_id", container)],
        ),
    )
    .await?;
    let media_id = graph_id(ctx, &published, "the published media")?;
    let url = permalink(ctx, token, &media_id).await;
    Ok(Published {
        platform_post_id: media_id,
        url,
    })
}

/// The form of `POST /{ig_id}/media` (without the token).
pub fn container_form(media: &str, caption: &str) -> Vec<(&'static str, String)> {
    if is_video_url(media) {
        vec![
            ("media_type", "REELS".to_string()),
            ("video_url", media.to_string()),
            ("caption", caption.to_string()),
        ]
    } else {
        vec![("image_url", media.to_string()), ("caption", caption.to_string())]
    }
}

/// `{"status_code":"IN_PROGRESS"|"FINISHED"|"ERROR"|"EXPIRED","id"}`. `ERROR` and `EXPIRED` are
/// final: the container will never publish, so the publish fails for good with Instagram's
/// `status` text when it sent one.
pub fn read_container_status(json: &Value) -> Poll<()> {
    let platform = crate::domain::platform::Platform::Instagram;
    match str_at(json, "/status_code").as_deref() {
        Some("FINISHED" | "PUBLISHED") => Poll::Done(()),
        Some(code @ ("ERROR" | "EXPIRED")) => {
            let message = str_at(json, "/status").unwrap_or_else(|| match code {
                "EXPIRED" => "the media container expired before it was published".to_string(),
                _ => "Instagram could not process the media".to_string(),
            });
            Poll::Failed(refusal(platform, code, message))
        }
        Some(other) => Poll::Pending(other.to_string()),
        None => Poll::Pending("no status_code".to_string()),
    }
}

/// `{"id"}` of a Graph answer, checked before it goes into a URL path.
fn graph_id(ctx: &ApiCtx<'_>, json: &Value, what: &str) -> Result<String, PlatformError> {
    str_at(json, "/id")
        .filter(|id| is_path_safe(id))
        .ok_or_else(|| PlatformError::invalid(ctx.platform, format!("{what} came back without a usable `id`")))
}

/// The post's permalink. The post already exists, so a failure here only costs the URL.
async fn permalink(ctx: &ApiCtx<'_>, token: &SecretString, media_id: &str) -> Option<String> {
    let path = format!("/{media_id}?fields=permalink");
    match http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Query)).await {
        Ok(json) => str_at(&json, "/permalink"),
        Err(err) => {
            tracing::warn!(error = %err, "published, but the permalink could not be read");
            None
        }
    }
}

/// Looks through the account's latest media for one with the same caption, dated at or after `since`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn reconcile(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    since: DateTime<Utc>,
) -> Result<Option<Published>, PlatformError> {
    let ig_id = account_id(ctx.platform, req)?;
    let path = format!("/{ig_id}/media?{MEDIA_FIELDS}");
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Query)).await?;
    let found = find_in_media(&json, req.text, since).map_err(|m| PlatformError::invalid(ctx.platform, m))?;
    let Some(media_id) = found.filter(|id| is_path_safe(id)) else {
        return Ok(None);
    };
    let url = permalink(ctx, token, &media_id).await;
    Ok(Some(Published {
        platform_post_id: media_id,
        url,
    }))
}

/// The newest media of `{"data":[{"id","caption","timestamp"}]}` with caption `text`, dated at or
/// after `since` (less the skew).
pub fn find_in_media(json: &Value, text: &str, since: DateTime<Utc>) -> Result<Option<String>, String> {
    let data = json
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the media list answered without a `data` array")?;
    let found = data
        .iter()
        .filter_map(|media| {
            let id = str_at(media, "/id")?;
            let caption = media.get("caption").and_then(Value::as_str).unwrap_or_default();
            let at = str_at(media, "/timestamp").and_then(|t| parse_meta_time(&t))?;
            (same_text(caption, text) && in_window(at, since)).then_some((at, id))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, id)| id);
    if found.is_none() {
        let oldest = data
            .iter()
            .filter_map(|m| str_at(m, "/timestamp").and_then(|t| parse_meta_time(&t)))
            .min();
        super::ensure_covers(data.len(), oldest, since)?;
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_and_reel_containers() {
        assert_eq!(
            container_form("https://cdn.example/a.jpg", "Hi #bread"),
            vec![
                ("image_url", "https://cdn.example/a.jpg".to_string()),
                ("caption", "Hi #bread".to_string())
            ]
        );
        assert_eq!(
            container_form("https://cdn.example/a.mp4?sig=1", "Hi"),
            vec![
                ("media_type", "REELS".to_string()),
                ("video_url", "https://cdn.example/a.mp4?sig=1".to_string()),
                ("caption", "Hi".to_string())
            ]
        );
    }

    #[test]
    fn container_statuses() {
        assert!(matches!(
            read_container_status(&json!({"status_code": "IN_PROGRESS", "id": "1"})),
            Poll::Pending(ref s) if s == "IN_PROGRESS"
        ));
        assert!(matches!(
            read_container_status(&json!({"status_code": "FINISHED", "id": "1"})),
            Poll::Done(())
        ));
        match read_container_status(
            &json!({"status_code": "ERROR", "status": "Error: Media upload has failed with error code 2207026", "id": "1"}),
        ) {
            Poll::Failed(err) => {
                assert!(!err.is_transient());
                assert!(
                    matches!(err, PlatformError::Api { status: 422, ref code, ref message, .. }
                    if code.as_deref() == Some("ERROR") && message.contains("2207026"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_container_status(&json!({"status_code": "EXPIRED"})),
            Poll::Failed(PlatformError::Api { ref code, .. }) if code.as_deref() == Some("EXPIRED")
        ));
    }

    #[test]
    fn finds_the_newest_matching_media() {
        let since = DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z").unwrap().to_utc();
        let list = json!({"data": [
            {"id": "1790", "caption": "Hi #bread", "timestamp": "2026-11-27T05:00:12+0000"},
            {"id": "1789", "caption": "Hi #bread", "timestamp": "2026-11-27T05:00:02+0000"},
            {"id": "1788", "timestamp": "2026-11-27T05:00:30+0000"},
            {"id": "1787", "caption": "Hi #bread", "timestamp": "2026-11-20T05:00:00+0000"}
        ], "paging": {"cursors": {"before": "a", "after": "b"}}});
        assert_eq!(
            find_in_media(&list, "Hi #bread", since).unwrap().as_deref(),
            Some("1790")
        );
        assert_eq!(find_in_media(&list, "Hi", since).unwrap(), None);
        assert!(find_in_media(&json!({}), "Hi", since).is_err());
    }
}
