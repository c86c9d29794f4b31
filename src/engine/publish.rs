//! One publish, from claim to recorded outcome, and the recovery of claims nobody finished.
//!
//! Outcomes, in the words of the publishing protocol:
//! - the platform answered with the post → `PostPublished`;
//! - the platform refused before creating anything (4xx with its message, 5xx, 429, connection
//!   refused) → `PublishFailed` (transient ones retry with backoff, honouring `Retry-After`);
//! - the token was refused → one refresh and one retry, then the account needs the user and the post
//!   fails with "reconnect the account";
//! - the request went out but no answer came back (timeout, dropped connection) → the post may or
//!   may not exist: reconcile against the platform where it lets us look, else `outcome_unknown`.

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::SecretString;
use uuid::Uuid;

use super::EngineConfig;
use crate::app::{App, AppError};
use crate::domain::account::{Account, Health};
use crate::domain::platform::Platform;
use crate::domain::post::{FailureClass, Post, PostCommand, PostError, PostStatus};
use crate::lifecycle::refresh::{self, Mode, RefreshError};
use crate::platforms::PlatformError;
use crate::platforms::publish::{self as platform_publish, PublishRequest, Published};
use crate::store::Metadata;

fn meta(post: &Post) -> Metadata {
    Metadata {
        user_id: Some(post.user_id.clone()),
        ..Metadata::now()
    }
}

async fn record(app: &App, post_id: &str, post: &Post, cmd: PostCommand) {
    match app.execute::<Post>(&format!("post-{post_id}"), &cmd, meta(post)).await {
        Ok(_) => {}
        Err(AppError::Rejected(r)) if r.downcast_ref::<PostError>() == Some(&PostError::StaleAttempt) => {
            tracing::warn!(post = post_id, "outcome not recorded: the attempt was taken over");
        }
        Err(e) => tracing::error!(post = post_id, error = %e, "cannot record a publish outcome"),
    }
}

fn failure(
    cfg: &EngineConfig,
    attempt_id: Uuid,
    class: FailureClass,
    status: Option<u16>,
    message: String,
    retry_after: Option<DateTime<Utc>>,
    wait_for_account: bool,
) -> PostCommand {
    PostCommand::RecordFailure {
        attempt_id,
        class,
        status,
        message,
        retry_after,
        wait_for_account,
        policy: cfg.retry,
        jitter: rand::rng().random::<f64>(),
    }
}

fn status_of(e: &PlatformError) -> Option<u16> {
    match e {
        PlatformError::Unauthorized { status, .. } | PlatformError::Api { status, .. } => Some(*status),
        PlatformError::RateLimited { .. } => Some(429),
        _ => None,
    }
}

/// The request never left this machine (connection refused): retrying cannot duplicate.
fn never_sent(e: &PlatformError) -> bool {
    matches!(e, PlatformError::Transport { message, .. } if message == "connection failed")
}

