//! YouTube: the video at the first media URL is downloaded (up to [`MAX_MEDIA_BYTES`]), a
//! resumable upload session is opened with its metadata, and the bytes are sent in one `PUT`.
//!
//! The video exists once the `PUT` succeeds; a transport failure of the `PUT` leaves the outcome
//! unknown (YouTube offers no listing to reconcile with). Google's quota refusals (`quotaExceeded`,
//! `uploadLimitExceeded`, `rateLimitExceeded`, 403) are rate limits.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, USER_AGENT};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{PublishRequest, Published, outcome_unknown, refusal};
use crate::domain::platform::Platform;
use crate::platforms::http;
use crate::platforms::{ApiCtx, PlatformError, str_at};

const PLATFORM: Platform = Platform::Youtube;
/// The largest video nikara holds in memory to upload.
pub const MAX_MEDIA_BYTES: u64 = 512 * 1024 * 1024;
/// Downloading and uploading a video takes longer than the client's default timeout.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The media host may redirect (CDNs, signed URLs); the shared client follows none itself.
const MAX_REDIRECTS: usize = 5;
/// YouTube's limit on a title, in characters.
const MAX_TITLE_CHARS: usize = 100;

/// Download → `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status` → `PUT {Location}`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let media_url = req.first_media(PLATFORM)?;
    let media = download(ctx, media_url).await?;
    let privacy = req.option("privacy_status").unwrap_or("private");
    let session = ctx
        .http
        .post(format!(
            "{}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status",
            ctx.api_url
        ))
        .header(USER_AGENT, ctx.user_agent)
        .header("X-Upload-Content-Length", media.bytes.len().to_string())
        .header("X-Upload-Content-Type", media.content_type.as_str())
        .bearer_auth(token.expose_secret())
        .json(&metadata_body(req.title, req.text, privacy));
    let resp = session.send().await.map_err(|e| http::transport(PLATFORM, &e))?;
    if !resp.status().is_success() {
        return Err(google_error(resp).await);
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "the upload session was opened without a `Location`"))?;
    let upload_url = resolve(ctx.api_url, location)
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "the upload session's `Location` is not a URL"))?;
    let mut put = ctx
        .http
        .put(upload_url.as_str())
        .header(USER_AGENT, ctx.user_agent)
        .header(CONTENT_TYPE, media.content_type.as_str())
        .timeout(MEDIA_TIMEOUT)
        .body(media.bytes);
    // The session URL authorizes the upload by itself; the token only goes back to the API's origin.
    if same_origin(ctx.api_url, &upload_url) {
        put = put.bearer_auth(token.expose_secret());
    }
    let resp = put.send().await.map_err(|e| {
        outcome_unknown(
            PLATFORM,
            format!("uploading the video failed: {}", http::transport(PLATFORM, &e)),
        )
    })?;
    if !resp.status().is_success() {
        return Err(google_error(resp).await);
    }
    let json = http::read_json(PLATFORM, resp).await?;
    let id = str_at(&json, "/id")
        .ok_or_else(|| PlatformError::invalid(PLATFORM, "the uploaded video came back without an `id`"))?;
    Ok(Published {
        url: Some(format!("https://www.youtube.com/watch?v={id}")),
        platform_post_id: id,
    })
}

/// The video resource's metadata: the title (else the text, cut to YouTube's 100 characters) and
/// the text as description.
pub fn metadata_body(title: Option<&str>, text: &str, privacy: &str) -> Value {
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| text.trim());
    let title: String = title.chars().take(MAX_TITLE_CHARS).collect();
    json!({
        "snippet": {"title": title, "description": text},
        "status": {"privacyStatus": privacy},
    })
}

