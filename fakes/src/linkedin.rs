//! LinkedIn: OIDC scopes, client credentials in the form body only, non-rotating refresh tokens
//! whose lifetime does not reset, `/v2/userinfo` and the legacy `/v2/me` profile, and
//! `POST /rest/posts` (versioned API: `LinkedIn-Version` required; the author must be the token's
//! member; commentary up to 3000 characters) → 201 with the share URN in `x-restli-id`; the metrics
//! finder `GET /rest/memberCreatorPostAnalytics?q=entity&entity=…&queryType=…&aggregation=…`.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::json;

use crate::Inner;
use crate::http::{Params, bearer, empty, json, ok};
use crate::metrics;
use crate::oauth::{self, AuthFailure, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::publish::{self, PublishFault, PublishedPost, chars, with_header};
use crate::state::TokenProblem;

/// Share ids (`urn:li:share:{n}`).
const SHARE_BASE: u64 = 7_260_000_000_000_000_000;
const MAX_COMMENTARY: usize = 3000;

/// LinkedIn's refresh token lifetime (365 days, not reset by refreshing).
const REFRESH_TTL_S: i64 = 31_536_000;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/oauth/v2/authorization", get(authorize))
        .at("/oauth/v2/accessToken", post(token_endpoint))
        .at("/oauth/v2/revoke", post(revoke))
        .at("/v2/userinfo", get(userinfo))
        .at("/v2/me", get(legacy_me))
        .at("/rest/posts", post(create_post))
        .at("/rest/memberCreatorPostAnalytics", get(post_analytics))
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

/// The versioned API's plain error `{"message","status"}`.
fn rest_error(status: StatusCode, message: &str) -> Response {
    json(status, json!({ "message": message, "status": status.as_u16() }))
}

fn fault_response(fault: &PublishFault) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => {
            rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        PublishFault::RateLimited { retry_after_s } => with_header(
            rest_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Resource level throttle limit for calls to this resource is reached.",
            ),
            "retry-after",
            &retry_after_s.to_string(),
        ),
        PublishFault::Rejected { message } => rest_error(StatusCode::UNPROCESSABLE_ENTITY, message),
        PublishFault::Unauthorized => auth_error(AuthFailure::Injected),
    }
}

/// `YYYYMM` or `YYYYMM.NN` with a plausible year and month.
fn version_ok(v: &str) -> bool {
    let (ym, patch) = v.split_once('.').unwrap_or((v, "01"));
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ym, 6) || !digits(patch, 2) {
        return false;
    }
    let year: u32 = ym.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0);
    let month: u32 = ym.get(4..).and_then(|m| m.parse().ok()).unwrap_or(0);
    (2022..=2030).contains(&year) && (1..=12).contains(&month)
}

/// The versioned API wants a valid `LinkedIn-Version` (426 otherwise).
fn check_version(req: &Request) -> Result<(), Response> {
    let version = req.headers().get("linkedin-version").and_then(|v| v.to_str().ok());
    match version {
        None => Err(json(
            StatusCode::UPGRADE_REQUIRED,
            json!({
                "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
                "status": 426,
                "code": "VERSION_MISSING",
            }),
        )),
        Some(v) if !version_ok(v.trim()) => Err(json(
            StatusCode::UPGRADE_REQUIRED,
            json!({ "message": format!("Requested version {v} is not active"), "status": 426, "code": "NONEXISTENT_VERSION" }),
        )),
        Some(_) => Ok(()),
    }
}

fn unprocessable(field: &str, problem: &str) -> Response {
    rest_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        &format!("ERROR :: /{field} :: {problem}"),
    )
}

/// `POST /rest/posts`: a text post by the token's member → 201, empty body, `x-restli-id`.
#[handler]
async fn create_post(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    create_post_inner(shared, req, &body, fault).await.unwrap_or_else(|e| e)
}

async fn create_post_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(auth_error)?;
    publish::gate(fault, fault_response).await?;
    check_version(req)?;
    let Ok(post) = serde_json::from_str::<serde_json::Value>(body) else {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            "Unable to parse the request body as JSON",
        ));
    };
    let Some(author) = post["author"].as_str() else {
        return Err(unprocessable(
            "author",
            "field is required but not found and has no default value",
        ));
    };
    let member = shared.control().identity.id.clone();
    if author != format!("urn:li:person:{member}") {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            100,
            "ACCESS_DENIED",
            &format!("Not enough permissions to create a post as author {author}"),
        ));
    }
    let commentary = match post["commentary"].as_str() {
        Some(c) if !c.trim().is_empty() => c,
        _ => {
            return Err(unprocessable(
                "commentary",
                "field is required for a post without content",
            ));
        }
    };
    let len = chars(commentary);
    if len > MAX_COMMENTARY {
        return Err(unprocessable(
            "commentary",
            &format!("length {len} exceeds the maximum allowed length of {MAX_COMMENTARY}"),
        ));
    }
    let visibility = post["visibility"].as_str().unwrap_or("");
    if !["PUBLIC", "CONNECTIONS", "LOGGED_IN"].contains(&visibility) {
        return Err(unprocessable("visibility", &format!("invalid value {visibility:?}")));
    }
    let lifecycle = post["lifecycleState"].as_str().unwrap_or("");
    if lifecycle != "PUBLISHED" {
        return Err(unprocessable(
            "lifecycleState",
            &format!("must be PUBLISHED, got {lifecycle:?}"),
        ));
    }
    let feed = post["distribution"]["feedDistribution"].as_str().unwrap_or("");
    if !["MAIN_FEED", "NONE"].contains(&feed) {
        return Err(unprocessable(
            "distribution/feedDistribution",
            &format!("invalid value {feed:?}"),
        ));
    }
    let mut posts = shared.posts();
    let urn = format!("urn:li:share:{}", posts.next_id(SHARE_BASE));
    posts.record(PublishedPost {
        platform: "linkedin".into(),
        account: member,
        id: urn.clone(),
        text: commentary.to_owned(),
        title: None,
        media: Vec::new(),
        options: json!({ "visibility": visibility, "lifecycleState": lifecycle }),
        at_unix_ms: publish::now_ms(),
    });
    drop(posts);
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header("x-restli-id", urn.as_str())
        .header("x-linkedin-id", urn.as_str())
        .finish())
}

