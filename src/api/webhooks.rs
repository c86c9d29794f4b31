//! Webhook receivers for Meta (Pages, Instagram) and X (Account Activity).
//!
//! The raw bytes are authenticated before anything parses them: Meta signs with
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`, X with
//! `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer secret, body)>`; comparisons are
//! constant time. A missing or wrong signature is 401 and nothing is stored. A verified delivery is
//! appended raw to `webhook-{platform}` with an id derived from its content, and answered 200 only
//! once that append is durable; the platforms' retries of the same delivery land on the same id and
//! change nothing.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::Utc;
use hmac::{Hmac, Mac};
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Body, Request, Response, handler};
use serde::Deserialize;
use sha2::Sha256;

use super::error::error_response;
use crate::app::App;
use crate::domain::DomainEvent;
use crate::domain::engagement::{EngagementEvent, delivery_id};
use crate::store::{ExpectedVersion, Metadata};

type HmacSha256 = Hmac<Sha256>;

/// Largest delivery accepted (Meta batches up to 1,000 changes).
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Headers worth keeping with a delivery (never anything secret).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-hub-signature-256",
    "x-twitter-webhooks-signature",
];

fn meta_secret(app: &App) -> Option<&str> {
    app.config
        .extra("meta_app_secret")
        .or_else(|| app.config.extra("facebook_client_secret"))
        .filter(|s| !s.is_empty())
}

fn x_secret(app: &App) -> Option<&str> {
    app.config.extra("x_consumer_secret").filter(|s| !s.is_empty())
}

fn mac(secret: &str, bytes: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    m.update(bytes);
    m
}

/// Meta: `sha256=<hex>` over the raw body.
pub fn verify_meta(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(sig) = decode_hex(hex.trim()) else {
        return false;
    };
    mac(secret, body).verify_slice(&sig).is_ok()
}

/// X: `sha256=<base64>` over the raw body.
pub fn verify_x(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(b64) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = B64.decode(b64.trim()) else { return false };
    mac(secret, body).verify_slice(&sig).is_ok()
}

/// X's CRC answer: `sha256=<base64 HMAC-SHA256(consumer secret, crc_token)>`.
pub fn x_crc_response(secret: &str, crc_token: &str) -> String {
    format!(
        "sha256={}",
        B64.encode(mac(secret, crc_token.as_bytes()).finalize().into_bytes())
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct MetaVerify {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /webhooks/meta`: the subscription handshake.
#[handler]
pub async fn meta_verify(app: Data<&Arc<App>>, q: Query<MetaVerify>) -> Response {
    let expected = app.config.extra("meta_verify_token").filter(|t| !t.is_empty());
    let ok = match (&q.mode, &q.verify_token, expected) {
        (Some(mode), Some(given), Some(expected)) => {
            mode == "subscribe" && constant_time_eq(given.as_bytes(), expected.as_bytes())
        }
        _ => false,
    };
    match (ok, &q.challenge) {
        (true, Some(challenge)) => Response::builder()
            .content_type("text/plain; charset=utf-8")
            .body(challenge.clone()),
        _ => error_response(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "hub.mode must be subscribe and hub.verify_token must match NIKARA_META_VERIFY_TOKEN",
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare MACs of both: equal-length, constant-time, whatever the inputs' lengths.
    let key = "nikara/verify-token";
    mac(key, a).verify_slice(&mac(key, b).finalize().into_bytes()).is_ok()
}

#[derive(Debug, Deserialize)]
pub struct Crc {
    crc_token: Option<String>,
}

/// `GET /webhooks/x?crc_token=…`: the challenge-response check.
#[handler]
pub async fn x_crc(app: Data<&Arc<App>>, q: Query<Crc>) -> Response {
    let Some(secret) = x_secret(&app) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_configured",
            "X webhooks are off: set NIKARA_X_CONSUMER_SECRET",
        );
    };
    let Some(token) = q.crc_token.as_deref().filter(|t| !t.is_empty()) else {
        return error_response(StatusCode::BAD_REQUEST, "missing_crc_token", "crc_token is required");
    };
    let body = serde_json::json!({ "response_token": x_crc_response(secret, token) });
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

/// `POST /webhooks/meta`.
#[handler]
pub async fn meta_delivery(app: Data<&Arc<App>>, req: &Request, body: Body) -> Response {
    let Some(secret) = meta_secret(&app) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Meta webhooks are off: set NIKARA_META_APP_SECRET (or the Facebook client secret)",
        );
    };
    receive(&app, req, body, "meta", |bytes, req| {
        verify_meta(secret, header(req, "x-hub-signature-256"), bytes)
    })
    .await
}

