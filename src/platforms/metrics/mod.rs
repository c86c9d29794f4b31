//! Engagement metrics of published posts, as each platform reports them: one file per platform,
//! every call through [`http`](super::http) so failures keep the platform's own message.
//!
//! [`fetch`] asks for several posts of one account at once. Platforms that look posts up in batches
//! are asked in batches (X [`X_BATCH`], TikTok [`TIKTOK_BATCH`], Reddit [`REDDIT_BATCH`], YouTube
//! [`YOUTUBE_BATCH`], each id once); Facebook, Instagram and LinkedIn are asked post by post.
//!
//! How answers are classified:
//! - The whole fetch fails (`Err`) on a failure that says the platform will not answer now: a dead
//!   token ([`PlatformError::Unauthorized`]) or anything transient (rate limit, 5xx, network;
//!   [`PlatformError::is_transient`]). Nothing else is asked after it: retry the fetch later.
//! - Otherwise each post gets its own answer, in the order asked. A post the platform does not know
//!   (deleted, never existed; absent from a batch, X's `resource-not-found`, a 404, Meta's
//!   "Unsupported get request") is [`not_found`]: `Api { status: 404, code: "not_found" }`. An id
//!   that cannot be a post id of the platform is refused before any call with
//!   `Api { status: 422, code: "invalid_post_id" }` (a TikTok publish id of a private post has no
//!   public video id). Other refusals keep the platform's status and code; a batch refused that
//!   way gives its error to each post of the batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use secrecy::SecretString;
use serde_json::Value;

use super::publish::refusal;
use super::{ApiCtx, PlatformError};
use crate::domain::platform::Platform;

pub mod facebook;
pub mod instagram;
pub mod linkedin;
pub mod reddit;
pub mod tiktok;
pub mod x;
pub mod youtube;

/// Engagement of one post at one moment, as the platform reports it. Fields the platform does not report are None.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Metrics {
    pub likes: Option<i64>,
    pub comments: Option<i64>,
    pub shares: Option<i64>,
    pub views: Option<i64>,
    pub impressions: Option<i64>,
    /// Reactions by type, upper case as the platform names them (Facebook: `LIKE`, `LOVE`, `WOW`,
    /// `HAHA`, `SAD`, `ANGRY`, `CARE`); empty where the platform has no breakdown.
    pub reactions: BTreeMap<String, i64>,
}

/// One post to ask about.
#[derive(Debug, Clone, Copy)]
pub struct MetricsRequest<'a> {
    /// The id recorded at publish: `{page}_{post}` (Facebook), media id (Instagram),
    /// `urn:li:share:…`/`urn:li:ugcPost:…` (LinkedIn), tweet id (X), public video id (TikTok),
    /// `t3_…` (Reddit), video id (YouTube).
    pub platform_post_id: &'a str,
    /// The account's platform id (unused by the current calls; kept for platforms that scope by account).
    pub external_id: &'a str,
    /// The account's mapped profile metadata.
    pub metadata: &'a Value,
}

/// One post's answer: its metrics, or why the platform gave none for it.
pub type PostMetrics = Result<Metrics, PlatformError>;

/// Most tweet ids in one `GET /2/tweets`.
pub const X_BATCH: usize = 100;
/// Most video ids in one TikTok `video/query`.
pub const TIKTOK_BATCH: usize = 20;
/// Most fullnames in one Reddit `/api/info`.
pub const REDDIT_BATCH: usize = 100;
/// Most video ids in one YouTube `videos.list`.
pub const YOUTUBE_BATCH: usize = 50;

/// Fetches metrics for several posts of ONE account at once (TikTok batches of ≤ 20; others loop one by one inside).
/// Answers per post: Ok(metrics) or the platform's error for that post (a deleted post → Api 404 etc.); a whole-call failure (token, rate limit) → Err.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform, posts = posts.len()))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    match ctx.platform {
        Platform::Facebook => facebook::fetch(ctx, token, posts).await,
        Platform::Instagram => instagram::fetch(ctx, token, posts).await,
        Platform::Linkedin => linkedin::fetch(ctx, token, posts).await,
        Platform::X => x::fetch(ctx, token, posts).await,
        Platform::Tiktok => tiktok::fetch(ctx, token, posts).await,
        Platform::Reddit => reddit::fetch(ctx, token, posts).await,
        Platform::Youtube => youtube::fetch(ctx, token, posts).await,
    }
}

