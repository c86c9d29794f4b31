//! HTTP plumbing shared by every platform call: auth styles, timeouts, and turning each platform's
//! error shape into a [`PlatformError`] that keeps the platform's message.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
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
    let retry_after = retry_after_from_headers(platform, resp.headers(), chrono::Utc::now());
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

/// How long to wait before retrying, in seconds, from the response headers, in this order:
/// `Retry-After` (seconds or an HTTP date); for X, `x-rate-limit-reset` (unix seconds, turned into
/// seconds from `now`); for Reddit, `x-ratelimit-reset` (seconds until the window resets); for
/// Meta, the largest `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage`
/// (`{"<id>":[{…}]}`), `X-App-Usage` or `X-Page-Usage` (`{…}`).
/// Only used when the response is classified as a rate limit. A wait already over counts as 1 s,
/// so a caller never retries in a tight loop; a Meta estimate of 0 says nothing and gives `None`.
pub fn retry_after_from_headers(platform: Platform, headers: &HeaderMap, now: DateTime<Utc>) -> Option<u64> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(secs);
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(v) {
            return Some(seconds_until(at.timestamp(), now));
        }
    }
    if platform == Platform::X
        && let Some(reset) = header("x-rate-limit-reset").and_then(|v| v.parse::<i64>().ok())
    {
        return Some(seconds_until(reset, now));
    }
    if platform == Platform::Reddit
        && let Some(secs) = header("x-ratelimit-reset").and_then(|v| v.parse::<f64>().ok())
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some((secs.ceil() as u64).max(1));
    }
    if platform.is_meta() {
        let minutes = ["x-business-use-case-usage", "x-app-usage", "x-page-usage"]
            .iter()
            .filter_map(|name| header(name))
            .filter_map(|v| serde_json::from_str::<Value>(v).ok())
            .filter_map(|usage| meta_regain_minutes(&usage))
            .max();
        if let Some(m) = minutes.filter(|m| *m > 0) {
            return Some(m.saturating_mul(60));
        }
    }
    None
}

/// Seconds from `now` to the unix time `at`, at least 1.
fn seconds_until(at: i64, now: DateTime<Utc>) -> u64 {
    u64::try_from(at.saturating_sub(now.timestamp())).unwrap_or(0).max(1)
}

/// The largest `estimated_time_to_regain_access` anywhere in a Meta usage header: at the top
/// (`X-App-Usage`) or in the per-business arrays of `X-Business-Use-Case-Usage`.
fn meta_regain_minutes(usage: &Value) -> Option<u64> {
    let own = usage.get("estimated_time_to_regain_access").and_then(Value::as_u64);
    let nested = usage
        .as_object()
        .into_iter()
        .flat_map(|map| map.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry.get("estimated_time_to_regain_access").and_then(Value::as_u64))
        .max();
    own.max(nested)
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn retry_after_comes_from_the_platform_headers() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z")
            .expect("time")
            .to_utc();
        let at = |pairs: &[(&'static str, &str)], platform| retry_after_from_headers(platform, &headers(pairs), now);
        assert_eq!(at(&[("retry-after", "30")], Platform::Linkedin), Some(30));
        assert_eq!(at(&[("Retry-After", " 7 ")], Platform::Reddit), Some(7));
        assert_eq!(
            at(&[("retry-after", "Fri, 27 Nov 2026 05:02:00 GMT")], Platform::Youtube),
            Some(120)
        );
        assert_eq!(at(&[], Platform::X), None);
        // X: the window's reset time when there is no Retry-After; Retry-After wins when both come.
        let reset = (now.timestamp() + 900).to_string();
        assert_eq!(
            at(
                &[("x-rate-limit-reset", &reset), ("x-rate-limit-remaining", "0")],
                Platform::X
            ),
            Some(900)
        );
        assert_eq!(
            at(&[("x-rate-limit-reset", &reset), ("retry-after", "5")], Platform::X),
            Some(5)
        );
        let past = (now.timestamp() - 10).to_string();
        assert_eq!(at(&[("x-rate-limit-reset", &past)], Platform::X), Some(1));
        // Only X sends that header with that meaning; Reddit's says seconds from now.
        assert_eq!(at(&[("x-rate-limit-reset", &reset)], Platform::Reddit), None);
        assert_eq!(at(&[("x-ratelimit-reset", "42")], Platform::Reddit), Some(42));
        assert_eq!(at(&[("x-ratelimit-reset", "42")], Platform::X), None);
        // Meta: minutes to regain access, in the business use case header or the app header.
        let buc = r#"{"112233445566":[{"type":"pages","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":1},{"type":"instagram","call_count":5,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#;
        assert_eq!(at(&[("x-business-use-case-usage", buc)], Platform::Facebook), Some(60));
        assert_eq!(at(&[("X-Business-Use-Case-Usage", buc)], Platform::Instagram), Some(60));
        let app = r#"{"call_count":100,"total_time":40,"total_cputime":12,"estimated_time_to_regain_access":14}"#;
        assert_eq!(at(&[("x-app-usage", app)], Platform::Facebook), Some(840));
        assert_eq!(
            at(
                &[("x-app-usage", app), ("x-business-use-case-usage", buc)],
                Platform::Facebook
            ),
            Some(840)
        );
        // Usage without an estimate, an estimate of 0, or garbage: nothing to say.
        assert_eq!(
            at(
                &[("x-app-usage", r#"{"call_count":28,"total_time":25,"total_cputime":25}"#)],
                Platform::Facebook
            ),
            None
        );
        assert_eq!(
            at(
                &[(
                    "x-business-use-case-usage",
                    r#"{"1":[{"estimated_time_to_regain_access":0}]}"#
                )],
                Platform::Facebook
            ),
            None
        );
        assert_eq!(at(&[("x-app-usage", "not json")], Platform::Facebook), None);
        assert_eq!(at(&[("x-business-use-case-usage", buc)], Platform::X), None);
    }

    #[tokio::test]
    async fn read_json_puts_the_header_wait_on_a_rate_limit() {
        // A Meta throttle: HTTP 400, code 4, the wait only in the business use case header.
        let resp = http_response(
            "400 Bad Request",
            &[(
                "x-business-use-case-usage",
                r#"{"1":[{"estimated_time_to_regain_access":1}]}"#,
            )],
            r#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4}}"#,
        )
        .await;
        assert!(matches!(
            read_json(Platform::Facebook, resp).await,
            Err(PlatformError::RateLimited {
                retry_after_s: Some(60),
                ..
            })
        ));
        let reset = (Utc::now().timestamp() + 600).to_string();
        let resp = http_response(
            "429 Too Many Requests",
            &[("x-rate-limit-reset", &reset)],
            r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#,
        )
        .await;
        match read_json(Platform::X, resp).await {
            Err(PlatformError::RateLimited {
                retry_after_s: Some(s), ..
            }) => assert!((590..=600).contains(&s), "{s}"),
            other => panic!("{other:?}"),
        }
    }

    /// One real response, served once from a local socket.
    async fn http_response(status: &str, pairs: &[(&str, &str)], body: &str) -> Response {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut raw = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in pairs {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(raw.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        reqwest::get(format!("http://{addr}/")).await.expect("response")
    }
}