/// The metric types of `memberCreatorPostAnalytics`.
const QUERY_TYPES: &[&str] = &["IMPRESSION", "MEMBERS_REACHED", "RESHARE", "REACTION", "COMMENT"];

/// The post URN of a Rest.li 2.0 `entity` once query-decoded: `(share:urn:li:share:N)` or
/// `(ugc:urn:li:ugcPost:N)`.
fn entity_urn(entity: &str) -> Option<&str> {
    let inner = entity.strip_prefix('(')?.strip_suffix(')')?;
    let (kind, urn) = inner.split_once(':')?;
    let id = match kind {
        "share" => urn.strip_prefix("urn:li:share:")?,
        "ugc" => urn.strip_prefix("urn:li:ugcPost:")?,
        _ => return None,
    };
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(urn)
}

/// `GET /rest/memberCreatorPostAnalytics?q=entity&entity=(share:urn%3Ali%3Ashare%3AN)&queryType=…&aggregation=TOTAL|DAILY`:
/// one metric of one of the member's posts, `{"elements":[{"count","metricType":{…V1: type}}]}`
/// (DAILY: one element for today with its `dateRange`). Needs `LinkedIn-Version` and
/// `X-Restli-Protocol-Version: 2.0.0`; a post the fake does not know → 404.
#[handler]
async fn post_analytics(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = metrics::begin(shared, "linkedin");
    post_analytics_inner(shared, req, fault).await.unwrap_or_else(|e| e)
}

async fn post_analytics_inner(
    shared: &Inner,
    req: &Request,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(auth_error)?;
    publish::gate(fault, fault_response).await?;
    check_version(req)?;
    let restli = req
        .headers()
        .get("x-restli-protocol-version")
        .and_then(|v| v.to_str().ok());
    if restli.map(str::trim) != Some("2.0.0") {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            "Invalid query parameters passed to request: Rest.li protocol 2.0.0 (X-Restli-Protocol-Version) is required",
        ));
    }
    let p = Params::query(req);
    if p.get("q") != Some("entity") {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            "Invalid value for param: q. Expected: entity or me",
        ));
    }
    let Some(urn) = p.get("entity").and_then(entity_urn).map(str::to_owned) else {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid param entity: {}", p.str("entity")),
        ));
    };
    let query_type = p.str("queryType");
    if !QUERY_TYPES.contains(&query_type) {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid value for param: queryType: {query_type}"),
        ));
    }
    let aggregation = p.str("aggregation");
    if !matches!(aggregation, "TOTAL" | "DAILY") {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid value for param: aggregation: {aggregation}"),
        ));
    }
    let Some(m) = metrics::lookup(shared, "linkedin", &urn) else {
        return Err(json(
            StatusCode::NOT_FOUND,
            json!({ "status": 404, "code": "NOT_FOUND", "message": format!("Entity {urn} not found") }),
        ));
    };
    let count = match query_type {
        "IMPRESSION" => m.impressions,
        "MEMBERS_REACHED" => m.reach,
        "RESHARE" => m.shares,
        "REACTION" => m.likes,
        _ => m.comments,
    };
    let mut element = json!({
        "count": count,
        "metricType": { "com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1": query_type },
    });
    if aggregation == "DAILY" {
        let today = publish::rfc3339(publish::now_ms());
        let part = |a: usize, b: usize| today.get(a..b).and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
        let day = json!({ "year": part(0, 4), "month": part(5, 7), "day": part(8, 10) });
        element["dateRange"] = json!({ "start": day, "end": day });
    }
    Ok(ok(
        json!({ "paging": { "start": 0, "count": 10, "links": [] }, "elements": [element] }),
    ))
}

#[cfg(test)]
mod tests {
    use super::version_ok;

    #[test]
    fn versions() {
        assert!(version_ok("202411"));
        assert!(version_ok("202411.01"));
        assert!(!version_ok("2024-11"));
        assert!(!version_ok("202413"));
        assert!(!version_ok("20241"));
    }
}
