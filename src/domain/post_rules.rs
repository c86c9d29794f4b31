//! What each platform accepts, checked before a post is scheduled so the user hears it at once
//! (422, field by field) instead of from a failed publish hours later.

use serde_json::{Map, Value};

use super::platform::Platform;

/// One field-level problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// X counts characters by weight: most Latin, Greek, Cyrillic and common punctuation weigh 1, other
/// characters (CJK, emoji, …) weigh 2, and every URL weighs 23 whatever its length
/// (twitter-text v3 configuration).
pub fn x_weighted_length(text: &str) -> usize {
    fn weight(c: char) -> usize {
        let u = c as u32;
        if u <= 4351 || (8192..=8205).contains(&u) || (8208..=8223).contains(&u) || (8242..=8247).contains(&u) {
            1
        } else {
            2
        }
    }
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            let is_url = trimmed.starts_with("http://") || trimmed.starts_with("https://");
            if is_url {
                23 + word[trimmed.len()..].chars().map(weight).sum::<usize>()
            } else {
                word.chars().map(weight).sum()
            }
        })
        .sum()
}

fn is_video(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    [".mp4", ".mov", ".m4v", ".webm"].iter().any(|ext| path.ends_with(ext))
}

fn is_image(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".webp", ".gif"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Options each platform understands; anything else is a 422.
pub fn allowed_options(p: Platform) -> &'static [&'static str] {
    match p {
        Platform::Reddit => &["subreddit", "kind"],
        Platform::Tiktok => &["privacy_level"],
        Platform::Youtube => &["privacy_status"],
        _ => &[],
    }
}

