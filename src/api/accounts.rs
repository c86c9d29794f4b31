//! Connected accounts: list, read, disconnect.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use secrecy::SecretString;

use super::error::{ApiError, ApiResult};
use super::security::Bearer;
use crate::app::{App, AppError};
use crate::domain::account::{Account as AccountAggregate, AccountCommand, AccountError};
use crate::domain::platform::Platform;
use crate::projections::accounts::{self, AccountRow};

#[derive(Tags)]
enum Tag {
    /// Connected social accounts.
    Accounts,
}

#[derive(Debug, Object)]
pub struct Account {
    /// `acc_…`
    pub id: String,
    pub platform: String,
    /// The platform's id of the account (page id, user id, channel id, …).
    pub external_id: String,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// `active`, `expiring` (expires within 7 days and cannot renew itself), `needs_reauth` or `revoked`.
    pub status: String,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// When the renewal credential (refresh token; Meta: the long-lived user token) expires, if known.
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When the token was last refreshed (or re-exchanged).
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// The platform's message from the last failed refresh or call, when there is one.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub connected_at: DateTime<Utc>,
    /// The mapped profile (fields per platform; see README, "Connecting platforms").
    pub metadata: serde_json::Value,
}

impl Account {
    pub fn from_row(r: AccountRow, now: DateTime<Utc>) -> Account {
        Account {
            status: r.status_at(now).to_string(),
            id: r.id,
            platform: r.platform,
            external_id: r.external_id,
            display_name: r.display_name,
            username: r.username,
            avatar_url: r.avatar_url,
            token_expires_at: r.token_expires_at,
            refresh_expires_at: r.refresh_expires_at,
            last_synced_at: r.last_synced_at,
            last_refreshed_at: r.last_refreshed_at,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            connected_at: r.connected_at,
            metadata: r.metadata,
        }
    }
}

