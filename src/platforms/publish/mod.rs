//! Publishing one post to one account, and looking for it again after a crash.
//!
//! One file per platform implements the calls of the publish contract in order, every one through
//! [`http::send_json`]/[`http::read_json`] (or their classifier) so failures keep the platform's
//! own message. How failures are classified, for the engine:
//!
//! - [`PlatformError::Unauthorized`], [`PlatformError::RateLimited`] and [`PlatformError::Api`] say the
//!   platform refused the call that failed; `is_transient()` says whether retrying can help.
//! - A refusal decided here before any call (no media where the platform needs some, an option the
//!   account may not use, media over the size limit) is `Api { status: 422, code: Some(<why>) }`,
//!   permanent, with the codes listed in [`refusal`].
//! - Media the platform gave up on (Instagram container `ERROR`/`EXPIRED`, TikTok `FAILED`) is
//!   `Api { status: 422, code: Some(<platform status>), message: <platform reason> }`, permanent.
//! - [`PlatformError::Transport`] means nothing usable came back. When it happens on or after the
//!   call that creates the post (a timeout of that call, a poll budget spent, a poll refused after
//!   the post was created), **the outcome is unknown**: the post may exist. The engine decides what
//!   to do (reconcile where [`can_reconcile`], else ask the user); publishers only classify honestly.
//!   Every such message says "the outcome is unknown".
//! - [`PlatformError::Invalid`]: the platform answered in a shape it does not document.
//!
//! Calls made after the post exists only to describe it (Instagram's permalink) never fail a
//! publish: the post is returned without a URL instead.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Map, Value};

use super::{ApiCtx, PlatformError};
use crate::domain::platform::Platform;

pub mod facebook;
pub mod instagram;
pub mod linkedin;
pub mod reddit;
pub mod tiktok;
pub mod x;
pub mod youtube;

/// What to publish, platform-neutral. `options` are per platform (validated elsewhere): reddit
/// `subreddit`, `kind` ("self"|"link"); tiktok `privacy_level`; youtube `privacy_status`.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    pub text: &'a str,
    pub title: Option<&'a str>,
    pub media_urls: &'a [String],
    pub options: &'a Map<String, Value>,
    /// The account's platform id (page id, IG user id, X user id, TikTok open_id, Reddit user id, channel id…).
    pub external_id: &'a str,
    /// The account's username where the platform has one (X, Reddit: for URLs and listings).
    pub username: Option<&'a str>,
    /// The account's mapped profile metadata (LinkedIn: `author_urn`).
    pub metadata: &'a Value,
}

impl PublishRequest<'_> {
    /// A string option, when present and non-empty.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The first media URL, or the `missing_media` refusal for platforms that need one.
    pub fn first_media(&self, platform: Platform) -> Result<&str, PlatformError> {
        self.media_urls
            .first()
            .map(String::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                refusal(
                    platform,
                    "missing_media",
                    format!("{} needs a media URL to publish", platform.display_name()),
                )
            })
    }
}

/// A post that exists on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub platform_post_id: String,
    pub url: Option<String>,
}

/// Publishes `req` with the account's `token`, dispatching on `ctx.platform`.
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    match ctx.platform {
        Platform::Facebook => facebook::publish(ctx, token, req).await,
        Platform::Instagram => instagram::publish(ctx, token, req).await,
        Platform::Linkedin => linkedin::publish(ctx, token, req).await,
        Platform::X => x::publish(ctx, token, req).await,
        Platform::Tiktok => tiktok::publish(ctx, token, req).await,
        Platform::Reddit => reddit::publish(ctx, token, req).await,
        Platform::Youtube => youtube::publish(ctx, token, req).await,
    }
}