/// Runs one due post: checks, claim, token, publish, outcome.
#[tracing::instrument(skip_all, fields(post = %post_id))]
pub async fn publish_one(app: &App, cfg: &EngineConfig, worker: Uuid, post_id: &str) {
    let stream = format!("post-{post_id}");
    let Ok((post, _)) = app.load::<Post>(&stream).await else {
        return;
    };
    if post.status != PostStatus::Scheduled || post.due_at().is_some_and(|d| d > Utc::now()) {
        return;
    }
    let Ok((account, _)) = app.load::<Account>(&format!("account-{}", post.account_id)).await else {
        return;
    };
    if !account.connected {
        let cmd = PostCommand::Cancel {
            reason: "the account was disconnected".into(),
        };
        record(app, post_id, &post, cmd).await;
        return;
    }
    let overdue = post.scheduled_at.is_some_and(|t| Utc::now() - t > cfg.account_wait);
    // Claim: appended at the revision just read. Losing means another worker has it.
    let attempt_id = Uuid::new_v4();
    match app
        .execute::<Post>(&stream, &PostCommand::StartAttempt { attempt_id, worker }, meta(&post))
        .await
    {
        Ok(_) => {}
        Err(AppError::Rejected(_)) => return,
        Err(AppError::Store(crate::store::StoreError::WrongExpectedVersion { .. })) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim the post");
            return;
        }
    }
    if account.health != Health::Active {
        let why = account
            .health_message
            .clone()
            .unwrap_or_else(|| "the account needs reconnecting".into());
        let cmd = if overdue {
            failure(
                cfg,
                attempt_id,
                FailureClass::Auth,
                None,
                format!("account needs reconnection: {why}"),
                None,
                false,
            )
        } else {
            failure(
                cfg,
                attempt_id,
                FailureClass::Auth,
                None,
                format!("waiting for the account to be reconnected: {why}"),
                None,
                true,
            )
        };
        record(app, post_id, &post, cmd).await;
        return;
    }
    let Some(platform) = post.platform else { return };
    let Some(provider) = app.registry.get(platform) else {
        let cmd = failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            None,
            format!("{} is not configured on this hub", platform.display_name()),
            Some(Utc::now() + chrono::Duration::minutes(5)),
            true,
        );
        record(app, post_id, &post, cmd).await;
        return;
    };
    let token = match refresh::access_token(app, &post.account_id, cfg.refresh_margin).await {
        Ok(t) => t,
        Err(e) => {
            record(app, post_id, &post, token_failure(cfg, attempt_id, &e, overdue)).await;
            return;
        }
    };
    let profile = account.profile.clone();
    let empty = serde_json::Value::Null;
    let req = PublishRequest {
        text: &post.text,
        title: post.title.as_deref(),
        media_urls: &post.media_urls,
        options: &post.options,
        external_id: profile.as_ref().map_or("", |p| p.external_id.as_str()),
        username: profile.as_ref().and_then(|p| p.username.as_deref()),
        metadata: profile.as_ref().map_or(&empty, |p| &p.metadata),
    };
    let ctx = provider.api(&app.http);
    let started = Utc::now();
    let mut result = attempt(cfg, &ctx, &token, &req).await;
    if let Err(PlatformError::Unauthorized { .. }) = &result {
        // One refresh and one retry: the token may have been invalidated since it was checked.
        result = match refresh::refresh(app, &post.account_id, Mode::Force).await {
            Ok(_) => match refresh::access_token(app, &post.account_id, cfg.refresh_margin).await {
                Ok(fresh) => attempt(cfg, &ctx, &fresh, &req).await,
                Err(e) => {
                    record(app, post_id, &post, token_failure(cfg, attempt_id, &e, true)).await;
                    return;
                }
            },
            Err(e @ (RefreshError::Transient(_) | RefreshError::Internal(_))) => {
                record(app, post_id, &post, token_failure(cfg, attempt_id, &e, false)).await;
                return;
            }
            Err(_) => result,
        };
    }
    let cmd = match result {
        Ok(p) => PostCommand::RecordPublished {
            attempt_id,
            platform_post_id: p.platform_post_id,
            url: p.url,
            reconciled: false,
        },
        Err(e @ PlatformError::Unauthorized { .. }) => {
            let message = e.to_string();
            let _ = refresh::mark_needs_reauth(app, &post.account_id, &message).await;
            failure(
                cfg,
                attempt_id,
                FailureClass::Auth,
                status_of(&e),
                format!("reconnect the account: {message}"),
                None,
                false,
            )
        }
        Err(PlatformError::RateLimited {
            retry_after_s, message, ..
        }) => failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            Some(429),
            message,
            retry_after_s.map(|s| Utc::now() + chrono::Duration::seconds(s as i64)),
            false,
        ),
        Err(e) if never_sent(&e) => failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            None,
            e.to_string(),
            None,
            false,
        ),
        Err(e) if e.is_transient() && status_of(&e).is_some() => failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            status_of(&e),
            e.to_string(),
            None,
            false,
        ),
        Err(e @ PlatformError::Transport { .. }) => {
            // The request may have reached the platform: do not retry blindly. Give it time to
            // finish what it may be doing, then look.
            if platform_publish::can_reconcile(platform) {
                tokio::time::sleep(cfg.reconcile_delay).await;
            }
            unknown_outcome(
                app,
                cfg,
                platform,
                &ctx,
                &token,
                &req,
                attempt_id,
                started,
                &e.to_string(),
            )
            .await
        }
        Err(e) => failure(
            cfg,
            attempt_id,
            FailureClass::Permanent,
            status_of(&e),
            e.to_string(),
            None,
            false,
        ),
    };
    record(app, post_id, &post, cmd).await;
}

async fn attempt(
    cfg: &EngineConfig,
    ctx: &crate::platforms::ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
) -> Result<Published, PlatformError> {
    match tokio::time::timeout(cfg.publish_timeout, platform_publish::publish(ctx, token, req)).await {
        Ok(r) => r,
        Err(_) => Err(PlatformError::Transport {
            platform: ctx.platform,
            message: format!("no answer within {}s", cfg.publish_timeout.as_secs()),
        }),
    }
}

