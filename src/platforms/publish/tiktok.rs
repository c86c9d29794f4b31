//! TikTok: a direct post pulled from the media URLs (photos, or one video for `.mp4`/`.mov`), after
//! asking the creator which privacy levels they may use, then polled until TikTok has published it.
//!
//! The call that creates the post is the `init`: any failure after it that is not TikTok's own
//! `FAILED` leaves the outcome unknown (TikTok offers no listing to reconcile with).

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{POLL, Poll, PublishRequest, Published, is_video_url, poll_until, refusal};
use crate::platforms::http;
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// What an unaudited app may always post, and the default.
pub const DEFAULT_PRIVACY: &str = "SELF_ONLY";

/// `creator_info/query` → `content/init` (photos) or `video/init` → `status/fetch` until done.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let platform = ctx.platform;
    let media = req.first_media(platform)?;
    let creator = http::send_json(
        platform,
        post(ctx, "/v2/post/publish/creator_info/query/", token, &json!({})),
    )
    .await?;
    let privacy = choose_privacy(req.option("privacy_level"), &creator)
        .map_err(|m| refusal(platform, "privacy_level_not_allowed", m))?;
    let (path, body) = if is_video_url(media) {
        (
            "/v2/post/publish/video/init/",
            video_init_body(req.text, media, privacy),
        )
    } else {
        (
            "/v2/post/publish/content/init/",
            photo_init_body(req.title.unwrap_or_default(), req.text, req.media_urls, privacy),
        )
    };
    let init = http::send_json(platform, post(ctx, path, token, &body)).await?;
    let publish_id = str_at(&init, "/data/publish_id")
        .ok_or_else(|| PlatformError::invalid(platform, "the init answer has no `data.publish_id`"))?;
    let status_body = json!({ "publish_id": publish_id });
    let public_id = poll_until(platform, "the TikTok publish", true, POLL, || async {
        let json = http::send_json(
            platform,
            post(ctx, "/v2/post/publish/status/fetch/", token, &status_body),
        )
        .await?;
        Ok(read_status(&json))
    })
    .await?;
    let username = str_at(&creator, "/data/creator_username").or_else(|| req.username.map(str::to_string));
    Ok(published(&publish_id, public_id, username.as_deref()))
}

/// A TikTok API POST with a JSON body.
fn post(ctx: &ApiCtx<'_>, path: &str, token: &SecretString, body: &Value) -> reqwest::RequestBuilder {
    ctx.http
        .post(format!("{}{}", ctx.api_url, path))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .bearer_auth(token.expose_secret())
        .json(body)
}

/// The privacy level asked for (default [`DEFAULT_PRIVACY`]), if the creator may use it
/// (`data.privacy_level_options`); else why not, naming the allowed ones.
pub fn choose_privacy<'a>(asked: Option<&'a str>, creator_info: &Value) -> Result<&'a str, String> {
    let wanted = asked.unwrap_or(DEFAULT_PRIVACY);
    let allowed: Vec<&str> = creator_info
        .pointer("/data/privacy_level_options")
        .and_then(Value::as_array)
        .map(|opts| opts.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if allowed.contains(&wanted) {
        Ok(wanted)
    } else {
        Err(format!(
            "privacy level {wanted} is not available to this TikTok creator (allowed: {})",
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        ))
    }
}

/// A photo post of every media URL, the first as cover.
pub fn photo_init_body(title: &str, description: &str, photos: &[String], privacy: &str) -> Value {
    json!({
        "post_info": {"title": title, "description": description, "privacy_level": privacy},
        "source_info": {"source": "PULL_FROM_URL", "photo_images": photos, "photo_cover_index": 0},
        "post_mode": "DIRECT_POST",
        "media_type": "PHOTO",
    })
}

/// A video post; a video's `title` is its caption.
pub fn video_init_body(caption: &str, video_url: &str, privacy: &str) -> Value {
    json!({
        "post_info": {"title": caption, "privacy_level": privacy},
        "source_info": {"source": "PULL_FROM_URL", "video_url": video_url},
    })
}

/// `{"data":{"status","fail_reason","publicaly_available_post_id":[…]}}`: done with the first
/// public post id (absent for private posts), `FAILED` for good with TikTok's reason, else pending.
pub fn read_status(json: &Value) -> Poll<Option<String>> {
    match str_at(json, "/data/status").as_deref() {
        Some("PUBLISH_COMPLETE") => {
            Poll::Done(
                json.pointer("/data/publicaly_available_post_id/0")
                    .and_then(|id| match id {
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    }),
            )
        }
        Some("FAILED") => Poll::Failed(refusal(
            crate::domain::platform::Platform::Tiktok,
            "FAILED",
            str_at(json, "/data/fail_reason").unwrap_or_else(|| "TikTok could not publish the post".to_string()),
        )),
        Some(other) => Poll::Pending(other.to_string()),
        None => Poll::Pending("no status".to_string()),
    }
}