/// `POST /webhooks/x`.
#[handler]
pub async fn x_delivery(app: Data<&Arc<App>>, req: &Request, body: Body) -> Response {
    let Some(secret) = x_secret(&app) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_configured",
            "X webhooks are off: set NIKARA_X_CONSUMER_SECRET",
        );
    };
    receive(&app, req, body, "x", |bytes, req| {
        verify_x(secret, header(req, "x-twitter-webhooks-signature"), bytes)
    })
    .await
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    app: &App,
    req: &Request,
    body: Body,
    platform: &'static str,
    verify: impl FnOnce(&[u8], &Request) -> bool,
) -> Response {
    let m = crate::metrics::global();
    let bytes = match body.into_bytes_limit(WEBHOOK_BODY_LIMIT).await {
        Ok(b) => b,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("deliveries are limited to {WEBHOOK_BODY_LIMIT} bytes"),
            );
        }
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    };
    if !verify(&bytes, req) {
        m.webhook_deliveries
            .get_or_create(&crate::metrics::WebhookLabels {
                platform: platform.into(),
                outcome: "bad_signature".into(),
            })
            .inc();
        return error_response(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "missing or invalid signature",
        );
    }
    // Only now is the body trusted enough to look at.
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error_response(StatusCode::BAD_REQUEST, "bad_request", "the body is not UTF-8");
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|h| header(req, h).map(|v| (h.to_string(), v.to_string())))
        .collect();
    let event = EngagementEvent::WebhookDeliveryReceived {
        platform: platform.to_string(),
        received_at: Utc::now(),
        headers,
        body: text.to_string(),
    };
    let new = match event.to_new_event_with_id(delivery_id(platform, &bytes), Metadata::now()) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a delivery");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error");
        }
    };
    match app
        .store
        .append(&format!("webhook-{platform}"), ExpectedVersion::Any, vec![new])
        .await
    {
        Ok(_) => {
            m.webhook_deliveries
                .get_or_create(&crate::metrics::WebhookLabels {
                    platform: platform.into(),
                    outcome: "accepted".into(),
                })
                .inc();
            Response::builder().status(StatusCode::OK).body("")
        }
        Err(e) => {
            tracing::error!(error = %e, platform, "cannot store a webhook delivery; the platform will retry");
            error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_bytes() {
        let body = br#"{"object":"page","entry":[]}"#;
        let hex: String = mac("s3cret", body)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(verify_meta("s3cret", Some(&format!("sha256={hex}")), body));
        assert!(!verify_meta("other", Some(&format!("sha256={hex}")), body));
        assert!(!verify_meta("s3cret", None, body));
        assert!(!verify_meta("s3cret", Some("sha1=abc"), body));
        assert!(!verify_meta("s3cret", Some("sha256=zz"), body));
        let mut changed = body.to_vec();
        changed[3] ^= 1;
        assert!(!verify_meta("s3cret", Some(&format!("sha256={hex}")), &changed));
        let b64 = B64.encode(mac("x", body).finalize().into_bytes());
        assert!(verify_x("x", Some(&format!("sha256={b64}")), body));
        assert!(!verify_x("x", Some(&format!("sha256={hex}")), body));
    }

    #[test]
    fn crc_matches_xs_documented_construction() {
        let expected = format!("sha256={}", B64.encode(mac("secret", b"token").finalize().into_bytes()));
        assert_eq!(x_crc_response("secret", "token"), expected);
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
