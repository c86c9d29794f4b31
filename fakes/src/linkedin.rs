//! LinkedIn: OIDC scopes, client credentials in the form body only, non-rotating refresh tokens
//! whose lifetime does not reset, `/v2/userinfo` and the legacy `/v2/me` profile.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::json;

use crate::Inner;
use crate::http::{Params, bearer, empty, json, ok};
use crate::oauth::{self, AuthFailure, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::state::TokenProblem;

/// LinkedIn's refresh token lifetime (365 days, not reset by refreshing).
const REFRESH_TTL_S: i64 = 31_536_000;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/oauth/v2/authorization", get(authorize))
        .at("/oauth/v2/accessToken", post(token_endpoint))
        .at("/oauth/v2/revoke", post(revoke))
        .at("/v2/userinfo", get(userinfo))
        .at("/v2/me", get(legacy_me))
}

pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    oauth::settings(
        "linkedin",
        shared,
        "/oauth/v2/authorization",
        "/oauth/v2/accessToken",
        "",
    )
}

const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_id",
    response_type_optional: false,
    scope_separators: &[' '],
    scope_sets: &[&["openid", "profile", "email", "w_member_social"]],
    scope_prefix: None,
    pkce: Pkce::Unused,
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

/// Credentials must be in the form body; HTTP Basic alone does not count.
fn client_ok(shared: &Inner, p: &Params) -> Result<(), Response> {
    for param in ["client_id", "client_secret"] {
        if p.get(param).is_none() {
            let description = format!("A required parameter \"{param}\" is missing");
            return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description));
        }
    }
    if p.str("client_id") != shared.client_id || p.str("client_secret") != shared.client_secret {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        ));
    }
    Ok(())
}

#[handler]
async fn token_endpoint(body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, &p) {
        return resp;
    }
    let bad = |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    match oauth::token_grant(
        shared,
        &p,
        RefreshPolicy {
            ttl_s: Some(REFRESH_TTL_S),
        },
    ) {
        Ok(issued) => {
            let scope: Vec<&str> = issued.scope.split(' ').filter(|s| !s.is_empty()).collect();
            let mut body = json!({
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "scope": scope.join(","),
                "token_type": "Bearer",
            });
            if let Some(rt) = issued.refresh_token {
                body["refresh_token"] = rt.into();
                body["refresh_token_expires_in"] = issued.refresh_expires_in.unwrap_or(REFRESH_TTL_S).into();
            }
            ok(body)
        }
        Err(GrantFailure::Server) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "An unexpected error occurred. Please try again later.",
        ),
        Err(GrantFailure::UnsupportedGrantType) => bad("unsupported_grant_type", "Unsupported grant type"),
        Err(GrantFailure::Missing(param)) => bad(
            "invalid_request",
            &format!("A required parameter \"{param}\" is missing"),
        ),
        Err(GrantFailure::Code(_)) => bad(
            "invalid_request",
            "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. \
             Or authorization code expired. Or external member binding exists",
        ),
        Err(GrantFailure::RefreshRevoked) => bad("invalid_grant", "Token has been expired or revoked."),
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
    empty(StatusCode::OK)
}

/// LinkedIn's API error body `{"status","serviceErrorCode","code","message"}`.
pub(crate) fn api_error(status: StatusCode, service_code: u32, code: &str, message: &str) -> Response {
    json(
        status,
        json!({ "status": status.as_u16(), "serviceErrorCode": service_code, "code": code, "message": message }),
    )
}

/// 401 for a refused token: 65601 when revoked, 65600 otherwise.
pub(crate) fn auth_error(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Token(TokenProblem::Revoked) => api_error(
            StatusCode::UNAUTHORIZED,
            65601,
            "REVOKED_ACCESS_TOKEN",
            "The token used in the request has been revoked by the user",
        ),
        AuthFailure::Token(TokenProblem::Expired) => api_error(
            StatusCode::UNAUTHORIZED,
            65600,
            "EXPIRED_ACCESS_TOKEN",
            "The token used in the request has expired",
        ),
        _ => api_error(
            StatusCode::UNAUTHORIZED,
            65600,
            "INVALID_ACCESS_TOKEN",
            "Invalid access token",
        ),
    }
}

fn not_permitted(resource: &str) -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        100,
        "ACCESS_DENIED",
        &format!("Not enough permissions to access: {resource}.GET.NO_VERSION"),
    )
}

#[handler]
async fn userinfo(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(failure) = oauth::check_token(shared, bearer(req).as_deref(), true) {
        return auth_error(failure);
    }
    let (legacy, who) = {
        let c = shared.control();
        (c.linkedin_legacy_profile, c.identity.clone())
    };
    if legacy {
        return not_permitted("userinfo");
    }
    ok(json!({
        "sub": who.id,
        "email_verified": true,
        "name": who.name,
        "locale": { "country": "US", "language": "en" },
        "given_name": who.given_name,
        "family_name": who.family_name,
        "email": who.email,
        "picture": who.avatar_url,
    }))
}

/// Legacy `r_liteprofile` profile, served only when `control.linkedin_legacy_profile`.
#[handler]
async fn legacy_me(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(failure) = oauth::check_token(shared, bearer(req).as_deref(), true) {
        return auth_error(failure);
    }
    let (legacy, who) = {
        let c = shared.control();
        (c.linkedin_legacy_profile, c.identity.clone())
    };
    if !legacy {
        return not_permitted("me");
    }
    let localized =
        |v: &str| json!({ "localized": { "en_US": v }, "preferredLocale": { "country": "US", "language": "en" } });
    ok(json!({
        "id": who.id,
        "localizedFirstName": who.given_name,
        "localizedLastName": who.family_name,
        "firstName": localized(&who.given_name),
        "lastName": localized(&who.family_name),
        "profilePicture": {
            "displayImage": "urn:li:digitalmediaAsset:FAKE",
            "displayImage~": {
                "paging": { "count": 10, "start": 0, "links": [] },
                "elements": [{
                    "artifact": "urn:li:digitalmediaMediaArtifact:(urn:li:digitalmediaAsset:FAKE,100)",
                    "authorizationMethod": "PUBLIC",
                    "identifiers": [{
                        "identifier": who.avatar_url,
                        "index": 0,
                        "mediaType": "image/jpeg",
                        "identifierType": "EXTERNAL_URL",
                        "identifierExpiresInSeconds": 1_900_000_000,
                    }],
                }],
            },
        },
    }))
}