/// Whether `err` ends the whole fetch: a dead token or anything transient (rate limit, 5xx, network).
pub fn stops_fetch(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Unauthorized { .. }) || err.is_transient()
}

/// The answer for a post the platform does not know (deleted or never there).
pub fn not_found(platform: Platform, id: &str) -> PlatformError {
    PlatformError::Api {
        platform,
        status: 404,
        code: Some("not_found".to_string()),
        message: format!("{} has no post {id}", platform.display_name()),
    }
}

/// Whether `err` is [`not_found`] (whatever its message).
pub fn is_not_found(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Api { status: 404, code: Some(code), .. } if code == "not_found")
}

/// An id that cannot be one of the platform's post ids: refused before any call.
pub fn invalid_id(platform: Platform, id: &str) -> PlatformError {
    refusal(
        platform,
        "invalid_post_id",
        format!("`{id}` is not a {} post id", platform.display_name()),
    )
}

/// A per-post refusal that says the post is not there, as [`not_found`] with the platform's own
/// message: any 404, and Meta's "Unsupported get request" (code 100, subcode 33). Others unchanged.
pub fn missing_as_not_found(err: PlatformError) -> PlatformError {
    match err {
        PlatformError::Api {
            platform,
            status,
            code,
            message,
        } if status == 404
            || (platform.is_meta()
                && code.as_deref() == Some("100")
                && message.starts_with("Unsupported get request")) =>
        {
            PlatformError::Api {
                platform,
                status: 404,
                code: Some("not_found".to_string()),
                message,
            }
        }
        other => other,
    }
}

/// A count as platforms give it: a JSON integer, or a string of digits (YouTube).
pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX))),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// [`int`] at a JSON pointer.
pub fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    int(v.pointer(pointer))
}

/// An id as platforms give it: a non-empty string, or a number (TikTok ids may come as either).
pub fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Asks `one` about each post in turn; the first failure that [`stops_fetch`] ends the fetch.
/// (`one` takes the request by value and returns a plain future: futures of closures over borrowed
/// arguments lose `Send`.)
pub(crate) async fn one_by_one<'p, F, Fut>(
    posts: &[MetricsRequest<'p>],
    mut one: F,
) -> Result<Vec<PostMetrics>, PlatformError>
where
    F: FnMut(MetricsRequest<'p>) -> Fut,
    Fut: Future<Output = PostMetrics>,
{
    let mut out = Vec::with_capacity(posts.len());
    for post in posts {
        match one(*post).await {
            Err(err) if stops_fetch(&err) => return Err(err),
            answer => out.push(answer),
        }
    }
    Ok(out)
}

/// Asks `call` about the posts in batches of at most `max` distinct ids. `key` turns a post id into
/// the id the platform answers with (`None`: [`invalid_id`], never sent); `call` answers the ids it
/// found, and ids it does not answer are [`not_found`]. A batch failure that [`stops_fetch`] ends
/// the fetch; another is the answer of every post of that batch.
pub(crate) async fn batched<F, Fut>(
    platform: Platform,
    posts: &[MetricsRequest<'_>],
    max: usize,
    key: impl Fn(&str) -> Option<String>,
    mut call: F,
) -> Result<Vec<PostMetrics>, PlatformError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: Future<Output = Result<HashMap<String, PostMetrics>, PlatformError>>,
{
    let keys: Vec<Result<String, PlatformError>> = posts
        .iter()
        .map(|p| key(p.platform_post_id).ok_or_else(|| invalid_id(platform, p.platform_post_id)))
        .collect();
    let mut seen = HashSet::new();
    let unique: Vec<String> = keys
        .iter()
        .flatten()
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect();
    let mut answers: HashMap<String, PostMetrics> = HashMap::new();
    for chunk in unique.chunks(max.max(1)) {
        match call(chunk.to_vec()).await {
            Ok(found) => answers.extend(found.into_iter().filter(|(id, _)| chunk.contains(id))),
            Err(err) if stops_fetch(&err) => return Err(err),
            Err(err) => answers.extend(chunk.iter().map(|id| (id.clone(), Err(err.clone())))),
        }
    }
    Ok(keys
        .into_iter()
        .map(|k| {
            let id = k?;
            answers
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Err(not_found(platform, &id)))
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
