//! HTTP plumbing shared by every platform call: auth styles, timeouts, and turning each platform's
//! error shape into a [`PlatformError`] that keeps the platform's message.

use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{ApiCtx, PlatformError};
use crate::domain::platform::Platform;

/// How the access token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenIn {
    /// `Authorization: Bearer …` (everyone but Meta's Graph API, which also accepts it).
    Bearer,
    /// `?access_token=…` (Meta Graph API).
    Query,
}

/// Builds a GET to `{api_url}{path}` with the token attached.
pub fn get(ctx: &ApiCtx<'_>, path: &str, token: &SecretString, how: TokenIn) -> RequestBuilder {
    let url = format!("{}{}", ctx.api_url, path);
    let req = ctx.http.get(url).header(reqwest::header::USER_AGENT, ctx.user_agent);
    match how {
        TokenIn::Bearer => req.bearer_auth(token.expose_secret()),
        TokenIn::Query => req.query(&[("access_token", token.expose_secret())]),
    }
}

/// Sends and decodes JSON, classifying failures by status *and* body (TikTok errors arrive on 200).
pub async fn send_json(platform: Platform, req: RequestBuilder) -> Result<Value, PlatformError> {
    let resp = req.send().await.map_err(|e| transport(platform, &e))?;
    read_json(platform, resp).await
}

/// Decodes a response already received; see [`send_json`].
pub async fn read_json(platform: Platform, resp: Response) -> Result<Value, PlatformError> {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = resp.text().await.map_err(|e| transport(platform, &e))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(err) = classify(platform, status, &body, retry_after) {
        return Err(err);
    }
    if !status.is_success() {
        return Err(PlatformError::Api {
            platform,
            status: status.as_u16(),
            code: None,
            message: snippet(&text),
        });
    }
    if body.is_null() {
        return Err(PlatformError::invalid(
            platform,
            format!("expected JSON, got: {}", snippet(&text)),
        ));
    }
    Ok(body)
}

