//! TikTok (Login Kit v2): `client_key`, comma-separated scopes, credentials in the form body,
//! rotating refresh tokens, and errors that come back with HTTP 200.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::http::{Params, bearer, json, ok};
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::state::{CodeProblem, random_hex};

/// TikTok's documented refresh token lifetime (365 days).
const REFRESH_TTL_S: i64 = 31_536_000;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/v2/auth/authorize/", get(authorize))
        .at("/v2/oauth/token/", post(token_endpoint))
        .at("/v2/oauth/revoke/", post(revoke))
        .at("/v2/user/info/", get(user_info))
}

pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    oauth::settings("tiktok", shared, "/v2/auth/authorize/", "/v2/oauth/token/", "")
}

const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_key",
    response_type_optional: false,
    scope_separators: &[','],
    scope_sets: &[&["user.info.basic", "video.publish", "video.list"]],
    scope_prefix: None,
    pkce: Pkce::Unused,
    required: &[],
    deny_extra: &[],
};

#[handler]
async fn authorize(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::authorize(shared, req, &SPEC)
}

pub(crate) fn log_id() -> String {
    format!("2024{}", random_hex(12).to_uppercase())
}

/// OAuth errors of `open.tiktokapis.com`: a JSON body on HTTP 200 (so clients must read the body).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        json!({ "error": error, "error_description": description, "log_id": log_id() }),
    )
}

fn client_ok(shared: &Inner, p: &Params) -> Result<(), Response> {
    match (p.get("client_key"), p.get("client_secret")) {
        (Some(key), Some(secret)) if key == shared.client_id && secret == shared.client_secret => Ok(()),
        (Some(_), Some(_)) => Err(oauth_error(
            StatusCode::OK,
            "invalid_client",
            "Client key or secret is incorrect.",
        )),
        _ => Err(oauth_error(
            StatusCode::OK,
            "invalid_request",
            "client_key and client_secret are required.",
        )),
    }
}

#[handler]
async fn token_endpoint(body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, &p) {
        return resp;
    }
    match oauth::token_grant(
        shared,
        &p,
        RefreshPolicy {
            ttl_s: Some(REFRESH_TTL_S),
        },
    ) {
        Ok(issued) => {
            let mut body = json!({
                "open_id": shared.control().identity.id,
                "scope": issued.scope,
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "token_type": "Bearer",
            });
            if let Some(rt) = issued.refresh_token {
                body["refresh_token"] = rt.into();
                body["refresh_expires_in"] = issued.refresh_expires_in.unwrap_or(REFRESH_TTL_S).into();
            }
            ok(body)
        }
        Err(GrantFailure::Server) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server encountered an unexpected condition.",
        ),
        Err(GrantFailure::UnsupportedGrantType) => oauth_error(
            StatusCode::OK,
            "unsupported_grant_type",
            "The grant type is not supported.",
        ),
        Err(GrantFailure::Missing(param)) => oauth_error(
            StatusCode::OK,
            "invalid_request",
            &format!("Missing required parameter: {param}."),
        ),
        Err(GrantFailure::Code(CodeProblem::RedirectMismatch)) => oauth_error(
            StatusCode::OK,
            "invalid_request",
            "redirect_uri does not match the authorization request.",
        ),
        Err(GrantFailure::Code(_)) => oauth_error(
            StatusCode::OK,
            "invalid_grant",
            "Authorization code is expired or has been used.",
        ),
        Err(GrantFailure::RefreshRevoked) => {
            oauth_error(StatusCode::OK, "invalid_grant", "Refresh token is invalid or expired.")
        }
    }
}

#[handler]
async fn revoke(body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, &p) {
        return resp;
    }
    if let Some(token) = p.get("token") {
        shared.state().revoke(token);
    }
    ok(json!({}))
}

/// The API envelope: `{"data": …, "error": {"code", "message", "log_id"}}`.
pub(crate) fn envelope(status: StatusCode, data: Value, code: &str, message: &str) -> Response {
    json(
        status,
        json!({ "data": data, "error": { "code": code, "message": message, "log_id": log_id() } }),
    )
}

/// Invalid token: HTTP 200 with `error.code = access_token_invalid` (classify by body).
pub(crate) fn token_invalid() -> Response {
    envelope(
        StatusCode::OK,
        json!({}),
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

/// `GET /v2/user/info/?fields=…`: only the requested fields.
#[handler]
async fn user_info(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if oauth::check_token(shared, bearer(req).as_deref(), true).is_err() {
        return token_invalid();
    }
    let p = Params::query(req);
    let Some(fields) = p.get("fields") else {
        return envelope(
            StatusCode::BAD_REQUEST,
            json!({}),
            "invalid_params",
            "fields is required.",
        );
    };
    let who = shared.control().identity.clone();
    let full = json!({
        "open_id": who.id,
        "union_id": who.union_id,
        "avatar_url": who.avatar_url,
        "avatar_url_100": who.avatar_url,
        "avatar_large_url": who.avatar_url,
        "display_name": who.name,
        "username": who.username,
        "bio_description": "",
        "profile_deep_link": format!("https://www.tiktok.com/@{}", who.username),
        "is_verified": false,
        "follower_count": 42,
        "following_count": 7,
        "likes_count": 1234,
        "video_count": 3,
    });
    let mut user = Map::new();
    for field in fields.split(',').map(str::trim) {
        if let Some(v) = full.get(field) {
            user.insert(field.to_owned(), v.clone());
        }
    }
    envelope(StatusCode::OK, json!({ "user": user }), "ok", "")
}
