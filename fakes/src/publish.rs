//! What every fake shares for publishing: the record of published posts, the multi-step state
//! (Instagram containers, TikTok publish ids, YouTube upload sessions), ids, timestamps and the
//! failure injection of publish-creating calls ([`PublishFault`]).
//!
//! The publish contract is `/tmp/publish-spec.md` (nikara's publishers follow the same text). Each
//! platform module owns its publish routes and maps a fault to its own error shape; this module
//! only pops the fault and sleeps.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::Response;
use poem::http::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::Inner;

/// One successful publish, as the platform would show it. Tests count duplicates with these (the
/// same text published twice on one account is a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPost {
    /// `facebook`, `instagram`, `linkedin`, `x`, `tiktok`, `reddit` or `youtube`.
    pub platform: String,
    /// Page id (Facebook), IG user id (Instagram), member id (LinkedIn), user id (X), `open_id`
    /// (TikTok), username (Reddit) or channel id (YouTube).
    pub account: String,
    /// The post id nikara should record: `{page_id}_{post_id}` (Facebook), media id (Instagram),
    /// `urn:li:share:…` (LinkedIn), tweet id (X), the public post id (TikTok), `t3_…` (Reddit), video
    /// id (YouTube).
    pub id: String,
    /// Message, caption, commentary, tweet text, TikTok description (else title), Reddit self text,
    /// YouTube description.
    pub text: String,
    /// Reddit and YouTube titles; the title of a TikTok photo post that also has a description.
    pub title: Option<String>,
    /// Media URLs the platform was asked to pull (YouTube: empty, it receives bytes).
    pub media: Vec<String>,
    /// Platform-specific extras (privacy level, subreddit, kind, media type, upload size, …).
    pub options: Value,
    pub at_unix_ms: i64,
}

/// A failure a publish-creating call answers instead of publishing (one per call, in order; see
/// [`crate::Control::publish_faults`]). Each platform answers it in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishFault {
    /// 500/503 with the platform's server-error body (Meta: 500 code 2 `is_transient`).
    ServerError,
    /// 429 with `Retry-After` (X also `x-rate-limit-reset`; Reddit `x-ratelimit-reset`); Meta: 400
    /// code 4 with `X-Business-Use-Case-Usage` whose `estimated_time_to_regain_access` is the delay in
    /// whole minutes, at least 1.
    RateLimited { retry_after_s: u64 },
    /// The platform's validation error carrying `message` (Meta 400 code 100; X 400 problem detail;
    /// LinkedIn 422; TikTok HTTP 200 `invalid_params`; Reddit HTTP 200 `json.errors`; Google 400).
    Rejected { message: String },
    /// The platform's token error (Meta 400 code 190; others 401).
    Unauthorized,
    /// Sleeps this many milliseconds, then publishes normally (plays a client timeout: the post is
    /// created even when the client gave up waiting).
    SlowMs(u64),
}

/// An Instagram media container.
#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub ig_id: String,
    pub video: bool,
    pub caption: String,
    pub media_url: String,
    /// Status polls so far (videos: the first answers `IN_PROGRESS`, later ones `FINISHED`).
    pub polls: u32,
    /// The media id once published.
    pub published: Option<String>,
}

impl Container {
    pub(crate) fn finished(&self) -> bool {
        !self.video || self.polls >= 2
    }
}

/// A TikTok publish: the public post id is fixed at init and shown once the status is complete.
#[derive(Debug, Clone)]
pub(crate) struct TiktokPublish {
    pub public_id: u64,
    pub polls: u32,
}

/// A YouTube resumable upload session.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub channel: String,
    pub title: String,
    pub description: String,
    pub privacy: String,
    pub length: usize,
    pub content_type: String,
    /// The video resource once the bytes arrived (a repeated PUT answers it again).
    pub video: Option<Value>,
}

/// The publish state of one fake. Lock it through [`Inner::posts`], never together with `control`
/// or `state`.
#[derive(Debug)]
pub(crate) struct Posts {
    /// Random per fake, so two fakes of one kind do not hand out the same ids.
    salt: u64,
    seq: u64,
    pub list: Vec<PublishedPost>,
    /// Graph node ids (Facebook post ids, Instagram media ids) → index in `list`.
    pub nodes: HashMap<String, usize>,
    pub containers: HashMap<String, Container>,
    /// `(user id, text)` of every tweet, for X's duplicate check.
    pub tweets: HashSet<(String, String)>,
    pub tiktok: HashMap<String, TiktokPublish>,
    pub uploads: HashMap<String, Upload>,
}

impl Posts {
    pub(crate) fn new() -> Posts {
        Posts {
            salt: rand::random_range(0..1000),
            seq: 0,
            list: Vec::new(),
            nodes: HashMap::new(),
            containers: HashMap::new(),
            tweets: HashSet::new(),
            tiktok: HashMap::new(),
            uploads: HashMap::new(),
        }
    }

    /// A fresh numeric id: `base` + salt · 10¹² + a counter.
    pub(crate) fn next_id(&mut self, base: u64) -> u64 {
        self.seq += 1;
        base + self.salt * 1_000_000_000_000 + self.seq
    }