/// A failed request, described without its URL: for Meta the URL carries the token.
pub fn transport(platform: Platform, e: &reqwest::Error) -> PlatformError {
    let message = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_decode() || e.is_body() {
        "the response body could not be read"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    PlatformError::Transport {
        platform,
        message: message.to_string(),
    }
}

/// First 300 characters of a body, for messages.
pub fn snippet(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.is_empty() { "(empty body)".to_string() } else { t }
}

fn s(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(|x| match x {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The platform's error, if the response is one. Knows every documented shape:
/// Meta `{"error":{"message","code","error_subcode"}}` (190 = dead token, 4/17/32/613 = throttled),
/// OAuth `{"error","error_description"}`, TikTok `{"error":{"code","message"}}` on any status,
/// LinkedIn `{"message","serviceErrorCode","status"}`, X problem details `{"title","detail"}`,
/// Google `{"error":{"code","message","status"}}`, Reddit `{"message","error"}` and `json.errors`.
pub fn classify(
    platform: Platform,
    status: StatusCode,
    body: &Value,
    retry_after: Option<u64>,
) -> Option<PlatformError> {
    let code_num = status.as_u16();
    // TikTok: errors may come with HTTP 200.
    if platform == Platform::Tiktok
        && let Some(code) = s(body, "/error/code")
        && code != "ok"
    {
        let message = s(body, "/error/message").unwrap_or_else(|| code.clone());
        return Some(match code.as_str() {
            "access_token_invalid" | "scope_not_authorized" | "invalid_grant" => PlatformError::Unauthorized {
                platform,
                status: code_num,
                code: Some(code),
                message,
            },
            "rate_limit_exceeded" => PlatformError::RateLimited {
                platform,
                retry_after_s: retry_after,
                message,
            },
            _ => PlatformError::Api {
                platform,
                status: if code_num == 200 { 400 } else { code_num },
                code: Some(code),
                message,
            },
        });
    }
    // Reddit: `{"json":{"errors":[["CODE","message","field"]]}}` with HTTP 200.
    if platform == Platform::Reddit
        && let Some(errors) = body.pointer("/json/errors").and_then(Value::as_array)
        && let Some(first) = errors.first()
    {
        let parts: Vec<String> = first
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        return Some(PlatformError::Api {
            platform,
            status: if code_num == 200 { 400 } else { code_num },
            code: parts.first().cloned(),
            message: parts.get(1).cloned().unwrap_or_else(|| first.to_string()),
        });
    }
    // An OAuth error object on HTTP 200 (TikTok's token endpoint does this).
    let oauth_error_on_ok =
        status.is_success() && body.get("error").is_some_and(Value::is_string) && body.get("access_token").is_none();
    if status.is_success() && !oauth_error_on_ok {
        return None;
    }
    let code_num = if oauth_error_on_ok { 400 } else { code_num };
    // Meta's error object.
    if platform.is_meta()
        && let Some(code) = body.pointer("/error/code").and_then(Value::as_i64)
    {
        let message = s(body, "/error/message").unwrap_or_else(|| "unknown error".into());
        let code_s = Some(code.to_string());
        return Some(match code {
            // 190: invalid or expired token; 102: session key invalid.
            190 | 102 => PlatformError::Unauthorized {
                platform,
                status: code_num,
                code: code_s,
                message,
            },
            4 | 17 | 32 | 613 => PlatformError::RateLimited {
                platform,
                retry_after_s: retry_after,
                message,
            },
            _ => PlatformError::Api {
                platform,
                status: code_num,
                code: code_s,
                message,
            },
        });
    }
    let oauth_error = s(body, "/error");
    let message = s(body, "/error_description")
        .or_else(|| s(body, "/error/message"))
        .or_else(|| s(body, "/detail"))
        .or_else(|| s(body, "/message"))
        .or_else(|| s(body, "/title"))
        .or_else(|| oauth_error.clone())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let code = oauth_error
        .or_else(|| s(body, "/serviceErrorCode"))
        .or_else(|| s(body, "/error/status"));
    if code_num == 429 {
        return Some(PlatformError::RateLimited {
            platform,
            retry_after_s: retry_after,
            message,
        });
    }
    if code_num == 401 || code.as_deref() == Some("invalid_grant") {
        return Some(PlatformError::Unauthorized {
            platform,
            status: code_num,
            code,
            message,
        });
    }
    Some(PlatformError::Api {
        platform,
        status: code_num,
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_error_shape_is_classified() {
        let meta = json!({"error":{"message":"Error validating access token","type":"OAuthException","code":190,"error_subcode":460}});
        assert!(matches!(
            classify(Platform::Facebook, StatusCode::BAD_REQUEST, &meta, None),
            Some(PlatformError::Unauthorized { ref message, .. }) if message == "Error validating access token"
        ));
        let throttled = json!({"error":{"message":"Application request limit reached","code":4}});
        assert!(matches!(
            classify(Platform::Instagram, StatusCode::BAD_REQUEST, &throttled, None),
            Some(PlatformError::RateLimited { .. })
        ));
        let on_ok =
            json!({"error":"invalid_grant","error_description":"Refresh token is invalid or expired.","log_id":"x"});
        assert!(matches!(
            classify(Platform::Tiktok, StatusCode::OK, &on_ok, None),
            Some(PlatformError::Unauthorized { status: 400, .. })
        ));
        let tiktok = json!({"data":{},"error":{"code":"access_token_invalid","message":"The access token is invalid","log_id":"x"}});
        assert!(matches!(
            classify(Platform::Tiktok, StatusCode::OK, &tiktok, None),
            Some(PlatformError::Unauthorized { .. })
        ));
        let ok = json!({"data":{"user":{}},"error":{"code":"ok","message":""}});
        assert_eq!(classify(Platform::Tiktok, StatusCode::OK, &ok, None), None);
        let grant = json!({"error":"invalid_grant","error_description":"Token has been expired or revoked."});
        assert!(matches!(
            classify(Platform::Youtube, StatusCode::BAD_REQUEST, &grant, None),
            Some(PlatformError::Unauthorized { ref message, .. }) if message == "Token has been expired or revoked."
        ));
        let li = json!({"message":"Invalid access token","serviceErrorCode":65600,"status":401});
        assert!(matches!(
            classify(Platform::Linkedin, StatusCode::UNAUTHORIZED, &li, None),
            Some(PlatformError::Unauthorized { ref code, .. }) if code.as_deref() == Some("65600")
        ));
        let x = json!({"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"});
        assert!(matches!(
            classify(Platform::X, StatusCode::UNAUTHORIZED, &x, None),
            Some(PlatformError::Unauthorized { .. })
        ));
        let reddit = json!({"json":{"errors":[["SUBREDDIT_NOEXIST","that subreddit doesn't exist","sr"]]}});
        assert!(matches!(
            classify(Platform::Reddit, StatusCode::OK, &reddit, None),
            Some(PlatformError::Api { ref message, .. }) if message == "that subreddit doesn't exist"
        ));
        let limited = classify(
            Platform::X,
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"title":"Too Many Requests"}),
            Some(30),
        );
        assert!(matches!(
            limited,
            Some(PlatformError::RateLimited {
                retry_after_s: Some(30),
                ..
            })
        ));
        let down = classify(Platform::Linkedin, StatusCode::BAD_GATEWAY, &Value::Null, None).expect("error");
        assert!(down.is_transient());
        assert_eq!(down.code(), "platform_unavailable");
    }
}
