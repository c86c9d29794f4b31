//! Google / YouTube: `access_type=offline`, optional PKCE, client credentials in the body or Basic,
//! refresh responses without a refresh token, and the YouTube Data API channel lookup.

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
        .at("/o/oauth2/v2/auth", get(authorize))
        .at("/token", post(token_endpoint))
        .at("/revoke", post(revoke))
        .at("/youtube/v3/channels", get(channels))
}

pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    oauth::settings("youtube", shared, "/o/oauth2/v2/auth", "/token", "")
}

const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_id",
    response_type_optional: false,
    scope_separators: &[' '],
    scope_sets: &[],
    scope_prefix: Some("https://www.googleapis.com/auth/youtube"),
    pkce: Pkce::Optional,
    required: &[("access_type", "offline")],
    deny_extra: &[],
};

#[handler]
async fn authorize(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::authorize(shared, req, &SPEC)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(status, json!({ "error": error, "error_description": description }))
}

/// Google takes the client credentials from the form body or from HTTP Basic.
fn client_ok(shared: &Inner, req: &Request, p: &Params) -> Result<(), Response> {
    let creds = basic_auth(req).or_else(|| {
        p.get("client_id")
            .map(|id| (id.to_owned(), p.get("client_secret").unwrap_or_default().to_owned()))
    });
    match creds {
        None => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
        )),
        Some((id, _)) if id != shared.client_id => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        )),
        Some((_, secret)) if secret != shared.client_secret => {
            Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized"))
        }
        Some(_) => Ok(()),
    }
}

#[handler]
async fn token_endpoint(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    let p = Params::parse(&body);
    if let Err(resp) = client_ok(shared, req, &p) {
        return resp;
    }
    let bad = |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    match oauth::token_grant(shared, &p, RefreshPolicy { ttl_s: None }) {
        Ok(issued) => {
            let mut body = json!({
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "scope": issued.scope,
                "token_type": "Bearer",
            });
            if let Some(rt) = issued.refresh_token {
                body["refresh_token"] = rt.into();
            }
            ok(body)
        }
        Err(GrantFailure::Server) => {
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_failure", "Backend Error")
        }
        Err(GrantFailure::UnsupportedGrantType) => bad(
            "unsupported_grant_type",
            &format!("Invalid grant_type: {}", p.str("grant_type")),
        ),
        Err(GrantFailure::Missing(param)) => bad("invalid_request", &format!("Missing required parameter: {param}")),
        Err(GrantFailure::Code(CodeProblem::RedirectMismatch)) => bad("redirect_uri_mismatch", "Bad Request"),
        Err(GrantFailure::Code(CodeProblem::VerifierMissing)) => bad("invalid_grant", "Missing code verifier."),
        Err(GrantFailure::Code(CodeProblem::VerifierMismatch)) => bad("invalid_grant", "Invalid code verifier."),
        Err(GrantFailure::Code(CodeProblem::Unknown)) => bad("invalid_grant", "Malformed auth code."),
        Err(GrantFailure::Code(CodeProblem::Used)) => bad("invalid_grant", "Bad Request"),
        Err(GrantFailure::RefreshRevoked) => bad("invalid_grant", "Token has been expired or revoked."),
    }
}

/// `POST /revoke?token=…` (or form `token`): revokes the whole grant; 200 `{}`.
#[handler]
async fn revoke(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let p = Params::query(req);
    let form = Params::parse(&body);
    let Some(token) = p.get("token").or_else(|| form.get("token")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token",
        );
    };
    if shared.state().revoke(token) {
        ok(json!({}))
    } else {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Token expired or revoked")
    }
}

fn api_error(status: StatusCode, message: &str, reason: &str, api_status: Option<&str>) -> Response {
    let mut error = json!({
        "code": status.as_u16(),
        "message": message,
        "errors": [{ "message": message, "domain": "global", "reason": reason }],
    });
    if let Some(s) = api_status {
        error["status"] = s.into();
    }
    json(status, json!({ "error": error }))
}

pub(crate) fn unauthenticated() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials.",
        "authError",
        Some("UNAUTHENTICATED"),
    )
}

/// `GET /youtube/v3/channels?part=snippet[,statistics]&mine=true`.
#[handler]
async fn channels(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if oauth::check_token(shared, bearer(req).as_deref(), true).is_err() {
        return unauthenticated();
    }
    let p = Params::query(req);
    let Some(part) = p.get("part") else {
        return api_error(StatusCode::BAD_REQUEST, "Required parameter: part", "required", None);
    };
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    let who = shared.control().identity.clone();
    let mine = p.get("mine") == Some("true") || p.get("id").is_some_and(|ids| ids.split(',').any(|i| i == who.id));
    let mut items = Vec::new();
    if mine {
        let thumb = |size: u32| json!({ "url": who.avatar_url, "width": size, "height": size });
        let mut item = json!({ "kind": "youtube#channel", "etag": "fake-etag-channel", "id": who.id });
        if parts.contains(&"snippet") {
            item["snippet"] = json!({
                "title": who.name,
                "description": "",
                "customUrl": format!("@{}", who.username),
                "publishedAt": "2015-01-01T00:00:00Z",
                "thumbnails": { "default": thumb(88), "medium": thumb(240), "high": thumb(800) },
                "localized": { "title": who.name, "description": "" },
            });
        }
        if parts.contains(&"statistics") {
            item["statistics"] = json!({
                "viewCount": "1234",
                "subscriberCount": "56",
                "hiddenSubscriberCount": false,
                "videoCount": "7",
            });
        }
        if parts.contains(&"contentDetails") {
            let uploads = format!("UU{}", who.id.get(2..).unwrap_or_default());
            item["contentDetails"] = json!({ "relatedPlaylists": { "likes": "", "uploads": uploads } });
        }
        items.push(item);
    }
    let total = items.len();
    ok(json!({
        "kind": "youtube#channelListResponse",
        "etag": "fake-etag-list",
        "pageInfo": { "totalResults": total, "resultsPerPage": 5 },
        "items": Value::Array(items),
    }))
}
