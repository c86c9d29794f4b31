//! Publishing on Facebook Pages and Instagram business accounts, with a PAGE token of the page (for
//! Instagram: of the page that owns the IG account):
//!
//! - `POST /{page}/feed` (`message`) → `{"id":"{page}_{post}"}`; `POST /{page}/photos` (`url`,
//!   `caption`) → `{"id":"{photo}","post_id":"{page}_{post}"}`; `GET /{page}/feed` lists the page's
//!   posts, newest first.
//! - `POST /{ig}/media` (`image_url`, or `media_type=REELS` + `video_url`; `caption`) → a container;
//!   `GET /{container}?fields=status_code` (videos: `IN_PROGRESS` on the first poll, `FINISHED`
//!   after; images: `FINISHED`); `POST /{ig}/media_publish` (`creation_id`) → the media id;
//!   `GET /{media}?fields=permalink`; `GET /{ig}/media` lists the account's media, newest first.
//!
//! A user token, or another page's token, gets `(#200)`; unknown or expired tokens get 190.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use serde_json::{Map, Value, json};

use super::graph::{obj, select, unknown_node};
use super::{graph_error, oauth_exception, token_error, transient};
use crate::Inner;
use crate::http::{Params, bearer, ok};
use crate::oauth::{self, AuthFailure};
use crate::publish::{self, Container, PublishFault, PublishedPost, chars, is_http_url, is_video_url, with_header};
use crate::state::AccessKind;

/// Facebook post and photo ids (the number after `{page}_`).
const FB_POST_BASE: u64 = 122_000_000_000_000_000;
/// Instagram container ids.
const CONTAINER_BASE: u64 = 17_950_000_000_000_000;
/// Instagram media ids.
const MEDIA_BASE: u64 = 17_890_000_000_000_000;

const MAX_MESSAGE: usize = 63_206;
const MAX_CAPTION: usize = 2200;
const MAX_HASHTAGS: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Page,
    Instagram,
}

fn params(req: &Request, body: &str) -> Params {
    Params::query(req).merged(Params::parse(body))
}

/// The page behind `id`: the page itself, or the page owning the Instagram account `id`.
fn owner(shared: &Inner, id: &str, target: Target) -> Option<String> {
    let c = shared.control();
    match target {
        Target::Page => c.meta_pages.iter().any(|p| p.id == id).then(|| id.to_owned()),
        Target::Instagram => c
            .meta_pages
            .iter()
            .find(|p| p.instagram.as_ref().is_some_and(|ig| ig.id == id))
            .map(|p| p.id.clone()),
    }
}

fn permission_error() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin \
         with sufficient administrative permission",
        "OAuthException",
        200,
        None,
    )
}

/// The token must be valid (190), `id` a node of the target kind (100/33), and the token a page
/// token of the owning page (200); `allow_user` also admits user tokens (listings). Returns the
/// owning page id.
fn authorize(
    shared: &Inner,
    req: &Request,
    p: &Params,
    id: &str,
    target: Target,
    allow_user: bool,
) -> Result<String, Response> {
    let token = p.get("access_token").map(str::to_owned).or_else(|| bearer(req));
    let at = oauth::check_publish_token(shared, token.as_deref()).map_err(token_error)?;
    let page = owner(shared, id, target).ok_or_else(|| unknown_node(id))?;
    match &at.kind {
        AccessKind::Page(pid) if *pid == page => Ok(page),
        AccessKind::User | AccessKind::ShortLived if allow_user => Ok(page),
        _ => Err(permission_error()),
    }
}

/// An injected fault in Graph's shape; `id` is the page or IG account (the usage header's key).
pub(super) fn fault_response(fault: &PublishFault, id: &str) -> Response {
    match fault {
        // `SlowMs` never gets here: `publish::gate` sleeps and lets the call go on.
        PublishFault::ServerError | PublishFault::SlowMs(_) => transient(),
        PublishFault::RateLimited { retry_after_s } => {
            let minutes = retry_after_s.div_ceil(60).max(1);
            let usage = json!({ id: [{
                "type": "pages",
                "call_count": 100,
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": minutes,
            }] });
            with_header(
                oauth_exception("(#4) Application request limit reached", 4, None),
                "x-business-use-case-usage",
                &usage.to_string(),
            )
        }
        PublishFault::Rejected { message } => oauth_exception(message, 100, None),
        PublishFault::Unauthorized => token_error(AuthFailure::Injected),
    }
}