/// Looks for a post matching `req` published at or after `since` (reconciliation after a crash),
/// allowing [`RECONCILE_SKEW_S`] of clock skew; the newest match wins. `Ok(None)`: searched, not found.
/// On platforms without a way to look ([`can_reconcile`] false) the answer is the
/// [`unsupported`] error: check [`can_reconcile`] first, or [`is_unsupported`] on the error
/// (being a 501, it reads as transient to `is_transient()`).
pub async fn reconcile(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    since: DateTime<Utc>,
) -> Result<Option<Published>, PlatformError> {
    match ctx.platform {
        Platform::Facebook => facebook::reconcile(ctx, token, req, since).await,
        Platform::Instagram => instagram::reconcile(ctx, token, req, since).await,
        Platform::X => x::reconcile(ctx, token, req, since).await,
        Platform::Reddit => reddit::reconcile(ctx, token, req, since).await,
        Platform::Linkedin | Platform::Tiktok | Platform::Youtube => Err(unsupported(ctx.platform)),
    }
}

/// Whether [`reconcile`] can look for a post on `platform`.
pub fn can_reconcile(platform: Platform) -> bool {
    matches!(
        platform,
        Platform::Facebook | Platform::Instagram | Platform::X | Platform::Reddit
    )
}

/// The answer of [`reconcile`] on a platform that offers no way to look.
pub fn unsupported(platform: Platform) -> PlatformError {
    PlatformError::Api {
        platform,
        status: 501,
        code: Some("unsupported".to_string()),
        message: format!("{} offers no way to look for a published post", platform.display_name()),
    }
}

/// Whether `err` is [`unsupported`].
pub fn is_unsupported(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Api { status: 501, code: Some(code), .. } if code == "unsupported")
}

/// A permanent refusal decided here, before (or instead of) the platform call. Codes:
/// `missing_media`, `missing_title`, `missing_subreddit`, `invalid_account` (an account id or
/// username that cannot go into a URL, a LinkedIn account without author), `privacy_level_not_allowed`,
/// `media_not_video`, `media_too_large`, `media_unavailable`.
pub fn refusal(platform: Platform, code: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::Api {
        platform,
        status: 422,
        code: Some(code.to_string()),
        message: message.into(),
    }
}

/// A failure on or after the call that created the post: the post may exist.
pub fn outcome_unknown(platform: Platform, message: impl std::fmt::Display) -> PlatformError {
    PlatformError::Transport {
        platform,
        message: format!("{message}; the outcome is unknown"),
    }
}

/// How far before `since` a post may be dated and still match: the platform's clock and ours differ.
pub const RECONCILE_SKEW_S: i64 = 10;

/// Items asked for per reconciliation listing (every platform's maximum page size).
pub const RECONCILE_PAGE: usize = 100;

/// A miss proves the post absent only when the listing reaches back past the attempt: either it
/// holds fewer items than a full page, or its oldest item predates the window. Otherwise (a burst of
/// posts filled the page) the answer is an error, so the engine marks the outcome unknown instead of
/// publishing again.
pub fn ensure_covers(count: usize, oldest: Option<DateTime<Utc>>, since: DateTime<Utc>) -> Result<(), String> {
    if count < RECONCILE_PAGE || oldest.is_some_and(|t| !in_window(t, since)) {
        Ok(())
    } else {
        Err(format!(
            "the platform's listing of the latest {count} posts does not reach back to the attempt, so the post \
             cannot be ruled out"
        ))
    }
}

/// Whether a post dated `at` may be the one published at or after `since`.
pub fn in_window(at: DateTime<Utc>, since: DateTime<Utc>) -> bool {
    at >= since - chrono::TimeDelta::seconds(RECONCILE_SKEW_S)
}

/// Whether two texts are the same post text: exactly equal once surrounding whitespace (which
/// platforms trim) is ignored.
pub fn same_text(published: &str, ours: &str) -> bool {
    published.trim() == ours.trim()
}

/// Meta's `2026-11-27T05:00:00+0000` (and RFC 3339, for good measure).
pub fn parse_meta_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.to_utc())
}

