//! Reddit: comma-separated scopes, `duration=permanent`, HTTP Basic at the token endpoint, and a
//! descriptive User-Agent on every token and API call.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::json;

use crate::Inner;
use crate::http::{Params, basic_auth, bearer, empty, json, ok, user_agent};
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/api/v1/authorize", get(authorize))
        .at("/api/v1/authorize.compact", get(authorize))
        .at("/api/v1/access_token", post(token_endpoint))
        .at("/api/v1/revoke_token", post(revoke))
        .at("/api/v1/me", get(me))
}

pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    oauth::settings("reddit", shared, "/api/v1/authorize", "/api/v1/access_token", "")
}

const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_id",
    response_type_optional: false,
    scope_separators: &[','],
    scope_sets: &[&["identity", "submit", "read"]],
    scope_prefix: None,
    pkce: Pkce::Unused,
    required: &[("duration", "permanent")],
    deny_extra: &[],
};

#[handler]
async fn authorize(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::authorize(shared, req, &SPEC)
}

/// `<platform>:<app id>:<version> (by /u/<user>)`, i.e. roughly
/// `^[^:]+:[^:]+:[^ ]+ \(by /u/[^)]+\)$`.
pub(crate) fn user_agent_ok(ua: &str) -> bool {
    let Some(rest) = ua.strip_suffix(')') else {
        return false;
    };
    let Some((prefix, user)) = rest.rsplit_once(" (by /u/") else {
        return false;
    };
    if user.is_empty() || user.contains(')') {
        return false;
    }
    let mut parts = prefix.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(platform), Some(app), Some(version)) => {
            !platform.is_empty() && !app.is_empty() && !version.is_empty() && !version.contains(' ')
        }
        _ => false,
    }
}

/// Reddit's answer to a generic or missing User-Agent.
fn check_user_agent(req: &Request) -> Result<(), Response> {
    if user_agent_ok(user_agent(req)) {
        Ok(())
    } else {
        Err(json(
            StatusCode::FORBIDDEN,
            json!({ "message": "Forbidden", "error": 403 }),
        ))
    }
}

fn unauthorized() -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        json!({ "message": "Unauthorized", "error": 401 }),
    )
}

fn check_client(shared: &Inner, req: &Request) -> Result<(), Response> {
    check_user_agent(req)?;
    match basic_auth(req) {
        Some((id, secret)) if id == shared.client_id && secret == shared.client_secret => Ok(()),
        _ => Err(unauthorized()),
    }
}

#[handler]
async fn token_endpoint(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    if let Err(resp) = check_client(shared, req) {
        return resp;
    }
    let p = Params::parse(&body);
    let bad = |error: &str| json(StatusCode::BAD_REQUEST, json!({ "error": error }));
    match oauth::token_grant(shared, &p, RefreshPolicy { ttl_s: None }) {
        Ok(issued) => {
            let mut body = json!({
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": issued.expires_in,
                "scope": issued.scope,
            });
            if let Some(rt) = issued.refresh_token {
                body["refresh_token"] = rt.into();
            }
            ok(body)
        }
        Err(GrantFailure::Server) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "message": "Internal Server Error", "error": 500 }),
        ),
        Err(GrantFailure::UnsupportedGrantType) => bad("unsupported_grant_type"),
        Err(GrantFailure::Missing(_)) => bad("invalid_request"),
        Err(GrantFailure::Code(_) | GrantFailure::RefreshRevoked) => bad("invalid_grant"),
    }
}

/// `POST /api/v1/revoke_token` (form `token`, `token_type_hint`): 204 whether or not it was known.
#[handler]
async fn revoke(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(resp) = check_client(shared, req) {
        return resp;
    }
    if let Some(token) = Params::parse(&body).get("token") {
        shared.state().revoke(token);
    }
    empty(StatusCode::NO_CONTENT)
}

#[handler]
async fn me(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(resp) = check_user_agent(req) {
        return resp;
    }
    if oauth::check_token(shared, bearer(req).as_deref(), true).is_err() {
        return unauthorized();
    }
    let who = shared.control().identity.clone();
    ok(json!({
        "id": who.id,
        "name": who.name,
        "icon_img": who.avatar_url,
        "snoovatar_img": "",
        "created_utc": 1_500_000_000.0,
        "total_karma": 42,
        "link_karma": 40,
        "comment_karma": 2,
        "verified": true,
        "has_verified_email": true,
        "is_suspended": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::user_agent_ok;

    #[test]
    fn user_agent_format() {
        assert!(user_agent_ok("rust:nikara:0.1.0 (by /u/nikara_dev)"));
        assert!(user_agent_ok("web:com.example.nikara:v1.2.3 (by /u/someone)"));
        assert!(!user_agent_ok(""));
        assert!(!user_agent_ok("reqwest/0.12"));
        assert!(!user_agent_ok("rust:nikara:0.1.0"));
        assert!(!user_agent_ok("rust:nikara:0.1 .0 (by /u/x)"));
        assert!(!user_agent_ok("rust:nikara:0.1.0 (by /u/)"));
    }
}