fn param_error(message: &str) -> Response {
    oauth_exception(message, 100, None)
}

fn either(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

/// The page post's fields as the Graph API shows them.
pub(super) fn fb_post_json(post: &PublishedPost) -> Map<String, Value> {
    let mut m = obj(json!({
        "id": post.id,
        "created_time": publish::graph_time(post.at_unix_ms),
        "permalink_url": format!("https://www.facebook.com/{}", post.id),
        "is_published": true,
    }));
    if !post.text.is_empty() {
        m.insert("message".into(), post.text.clone().into());
    }
    if let Some(url) = post.media.first() {
        m.insert("full_picture".into(), url.clone().into());
    }
    m
}

/// The short code of an Instagram permalink, derived from the media id.
fn shortcode(media_id: &str) -> String {
    use base64::Engine as _;
    let n: u64 = media_id.parse().unwrap_or(0);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_be_bytes())
}

/// The Instagram media's fields as the Graph API shows them.
fn ig_media_json(post: &PublishedPost) -> Map<String, Value> {
    let video = post.options["media_type"] == "REELS";
    let code = shortcode(&post.id);
    obj(json!({
        "id": post.id,
        "caption": post.text,
        "timestamp": publish::graph_time(post.at_unix_ms),
        "media_type": if video { "VIDEO" } else { "IMAGE" },
        "media_product_type": if video { "REELS" } else { "FEED" },
        "media_url": post.media.first(),
        "permalink": format!("https://www.instagram.com/p/{code}/"),
        "shortcode": code,
        "like_count": 0,
        "comments_count": 0,
    }))
}

/// `POST /{page}/feed` (`message`, optional `link`).
#[handler]
pub(crate) async fn feed_post(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let fault = publish::begin(shared).await;
    either(feed_post_inner(shared, req, &id, &body, fault).await)
}

async fn feed_post_inner(
    shared: &Inner,
    req: &Request,
    id: &str,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    let p = params(req, body);
    let page = authorize(shared, req, &p, id, Target::Page, false)?;
    publish::gate(fault, |f| fault_response(f, &page)).await?;
    let message = p.str("message");
    let link = p.get("link");
    if message.is_empty() && link.is_none() {
        return Err(param_error("(#100) Missing message or attachment"));
    }
    if chars(message) > MAX_MESSAGE {
        return Err(param_error("(#100) The message is too long"));
    }
    let mut posts = shared.posts();
    let post_id = format!("{page}_{}", posts.next_id(FB_POST_BASE));
    let idx = posts.record(PublishedPost {
        platform: "facebook".into(),
        account: page,
        id: post_id.clone(),
        text: message.to_owned(),
        title: None,
        media: link.map(str::to_owned).into_iter().collect(),
        options: json!({}),
        at_unix_ms: publish::now_ms(),
    });
    posts.nodes.insert(post_id.clone(), idx);
    Ok(ok(json!({ "id": post_id })))
}

/// `POST /{page}/photos` (`url`, `caption`): a photo and the page post showing it.
#[handler]
pub(crate) async fn photos_post(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let fault = publish::begin(shared).await;
    either(photos_post_inner(shared, req, &id, &body, fault).await)
}

async fn photos_post_inner(
    shared: &Inner,
    req: &Request,
    id: &str,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    let p = params(req, body);
    let page = authorize(shared, req, &p, id, Target::Page, false)?;
    publish::gate(fault, |f| fault_response(f, &page)).await?;
    let Some(url) = p.get("url") else {
        return Err(oauth_exception("(#324) Requires upload file", 324, None));
    };
    if !is_http_url(url) {
        return Err(param_error("(#100) url should represent a valid URL"));
    }
    if is_video_url(url) {
        return Err(oauth_exception("(#324) Missing or invalid image file", 324, None));
    }
    let caption = p.str("caption");
    if chars(caption) > MAX_MESSAGE {
        return Err(param_error("(#100) The caption is too long"));
    }
    let mut posts = shared.posts();
    let photo_id = posts.next_id(FB_POST_BASE).to_string();
    let post_id = format!("{page}_{}", posts.next_id(FB_POST_BASE));
    let idx = posts.record(PublishedPost {
        platform: "facebook".into(),
        account: page,
        id: post_id.clone(),
        text: caption.to_owned(),
        title: None,
        media: vec![url.to_owned()],
        options: json!({ "photo_id": photo_id }),
        at_unix_ms: publish::now_ms(),
    });
    posts.nodes.insert(post_id.clone(), idx);
    Ok(ok(json!({ "id": photo_id, "post_id": post_id })))
}

