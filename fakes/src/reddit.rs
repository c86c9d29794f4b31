//! Reddit: comma-separated scopes, `duration=permanent`, HTTP Basic at the token endpoint, and a
//! descriptive User-Agent on every token and API call; `POST /api/submit` (errors on HTTP 200 in
//! `json.errors`; every subreddit exists except `doesnotexist`) and the reconcile listing
//! `GET /user/{username}/submitted`; the metrics listing `GET /api/info?id=t3_…` (up to 100).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Params, basic_auth, bearer, empty, json, ok, user_agent};
use crate::metrics;
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::publish::{self, PublishFault, PublishedPost, chars, is_http_url, with_header};

/// Post ids (base 36 of this plus a counter).
const POST_BASE: u64 = 2_000_000_000_000_000;
const MAX_TITLE: usize = 300;
const MAX_SELFTEXT: usize = 40_000;
/// The one subreddit the fake does not know.
const MISSING_SUBREDDIT: &str = "doesnotexist";

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/api/v1/authorize", get(authorize))
        .at("/api/v1/authorize.compact", get(authorize))
        .at("/api/v1/access_token", post(token_endpoint))
        .at("/api/v1/revoke_token", post(revoke))
        .at("/api/v1/me", get(me))
        .at("/api/submit", post(submit))
        .at("/user/:username/submitted", get(submitted))
        .at("/api/info", get(info))
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

fn fault_response(fault: &PublishFault) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "message": "Internal Server Error", "error": 500 }),
        ),
        PublishFault::RateLimited { retry_after_s } => {
            let secs = retry_after_s.to_string();
            let resp = json(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "message": "Too Many Requests", "error": 429 }),
            );
            let resp = with_header(resp, "retry-after", &secs);
            let resp = with_header(resp, "x-ratelimit-used", "100");
            let resp = with_header(resp, "x-ratelimit-remaining", "0");
            with_header(resp, "x-ratelimit-reset", &secs)
        }
        PublishFault::Rejected { message } => json_errors(&[("SUBMIT_VALIDATION_ERROR", message, "")]),
        PublishFault::Unauthorized => unauthorized(),
    }
}

/// HTTP 200 `{"json":{"errors":[[code, message, field], …]}}`.
fn json_errors(errors: &[(&str, &str, &str)]) -> Response {
    let list: Vec<Value> = errors.iter().map(|(c, m, f)| json!([c, m, f])).collect();
    ok(json!({ "json": { "errors": list } }))
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(
            digits
                .get(usize::try_from(n % 36).unwrap_or(0))
                .copied()
                .unwrap_or(b'0'),
        );
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The title part of a permalink: lower-case words joined by `_`, at most 50 characters.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out: String = out.chars().take(50).collect();
    let out = out.trim_end_matches('_');
    if out.is_empty() {
        "post".to_owned()
    } else {
        out.to_owned()
    }
}

fn subreddit_name_ok(sr: &str) -> bool {
    (2..=21).contains(&sr.len()) && sr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `POST /api/submit` (form `api_type=json`, `kind` self|link, `sr`, `title`, `text` or `url`).
#[handler]
async fn submit(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    submit_inner(shared, req, &body, fault).await.unwrap_or_else(|e| e)
}

async fn submit_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    check_user_agent(req)?;
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthorized())?;
    publish::gate(fault, fault_response).await?;
    let p = Params::parse(body);
    if p.get("api_type") != Some("json") {
        // Without api_type=json Reddit answers in its legacy jQuery format.
        return Err(ok(json!({ "jquery": [[0, 1, "call", ["body"]]], "success": false })));
    }
    let kind = p.str("kind");
    let (sr, title, text, url) = (p.str("sr"), p.str("title"), p.str("text"), p.str("url"));
    let mut errors: Vec<(&str, &str, &str)> = Vec::new();
    if !matches!(kind, "self" | "link") {
        errors.push(("INVALID_OPTION", "that option is not valid", "kind"));
    }
    if sr.is_empty() {
        errors.push(("SUBREDDIT_REQUIRED", "you must specify a subreddit", "sr"));
    } else if sr.eq_ignore_ascii_case(MISSING_SUBREDDIT) || !subreddit_name_ok(sr) {
        errors.push(("SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"));
    }
    if title.trim().is_empty() {
        errors.push(("NO_TEXT", "we need something here", "title"));
    } else if chars(title) > MAX_TITLE {
        errors.push(("TOO_LONG", "this is too long (max: 300)", "title"));
    }
    if kind == "link" {
        if url.is_empty() {
            errors.push(("NO_URL", "a url is required", "url"));
        } else if !is_http_url(url) {
            errors.push(("BAD_URL", "you should check that url", "url"));
        }
    }
    if kind == "self" && chars(text) > MAX_SELFTEXT {
        errors.push(("TOO_LONG", "this is too long (max: 40000)", "text"));
    }
    if !errors.is_empty() {
        return Err(json_errors(&errors));
    }
    let author = shared.control().identity.name.clone();
    let mut posts = shared.posts();
    let id = base36(posts.next_id(POST_BASE));
    let name = format!("t3_{id}");
    let permalink = format!("/r/{sr}/comments/{id}/{}/", slug(title));
    let full_url = format!("https://www.reddit.com{permalink}");
    let link = kind == "link";
    posts.record(PublishedPost {
        platform: "reddit".into(),
        account: author,
        id: name.clone(),
        text: if link { String::new() } else { text.to_owned() },
        title: Some(title.to_owned()),
        media: if link { vec![url.to_owned()] } else { Vec::new() },
        options: json!({ "kind": kind, "subreddit": sr, "permalink": permalink, "url": full_url }),
        at_unix_ms: publish::now_ms(),
    });
    drop(posts);
    Ok(ok(json!({
        "json": { "errors": [], "data": { "url": full_url, "drafts_count": 0, "id": id, "name": name } }
    })))
}