/// Downloaded media.
#[derive(Debug)]
pub struct Media {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// GETs the media (any host, never with the token), following redirects, refusing more than
/// [`MAX_MEDIA_BYTES`]. A media host that refuses (4xx) or sends an image is a permanent refusal;
/// 5xx, 408/429 and network failures are transient.
async fn download(ctx: &ApiCtx<'_>, media_url: &str) -> Result<Media, PlatformError> {
    let mut url = url::Url::parse(media_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            refusal(
                PLATFORM,
                "media_unavailable",
                format!("`{media_url}` is not an http(s) URL"),
            )
        })?;
    let mut redirects = 0;
    let mut resp = loop {
        let resp = ctx
            .http
            .get(url.as_str())
            .header(USER_AGENT, ctx.user_agent)
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(|e| media_transport(&e))?;
        if !resp.status().is_redirection() {
            break resp;
        }
        let next = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|loc| url.join(loc).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        match next {
            Some(next) if redirects < MAX_REDIRECTS => {
                redirects += 1;
                url = next;
            }
            _ => {
                return Err(refusal(
                    PLATFORM,
                    "media_unavailable",
                    "the media URL redirects too often or nowhere",
                ));
            }
        }
    };
    if let Some(err) = media_status_error(resp.status(), resp.headers()) {
        return Err(err);
    }
    let declared = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let content_type = video_content_type(declared, url.path())?;
    if resp.content_length().is_some_and(|len| len > MAX_MEDIA_BYTES) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| media_transport(&e))? {
        if (bytes.len() + chunk.len()) as u64 > MAX_MEDIA_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(refusal(
            PLATFORM,
            "media_unavailable",
            "the media URL answered an empty body",
        ));
    }
    Ok(Media { bytes, content_type })
}

fn too_large() -> PlatformError {
    refusal(
        PLATFORM,
        "media_too_large",
        format!("the video is larger than {} MiB", MAX_MEDIA_BYTES / (1024 * 1024)),
    )
}

fn media_transport(e: &reqwest::Error) -> PlatformError {
    match http::transport(PLATFORM, e) {
        PlatformError::Transport { platform, message } => PlatformError::Transport {
            platform,
            message: format!("downloading the media: {message}"),
        },
        other => other,
    }
}

/// How a media host's failing status is classified (none for a success).
pub fn media_status_error(status: StatusCode, headers: &HeaderMap) -> Option<PlatformError> {
    if status.is_success() {
        return None;
    }
    let message = format!("downloading the media: the media URL answered {status}");
    Some(match status.as_u16() {
        408 | 429 => PlatformError::RateLimited {
            platform: PLATFORM,
            retry_after_s: http::retry_after_from_headers(PLATFORM, headers, chrono::Utc::now()),
            message,
        },
        s if s >= 500 => PlatformError::Api {
            platform: PLATFORM,
            status: s,
            code: Some("media_unavailable".to_string()),
            message,
        },
        _ => refusal(PLATFORM, "media_unavailable", message),
    })
}

/// The upload's content type: the media host's when it names a video, else guessed from the path
/// (`.mov` → QuickTime, otherwise MP4). An image or text is refused: YouTube takes only video.
pub fn video_content_type(declared: Option<&str>, path: &str) -> Result<String, PlatformError> {
    let declared = declared
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    match declared {
        Some(t) if t.starts_with("video/") => Ok(t),
        Some(t) if t.starts_with("image/") || t.starts_with("text/") || t.starts_with("audio/") => Err(refusal(
            PLATFORM,
            "media_not_video",
            format!("YouTube takes only video, and the media is {t}"),
        )),
        _ if path.to_ascii_lowercase().ends_with(".mov") => Ok("video/quicktime".to_string()),
        _ => Ok("video/mp4".to_string()),
    }
}