fn token_failure(cfg: &EngineConfig, attempt_id: Uuid, e: &RefreshError, overdue: bool) -> PostCommand {
    match e {
        RefreshError::Transient(m) | RefreshError::Internal(m) => failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            None,
            format!("token refresh failed: {m}"),
            None,
            false,
        ),
        RefreshError::NotFound => failure(
            cfg,
            attempt_id,
            FailureClass::Permanent,
            None,
            "the account was disconnected".into(),
            None,
            false,
        ),
        other => failure(
            cfg,
            attempt_id,
            FailureClass::Auth,
            None,
            if overdue {
                format!("account needs reconnection: {other}")
            } else {
                format!("waiting for the account to be reconnected: {other}")
            },
            None,
            !overdue,
        ),
    }
}

/// The request went out and no answer came back. Look on the platform when it allows it.
#[allow(clippy::too_many_arguments)] // the whole publish context
async fn unknown_outcome(
    app: &App,
    cfg: &EngineConfig,
    platform: Platform,
    ctx: &crate::platforms::ApiCtx<'_>,
    token: &SecretString,
    req: &PublishRequest<'_>,
    attempt_id: Uuid,
    started: DateTime<Utc>,
    why: &str,
) -> PostCommand {
    let _ = app;
    if !platform_publish::can_reconcile(platform) {
        return PostCommand::MarkOutcomeUnknown {
            attempt_id,
            message: unknown_message(platform, started, why),
        };
    }
    match platform_publish::reconcile(ctx, token, req, started - chrono::Duration::seconds(5)).await {
        Ok(Some(found)) => PostCommand::RecordPublished {
            attempt_id,
            platform_post_id: found.platform_post_id,
            url: found.url,
            reconciled: true,
        },
        Ok(None) => failure(
            cfg,
            attempt_id,
            FailureClass::Transient,
            None,
            format!(
                "{why}; {} shows no such post, so it is safe to try again",
                platform.display_name()
            ),
            None,
            false,
        ),
        Err(e) => PostCommand::MarkOutcomeUnknown {
            attempt_id,
            message: format!(
                "{} (and looking for it failed: {e})",
                unknown_message(platform, started, why)
            ),
        },
    }
}

fn unknown_message(platform: Platform, started: DateTime<Utc>, why: &str) -> String {
    format!(
        "nikara sent this post to {p} at {t} but never got {p}'s answer ({why}), and {p} offers no way to look it up. \
         Check the account on {p}: if the post is there, cancel this one; if not, retry it (POST /api/posts/{{id}}/retry).",
        p = platform.display_name(),
        t = started.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

/// Resolves a claim that never recorded an outcome (the worker crashed or hung).
#[tracing::instrument(skip_all, fields(post = %post_id))]
pub async fn recover(app: &App, cfg: &EngineConfig, post_id: &str) {
    let stream = format!("post-{post_id}");
    let Ok((post, _)) = app.load::<Post>(&stream).await else {
        return;
    };
    let Some((attempt_id, started)) = post.current_attempt else {
        return;
    };
    if post.status != PostStatus::Publishing
        || Utc::now() - started < chrono::Duration::from_std(cfg.claim_timeout).unwrap_or_default()
    {
        return;
    }
    let Some(platform) = post.platform else { return };
    tracing::warn!(%platform, "recovering an attempt that never recorded its outcome");
    let why = "the attempt was interrupted before its outcome was recorded";
    let cmd = match (app.registry.get(platform), platform_publish::can_reconcile(platform)) {
        (Some(provider), true) => {
            let account = app
                .load::<Account>(&format!("account-{}", post.account_id))
                .await
                .ok()
                .map(|(a, _)| a);
            let profile = account.and_then(|a| a.profile);
            match refresh::access_token(app, &post.account_id, cfg.refresh_margin).await {
                Ok(token) => {
                    let empty = serde_json::Value::Null;
                    let req = PublishRequest {
                        text: &post.text,
                        title: post.title.as_deref(),
                        media_urls: &post.media_urls,
                        options: &post.options,
                        external_id: profile.as_ref().map_or("", |p| p.external_id.as_str()),
                        username: profile.as_ref().and_then(|p| p.username.as_deref()),
                        metadata: profile.as_ref().map_or(&empty, |p| &p.metadata),
                    };
                    let ctx = provider.api(&app.http);
                    unknown_outcome(app, cfg, platform, &ctx, &token, &req, attempt_id, started, why).await
                }
                Err(e) => PostCommand::MarkOutcomeUnknown {
                    attempt_id,
                    message: format!(
                        "{} (and nikara could not look, the token is unusable: {e})",
                        unknown_message(platform, started, why)
                    ),
                },
            }
        }
        _ => PostCommand::MarkOutcomeUnknown {
            attempt_id,
            message: unknown_message(platform, started, why),
        },
    };
    record(app, post_id, &post, cmd).await;
}
