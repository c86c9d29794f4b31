//! LinkedIn: a text post through the versioned Posts API, as the member in the account's
//! `author_urn`. LinkedIn answers 201 with an empty body and the post's URN in `x-restli-id`.
//! There is no reconcile: nothing lists a member's own posts to a `w_member_social` grant.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{PublishRequest, Published, refusal, send_expecting_success};
use crate::platforms::{ApiCtx, PlatformError, str_at};

/// The Posts API version nikara speaks (`LinkedIn-Version`, `YYYYMM`).
pub const LINKEDIN_VERSION: &str = "202411";

/// `POST /rest/posts`.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn publish(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    let author = author_urn(req).ok_or_else(|| {
        refusal(
            ctx.platform,
            "invalid_account",
            "the LinkedIn account has no author URN (`author_urn`); reconnect it",
        )
    })?;
    let request = ctx
        .http
        .post(format!("{}/rest/posts", ctx.api_url))
        .header(reqwest::header::USER_AGENT, ctx.user_agent)
        .header("LinkedIn-Version", LINKEDIN_VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
        .bearer_auth(token.expose_secret())
        .json(&post_body(&author, req.text));
    let resp = send_expecting_success(ctx.platform, request).await?;
    // Header names are case-insensitive: this also finds `X-RestLi-Id`.
    let urn = resp
        .headers()
        .get("x-restli-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PlatformError::invalid(ctx.platform, "the post was accepted without an `x-restli-id` header"))?
        .to_string();
    Ok(Published {
        url: Some(post_url(&urn)),
        platform_post_id: urn,
    })
}

/// The member to post as: metadata `author_urn`, else the member id the account was stored with.
pub fn author_urn(req: &PublishRequest<'_>) -> Option<String> {
    str_at(req.metadata, "/author_urn").or_else(|| {
        let id = req.external_id.trim();
        (!id.is_empty()).then(|| format!("urn:li:person:{id}"))
    })
}

/// The Posts API body of a public text post.
pub fn post_body(author: &str, text: &str) -> Value {
    json!({
        "author": author,
        "commentary": escape_little_text(text),
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    })
}

/// `commentary` is in LinkedIn's "little" text format, where `\ | { } @ [ ] ( ) < > # * _ ~` are
/// markup: unescaped, LinkedIn silently cuts the post at the first one. Each is backslash-escaped,
/// except a `#` starting a hashtag (kept clickable) and anything inside a URL (kept linkable).
pub fn escape_little_text(text: &str) -> String {
    const RESERVED: &[char] = &[
        '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~',
    ];
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        if word.starts_with("http://") || word.starts_with("https://") {
            out.push_str(word);
        } else {
            let mut chars = word.chars().peekable();
            while let Some(c) = chars.next() {
                let hashtag = c == '#' && chars.peek().is_some_and(|n| n.is_alphanumeric());
                if RESERVED.contains(&c) && !hashtag {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        let space_end = tail.find(|c: char| !c.is_whitespace()).unwrap_or(tail.len());
        out.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
    }
    out
}

pub fn post_url(urn: &str) -> String {
    format!("https://www.linkedin.com/feed/update/{urn}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn body_has_the_documented_shape() {
        assert_eq!(
            post_body("urn:li:person:782bbtaQ", "Hello LinkedIn"),
            json!({"author": "urn:li:person:782bbtaQ", "commentary": "Hello LinkedIn", "visibility": "PUBLIC",
                   "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
                   "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": false})
        );
    }

    #[test]
    fn reserved_characters_are_escaped_but_hashtags_and_links_survive() {
        assert_eq!(escape_little_text("plain text, 100% fine!"), "plain text, 100% fine!");
        assert_eq!(
            escape_little_text("Launch (beta) at 5 <today> ~ *now* a_b @you [x] {y} | \\"),
            "Launch \\(beta\\) at 5 \\<today\\> \\~ \\*now\\* a\\_b \\@you \\[x\\] \\{y\\} \\| \\\\"
        );
        assert_eq!(
            escape_little_text("#rust is #1, # alone\nsee https://ex.com/a_(b)?q=#x"),
            "#rust is #1, \\# alone\nsee https://ex.com/a_(b)?q=#x"
        );
        assert_eq!(escape_little_text("  a  \t(b)  "), "  a  \t\\(b\\)  ");
        assert_eq!(escape_little_text(""), "");
    }

    #[test]
    fn author_from_metadata_else_the_member_id() {
        let options = Map::new();
        let meta = json!({"author_urn": "urn:li:person:782bbtaQ", "id": "782bbtaQ"});
        let mut req = PublishRequest {
            text: "x",
            title: None,
            media_urls: &[],
            options: &options,
            external_id: "other",
            username: None,
            metadata: &meta,
        };
        assert_eq!(author_urn(&req).as_deref(), Some("urn:li:person:782bbtaQ"));
        let empty = json!({});
        req.metadata = &empty;
        assert_eq!(author_urn(&req).as_deref(), Some("urn:li:person:other"));
        req.external_id = "";
        assert_eq!(author_urn(&req), None);
    }

    #[test]
    fn url_of_a_share() {
        assert_eq!(
            post_url("urn:li:share:7123"),
            "https://www.linkedin.com/feed/update/urn:li:share:7123"
        );
    }
}