/// `location` made absolute against the API origin.
pub fn resolve(api_url: &str, location: &str) -> Option<url::Url> {
    let base = url::Url::parse(api_url).ok()?;
    base.join(location)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

fn same_origin(api_url: &str, url: &url::Url) -> bool {
    url::Url::parse(api_url).is_ok_and(|api| api.origin() == url.origin())
}

/// A failed Google response: quota and rate refusals become rate limits, the rest as [`http::classify`] says.
async fn google_error(resp: Response) -> PlatformError {
    let status = resp.status();
    let retry_after = http::retry_after_from_headers(PLATFORM, resp.headers(), chrono::Utc::now());
    match resp.text().await {
        Ok(text) => classify_google(status, &text, retry_after),
        Err(e) => http::transport(PLATFORM, &e),
    }
}

/// See [`google_error`]. Google puts the reason in `error.errors[0].reason`.
pub fn classify_google(status: StatusCode, text: &str, retry_after: Option<u64>) -> PlatformError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let reason = str_at(&body, "/error/errors/0/reason");
    if matches!(
        reason.as_deref(),
        Some("quotaExceeded" | "uploadLimitExceeded" | "rateLimitExceeded" | "userRateLimitExceeded")
    ) {
        return PlatformError::RateLimited {
            platform: PLATFORM,
            retry_after_s: retry_after,
            message: str_at(&body, "/error/message").unwrap_or_else(|| reason.unwrap_or_default()),
        };
    }
    http::classify(PLATFORM, status, &body, retry_after).unwrap_or_else(|| PlatformError::Api {
        platform: PLATFORM,
        status: status.as_u16(),
        code: None,
        message: http::snippet(text),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        assert_eq!(
            metadata_body(Some("My video"), "Description", "private"),
            json!({"snippet": {"title": "My video", "description": "Description"}, "status": {"privacyStatus": "private"}})
        );
        let long = "é".repeat(150);
        let body = metadata_body(None, &long, "unlisted");
        assert_eq!(body["snippet"]["title"].as_str().unwrap().chars().count(), 100);
        assert_eq!(body["snippet"]["description"], json!(long));
        assert_eq!(metadata_body(Some("  "), "Text", "public")["snippet"]["title"], "Text");
    }

    #[test]
    fn content_types() {
        assert_eq!(video_content_type(Some("video/mp4"), "/media/a").unwrap(), "video/mp4");
        assert_eq!(
            video_content_type(Some("Video/QuickTime; charset=binary"), "/a").unwrap(),
            "video/quicktime"
        );
        assert_eq!(
            video_content_type(Some("application/octet-stream"), "/clip.MOV").unwrap(),
            "video/quicktime"
        );
        assert_eq!(video_content_type(None, "/clip").unwrap(), "video/mp4");
        assert!(matches!(
            video_content_type(Some("image/jpeg"), "/a.jpg"),
            Err(PlatformError::Api { status: 422, ref code, .. }) if code.as_deref() == Some("media_not_video")
        ));
    }

    #[test]
    fn media_host_statuses() {
        let none = HeaderMap::new();
        assert!(media_status_error(StatusCode::OK, &none).is_none());
        let gone = media_status_error(StatusCode::NOT_FOUND, &none).unwrap();
        assert!(!gone.is_transient());
        assert!(
            media_status_error(StatusCode::BAD_GATEWAY, &none)
                .unwrap()
                .is_transient()
        );
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "12".parse().unwrap());
        assert!(matches!(
            media_status_error(StatusCode::TOO_MANY_REQUESTS, &headers),
            Some(PlatformError::RateLimited {
                retry_after_s: Some(12),
                ..
            })
        ));
    }

    #[test]
    fn upload_locations() {
        let api = "https://www.googleapis.com";
        let abs = resolve(
            api,
            "https://www.googleapis.com/upload/youtube/v3/videos?uploadType=resumable&upload_id=xa298sd",
        )
        .unwrap();
        assert!(same_origin(api, &abs));
        let rel = resolve("http://127.0.0.1:9000", "/upload/youtube/v3/videos?upload_id=1").unwrap();
        assert_eq!(
            rel.as_str(),
            "http://127.0.0.1:9000/upload/youtube/v3/videos?upload_id=1"
        );
        let elsewhere = resolve(api, "https://uploads.example/x").unwrap();
        assert!(!same_origin(api, &elsewhere));
        assert!(resolve(api, "javascript:alert(1)").is_none());
    }

    #[test]
    fn google_errors() {
        let quota = r#"{"error":{"code":403,"message":"The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.","errors":[{"message":"…","domain":"youtube.quota","reason":"quotaExceeded"}]}}"#;
        assert!(matches!(
            classify_google(StatusCode::FORBIDDEN, quota, None),
            PlatformError::RateLimited { .. }
        ));
        let bad = r#"{"error":{"code":400,"message":"The request metadata specifies an invalid video title.","errors":[{"reason":"invalidTitle"}],"status":"INVALID_ARGUMENT"}}"#;
        assert!(matches!(
            classify_google(StatusCode::BAD_REQUEST, bad, None),
            PlatformError::Api { status: 400, ref message, .. } if message == "The request metadata specifies an invalid video title."
        ));
        let dead = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        assert!(matches!(
            classify_google(StatusCode::UNAUTHORIZED, dead, None),
            PlatformError::Unauthorized { .. }
        ));
        assert!(classify_google(StatusCode::SERVICE_UNAVAILABLE, "", None).is_transient());
    }
}
