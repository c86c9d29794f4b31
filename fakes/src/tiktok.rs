//! TikTok (Login Kit v2): `client_key`, comma-separated scopes, credentials in the form body,
//! rotating refresh tokens, and errors that come back with HTTP 200; the Content Posting API
//! (`creator_info/query`, `content/init` for photos, `video/init`, `status/fetch`: the first poll
//! answers `PROCESSING_DOWNLOAD`, later ones `PUBLISH_COMPLETE` with `publicaly_available_post_id`).
//! Publish endpoints answer a refused token with HTTP 401 `access_token_invalid`; so does the
//! metrics query `POST /v2/video/query/?fields=…` (`{"filters":{"video_ids":[…]}}`, at most 20 ids).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Map, Value, json};

use crate::Inner;
use crate::http::{Params, bearer, json, ok};
use crate::metrics;
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::publish::{self, PublishFault, PublishedPost, TiktokPublish, chars, is_http_url, is_video_url, with_header};
use crate::state::{CodeProblem, random_hex};

/// Public post ids (`publicaly_available_post_id`).
const PUBLIC_BASE: u64 = 7_301_000_000_000_000_000;
/// The number in publish ids (`v_pub_url~v2-1.{n}`).
const PUBLISH_BASE: u64 = 7_440_000_000_000_000_000;
/// The creator's `privacy_level_options`.
const PRIVACY_LEVELS: &[&str] = &["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"];
const MAX_VIDEO_TITLE: usize = 2200;
const MAX_PHOTO_TITLE: usize = 90;
const MAX_PHOTO_DESCRIPTION: usize = 4000;
const MAX_PHOTOS: usize = 35;

/// TikTok's documented refresh token lifetime (365 days).
const REFRESH_TTL_S: i64 = 31_536_000;

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/v2/auth/authorize/", get(authorize))
        .at("/v2/oauth/token/", post(token_endpoint))
        .at("/v2/oauth/revoke/", post(revoke))
        .at("/v2/user/info/", get(user_info))
        .at("/v2/post/publish/creator_info/query/", post(creator_info))
        .at("/v2/post/publish/content/init/", post(content_init))
        .at("/v2/post/publish/video/init/", post(video_init))
        .at("/v2/post/publish/status/fetch/", post(status_fetch))
        .at("/v2/video/query/", post(video_query))
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

/// A refused token on the Content Posting API: HTTP 401 `access_token_invalid`.
fn publish_token_invalid() -> Response {
    envelope(
        StatusCode::UNAUTHORIZED,
        json!({}),
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

/// HTTP 200 `invalid_params` (classify by body).
fn invalid_params(message: &str) -> Response {
    envelope(StatusCode::OK, json!({}), "invalid_params", message)
}

fn fault_response(fault: &PublishFault) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({}),
            "internal_error",
            "Something went wrong. Please try again later.",
        ),
        PublishFault::RateLimited { retry_after_s } => with_header(
            envelope(
                StatusCode::TOO_MANY_REQUESTS,
                json!({}),
                "rate_limit_exceeded",
                "API rate limit was exceeded, please try again later.",
            ),
            "retry-after",
            &retry_after_s.to_string(),
        ),
        PublishFault::Rejected { message } => invalid_params(message),
        PublishFault::Unauthorized => publish_token_invalid(),
    }
}

fn publish_token(shared: &Inner, req: &Request) -> Result<(), Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref())
        .map(|_| ())
        .map_err(|_| publish_token_invalid())
}

/// `POST /v2/post/publish/creator_info/query/`: who posts and which privacy levels they may use.
#[handler]
async fn creator_info(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(resp) = publish_token(shared, req) {
        return resp;
    }
    let who = shared.control().identity.clone();
    envelope(
        StatusCode::OK,
        json!({
            "creator_avatar_url": who.avatar_url,
            "creator_username": who.username,
            "creator_nickname": who.name,
            "privacy_level_options": PRIVACY_LEVELS,
            "comment_disabled": false,
            "duet_disabled": false,
            "stitch_disabled": false,
            "max_video_post_duration_sec": 600,
        }),
        "ok",
        "",
    )
}

/// `POST /v2/post/publish/content/init/`: a photo post pulled from `source_info.photo_images`.
#[handler]
async fn content_init(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    init(shared, req, &body, fault, false).await.unwrap_or_else(|e| e)
}

/// `POST /v2/post/publish/video/init/`: a video pulled from `source_info.video_url`.
#[handler]
async fn video_init(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    init(shared, req, &body, fault, true).await.unwrap_or_else(|e| e)
}