#[derive(Debug, Object)]
pub struct AccountList {
    pub items: Vec<Account>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Disconnected.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum RefreshResponse {
    /// Refreshed; the account as it is now.
    #[oai(status = 200)]
    Ok(Json<Account>),
    /// The platform failed for a passing reason; the account keeps its status. Retry later.
    #[oai(status = 502)]
    BadGateway(Json<super::error::ErrorBody>),
}

#[derive(Debug)]
pub struct AccountsApi;

/// The caller's account, or 404 (another user's account is indistinguishable from a missing one).
pub async fn owned(app: &App, user: &str, id: &str) -> ApiResult<AccountRow> {
    let (user, id) = (user.to_string(), id.to_string());
    app.models
        .read(move |c| accounts::get(c, &user, &id))
        .await
        .map_err(|e| ApiError::from(AppError::from(e)))?
        .ok_or_else(|| ApiError::not_found("account"))
}

#[OpenApi]
impl AccountsApi {
    /// The caller's connected accounts.
    #[oai(
        path = "/api/accounts",
        method = "get",
        tag = "Tag::Accounts",
        operation_id = "list_accounts"
    )]
    async fn list(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        /// 1-200, default 100.
        limit: Query<Option<u32>>,
        /// From a previous page's `next_cursor`.
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<AccountList>> {
        let limit = limit.0.unwrap_or(100);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::unprocessable(
                "invalid_limit",
                "limit must be between 1 and 200",
            ));
        }
        let user = auth.0.user_id.as_str().to_string();
        let take = limit as usize;
        let after = cursor.0.filter(|c| !c.is_empty());
        let rows = app
            .models
            .read(move |c| accounts::list(c, &user, take + 1, after.as_deref()))
            .await
            .map_err(|e| ApiError::from(AppError::from(e)))?;
        let more = rows.len() > take;
        let now = Utc::now();
        let items: Vec<Account> = rows.into_iter().take(take).map(|r| Account::from_row(r, now)).collect();
        let next_cursor = if more { items.last().map(|a| a.id.clone()) } else { None };
        Ok(Json(AccountList { items, next_cursor }))
    }

    /// One connected account.
    #[oai(
        path = "/api/accounts/:id",
        method = "get",
        tag = "Tag::Accounts",
        operation_id = "get_account"
    )]
    async fn get(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<Json<Account>> {
        let row = owned(&app, auth.0.user_id.as_str(), &id.0).await?;
        Ok(Json(Account::from_row(row, Utc::now())))
    }

    /// Refreshes the account's token now (or re-exchanges it, for Meta) and answers the account.
    /// 422 `token_revoked` when the platform refused (the account is now `revoked` or
    /// `needs_reauth`), 422 `cannot_refresh` when the platform gave no way to renew the token,
    /// 502 `platform_unavailable` on a passing failure (the account keeps its status).
    #[oai(
        path = "/api/accounts/:id/refresh",
        method = "post",
        tag = "Tag::Accounts",
        operation_id = "refresh_account"
    )]
    async fn refresh(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<RefreshResponse> {
        let row = owned(&app, auth.0.user_id.as_str(), &id.0).await?;
        use crate::lifecycle::refresh::{self, Mode, RefreshError};
        match refresh::refresh(&app, &row.id, Mode::Force).await {
            Ok(_) => {}
            Err(RefreshError::Revoked(m) | RefreshError::NeedsReauth(m)) => {
                return Err(ApiError::unprocessable("token_revoked", m));
            }
            Err(RefreshError::CannotRefresh(m)) => return Err(ApiError::unprocessable("cannot_refresh", m)),
            Err(RefreshError::Transient(m)) => {
                return Ok(RefreshResponse::BadGateway(super::error::ErrorBody::new(
                    "platform_unavailable",
                    m,
                )));
            }
            Err(RefreshError::NotFound) => return Err(ApiError::not_found("account")),
            Err(RefreshError::NotConfigured(p)) => {
                return Err(ApiError::unprocessable(
                    "platform_not_configured",
                    format!("{} is not configured on this hub", p.display_name()),
                ));
            }
            Err(RefreshError::Internal(m)) => {
                tracing::error!(account = %row.id, error = %m, "manual refresh failed");
                return Err(ApiError::internal());
            }
        }
        let row = owned(&app, auth.0.user_id.as_str(), &id.0).await?;
        Ok(RefreshResponse::Ok(Json(Account::from_row(row, Utc::now()))))
    }

    /// Disconnects the account: revokes its token at the platform where the platform has an
    /// endpoint for it (Google, Reddit), and cancels its scheduled posts (`GET /api/posts?
    /// account_id={id}&status=scheduled` says how many beforehand). The account disappears
    /// from lists.
    #[oai(
        path = "/api/accounts/:id",
        method = "delete",
        tag = "Tag::Accounts",
        operation_id = "disconnect_account"
    )]
    async fn disconnect(&self, app: Data<&Arc<App>>, auth: Bearer, id: Path<String>) -> ApiResult<Deleted> {
        let row = owned(&app, auth.0.user_id.as_str(), &id.0).await?;
        let stream = format!("account-{}", row.id);
        revoke_at_platform(&app, &row, &stream).await;
        let cmd = AccountCommand::Disconnect {
            reason: "disconnected by the user".into(),
        };
        let done = app
            .execute::<AccountAggregate>(&stream, &cmd, App::metadata_for(&auth.0, None))
            .await
            .map_err(|e| match e {
                AppError::Rejected(r) if r.downcast_ref::<AccountError>() == Some(&AccountError::NotFound) => {
                    ApiError::not_found("account")
                }
                other => other.into(),
            })?;
        let mut last = done.position;
        // Its pending posts are cancelled now, so the answer already shows them cancelled.
        let account_id = row.id.clone();
        let pending = app
            .models
            .read(move |c| crate::projections::posts::scheduled_for_account(c, &account_id))
            .await
            .map_err(|e| ApiError::from(AppError::from(e)))?;
        for post_id in pending {
            let cmd = crate::domain::post::PostCommand::Cancel {
                reason: "the account was disconnected".into(),
            };
            match app
                .execute::<crate::domain::post::Post>(
                    &format!("post-{post_id}"),
                    &cmd,
                    App::metadata_for(&auth.0, None),
                )
                .await
            {
                Ok(d) => last = d.position.or(last),
                // Started publishing meanwhile: it finishes; nothing else to cancel.
                Err(AppError::Rejected(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        app.settle(last).await;
        Ok(Deleted::NoContent)
    }
}

/// Best effort: a platform that is down must not keep the user from disconnecting. The outcome is
/// logged; the tokens become unusable to us either way once the account is disconnected.
async fn revoke_at_platform(app: &App, row: &AccountRow, stream: &str) {
    let Ok(platform) = row.platform.parse::<Platform>() else {
        return;
    };
    let Some(provider) = app.registry.get(platform) else {
        return;
    };
    if provider.revoke_url.is_none() {
        return;
    }
    let Ok((account, _)) = app.load::<AccountAggregate>(stream).await else {
        return;
    };
    let Some(tokens) = account.tokens else { return };
    // Revoking the refresh token ends the whole grant (Google, Reddit); else the access token.
    let (cipher, kind) = match &tokens.refresh_token {
        Some(r) => (r.as_str(), "refresh_token"),
        None => (tokens.access_token.as_str(), "access_token"),
    };
    let aad = format!(
        "{}/{}",
        row.id,
        if kind == "refresh_token" { "refresh" } else { "access" }
    );
    let plain = match app.cipher.decrypt(cipher, aad.as_bytes()) {
        Ok(p) => SecretString::from(String::from_utf8_lossy(&p).into_owned()),
        Err(e) => {
            tracing::warn!(account = %row.id, error = %e, "cannot decrypt the token to revoke it");
            return;
        }
    };
    match crate::oauth::token::revoke(provider, &app.http, &plain, kind).await {
        Ok(()) => tracing::info!(account = %row.id, %platform, "token revoked at the platform"),
        Err(e) => tracing::warn!(account = %row.id, %platform, error = %e, "revocation at the platform failed"),
    }
}