/// Checks a post for one platform. Empty means acceptable.
pub fn validate(
    p: Platform,
    text: &str,
    title: Option<&str>,
    media_urls: &[String],
    options: &Map<String, Value>,
) -> Vec<FieldError> {
    let mut out = Vec::new();
    let chars = text.chars().count();
    for (i, url) in media_urls.iter().enumerate() {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => out.push(err(
                &format!("media_urls[{i}]"),
                "must be an http(s) URL the platform can fetch",
            )),
        }
    }
    for key in options.keys() {
        if !allowed_options(p).contains(&key.as_str()) {
            let known = allowed_options(p);
            out.push(err(
                &format!("options.{key}"),
                if known.is_empty() {
                    format!("{} takes no options", p.display_name())
                } else {
                    format!("unknown option for {}; known: {}", p.display_name(), known.join(", "))
                },
            ));
        }
    }
    let opt = |k: &str| options.get(k).and_then(Value::as_str);
    match p {
        Platform::X => {
            let n = x_weighted_length(text);
            if text.trim().is_empty() && media_urls.is_empty() {
                out.push(err("text", "X needs text or media"));
            }
            if n > 280 {
                out.push(err("text", format!("X allows 280 weighted characters; this is {n}")));
            }
        }
        Platform::Linkedin => {
            if text.trim().is_empty() {
                out.push(err("text", "LinkedIn needs text"));
            }
            if chars > 3000 {
                out.push(err(
                    "text",
                    format!("LinkedIn allows 3,000 characters; this is {chars}"),
                ));
            }
        }
        Platform::Facebook => {
            if text.trim().is_empty() && media_urls.is_empty() {
                out.push(err("text", "Facebook needs text or an image"));
            }
            if chars > 63_206 {
                out.push(err(
                    "text",
                    format!("Facebook allows 63,206 characters; this is {chars}"),
                ));
            }
        }
        Platform::Instagram => {
            if !media_urls.iter().any(|u| is_image(u) || is_video(u)) {
                out.push(err(
                    "media_urls",
                    "Instagram needs an image (or a video): it has no text-only posts",
                ));
            }
            if chars > 2200 {
                out.push(err(
                    "text",
                    format!("Instagram captions allow 2,200 characters; this is {chars}"),
                ));
            }
        }
        Platform::Tiktok => {
            if media_urls.is_empty() {
                out.push(err("media_urls", "TikTok needs a video or photos"));
            }
            if let Some(level) = options.get("privacy_level") {
                let ok = [
                    "PUBLIC_TO_EVERYONE",
                    "MUTUAL_FOLLOW_FRIENDS",
                    "FOLLOWER_OF_CREATOR",
                    "SELF_ONLY",
                ];
                if !level.as_str().is_some_and(|l| ok.contains(&l)) {
                    out.push(err(
                        "options.privacy_level",
                        format!("must be one of {}", ok.join(", ")),
                    ));
                }
            }
        }
        Platform::Reddit => {
            match title {
                None | Some("") => out.push(err("title", "Reddit needs a title")),
                Some(t) if t.chars().count() > 300 => out.push(err("title", "Reddit titles allow 300 characters")),
                _ => {}
            }
            match opt("subreddit") {
                None | Some("") => out.push(err("options.subreddit", "Reddit needs a subreddit")),
                Some(s) if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => out.push(err(
                    "options.subreddit",
                    "a subreddit name is letters, digits and underscores (no r/)",
                )),
                _ => {}
            }
            match opt("kind") {
                None | Some("self") => {}
                Some("link") if !media_urls.is_empty() => {}
                Some("link") => out.push(err("media_urls", "a link post needs the link as media_urls[0]")),
                Some(_) => out.push(err("options.kind", "must be `self` or `link`")),
            }
            if chars > 40_000 {
                out.push(err("text", "Reddit self posts allow 40,000 characters"));
            }
        }
        Platform::Youtube => {
            if !media_urls.first().is_some_and(|u| is_video(u)) {
                out.push(err(
                    "media_urls",
                    "YouTube needs a video URL (.mp4, .mov, .m4v, .webm) as media_urls[0]",
                ));
            }
            if title.is_some_and(|t| t.chars().count() > 100) {
                out.push(err("title", "YouTube titles allow 100 characters"));
            }
            if chars > 5000 {
                out.push(err("text", "YouTube descriptions allow 5,000 characters"));
            }
            if let Some(s) = options.get("privacy_status")
                && !s
                    .as_str()
                    .is_some_and(|s| ["public", "unlisted", "private"].contains(&s))
            {
                out.push(err("options.privacy_status", "must be public, unlisted or private"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn x_counts_by_weight() {
        assert_eq!(x_weighted_length("hello"), 5);
        assert_eq!(x_weighted_length("日本"), 4);
        assert_eq!(
            x_weighted_length("see https://example.com/a/very/long/path/indeed ok"),
            4 + 23 + 3
        );
        let ok = "a".repeat(280);
        assert!(validate(Platform::X, &ok, None, &[], &Map::new()).is_empty());
        let long = "日".repeat(141);
        assert_eq!(validate(Platform::X, &long, None, &[], &Map::new())[0].field, "text");
    }

    #[test]
    fn each_platform_says_what_it_needs() {
        let none = Map::new();
        assert_eq!(
            validate(Platform::Instagram, "hi", None, &[], &none)[0].field,
            "media_urls"
        );
        assert!(validate(Platform::Instagram, "hi", None, &["https://x/a.jpg".into()], &none).is_empty());
        assert_eq!(
            validate(Platform::Tiktok, "hi", None, &[], &none)[0].field,
            "media_urls"
        );
        assert_eq!(
            validate(Platform::Youtube, "hi", None, &["https://x/a.jpg".into()], &none)[0].field,
            "media_urls"
        );
        let reddit = validate(Platform::Reddit, "hi", None, &[], &none);
        let fields: Vec<_> = reddit.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["title", "options.subreddit"]);
        assert!(
            validate(
                Platform::Reddit,
                "hi",
                Some("t"),
                &[],
                &opts(json!({"subreddit": "rust"}))
            )
            .is_empty()
        );
        assert_eq!(
            validate(Platform::Linkedin, &"a".repeat(3001), None, &[], &none)[0].field,
            "text"
        );
        assert_eq!(
            validate(Platform::Facebook, "hi", None, &[], &opts(json!({"subreddit": "x"})))[0].field,
            "options.subreddit"
        );
        assert_eq!(
            validate(
                Platform::Tiktok,
                "hi",
                None,
                &["https://x/v.mp4".into()],
                &opts(json!({"privacy_level": "EVERYONE"}))
            )[0]
            .field,
            "options.privacy_level"
        );
        assert_eq!(
            validate(Platform::X, "hi", None, &["ftp://x".into()], &none)[0].field,
            "media_urls[0]"
        );
    }
}
