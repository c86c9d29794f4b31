//! X (API v2): OAuth 2.0 with mandatory PKCE and HTTP Basic client auth, rotating refresh tokens.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Params, basic_auth, bearer, json, ok};
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::state::CodeProblem;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/i/oauth2/authorize", get(authorize))
        .at("/2/oauth2/token", post(token_endpoint))
        .at("/2/oauth2/revoke", post(revoke))
        .at("/2/users/me", get(me))
}

pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    oauth::settings("x", shared, "/i/oauth2/authorize", "/2/oauth2/token", "")
}

const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_id",
    response_type_optional: false,
    scope_separators: &[' '],
    scope_sets: &[&["tweet.read", "tweet.write", "users.read", "offline.access"]],
    scope_prefix: None,
    pkce: Pkce::RequiredS256,
    required: &[],
    deny_extra: &[],
};

#[handler]
async fn authorize(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::authorize(shared, req, &SPEC)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(status, json!({ "error": error, "error_description": description }))
}

/// Confidential clients must authenticate with HTTP Basic; a `client_id` in the body must agree.
fn client_ok(shared: &Inner, req: &Request, p: &Params) -> Result<(), Response> {
    let basic_ok = basic_auth(req).is_some_and(|(id, secret)| id == shared.client_id && secret == shared.client_secret);
    let body_ok = p.get("client_id").is_none_or(|id| id == shared.client_id);
    if basic_ok && body_ok {
        Ok(())
    } else {
        Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Missing valid authorization header",
        ))
    }
}

#[handler]
async fn token_endpoint(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, req, &p) {
        return resp;
    }
    match oauth::token_grant(shared, &p, RefreshPolicy { ttl_s: None }) {
        Ok(issued) => {
            let mut body = json!({
                "token_type": "bearer",
                "expires_in": issued.expires_in,
                "access_token": issued.access_token,
                "scope": issued.scope,
            });
            if let Some(rt) = issued.refresh_token {
                body["refresh_token"] = rt.into();
            }
            ok(body)
        }
        Err(failure) => grant_error(failure),
    }
}

fn grant_error(failure: GrantFailure) -> Response {
    let bad = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    match failure {
        GrantFailure::Server => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "title": "Internal Server Error",
                "type": "about:blank",
                "status": 500,
                "detail": "Something went wrong. Please try again later.",
            }),
        ),
        GrantFailure::UnsupportedGrantType => bad("Value passed for the grant_type was invalid."),
        GrantFailure::Missing(param) => bad(&format!("Missing required parameter [{param}].")),
        GrantFailure::Code(CodeProblem::VerifierMissing) => bad("Missing required parameter [code_verifier]."),
        GrantFailure::Code(_) => bad("Value passed for the authorization code was invalid."),
        GrantFailure::RefreshRevoked => bad("Value passed for the token was invalid."),
    }
}

#[handler]
async fn revoke(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, req, &p) {
        return resp;
    }
    let Some(token) = p.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter [token].",
        );
    };
    shared.state().revoke(token);
    ok(json!({ "revoked": true }))
}

fn unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({ "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized" }),
    )
}

/// `GET /2/users/me`: `profile_image_url` and `public_metrics` only when asked for in `user.fields`.
#[handler]
async fn me(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if oauth::check_token(shared, bearer(req).as_deref(), true).is_err() {
        return unauthorized();
    }
    let p = Params::query(req);
    let fields: Vec<&str> = p.str("user.fields").split(',').collect();
    let who = shared.control().identity.clone();
    let mut data = json!({ "id": who.id, "name": who.name, "username": who.username });
    if fields.contains(&"profile_image_url") {
        data["profile_image_url"] = Value::from(who.avatar_url);
    }
    if fields.contains(&"public_metrics") {
        data["public_metrics"] = json!({
            "followers_count": 42,
            "following_count": 7,
            "tweet_count": 1234,
            "listed_count": 1,
            "like_count": 99,
        });
    }
    ok(json!({ "data": data }))
}