/// `GET /user/{username}/submitted?limit=&sort=new`: the user's posts, newest first.
#[handler]
async fn submitted(req: &Request, Path(username): Path<String>, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(resp) = check_user_agent(req) {
        return resp;
    }
    if oauth::check_publish_token(shared, bearer(req).as_deref()).is_err() {
        return unauthorized();
    }
    let p = Params::query(req);
    let limit = p
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25usize)
        .clamp(1, 100);
    let children: Vec<Value> = shared
        .posts()
        .list
        .iter()
        .rev()
        .filter(|post| post.platform == "reddit" && post.account.eq_ignore_ascii_case(&username))
        .take(limit)
        .map(|post| {
            let id = post.id.strip_prefix("t3_").unwrap_or(&post.id);
            let sr = post.options["subreddit"].as_str().unwrap_or("");
            let is_self = post.options["kind"] == "self";
            let url = if is_self {
                post.options["url"].clone()
            } else {
                post.media.first().cloned().unwrap_or_default().into()
            };
            // Whole seconds with a fraction of .0, as Reddit serves them.
            let created = (post.at_unix_ms / 1000) as f64;
            json!({ "kind": "t3", "data": {
                "id": id,
                "name": post.id,
                "title": post.title,
                "subreddit": sr,
                "subreddit_name_prefixed": format!("r/{sr}"),
                "author": post.account,
                "created_utc": created,
                "url": url,
                "permalink": post.options["permalink"],
                "selftext": post.text,
                "is_self": is_self,
                "score": 1,
                "num_comments": 0,
            } })
        })
        .collect();
    ok(json!({
        "kind": "Listing",
        "data": {
            "after": null,
            "dist": children.len(),
            "modhash": null,
            "geo_filter": "",
            "children": children,
            "before": null,
        },
    }))
}

/// Most fullnames of one `/api/info`.
const MAX_INFO: usize = 100;

/// `GET /api/info?id=t3_a,t3_b`: a listing of the known submissions (`score` = `ups` = likes,
/// `num_comments`), unknown fullnames just absent; more than 100 → 400.
#[handler]
async fn info(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = metrics::begin(shared, "reddit");
    info_inner(shared, req, fault).await.unwrap_or_else(|e| e)
}

async fn info_inner(shared: &Inner, req: &Request, fault: Option<PublishFault>) -> Result<Response, Response> {
    check_user_agent(req)?;
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthorized())?;
    publish::gate(fault, fault_response).await?;
    let p = Params::query(req);
    let names: Vec<&str> = p.str("id").split(',').filter(|n| !n.is_empty()).collect();
    if names.len() > MAX_INFO {
        return Err(json(
            StatusCode::BAD_REQUEST,
            json!({ "message": "Bad Request", "error": 400, "reason": format!("at most {MAX_INFO} ids") }),
        ));
    }
    let mut children = Vec::new();
    for name in names {
        let Some(id) = name.strip_prefix("t3_") else { continue };
        let Some(m) = metrics::lookup(shared, "reddit", name) else {
            continue;
        };
        let post = metrics::published(shared, "reddit", name);
        let sr = post
            .as_ref()
            .and_then(|p| p.options["subreddit"].as_str())
            .unwrap_or("test")
            .to_owned();
        children.push(json!({ "kind": "t3", "data": {
            "id": id,
            "name": name,
            "title": post.as_ref().and_then(|p| p.title.clone()).unwrap_or_default(),
            "subreddit": sr,
            "subreddit_name_prefixed": format!("r/{sr}"),
            "author": post.as_ref().map_or("", |p| p.account.as_str()),
            "created_utc": post.as_ref().map_or(0.0, |p| (p.at_unix_ms / 1000) as f64),
            "permalink": post.as_ref().map_or(Value::Null, |p| p.options["permalink"].clone()),
            "selftext": post.as_ref().map_or("", |p| p.text.as_str()),
            "score": m.likes,
            "ups": m.likes,
            "downs": 0,
            "upvote_ratio": 1.0,
            "num_comments": m.comments,
        } }));
    }
    Ok(ok(json!({
        "kind": "Listing",
        "data": {
            "after": null,
            "dist": children.len(),
            "modhash": "",
            "geo_filter": "",
            "children": children,
            "before": null,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::{base36, slug, user_agent_ok};

    #[test]
    fn ids_and_slugs() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(slug("Hello, World! It's me"), "hello_world_it_s_me");
        assert_eq!(slug("!!!"), "post");
    }

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