fn limit(p: &Params) -> usize {
    p.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25).clamp(1, 100)
}

fn listing(data: Vec<Value>) -> Response {
    if data.is_empty() {
        return ok(json!({ "data": [] }));
    }
    ok(json!({
        "data": data,
        "paging": { "cursors": { "before": "QVFIUmZAhZA2VfYmVmb3Jl", "after": "QVFIUmZAhZA2VfYWZAZA0ZAy" } },
    }))
}

/// `GET /{page}/feed?fields=…&limit=…`: the page's posts, newest first (page token or user token).
#[handler]
pub(crate) async fn feed_list(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let p = params(req, &body);
    let page = match authorize(shared, req, &p, &id, Target::Page, true) {
        Ok(page) => page,
        Err(resp) => return resp,
    };
    let fields = p.get("fields").unwrap_or("id,message,created_time");
    let data: Vec<Value> = shared
        .posts()
        .of_account("facebook", &page)
        .take(limit(&p))
        .map(|post| Value::Object(select(&fb_post_json(post), fields)))
        .collect();
    listing(data)
}

/// `GET /{ig}/media?fields=…&limit=…`: the account's published media, newest first.
#[handler]
pub(crate) async fn ig_media_list(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let p = params(req, &body);
    if let Err(resp) = authorize(shared, req, &p, &id, Target::Instagram, true) {
        return resp;
    }
    let fields = p.get("fields").unwrap_or("id");
    let data: Vec<Value> = shared
        .posts()
        .of_account("instagram", &id)
        .take(limit(&p))
        .map(|post| Value::Object(select(&ig_media_json(post), fields)))
        .collect();
    listing(data)
}

fn has_image_extension(url: &str) -> bool {
    let path = url::Url::parse(url)
        .map_or_else(|_| url.to_owned(), |u| u.path().to_owned())
        .to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| path.ends_with(e))
}

fn media_fetch_error() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "Media download has failed.: The media could not be fetched from this uri",
        "OAuthException",
        9004,
        Some(2_207_052),
    )
}

/// `POST /{ig}/media`: an image container (`image_url`) or a reel (`media_type=REELS`, `video_url`).
#[handler]
pub(crate) async fn ig_media_create(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let fault = publish::begin(shared).await;
    either(ig_media_create_inner(shared, req, &id, &body, fault).await)
}

async fn ig_media_create_inner(
    shared: &Inner,
    req: &Request,
    id: &str,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    let p = params(req, body);
    authorize(shared, req, &p, id, Target::Instagram, false)?;
    publish::gate(fault, |f| fault_response(f, id)).await?;
    let caption = p.str("caption");
    if chars(caption) > MAX_CAPTION {
        return Err(param_error(&format!(
            "(#100) The caption is too long: at most {MAX_CAPTION} characters are allowed"
        )));
    }
    if caption.matches('#').count() > MAX_HASHTAGS {
        return Err(param_error(&format!(
            "(#100) The caption has more than {MAX_HASHTAGS} hashtags"
        )));
    }
    let (video, url) = match p.get("media_type") {
        None => (
            false,
            p.get("image_url")
                .ok_or_else(|| param_error("(#100) The parameter image_url is required"))?,
        ),
        Some("REELS") => (
            true,
            p.get("video_url")
                .ok_or_else(|| param_error("(#100) The parameter video_url is required"))?,
        ),
        Some(other) => {
            return Err(param_error(&format!(
                "(#100) Param media_type must be one of {{REELS}} for this fake, got {other}"
            )));
        }
    };
    if !is_http_url(url) {
        return Err(param_error("(#100) The media URL is not a valid URL"));
    }
    if (video && has_image_extension(url)) || (!video && is_video_url(url)) {
        return Err(media_fetch_error());
    }
    let mut posts = shared.posts();
    let container_id = posts.next_id(CONTAINER_BASE).to_string();
    posts.containers.insert(
        container_id.clone(),
        Container {
            ig_id: id.to_owned(),
            video,
            caption: caption.to_owned(),
            media_url: url.to_owned(),
            polls: 0,
            published: None,
        },
    );
    Ok(ok(json!({ "id": container_id })))
}

