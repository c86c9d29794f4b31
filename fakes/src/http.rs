//! Small HTTP helpers shared by every fake: parameters, responses, credentials, recording.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::{StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use serde_json::Value;

use crate::Inner;
use crate::state::Recorded;

/// Decoded `application/x-www-form-urlencoded` parameters (query string or body); last value wins.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(raw: &str) -> Params {
        Params(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    pub(crate) fn query(req: &Request) -> Params {
        Params::parse(req.uri().query().unwrap_or(""))
    }

    /// The value, or `None` when absent or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The value, or `""` when absent.
    pub(crate) fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// Query values overridden by body values (Graph and Google accept either).
    pub(crate) fn merged(mut self, other: Params) -> Params {
        self.0.extend(other.0);
        self
    }
}

pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

pub(crate) fn ok(body: Value) -> Response {
    json(StatusCode::OK, body)
}

/// `302 Found` to `location`.
pub(crate) fn found(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .finish()
}

pub(crate) fn empty(status: StatusCode) -> Response {
    Response::builder().status(status).finish()
}

/// `client_id:client_secret` from an `Authorization: Basic …` header (each part form-url-decoded, as
/// RFC 6749 §2.3.1 asks clients to encode them). `None` when absent or malformed.
pub(crate) fn basic_auth(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_owned())
}

pub(crate) fn user_agent(req: &Request) -> &str {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Wraps the fake's routes so every request is recorded (with its body) before it is handled, in a
/// task of its own: a client that disconnects does not cancel the handler.
pub(crate) fn recorded<E: Endpoint + 'static>(ep: E, shared: Arc<Inner>) -> impl Endpoint {
    ep.around(move |ep, mut req| {
        let shared = shared.clone();
        async move {
            let body = req.take_body().into_bytes().await.unwrap_or_default();
            let rec = Recorded {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
                query: req.uri().query().unwrap_or("").to_owned(),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            shared.state().requests.push(rec);
            req.set_body(body);
            let task = tokio::spawn(async move {
                ep.call(req)
                    .await
                    .map(IntoResponse::into_response)
                    .unwrap_or_else(|e| e.into_response())
            });
            Ok(task.await.unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR)))
        }
    })
}
