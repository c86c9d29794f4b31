//! Google / YouTube: `access_type=offline`, optional PKCE, client credentials in the body or Basic,
//! refresh responses without a refresh token, the YouTube Data API channel lookup, and resumable video
//! uploads: `POST /upload/youtube/v3/videos?uploadType=resumable&part=…` (metadata,
//! `X-Upload-Content-Length`) → `Location` of an upload session on this fake; `PUT` of exactly that
//! many bytes → the video resource. Metrics: `GET /youtube/v3/videos?part=statistics&id=…` (up to 50).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Params, basic_auth, bearer, json, ok};
use crate::metrics;
use crate::oauth::{self, AuthorizeSpec, GrantFailure, Pkce, RefreshPolicy};
use crate::publish::{self, PublishFault, PublishedPost, Upload, chars, with_header};
use crate::state::{CodeProblem, random_token};

const MAX_TITLE: usize = 100;
const MAX_DESCRIPTION_BYTES: usize = 5000;
const UPLOAD_PATH: &str = "/upload/youtube/v3/videos";

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/o/oauth2/v2/auth", get(authorize))
        .at("/token", post(token_endpoint))
        .at("/revoke", post(revoke))
        .at("/youtube/v3/channels", get(channels))
        .at(UPLOAD_PATH, post(upload_start).put(upload_bytes))
        .at("/youtube/v3/videos", get(videos))
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

fn bad_request(message: &str, reason: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, message, reason, Some("INVALID_ARGUMENT"))
}