/// The post: its public id and URL when TikTok made it public, else the publish id and no URL.
pub fn published(publish_id: &str, public_id: Option<String>, username: Option<&str>) -> Published {
    match public_id {
        Some(id) => Published {
            url: username
                .filter(|u| !u.is_empty())
                .map(|u| format!("https://www.tiktok.com/@{u}/video/{id}")),
            platform_post_id: id,
        },
        None => Published {
            platform_post_id: publish_id.to_string(),
            url: None,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn creator() -> Value {
        json!({"data": {"creator_avatar_url": "https://p16.tiktokcdn.com/a.jpeg", "creator_username": "tiktoker",
                        "creator_nickname": "Tik Toker", "privacy_level_options": ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"],
                        "comment_disabled": false, "duet_disabled": false, "stitch_disabled": true, "max_video_post_duration_sec": 300},
               "error": {"code": "ok", "message": "", "log_id": "202211091900"}})
    }

    #[test]
    fn privacy_must_be_offered() {
        assert_eq!(choose_privacy(None, &creator()), Ok("SELF_ONLY"));
        assert_eq!(
            choose_privacy(Some("PUBLIC_TO_EVERYONE"), &creator()),
            Ok("PUBLIC_TO_EVERYONE")
        );
        let only_self = json!({"data": {"privacy_level_options": ["SELF_ONLY"]}});
        let err = choose_privacy(Some("PUBLIC_TO_EVERYONE"), &only_self).unwrap_err();
        assert!(
            err.contains("PUBLIC_TO_EVERYONE") && err.contains("allowed: SELF_ONLY"),
            "{err}"
        );
        assert!(choose_privacy(None, &json!({"data": {}})).is_err());
    }

    #[test]
    fn init_bodies() {
        let photos = vec![
            "https://cdn.example/1.jpg".to_string(),
            "https://cdn.example/2.jpg".to_string(),
        ];
        assert_eq!(
            photo_init_body("Title", "Caption #x", &photos, "SELF_ONLY"),
            json!({"post_info": {"title": "Title", "description": "Caption #x", "privacy_level": "SELF_ONLY"},
                   "source_info": {"source": "PULL_FROM_URL", "photo_images": ["https://cdn.example/1.jpg", "https://cdn.example/2.jpg"], "photo_cover_index": 0},
                   "post_mode": "DIRECT_POST", "media_type": "PHOTO"})
        );
        assert_eq!(
            video_init_body("Caption", "https://cdn.example/v.mp4", "PUBLIC_TO_EVERYONE"),
            json!({"post_info": {"title": "Caption", "privacy_level": "PUBLIC_TO_EVERYONE"},
                   "source_info": {"source": "PULL_FROM_URL", "video_url": "https://cdn.example/v.mp4"}})
        );
    }

    #[test]
    fn statuses() {
        let processing =
            json!({"data": {"status": "PROCESSING_DOWNLOAD", "uploaded_bytes": 0}, "error": {"code": "ok"}});
        assert!(matches!(read_status(&processing), Poll::Pending(ref s) if s == "PROCESSING_DOWNLOAD"));
        let done = json!({"data": {"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7301234567890123456u64]}, "error": {"code": "ok"}});
        assert!(matches!(read_status(&done), Poll::Done(Some(ref id)) if id == "7301234567890123456"));
        let private = json!({"data": {"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": []}});
        assert!(matches!(read_status(&private), Poll::Done(None)));
        let failed =
            json!({"data": {"status": "FAILED", "fail_reason": "picture_size_check_failed"}, "error": {"code": "ok"}});
        match read_status(&failed) {
            Poll::Failed(err) => {
                assert!(!err.is_transient());
                assert!(
                    matches!(err, PlatformError::Api { status: 422, ref code, ref message, .. }
                    if code.as_deref() == Some("FAILED") && message == "picture_size_check_failed")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn published_ids_and_urls() {
        let public = published("v_pub_1", Some("7301".into()), Some("tiktoker"));
        assert_eq!(public.platform_post_id, "7301");
        assert_eq!(
            public.url.as_deref(),
            Some("https://www.tiktok.com/@tiktoker/video/7301")
        );
        assert_eq!(
            published("v_pub_1", None, Some("tiktoker")),
            Published {
                platform_post_id: "v_pub_1".into(),
                url: None
            }
        );
        assert_eq!(published("v", Some("7301".into()), None).url, None);
    }
}