/// Whether a media URL is a video, by the extension of its path (`.mp4`, `.mov`), ignoring query and case.
pub fn is_video_url(media_url: &str) -> bool {
    let path = match url::Url::parse(media_url) {
        Ok(u) => u.path().to_ascii_lowercase(),
        Err(_) => media_url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    path.ends_with(".mp4") || path.ends_with(".mov")
}

/// Whether an id from the account or a response may go into a URL path (letters, digits, `_`, `-`).
/// Ids come back from platforms; anything else would let a response reshape a URL that carries a token.
pub fn is_path_safe(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The account's id, when it may go into a URL path; else the `invalid_account` refusal.
pub fn account_id<'a>(platform: Platform, req: &PublishRequest<'a>) -> Result<&'a str, PlatformError> {
    let id = req.external_id;
    if is_path_safe(id) {
        Ok(id)
    } else {
        Err(refusal(
            platform,
            "invalid_account",
            format!("the account id `{id}` cannot be used in a request"),
        ))
    }
}

/// Delays between polls of a slow publish: the first poll goes out at once, then the delay starts
/// at `first` and doubles up to `max`, for at most `attempts` polls.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
}

/// Instagram video containers and TikTok publishes: 60 polls over about 4.7 minutes.
pub const POLL: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(5),
    attempts: 60,
};