/// What an init asks to publish.
struct Draft {
    text: String,
    title: Option<String>,
    media: Vec<String>,
}

fn photo_draft(v: &Value, title: &str, description: &str) -> Result<Draft, Response> {
    if v["media_type"] != "PHOTO" {
        return Err(invalid_params("media_type must be PHOTO."));
    }
    if !matches!(v["post_mode"].as_str(), Some("DIRECT_POST" | "MEDIA_UPLOAD")) {
        return Err(invalid_params("post_mode must be DIRECT_POST or MEDIA_UPLOAD."));
    }
    let images: Vec<String> = match v["source_info"]["photo_images"].as_array() {
        Some(list) => list.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect(),
        None => Vec::new(),
    };
    if images.is_empty() {
        return Err(invalid_params(
            "source_info.photo_images must list at least one image URL.",
        ));
    }
    if images.len() > MAX_PHOTOS {
        return Err(invalid_params(&format!(
            "At most {MAX_PHOTOS} photo_images are allowed."
        )));
    }
    if images.iter().any(|u| !is_http_url(u) || is_video_url(u)) {
        return Err(invalid_params("Every photo_images entry must be the URL of an image."));
    }
    let cover = v["source_info"]["photo_cover_index"].as_u64().unwrap_or(0);
    if usize::try_from(cover).map_or(true, |c| c >= images.len()) {
        return Err(invalid_params("photo_cover_index is out of range."));
    }
    if chars(title) > MAX_PHOTO_TITLE {
        return Err(invalid_params(&format!(
            "post_info.title is longer than {MAX_PHOTO_TITLE} characters."
        )));
    }
    if chars(description) > MAX_PHOTO_DESCRIPTION {
        return Err(invalid_params(&format!(
            "post_info.description is longer than {MAX_PHOTO_DESCRIPTION} characters."
        )));
    }
    let (text, title) = if description.is_empty() {
        (title.to_owned(), None)
    } else {
        (description.to_owned(), Some(title.to_owned()).filter(|t| !t.is_empty()))
    };
    Ok(Draft {
        text,
        title,
        media: images,
    })
}

fn video_draft(v: &Value, title: &str) -> Result<Draft, Response> {
    let url = v["source_info"]["video_url"].as_str().unwrap_or("");
    if url.is_empty() {
        return Err(invalid_params("source_info.video_url is required for PULL_FROM_URL."));
    }
    if !is_http_url(url) || !is_video_url(url) {
        return Err(invalid_params("source_info.video_url must be the URL of a video."));
    }
    if chars(title) > MAX_VIDEO_TITLE {
        return Err(invalid_params(&format!(
            "post_info.title is longer than {MAX_VIDEO_TITLE} characters."
        )));
    }
    Ok(Draft {
        text: title.to_owned(),
        title: None,
        media: vec![url.to_owned()],
    })
}

async fn init(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
    video: bool,
) -> Result<Response, Response> {
    publish_token(shared, req)?;
    publish::gate(fault, fault_response).await?;
    let v: Value = serde_json::from_str(body).map_err(|_| invalid_params("The request body is not valid JSON."))?;
    if !v["post_info"].is_object() {
        return Err(invalid_params("post_info is required."));
    }
    let privacy = v["post_info"]["privacy_level"].as_str().unwrap_or("");
    if !PRIVACY_LEVELS.contains(&privacy) {
        return Err(invalid_params(&format!(
            "privacy_level {privacy:?} is not one of the creator's privacy_level_options."
        )));
    }
    if v["source_info"]["source"] != "PULL_FROM_URL" {
        return Err(invalid_params("source_info.source must be PULL_FROM_URL."));
    }
    let title = v["post_info"]["title"].as_str().unwrap_or("");
    let description = v["post_info"]["description"].as_str().unwrap_or("");
    let draft = if video {
        video_draft(&v, title)?
    } else {
        photo_draft(&v, title, description)?
    };
    let open_id = shared.control().identity.id.clone();
    let mut posts = shared.posts();
    let public_id = posts.next_id(PUBLIC_BASE);
    let prefix = if video { "v" } else { "p" };
    let publish_id = format!("{prefix}_pub_url~v2-1.{}", posts.next_id(PUBLISH_BASE));
    posts
        .tiktok
        .insert(publish_id.clone(), TiktokPublish { public_id, polls: 0 });
    posts.record(PublishedPost {
        platform: "tiktok".into(),
        account: open_id,
        id: public_id.to_string(),
        text: draft.text,
        title: draft.title,
        media: draft.media,
        options: json!({
            "privacy_level": privacy,
            "media_type": if video { "VIDEO" } else { "PHOTO" },
            "publish_id": publish_id,
        }),
        at_unix_ms: publish::now_ms(),
    });
    drop(posts);
    Ok(envelope(StatusCode::OK, json!({ "publish_id": publish_id }), "ok", ""))
}