    /// A fresh 11-character url-safe id (YouTube video ids, Instagram shortcodes).
    pub(crate) fn next_short_id(&mut self) -> String {
        self.seq += 1;
        let n = 0x5a17_0000_0000_0000_u64 ^ (self.salt << 40) ^ self.seq.wrapping_mul(0x9e37_79b9);
        URL_SAFE_NO_PAD.encode(n.to_be_bytes())
    }

    /// Records a successful publish; returns its index in `list`.
    pub(crate) fn record(&mut self, post: PublishedPost) -> usize {
        self.list.push(post);
        self.list.len() - 1
    }

    /// The posts of one account, newest first (scans: for listing endpoints only).
    pub(crate) fn of_account<'a>(
        &'a self,
        platform: &'a str,
        account: &'a str,
    ) -> impl Iterator<Item = &'a PublishedPost> + 'a {
        self.list
            .iter()
            .rev()
            .filter(move |p| p.platform == platform && p.account == account)
    }
}

/// Starts a publish-creating call: pops the next injected fault and sleeps `publish_latency_ms`.
pub(crate) async fn begin(shared: &Inner) -> Option<PublishFault> {
    let (latency, fault) = {
        let mut c = shared.control();
        (c.publish_latency_ms, c.publish_faults.pop_front())
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    fault
}

/// Answers a popped fault in the platform's shape (`shape`), or lets the call go on: nothing
/// injected, or `SlowMs` after its sleep.
pub(crate) async fn gate(
    fault: Option<PublishFault>,
    shape: impl FnOnce(&PublishFault) -> Response,
) -> Result<(), Response> {
    match fault {
        None => Ok(()),
        Some(PublishFault::SlowMs(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        }
        Some(f) => Err(shape(&f)),
    }
}

/// Adds a header (skipped if the value is not a valid header value).
pub(crate) fn with_header(mut resp: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
    resp
}

/// Length in characters (Unicode scalar values), as platforms count text limits.
pub(crate) fn chars(s: &str) -> usize {
    s.chars().count()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether a media URL names a video (path ends `.mp4`/`.mov`, any case).
pub(crate) fn is_video_url(url: &str) -> bool {
    let path = url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned());
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".mp4") || lower.ends_with(".mov")
}

pub(crate) fn is_http_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(YYYY-MM-DDTHH:MM:SS, milliseconds)` in UTC.
fn utc_parts(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
        ms.rem_euclid(1000),
    )
}

/// Graph's `2026-11-27T05:00:00+0000`.
pub(crate) fn graph_time(ms: i64) -> String {
    format!("{}+0000", utc_parts(ms).0)
}

/// X's `2026-11-27T05:00:00.000Z`.
pub(crate) fn x_time(ms: i64) -> String {
    let (base, frac) = utc_parts(ms);
    format!("{base}.{frac:03}Z")
}

/// RFC 3339 `2026-11-27T05:00:00Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    format!("{}Z", utc_parts(ms).0)
}

/// Parses RFC 3339 (`Z` or `±HH:MM`/`±HHMM`, optional fraction) to Unix milliseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let sep = |i: usize, c: &[u8]| s.as_bytes().get(i).is_some_and(|b| c.contains(b));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = frac.chars().take(digits).chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let hm = rest.get(1..)?.replace(':', "");
            if hm.len() != 4 || !hm.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = hm.get(..2)?.parse().ok()?;
            let om: i64 = hm.get(2..)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_times() {
        // 2026-11-27T05:00:00Z
        let ms = 1_795_755_600_000;
        assert_eq!(graph_time(ms), "2026-11-27T05:00:00+0000");
        assert_eq!(x_time(ms + 7), "2026-11-27T05:00:00.007Z");
        assert_eq!(rfc3339(ms), "2026-11-27T05:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-27T05:00:00Z"), Some(ms));
        assert_eq!(parse_rfc3339("2026-11-27T05:00:00.5Z"), Some(ms + 500));
        assert_eq!(parse_rfc3339("2026-11-27T06:30:00+01:30"), Some(ms));
        assert_eq!(parse_rfc3339("2026-11-27T05:00:00+0000"), Some(ms));
        assert_eq!(parse_rfc3339("2026-11-27"), None);
        assert_eq!(parse_rfc3339("2026-13-27T05:00:00Z"), None);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(graph_time(0), "1970-01-01T00:00:00+0000");
        for ms in [0, 951_782_400_000, 4_102_444_800_123, ms] {
            assert_eq!(parse_rfc3339(&x_time(ms)), Some(ms));
        }
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let mut p = Posts::new();
        let a = p.next_id(1_860_000_000_000_000_000);
        let b = p.next_id(1_860_000_000_000_000_000);
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 19);
        let (s1, s2) = (p.next_short_id(), p.next_short_id());
        assert_eq!(s1.len(), 11);
        assert_ne!(s1, s2);
        assert!(is_video_url("http://h/media/clip.MP4?x=1"));
        assert!(!is_video_url("http://h/media/pic.jpg"));
    }
}