impl Backoff {
    /// The delay before poll `n` (0-based; poll 0 goes out at once).
    pub fn delay_before(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The longest the whole budget waits.
    pub fn total(&self) -> Duration {
        (0..self.attempts).map(|n| self.delay_before(n)).sum()
    }
}

/// One poll's reading.
#[derive(Debug)]
pub enum Poll<T> {
    /// Finished well.
    Done(T),
    /// Still working; the platform's status word, for the timeout message.
    Pending(String),
    /// Finished badly: the error to return as is.
    Failed(PlatformError),
}

/// Polls `step` on `backoff` until it is done or failed. A transient error of one poll (network,
/// 5xx, rate limit) just costs that poll. A permanent error of a poll is returned as is before the
/// post exists (`created == false`), and as outcome-unknown after. A spent budget is a
/// [`PlatformError::Transport`] naming `what` and the last status.
pub async fn poll_until<T, F, Fut>(
    platform: Platform,
    what: &str,
    created: bool,
    backoff: Backoff,
    mut step: F,
) -> Result<T, PlatformError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, PlatformError>>,
{
    let mut last = String::from("no answer");
    for n in 0..backoff.attempts {
        let delay = backoff.delay_before(n);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match step().await {
            Ok(Poll::Done(value)) => return Ok(value),
            Ok(Poll::Pending(status)) => last = status,
            Ok(Poll::Failed(err)) => return Err(err),
            Err(err) if err.is_transient() => last = err.to_string(),
            Err(err) if created => return Err(outcome_unknown(platform, format!("{what}: polling failed: {err}"))),
            Err(err) => return Err(err),
        }
    }
    let message = format!(
        "{what} still processing after {} polls over {} s (last: {last})",
        backoff.attempts,
        backoff.total().as_secs()
    );
    Err(if created {
        outcome_unknown(platform, message)
    } else {
        PlatformError::Transport { platform, message }
    })
}

/// Sends a POST the platform answers with a body or a header, and hands back the raw response when
/// it succeeded; a failed one is classified by [`super::http::read_json`].
pub async fn send_expecting_success(
    platform: Platform,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, PlatformError> {
    let resp = req.send().await.map_err(|e| super::http::transport(platform, &e))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    Err(match super::http::read_json(platform, resp).await {
        Err(err) => err,
        Ok(body) => PlatformError::Api {
            platform,
            status,
            code: None,
            message: super::http::snippet(&body.to_string()),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        attempts: 4,
    };

    #[test]
    fn poll_delays_grow_to_the_cap() {
        let delays: Vec<u64> = (0..8).map(|n| POLL.delay_before(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![0, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(POLL.delay_before(59), Duration::from_secs(5));
        assert!(POLL.total() > Duration::from_secs(240) && POLL.total() < Duration::from_secs(300));
    }

    #[test]
    fn video_urls_by_path_extension() {
        assert!(is_video_url("https://cdn.example/a/clip.MP4?sig=1&x=.jpg"));
        assert!(is_video_url("http://127.0.0.1:9/media/clip.mov"));
        assert!(!is_video_url("https://cdn.example/photo.jpg?name=clip.mp4"));
        assert!(!is_video_url("https://cdn.example/mp4"));
        assert!(is_video_url("relative/clip.mp4#t=1"));
    }

    #[test]
    fn reconcile_window_and_text() {
        let since = DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z").unwrap().to_utc();
        assert!(in_window(since, since));
        assert!(in_window(since - chrono::TimeDelta::seconds(9), since));
        assert!(!in_window(since - chrono::TimeDelta::seconds(11), since));
        assert!(same_text("Hello\n", " Hello"));
        assert!(!same_text("Hello!", "Hello"));
        assert_eq!(parse_meta_time("2026-11-27T05:00:00+0000"), Some(since));
        assert_eq!(parse_meta_time("2026-11-27T06:00:00+01:00"), Some(since));
        assert_eq!(parse_meta_time("yesterday"), None);
    }

    #[test]
    fn ids_that_cannot_reshape_a_url() {
        assert!(is_path_safe("17841400008460056"));
        assert!(is_path_safe("101_202"));
        assert!(is_path_safe("UC_x5XG1OV2P6uZZ5FSM9Ttw"));
        assert!(!is_path_safe(""));
        assert!(!is_path_safe("1/../me"));
        assert!(!is_path_safe("1?fields=access_token"));
    }

    #[test]
    fn unsupported_is_recognisable() {
        let err = unsupported(Platform::Linkedin);
        assert!(is_unsupported(&err));
        assert!(!is_unsupported(&refusal(Platform::Linkedin, "missing_media", "x")));
        assert!(
            !can_reconcile(Platform::Linkedin) && !can_reconcile(Platform::Tiktok) && !can_reconcile(Platform::Youtube)
        );
        assert!(Platform::ALL.iter().filter(|p| can_reconcile(**p)).count() == 4);
    }

    #[tokio::test]
    async fn polls_until_done_and_survives_a_transient_poll() {
        let calls = AtomicU32::new(0);
        let out = poll_until(Platform::Tiktok, "publish", true, FAST, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(Poll::Pending("PROCESSING_DOWNLOAD".to_string())),
                1 => Err(PlatformError::Transport {
                    platform: Platform::Tiktok,
                    message: "request timed out".into(),
                }),
                _ => Ok(Poll::Done(7)),
            }
        })
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_spent_budget_is_transport_and_says_the_outcome_is_unknown_after_creation() {
        let pending = || async { Ok::<Poll<()>, PlatformError>(Poll::Pending("IN_PROGRESS".to_string())) };
        let after = poll_until(Platform::Tiktok, "publish", true, FAST, pending)
            .await
            .unwrap_err();
        let PlatformError::Transport { message, .. } = after else {
            panic!("{after:?}")
        };
        assert!(message.contains("still processing after 4 polls"), "{message}");
        assert!(
            message.contains("IN_PROGRESS") && message.contains("outcome is unknown"),
            "{message}"
        );
        let before = poll_until(Platform::Instagram, "container", false, FAST, pending)
            .await
            .unwrap_err();
        assert!(
            matches!(before, PlatformError::Transport { ref message, .. } if !message.contains("outcome is unknown"))
        );
    }

    #[tokio::test]
    async fn failures_and_permanent_poll_errors() {
        let failed = poll_until(Platform::Tiktok, "publish", true, FAST, || async {
            Ok::<Poll<()>, _>(Poll::Failed(refusal(Platform::Tiktok, "FAILED", "video_pull_failed")))
        })
        .await;
        assert!(
            matches!(failed, Err(PlatformError::Api { status: 422, ref message, .. }) if message == "video_pull_failed")
        );
        let dead = || async {
            Err::<Poll<()>, _>(PlatformError::Unauthorized {
                platform: Platform::Tiktok,
                status: 401,
                code: None,
                message: "token".into(),
            })
        };
        let after = poll_until(Platform::Tiktok, "publish", true, FAST, dead).await;
        assert!(matches!(after, Err(PlatformError::Transport { .. })));
        let before = poll_until(Platform::Tiktok, "publish", false, FAST, dead).await;
        assert!(matches!(before, Err(PlatformError::Unauthorized { .. })));
    }
}
