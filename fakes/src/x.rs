//! X (API v2): OAuth 2.0 with mandatory PKCE and HTTP Basic client auth, rotating refresh tokens;
//! `POST /2/tweets` (280 characters, duplicate text → 403) and the reconcile listing
//! `GET /2/users/{id}/tweets` (`start_time`, `end_time`, `max_results`, `tweet.fields`), and the
//! metrics lookup `GET /2/tweets?ids=…&tweet.fields=public_metrics` (up to 100 ids).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Params, basic_auth, bearer, json, ok};
use crate::metrics;
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::publish::{self, PublishFault, PublishedPost, chars, with_header};
use crate::state::{CodeProblem, now_s};

/// Tweet ids (19 digits, like snowflakes).
const TWEET_BASE: u64 = 1_860_000_000_000_000_000;
const MAX_TWEET: usize = 280;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/i/oauth2/authorize", get(authorize))
        .at("/2/oauth2/token", post(token_endpoint))
        .at("/2/oauth2/revoke", post(revoke))
        .at("/2/users/me", get(me))
        .at("/2/tweets", get(lookup_tweets).post(create_tweet))
        .at("/2/users/:id/tweets", get(user_tweets))
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

/// A problem-detail error (`type`, `title`, `detail`, `status`).
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    json(
        status,
        json!({ "title": title, "type": "about:blank", "status": status.as_u16(), "detail": detail }),
    )
}

/// 400 "Invalid Request" problem detail, the message also in `errors[0].message`.
fn invalid_request(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        json!({
            "errors": [{ "message": message }],
            "title": "Invalid Request",
            "detail": message,
            "type": "https://api.twitter.com/2/problems/invalid-request",
            "status": 400,
        }),
    )
}

fn fault_response(fault: &PublishFault) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "Service Unavailable",
        ),
        PublishFault::RateLimited { retry_after_s } => {
            let reset = now_s().saturating_add(i64::try_from(*retry_after_s).unwrap_or(i64::MAX));
            let resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "Too Many Requests");
            let resp = with_header(resp, "retry-after", &retry_after_s.to_string());
            let resp = with_header(resp, "x-rate-limit-limit", "200");
            let resp = with_header(resp, "x-rate-limit-remaining", "0");
            with_header(resp, "x-rate-limit-reset", &reset.to_string())
        }
        PublishFault::Rejected { message } => invalid_request(message),
        PublishFault::Unauthorized => unauthorized(),
    }
}

/// `POST /2/tweets` `{"text"}` → 201 `{"data":{"id","text","edit_history_tweet_ids"}}`.
#[handler]
async fn create_tweet(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    create_tweet_inner(shared, req, &body, fault)
        .await
        .unwrap_or_else(|e| e)
}

async fn create_tweet_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthorized())?;
    publish::gate(fault, fault_response).await?;
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(body) else {
        return Err(invalid_request("The request body must be a JSON object."));
    };
    let Some(Value::String(text)) = fields.remove("text") else {
        return Err(invalid_request(
            "The `text` field is required when no media is attached.",
        ));
    };
    if text.trim().is_empty() {
        return Err(invalid_request("The `text` field must not be empty."));
    }
    let len = chars(&text);
    if len > MAX_TWEET {
        return Err(invalid_request(&format!(
            "The `text` is {len} characters long; the limit is {MAX_TWEET}."
        )));
    }
    let user = shared.control().identity.id.clone();
    let mut posts = shared.posts();
    if !posts.tweets.insert((user.clone(), text.clone())) {
        return Err(json(
            StatusCode::FORBIDDEN,
            json!({
                "detail": "You are not allowed to create a Tweet with duplicate content.",
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
            }),
        ));
    }
    let id = posts.next_id(TWEET_BASE).to_string();
    posts.record(PublishedPost {
        platform: "x".into(),
        account: user,
        id: id.clone(),
        text: text.clone(),
        title: None,
        media: Vec::new(),
        options: Value::Object(fields),
        at_unix_ms: publish::now_ms(),
    });
    drop(posts);
    Ok(json(
        StatusCode::CREATED,
        json!({ "data": { "id": id, "text": text, "edit_history_tweet_ids": [id] } }),
    ))
}