/// `POST /v2/post/publish/status/fetch/` `{"publish_id"}`.
#[handler]
async fn status_fetch(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    if let Err(resp) = publish_token(shared, req) {
        return resp;
    }
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let Some(publish_id) = v["publish_id"].as_str() else {
        return invalid_params("publish_id is required.");
    };
    let mut posts = shared.posts();
    let Some(p) = posts.tiktok.get_mut(publish_id) else {
        drop(posts);
        return invalid_params(&format!("publish_id {publish_id} does not exist."));
    };
    p.polls = p.polls.saturating_add(1);
    let data = if p.polls == 1 {
        json!({ "status": "PROCESSING_DOWNLOAD", "publicaly_available_post_id": [], "downloaded_bytes": 0 })
    } else {
        json!({
            "status": "PUBLISH_COMPLETE",
            "publicaly_available_post_id": [p.public_id],
            "downloaded_bytes": crate::media::SIZE,
        })
    };
    drop(posts);
    envelope(StatusCode::OK, data, "ok", "")
}

/// Most ids of one `video/query`.
const MAX_QUERY: usize = 20;

/// The fields `video/query` can give.
const VIDEO_FIELDS: &[&str] = &[
    "id",
    "create_time",
    "title",
    "video_description",
    "like_count",
    "comment_count",
    "share_count",
    "view_count",
];

/// `POST /v2/video/query/?fields=…` `{"filters":{"video_ids":[…]}}`: the known videos with the
/// requested fields in `data.videos`; unknown ids are just absent. No `fields`, no ids or more than
/// 20 → `invalid_params` (HTTP 200, like TikTok's other validation errors).
#[handler]
async fn video_query(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = metrics::begin(shared, "tiktok");
    video_query_inner(shared, req, &body, fault).await.unwrap_or_else(|e| e)
}

async fn video_query_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    publish_token(shared, req)?;
    publish::gate(fault, fault_response).await?;
    let Some(fields) = Params::query(req).get("fields").map(str::to_owned) else {
        return Err(invalid_params("fields is required."));
    };
    let fields: Vec<&str> = fields.split(',').map(str::trim).collect();
    if let Some(bad) = fields.iter().find(|f| !VIDEO_FIELDS.contains(f)) {
        return Err(invalid_params(&format!("Invalid field: {bad}.")));
    }
    let v: Value = serde_json::from_str(body).map_err(|_| invalid_params("The request body is not valid JSON."))?;
    let Some(ids) = v.pointer("/filters/video_ids").and_then(Value::as_array) else {
        return Err(invalid_params("filters.video_ids is required."));
    };
    if ids.is_empty() || ids.len() > MAX_QUERY {
        return Err(invalid_params(&format!(
            "filters.video_ids must hold 1 to {MAX_QUERY} ids, got {}.",
            ids.len()
        )));
    }
    let mut videos = Vec::new();
    for id in ids {
        let Some(id) = id.as_str() else {
            return Err(invalid_params("filters.video_ids must be strings."));
        };
        let Some(m) = metrics::lookup(shared, "tiktok", id) else {
            continue;
        };
        let post = metrics::published(shared, "tiktok", id);
        let full = json!({
            "id": id,
            "create_time": post.as_ref().map_or(0, |p| p.at_unix_ms / 1000),
            "title": post.as_ref().map_or_else(String::new, |p| p.title.clone().unwrap_or_else(|| p.text.clone())),
            "video_description": post.as_ref().map_or("", |p| p.text.as_str()),
            "like_count": m.likes,
            "comment_count": m.comments,
            "share_count": m.shares,
            "view_count": m.views,
        });
        let mut video = Map::new();
        for field in &fields {
            if let Some(value) = full.get(*field) {
                video.insert((*field).to_owned(), value.clone());
            }
        }
        videos.push(Value::Object(video));
    }
    Ok(envelope(
        StatusCode::OK,
        json!({ "videos": videos, "cursor": 0, "has_more": false }),
        "ok",
        "",
    ))
}