fn fault_response(fault: &PublishFault) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Backend Error",
            "backendError",
            Some("UNAVAILABLE"),
        ),
        PublishFault::RateLimited { retry_after_s } => with_header(
            api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests. Please try again later.",
                "rateLimitExceeded",
                Some("RESOURCE_EXHAUSTED"),
            ),
            "retry-after",
            &retry_after_s.to_string(),
        ),
        PublishFault::Rejected { message } => bad_request(message, "badRequest"),
        PublishFault::Unauthorized => unauthenticated(),
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status`: checks the metadata
/// and opens an upload session (200, empty body, `Location`).
#[handler]
async fn upload_start(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = publish::begin(shared).await;
    upload_start_inner(shared, req, &body, fault)
        .await
        .unwrap_or_else(|e| e)
}

async fn upload_start_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthenticated())?;
    publish::gate(fault, fault_response).await?;
    let p = Params::query(req);
    if p.get("uploadType") != Some("resumable") {
        return Err(bad_request(
            "The fake supports uploadType=resumable only.",
            "invalidParameter",
        ));
    }
    let Some(part) = p.get("part") else {
        return Err(bad_request("Required parameter: part", "required"));
    };
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    let Some(length) = header(req, "x-upload-content-length").and_then(|v| v.parse::<usize>().ok()) else {
        return Err(bad_request(
            "The X-Upload-Content-Length header must give the size of the video in bytes.",
            "required",
        ));
    };
    if length == 0 {
        return Err(bad_request(
            "The upload is empty: a video file is required.",
            "mediaBodyRequired",
        ));
    }
    let content_type = header(req, "x-upload-content-type").unwrap_or("video/*").to_owned();
    if !(content_type.starts_with("video/") || content_type == "application/octet-stream") {
        return Err(bad_request(
            &format!(
                "Media type '{content_type}' is not supported. Valid media types: [video/*, application/octet-stream]"
            ),
            "mediaTypeNotSupported",
        ));
    }
    let meta: Value =
        serde_json::from_str(body).map_err(|_| bad_request("Failed to parse the request metadata.", "parseError"))?;
    let snippet = if parts.contains(&"snippet") {
        &meta["snippet"]
    } else {
        &Value::Null
    };
    let title = snippet["title"].as_str().unwrap_or("").to_owned();
    if title.trim().is_empty() || chars(&title) > MAX_TITLE || title.contains(['<', '>']) {
        return Err(bad_request(
            "The request metadata specifies an invalid or empty video title.",
            "invalidTitle",
        ));
    }
    let description = snippet["description"].as_str().unwrap_or("").to_owned();
    if description.len() > MAX_DESCRIPTION_BYTES || description.contains(['<', '>']) {
        return Err(bad_request(
            "The request metadata specifies an invalid video description.",
            "invalidDescription",
        ));
    }
    let status = if parts.contains(&"status") {
        &meta["status"]
    } else {
        &Value::Null
    };
    let privacy = status["privacyStatus"].as_str().unwrap_or("public").to_owned();
    if !["public", "private", "unlisted"].contains(&privacy.as_str()) {
        return Err(bad_request(
            &format!("Invalid privacy status: {privacy}"),
            "invalidVideoMetadata",
        ));
    }
    let channel = shared.control().identity.id.clone();
    let upload_id = random_token();
    shared.posts().uploads.insert(
        upload_id.clone(),
        Upload {
            channel,
            title,
            description,
            privacy,
            length,
            content_type,
            video: None,
        },
    );
    let location = format!(
        "{}{UPLOAD_PATH}?uploadType=resumable&upload_id={upload_id}",
        shared.base_url
    );
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("location", location.as_str())
        .header("x-guploader-uploadid", upload_id.as_str())
        .finish())
}

/// `PUT /upload/youtube/v3/videos?upload_id=…`: the whole video in one request. The byte count
/// must equal the session's `X-Upload-Content-Length` (else 400, the session stays open); a repeated
/// PUT of a finished session answers the same video.
#[handler]
async fn upload_bytes(req: &Request, body: Vec<u8>, Data(shared): Data<&Arc<Inner>>) -> Response {
    let p = Params::query(req);
    let upload_id = p.str("upload_id");
    let (channel_title, now) = (shared.control().identity.name.clone(), publish::now_ms());
    let mut posts = shared.posts();
    let Some(upload) = posts.uploads.get(upload_id).cloned() else {
        drop(posts);
        return api_error(
            StatusCode::NOT_FOUND,
            "The upload session does not exist or has expired.",
            "notFound",
            Some("NOT_FOUND"),
        );
    };
    if let Some(video) = upload.video {
        return ok(video);
    }
    if body.len() != upload.length {
        drop(posts);
        return bad_request(
            &format!(
                "The upload was {} bytes but X-Upload-Content-Length announced {}.",
                body.len(),
                upload.length
            ),
            "badContent",
        );
    }
    let id = posts.next_short_id();
    let video = json!({
        "kind": "youtube#video",
        "etag": "fake-etag-video",
        "id": id,
        "snippet": {
            "publishedAt": publish::rfc3339(now),
            "channelId": upload.channel,
            "title": upload.title,
            "description": upload.description,
            "thumbnails": {},
            "channelTitle": channel_title,
            "categoryId": "22",
            "liveBroadcastContent": "none",
            "localized": { "title": upload.title, "description": upload.description },
        },
        "status": {
            "uploadStatus": "uploaded",
            "privacyStatus": upload.privacy,
            "license": "youtube",
            "embeddable": true,
            "publicStatsViewable": true,
        },
    });
    if let Some(session) = posts.uploads.get_mut(upload_id) {
        session.video = Some(video.clone());
    }
    let mut options = json!({
        "privacyStatus": upload.privacy,
        "bytes": body.len(),
        "contentType": upload.content_type,
    });
    if let Some(name) = crate::media::name_in(&body) {
        options["media_name"] = name.into();
    }
    posts.record(PublishedPost {
        platform: "youtube".into(),
        account: upload.channel,
        id,
        text: upload.description,
        title: Some(upload.title),
        media: Vec::new(),
        options,
        at_unix_ms: now,
    });
    drop(posts);
    ok(video)
}

/// Most ids of one `videos.list`.
const MAX_VIDEO_IDS: usize = 50;

/// `GET /youtube/v3/videos?part=statistics[,snippet]&id=a,b`: the known videos, counts as strings
/// (`viewCount`, `likeCount`, `favoriteCount`, `commentCount`); unknown ids are just absent. No
/// `part`, no `id` or more than 50 ids → 400.
#[handler]
async fn videos(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    let fault = metrics::begin(shared, "youtube");
    videos_inner(shared, req, fault).await.unwrap_or_else(|e| e)
}

async fn videos_inner(shared: &Inner, req: &Request, fault: Option<PublishFault>) -> Result<Response, Response> {
    oauth::check_publish_token(shared, bearer(req).as_deref()).map_err(|_| unauthenticated())?;
    publish::gate(fault, fault_response).await?;
    let p = Params::query(req);
    let Some(part) = p.get("part") else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "Required parameter: part",
            "required",
            None,
        ));
    };
    let parts: Vec<&str> = part.split(',').map(str::trim).collect();
    let Some(ids) = p.get("id") else {
        return Err(bad_request(
            "No filter selected. Expected one of: chart, id, myRating",
            "missingRequiredParameter",
        ));
    };
    let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
    if ids.len() > MAX_VIDEO_IDS {
        return Err(bad_request(
            &format!(
                "The request specifies {} video ids; at most {MAX_VIDEO_IDS} are allowed.",
                ids.len()
            ),
            "invalidFilters",
        ));
    }
    let mut items = Vec::new();
    for id in ids {
        let Some(m) = metrics::lookup(shared, "youtube", id) else {
            continue;
        };
        let mut item = json!({ "kind": "youtube#video", "etag": format!("fake-etag-{id}"), "id": id });
        if parts.contains(&"statistics") {
            item["statistics"] = json!({
                "viewCount": m.views.to_string(),
                "likeCount": m.likes.to_string(),
                "favoriteCount": "0",
                "commentCount": m.comments.to_string(),
            });
        }
        if parts.contains(&"snippet")
            && let Some(post) = metrics::published(shared, "youtube", id)
        {
            item["snippet"] = json!({
                "publishedAt": publish::rfc3339(post.at_unix_ms),
                "channelId": post.account,
                "title": post.title,
                "description": post.text,
            });
        }
        items.push(item);
    }
    let total = items.len();
    Ok(ok(json!({
        "kind": "youtube#videoListResponse",
        "etag": "fake-etag-videos",
        "items": items,
        "pageInfo": { "totalResults": total, "resultsPerPage": total },
    })))
}