fn not_available() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "Media ID is not available",
        "OAuthException",
        9007,
        Some(2_207_027),
    )
}

/// `POST /{ig}/media_publish` (`creation_id`): publishes a FINISHED container of this account once.
#[handler]
pub(crate) async fn ig_media_publish(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let fault = publish::begin(shared).await;
    either(ig_media_publish_inner(shared, req, &id, &body, fault).await)
}

async fn ig_media_publish_inner(
    shared: &Inner,
    req: &Request,
    id: &str,
    body: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    let p = params(req, body);
    authorize(shared, req, &p, id, Target::Instagram, false)?;
    publish::gate(fault, |f| fault_response(f, id)).await?;
    let Some(creation_id) = p.get("creation_id") else {
        return Err(param_error("(#100) The parameter creation_id is required"));
    };
    let mut posts = shared.posts();
    let container = match posts.containers.get(creation_id) {
        Some(c) if c.ig_id == id && c.finished() && c.published.is_none() => c.clone(),
        _ => return Err(not_available()),
    };
    let media_id = posts.next_id(MEDIA_BASE).to_string();
    if let Some(c) = posts.containers.get_mut(creation_id) {
        c.published = Some(media_id.clone());
    }
    let idx = posts.record(PublishedPost {
        platform: "instagram".into(),
        account: id.to_owned(),
        id: media_id.clone(),
        text: container.caption,
        title: None,
        media: vec![container.media_url],
        options: json!({
            "media_type": if container.video { "REELS" } else { "IMAGE" },
            "container_id": creation_id,
        }),
        at_unix_ms: publish::now_ms(),
    });
    posts.nodes.insert(media_id.clone(), idx);
    Ok(ok(json!({ "id": media_id })))
}

/// `GET /{id}` for a container, a Facebook post or an Instagram media (any valid token of the
/// fake); `None` when `id` is none of them, so the profile node lookup takes over. A container
/// poll counts whatever the fields.
pub(crate) fn node(shared: &Inner, req: &Request, body: &str, id: &str) -> Option<Response> {
    let known = {
        let posts = shared.posts();
        posts.containers.contains_key(id) || posts.nodes.contains_key(id)
    };
    if !known {
        return None;
    }
    let p = params(req, body);
    let token = p.get("access_token").map(str::to_owned).or_else(|| bearer(req));
    if let Err(failure) = oauth::check_publish_token(shared, token.as_deref()) {
        return Some(token_error(failure));
    }
    let mut posts = shared.posts();
    let (full, default) = if let Some(c) = posts.containers.get_mut(id) {
        c.polls = c.polls.saturating_add(1);
        let (code, status) = if !c.video || c.polls >= 2 {
            ("FINISHED", "Finished: Media has been uploaded and it is complete.")
        } else {
            ("IN_PROGRESS", "In Progress: Media is still being processed.")
        };
        (obj(json!({ "id": id, "status_code": code, "status": status })), "id")
    } else {
        let post = posts.nodes.get(id).and_then(|&i| posts.list.get(i))?;
        if post.platform == "instagram" {
            (ig_media_json(post), "id")
        } else {
            (fb_post_json(post), "id,message,created_time")
        }
    };
    Some(ok(Value::Object(select(&full, p.get("fields").unwrap_or(default)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_and_extensions() {
        assert_eq!(shortcode("17890000000000001").len(), 11);
        assert!(has_image_extension("http://h/media/a.PNG"));
        assert!(!has_image_extension("http://h/media/a.mp4"));
    }
}
