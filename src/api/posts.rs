//! Posts: schedule, list, read with attempts, cancel, retry.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, Union};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult, ErrorBody, FieldProblem};
use super::security::Bearer;
use crate::app::{App, AppError};
use crate::domain::ids::PostId;
use crate::domain::platform::Platform;
use crate::domain::post::{Post as PostAggregate, PostCommand, PostError};
use crate::domain::post_rules;
use crate::projections::{accounts, posts};
use crate::store::{Direction, ExpectedVersion, Metadata, NewEvent, StoreError, StreamFrom};

#[derive(Tags)]
enum Tag {
    /// Scheduled posts and their history.
    Posts,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CreatePost {
    /// One account… (`acc_…`)
    pub account_id: Option<String>,
    /// …or several: one post per account, same content.
    pub account_ids: Option<Vec<String>>,
    pub text: String,
    /// Required by Reddit; the video title on YouTube; TikTok's title.
    pub title: Option<String>,
    /// Public http(s) URLs the platform fetches (images, videos).
    pub media_urls: Option<Vec<String>>,
    /// Per platform: Reddit `subreddit`, `kind` (`self`|`link`); TikTok `privacy_level`; YouTube
    /// `privacy_status`. Unknown options for a platform are a 422.
    pub options: Option<std::collections::BTreeMap<String, Value>>,
    /// RFC 3339; missing or past means now.
    pub scheduled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct Attempt {
    pub n: u32,
    pub started_at: DateTime<Utc>,
    /// `published`, `published (reconciled)`, `failed`, `unknown`, or null while running.
    pub outcome: Option<String>,
    /// `transient`, `permanent` or `auth` for failures.
    pub class: Option<String>,
    /// The platform's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The platform's own message.
    pub message: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct Post {
    /// `post_…`
    pub id: String,
    pub account_id: String,
    pub platform: String,
    /// `scheduled`, `publishing`, `published`, `failed`, `cancelled` or `outcome_unknown`.
    pub status: String,
    pub text: String,
    pub title: Option<String>,
    pub media_urls: Vec<String>,
    pub options: Value,
    pub scheduled_at: DateTime<Utc>,
    /// Attempts started so far.
    pub attempts: u32,
    /// When a post waiting for a retry will be attempted again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The platform's own id (Facebook `{page}_{post}`, Reddit `t3_…`, LinkedIn URN, X id, …).
    pub platform_post_id: Option<String>,
    pub url: Option<String>,
    /// The last error, in the platform's words, or why the post was cancelled.
    pub error: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every attempt (on `GET /api/posts/{id}`; empty in lists).
    pub attempt_history: Vec<Attempt>,
}

impl Post {
    fn from_row(r: posts::PostRow, history: Vec<posts::AttemptRow>) -> Post {
        let waiting = r.status == "scheduled" && r.attempts > 0;
        Post {
            next_attempt_at: waiting.then_some(r.due_at),
            id: r.id,
            account_id: r.account_id,
            platform: r.platform,
            status: r.status,
            text: r.text,
            title: r.title,
            media_urls: r.media_urls,
            options: r.options,
            scheduled_at: r.scheduled_at,
            attempts: r.attempts,
            platform_post_id: r.platform_post_id,
            url: r.url,
            error: r.error,
            published_at: r.published_at,
            created_at: r.created_at,
            attempt_history: history
                .into_iter()
                .map(|a| Attempt {
                    n: a.n,
                    started_at: a.started_at,
                    outcome: a.outcome,
                    class: a.class,
                    status: a.status_code,
                    message: a.message,
                    retry_at: a.retry_at,
                    finished_at: a.finished_at,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Object)]
pub struct PostList {
    pub items: Vec<Post>,
    /// Pass as `cursor` for the next (older) page; null at the end.
    pub next_cursor: Option<String>,
}

/// `account_id` answers the post; `account_ids` answers the list.
#[derive(Debug, Union)]
#[oai(one_of)]
#[allow(clippy::large_enum_variant)] // built once per request
pub enum Created {
    One(Post),
    Many(PostList),
}

#[derive(Debug, ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request
pub enum CreateResponse {
    /// Scheduled (or, with a repeated `Idempotency-Key` and the same body, the posts it scheduled).
    #[oai(status = 201)]
    Created(Json<Created>),
}

#[derive(Debug, ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[derive(Debug)]
pub struct PostsApi;

fn internal(e: impl Into<AppError>) -> ApiError {
    ApiError::from(e.into())
}

async fn load_view(app: &App, user: &str, id: &str, with_history: bool) -> ApiResult<Post> {
    let (user, id) = (user.to_string(), id.to_string());
    let (row, history) = app
        .models
        .read(move |c| {
            let row = posts::get(c, &user, &id)?;
            let history = if with_history && row.is_some() {
                posts::attempts(c, &id)?
            } else {
                Vec::new()
            };
            Ok((row, history))
        })
        .await
        .map_err(internal)?;
    let row = row.ok_or_else(|| ApiError::not_found("post"))?;
    Ok(Post::from_row(row, history))
}

#[derive(Debug, Serialize, Deserialize)]
struct Accepted {
    body_hash: String,
    post_ids: Vec<String>,
}

fn problem(field: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field.to_string(),
        message: message.into(),
    }
}

#[OpenApi]
impl PostsApi {
    /// Schedules a post on one account (`account_id`) or the same post on several (`account_ids`).
    /// Checked against each platform's rules (422 with field-level messages). With an
    /// `Idempotency-Key`, repeating the same request answers the same posts; the same key with
    /// another body is a 409.
    #[oai(
        path = "/api/posts",
        method = "post",
        tag = "Tag::Posts",
        operation_id = "create_post"
    )]
    async fn create(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: Json<CreatePost>,
    ) -> ApiResult<CreateResponse> {
        let user = auth.0.user_id.as_str().to_string();
        let req = body.0;
        let single = req.account_id.is_some();
        let ids: Vec<String> = match (&req.account_id, &req.account_ids) {
            (Some(one), None) => vec![one.clone()],
            (None, Some(many)) if !many.is_empty() => many.clone(),
            (Some(_), Some(_)) => {
                return Err(ApiError::Unprocessable(ErrorBody::fields(
                    "give either account_id or account_ids",
                    vec![problem("account_ids", "cannot be combined with account_id")],
                )));
            }
            _ => {
                return Err(ApiError::Unprocessable(ErrorBody::fields(
                    "an account is required",
                    vec![problem("account_id", "give account_id or a non-empty account_ids")],
                )));
            }
        };
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != ids.len() {
            return Err(ApiError::Unprocessable(ErrorBody::fields(
                "an account appears twice",
                vec![problem("account_ids", "each account may appear once")],
            )));
        }
        // Validate everything before storing anything.
        let lookup = (user.clone(), ids.clone());
        let rows = app
            .models
            .read(move |c| {
                lookup
                    .1
                    .iter()
                    .map(|id| accounts::get(c, &lookup.0, id))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(internal)?;
        let media = req.media_urls.clone().unwrap_or_default();
        let options: Map<String, Value> = req.options.clone().unwrap_or_default().into_iter().collect();
        let mut problems = Vec::new();
        let mut targets = Vec::new();
        for (i, (id, row)) in ids.iter().zip(rows).enumerate() {
            let field = if single {
                "account_id".to_string()
            } else {
                format!("account_ids[{i}]")
            };
            let Some(row) = row else {
                problems.push(problem(&field, format!("no connected account {id}")));
                continue;
            };
            let Ok(platform) = row.platform.parse::<Platform>() else {
                problems.push(problem(&field, "unknown platform"));
                continue;
            };
            for e in post_rules::validate(platform, &req.text, req.title.as_deref(), &media, &options) {
                let field = if ids.len() > 1 {
                    format!("{} ({})", e.field, platform.as_str())
                } else {
                    e.field
                };
                problems.push(problem(&field, e.message));
            }
            targets.push((row.id, platform));
        }
        if !problems.is_empty() {
            return Err(ApiError::Unprocessable(ErrorBody::fields(
                "the post does not fit every platform's rules",
                problems,
            )));
        }
        let now = Utc::now();
        let scheduled_at = req.scheduled_at.filter(|t| *t > now).unwrap_or(now);
        let mut post_ids: Vec<String> = targets.iter().map(|_| PostId::new().to_string()).collect();

        // Idempotency: the record (with the post ids) is appended first, so of two concurrent
        // requests with one key exactly one creates posts and the other answers the same ones.
        if let Some(key) = idempotency_key.0.filter(|k| !k.is_empty()) {
            if key.len() > 255 {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key is limited to 255 characters",
                ));
            }
            let body_hash = hex(&Sha256::digest(serde_json::to_vec(&req).unwrap_or_default()));
            let stream = format!(
                "idempotency-{}",
                hex(&Sha256::digest(format!("{user}\u{0}{key}").as_bytes()))
            );
            let record = Accepted {
                body_hash: body_hash.clone(),
                post_ids: post_ids.clone(),
            };
            let event = NewEvent {
                id: uuid::Uuid::now_v7(),
                event_type: "PostRequestAccepted".into(),
                data: serde_json::to_vec(&record).unwrap_or_default(),
                metadata: App::metadata_for(&auth.0, None),
            };
            match app.store.append(&stream, ExpectedVersion::NoStream, vec![event]).await {
                Ok(_) => {}
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    let first = app
                        .store
                        .read_stream(&stream, StreamFrom::Start, Direction::Forwards, 1)
                        .await
                        .map_err(internal)?;
                    let earlier: Accepted = first
                        .first()
                        .and_then(|e| serde_json::from_slice(&e.data).ok())
                        .ok_or_else(ApiError::internal)?;
                    if earlier.body_hash != body_hash {
                        return Err(ApiError::conflict(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with a different request body",
                        ));
                    }
                    // The first request may still be creating its posts: wait for them (bounded).
                    post_ids = earlier.post_ids;
                    let mut items = Vec::new();
                    for id in &post_ids {
                        let mut view = None;
                        for _ in 0..100 {
                            match load_view(&app, &user, id, false).await {
                                Ok(v) => {
                                    view = Some(v);
                                    break;
                                }
                                Err(ApiError::NotFound(_)) => {
                                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        items.push(view.ok_or_else(|| {
                            ApiError::conflict(
                                "request_in_progress",
                                "the first request with this key is still running; retry",
                            )
                        })?);
                    }
                    return Ok(respond(single, items));
                }
                Err(e) => return Err(internal(e)),
            }
        }

        let mut last = None;
        for ((account_id, platform), post_id) in targets.iter().zip(&post_ids) {
            let cmd = PostCommand::Schedule {
                user_id: user.clone(),
                account_id: account_id.clone(),
                platform: *platform,
                text: req.text.clone(),
                title: req.title.clone(),
                media_urls: media.clone(),
                options: options.clone(),
                scheduled_at,
            };
            let meta = Metadata {
                user_id: Some(user.clone()),
                ..Metadata::now()
            };
            let done = app
                .execute::<PostAggregate>(&format!("post-{post_id}"), &cmd, meta)
                .await
                .map_err(ApiError::from)?;
            last = done.position.or(last);
        }
        app.settle(last).await;
        app.engine_wakeup.notify_one();
        let mut items = Vec::new();
        for id in &post_ids {
            items.push(load_view(&app, &user, id, false).await?);
        }
        Ok(respond(single, items))
    }

    /// The caller's posts, newest first.
    #[oai(path = "/api/posts", method = "get", tag = "Tag::Posts", operation_id = "list_posts")]
    async fn list(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        /// `scheduled`, `publishing`, `published`, `failed`, `cancelled` or `outcome_unknown`.
        status: Query<Option<String>>,
        account_id: Query<Option<String>>,
        /// From a previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// 1-200, default 50.
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<PostList>> {
        let limit = limit.0.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::unprocessable(
                "invalid_limit",
                "limit must be between 1 and 200",
            ));
        }
        let statuses = [
            "scheduled",
            "publishing",
            "published",
            "failed",
            "cancelled",
            "outcome_unknown",
        ];
        if let Some(s) = &status.0
            && !statuses.contains(&s.as_str())
        {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("status must be one of {}", statuses.join(", ")),
            ));
        }
        let filter = posts::Filter {
            status: status.0,
            account_id: account_id.0.filter(|a| !a.is_empty()),
            before: cursor.0.filter(|c| !c.is_empty()),
        };
        let user = auth.0.user_id.as_str().to_string();
        let take = limit as usize;
        let rows = app
            .models
            .read(move |c| posts::list(c, &user, &filter, take + 1))
            .await
            .map_err(internal)?;
        let more = rows.len() > take;
        let items: Vec<Post> = rows.into_iter().take(take).map(|r| Post::from_row(r, vec![])).collect();
        let next_cursor = if more { items.last().map(|p| p.id.clone()) } else { None };
        Ok(Json(PostList { items, next_cursor }))
    }

    /// One post with every attempt.
    #[oai(
        path = "/api/posts/:id",
        method = "get",
        tag = "Tag::Posts",
        operation_id = "get_post"
    )]
    async fn get(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<Json<Post>> {
        Ok(Json(load_view(&app, auth.0.user_id.as_str(), &id.0, true).await?))
    }

    /// Cancels a post that has not started publishing (409 once publishing or published).
    #[oai(
        path = "/api/posts/:id",
        method = "delete",
        tag = "Tag::Posts",
        operation_id = "cancel_post"
    )]
    async fn cancel(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<NoContent> {
        let view = load_view(&app, auth.0.user_id.as_str(), &id.0, false).await?;
        let cmd = PostCommand::Cancel {
            reason: "cancelled by the user".into(),
        };
        let done = app
            .execute::<PostAggregate>(&format!("post-{}", view.id), &cmd, App::metadata_for(&auth.0, None))
            .await
            .map_err(|e| match e {
                AppError::Rejected(r) => match r.downcast_ref::<PostError>() {
                    Some(PostError::NotCancellable(s)) => ApiError::conflict(
                        "not_cancellable",
                        format!("the post is {s} and can no longer be cancelled"),
                    ),
                    _ => ApiError::unprocessable("invalid", r.to_string()),
                },
                other => other.into(),
            })?;
        app.settle(done.position).await;
        Ok(NoContent::Done)
    }

    /// Tries again a post whose outcome is unknown (or that failed). For `outcome_unknown`, check
    /// the platform first: if the post is there, this publishes it twice.
    #[oai(
        path = "/api/posts/:id/retry",
        method = "post",
        tag = "Tag::Posts",
        operation_id = "retry_post"
    )]
    async fn retry(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<Json<Post>> {
        let view = load_view(&app, auth.0.user_id.as_str(), &id.0, false).await?;
        let cmd = PostCommand::RequestRetry {
            requested_by: auth.0.user_id.as_str().to_string(),
        };
        let done = app
            .execute::<PostAggregate>(&format!("post-{}", view.id), &cmd, App::metadata_for(&auth.0, None))
            .await
            .map_err(|e| match e {
                AppError::Rejected(r) => ApiError::conflict("not_retryable", r.to_string()),
                other => other.into(),
            })?;
        app.settle(done.position).await;
        app.engine_wakeup.notify_one();
        Ok(Json(load_view(&app, auth.0.user_id.as_str(), &view.id, true).await?))
    }
}

fn respond(single: bool, mut items: Vec<Post>) -> CreateResponse {
    if single
        && items.len() == 1
        && let Some(one) = items.pop()
    {
        return CreateResponse::Created(Json(Created::One(one)));
    }
    CreateResponse::Created(Json(Created::Many(PostList {
        items,
        next_cursor: None,
    })))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