/// `GET /2/users/{id}/tweets?max_results=&start_time=&end_time=&tweet.fields=`: the user's tweets,
/// newest first; `{"meta":{"result_count":0}}` when none.
#[handler]
async fn user_tweets(req: &Request, Path(id): Path<String>, Data(shared): Data<&Arc<Inner>>) -> Response {
    if oauth::check_publish_token(shared, bearer(req).as_deref()).is_err() {
        return unauthorized();
    }
    let p = Params::query(req);
    let max = match p.get("max_results").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (5..=100).contains(&n) => n,
        Some(_) => {
            return invalid_request(&format!(
                "The `max_results` query parameter value [{}] is not between 5 and 100",
                p.str("max_results")
            ));
        }
    };
    let mut bounds = [None, None];
    for (slot, key) in bounds.iter_mut().zip(["start_time", "end_time"]) {
        if let Some(raw) = p.get(key) {
            match publish::parse_rfc3339(raw) {
                Some(ms) => *slot = Some(ms),
                None => {
                    return invalid_request(&format!(
                        "Invalid '{key}':'{raw}'. '{key}' must be a valid RFC 3339 timestamp."
                    ));
                }
            }
        }
    }
    let [start, end] = bounds;
    let fields: Vec<&str> = p.str("tweet.fields").split(',').collect();
    let with_created = fields.contains(&"created_at");
    let data: Vec<Value> = shared
        .posts()
        .of_account("x", &id)
        .filter(|t| start.is_none_or(|s| t.at_unix_ms >= s) && end.is_none_or(|e| t.at_unix_ms <= e))
        .take(max)
        .map(|t| {
            let mut item = json!({ "id": t.id, "text": t.text, "edit_history_tweet_ids": [t.id] });
            if with_created {
                item["created_at"] = publish::x_time(t.at_unix_ms).into();
            }
            item
        })
        .collect();
    let (Some(newest), Some(oldest)) = (data.first(), data.last()) else {
        return ok(json!({ "meta": { "result_count": 0 } }));
    };
    let meta = json!({ "result_count": data.len(), "newest_id": newest["id"], "oldest_id": oldest["id"] });
    ok(json!({ "data": data, "meta": meta }))
}

/// Most ids of one `GET /2/tweets`.
const MAX_LOOKUP: usize = 100;

/// `GET /2/tweets?ids=…&tweet.fields=…`: the posts the fake knows in `data` (`public_metrics`,
/// `created_at` when asked), each unknown id as a `resource-not-found` entry of `errors`, HTTP 200.
/// 1 to 100 numeric ids, else 400.
#[handler]
async fn lookup_tweets(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = metrics::begin(shared, "x");
    lookup_inner(shared, req, fault).await.unwrap_or_else(|e| e)
}

async fn lookup_inner(shared: &Inner, req: &Request, fault: Option<PublishFault>) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthorized())?;
    publish::gate(fault, fault_response).await?;
    let p = Params::query(req);
    let Some(raw) = p.get("ids") else {
        return Err(invalid_request("The `ids` query parameter can not be empty"));
    };
    let ids: Vec<&str> = raw.split(',').collect();
    if ids.len() > MAX_LOOKUP {
        return Err(invalid_request(&format!(
            "The number of values in the `ids` query parameter list [{}] is not between 1 and {MAX_LOOKUP}",
            ids.len()
        )));
    }
    if let Some(bad) = ids
        .iter()
        .find(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid_request(&format!(
            "The `ids` query parameter value [{bad}] does not match ^[0-9]{{1,19}}$"
        )));
    }
    let fields: Vec<&str> = p.str("tweet.fields").split(',').collect();
    let (mut data, mut errors) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(m) = metrics::lookup(shared, "x", id) else {
            errors.push(json!({
                "value": id,
                "detail": format!("Could not find tweet with ids: [{id}]."),
                "title": "Not Found Error",
                "resource_type": "tweet",
                "parameter": "ids",
                "resource_id": id,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }));
            continue;
        };
        let post = metrics::published(shared, "x", id);
        let text = post.as_ref().map_or("", |t| t.text.as_str());
        let mut item = json!({ "id": id, "text": text, "edit_history_tweet_ids": [id] });
        if fields.contains(&"public_metrics") {
            item["public_metrics"] = json!({
                "retweet_count": m.shares,
                "reply_count": m.comments,
                "like_count": m.likes,
                "quote_count": m.quotes,
                "bookmark_count": m.bookmarks,
                "impression_count": m.impressions,
            });
        }
        if fields.contains(&"created_at")
            && let Some(post) = &post
        {
            item["created_at"] = publish::x_time(post.at_unix_ms).into();
        }
        data.push(item);
    }
    let mut body = json!({});
    if !data.is_empty() {
        body["data"] = data.into();
    }
    if !errors.is_empty() {
        body["errors"] = errors.into();
    }
    Ok(ok(body))
}
