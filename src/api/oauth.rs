//! Connecting accounts: which platforms are offered, the consent redirect, and the callback.

use std::sync::Arc;

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use secrecy::SecretString;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::security::Bearer;
use crate::app::App;
use crate::domain::account::{Account, AccountCommand, AccountProfile, StoredTokens};
use crate::domain::ids::{AccountId, UserId};
use crate::domain::platform::Platform;
use crate::domain::user::{User, UserCommand};
use crate::oauth::state::pkce_challenge;
use crate::oauth::{Provider, token};
use crate::platforms::{self, PlatformError};
use crate::store::{ExpectedVersion, Metadata, NewEvent, StoreError};

#[derive(Tags)]
enum Tag {
    /// Connecting social accounts.
    Oauth,
}

#[derive(Debug, Object)]
pub struct PlatformInfo {
    /// `facebook`, `instagram`, `linkedin`, `x`, `tiktok`, `reddit` or `youtube`.
    pub platform: String,
    /// Human name.
    pub name: String,
    /// Scopes nikara asks for.
    pub scopes: Vec<String>,
}

#[derive(Debug, Object)]
pub struct PlatformList {
    pub items: Vec<PlatformInfo>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct StartResponse {
    /// Send the user's browser here; the platform redirects back to `/api/oauth/callback`.
    pub authorize_url: String,
}

#[derive(Debug, ApiResponse)]
pub enum CallbackResponse {
    /// Back to the dashboard: `{PUBLIC_URL}/?connected={platform}` or `{PUBLIC_URL}/?error={code}`.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

#[derive(Debug)]
pub struct OauthApi;

fn base_url(app: &App) -> String {
    app.config.public_url.as_str().trim_end_matches('/').to_string()
}

/// The one redirect URI registered with every platform.
pub fn redirect_uri(app: &App) -> String {
    format!("{}/api/oauth/callback", base_url(app))
}

fn provider<'a>(app: &'a App, platform: &str) -> Result<(Platform, &'a Provider), ApiError> {
    let p: Platform = platform
        .parse()
        .map_err(|e: crate::domain::platform::UnknownPlatform| {
            ApiError::NotFound(ErrorBody::new("unknown_platform", e.to_string()))
        })?;
    let provider = app.registry.get(p).ok_or_else(|| {
        ApiError::NotFound(ErrorBody::new(
            "platform_not_configured",
            format!(
                "{} is not configured: set {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET",
                p.display_name(),
                prefix = p.env_prefix()
            ),
        ))
    })?;
    Ok((p, provider))
}

/// Only `[a-z_]` codes travel in the redirect; anything else becomes `oauth_error`.
fn safe_code(code: &str) -> String {
    if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        code.to_string()
    } else {
        "oauth_error".to_string()
    }
}

#[OpenApi]
impl OauthApi {
    /// Platforms this hub is configured for, with the scopes it asks.
    #[oai(
        path = "/api/platforms",
        method = "get",
        tag = "Tag::Oauth",
        operation_id = "list_platforms"
    )]
    async fn platforms(&self, app: Data<&Arc<App>>, _auth: Bearer) -> Json<PlatformList> {
        Json(PlatformList {
            items: app
                .registry
                .configured()
                .map(|p| PlatformInfo {
                    platform: p.platform.as_str().to_string(),
                    name: p.platform.display_name().to_string(),
                    scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            next_cursor: None,
        })
    }

    /// Starts a connection: answers the platform's consent URL with a signed, expiring, single-use
    /// state (and a PKCE challenge where the platform uses one). Takes an empty body or `{}`.
    #[oai(
        path = "/api/oauth/:platform/start",
        method = "post",
        tag = "Tag::Oauth",
        operation_id = "start_oauth"
    )]
    async fn start(
        &self,
        app: Data<&Arc<App>>,
        auth: Bearer,
        platform: Path<String>,
    ) -> ApiResult<Json<StartResponse>> {
        let (p, provider) = provider(&app, &platform.0)?;
        let (state, claims) = app.state_key.issue(auth.0.user_id.as_str(), p, Utc::now());
        let challenge = provider
            .pkce
            .then(|| pkce_challenge(&app.state_key.pkce_verifier(&claims.nonce)));
        let url = provider.authorize_url(&redirect_uri(&app), &state, challenge.as_deref());
        Ok(Json(StartResponse {
            authorize_url: url.to_string(),
        }))
    }

    /// The platforms redirect here. A bad, expired or replayed state answers 400 (it cannot be
    /// trusted to redirect); any other failure redirects to `/?error={code}`, with the reason in the
    /// user's activity log. No bearer token: the state identifies the user.
    #[oai(
        path = "/api/oauth/callback",
        method = "get",
        tag = "Tag::Oauth",
        operation_id = "oauth_callback"
    )]
    async fn callback(
        &self,
        app: Data<&Arc<App>>,
        code: Query<Option<String>>,
        state: Query<Option<String>>,
        error: Query<Option<String>>,
        error_description: Query<Option<String>>,
    ) -> ApiResult<CallbackResponse> {
        let state = state.0.filter(|s| !s.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_state",
                "the state parameter is missing; start the connection again",
            )
        })?;
        let claims = app
            .state_key
            .verify(&state, Utc::now())
            .map_err(|e| ApiError::bad_request("invalid_state", e.to_string()))?;
        let user = UserId::parse(&claims.user_id).map_err(|e| ApiError::bad_request("invalid_state", e.to_string()))?;
        consume_state(&app, &claims.nonce, &user, claims.platform).await?;
        let platform = claims.platform;
        let fail = |code: String, message: String| {
            let app = app.0.clone();
            let user = user.clone();
            async move {
                tracing::warn!(%platform, code = %code, message = %message, "account connection failed");
                let cmd = UserCommand::RecordConnectionFailure {
                    platform,
                    code: code.clone(),
                    message,
                };
                if let Err(e) = app.execute::<User>(&user.stream(), &cmd, user_metadata(&user)).await {
                    tracing::error!(error = %e, "could not record the connection failure");
                }
                Ok(CallbackResponse::Redirect(format!("{}/?error={code}", base_url(&app))))
            }
        };
        if let Some(err) = error.0 {
            let message = error_description.0.unwrap_or_else(|| err.clone());
            return fail(safe_code(&err), message).await;
        }
        let Some(provider) = app.registry.get(platform) else {
            return fail(
                "platform_not_configured".into(),
                format!("{} is no longer configured", platform.display_name()),
            )
            .await;
        };
        let Some(code) = code.0.filter(|c| !c.is_empty()) else {
            return fail("missing_code".into(), "the platform sent no authorization code".into()).await;
        };
        match connect(&app, provider, &user, &claims.nonce, &code).await {
            Ok(()) => Ok(CallbackResponse::Redirect(format!(
                "{}/?connected={}",
                base_url(&app),
                platform.as_str()
            ))),
            Err(ConnectError::Platform(e)) => fail(e.code().to_string(), e.to_string()).await,
            Err(ConnectError::NoAccounts(why)) => fail("no_accounts".into(), why).await,
            Err(ConnectError::Internal(e)) => {
                tracing::error!(error = %e, "account connection failed internally");
                fail("internal".into(), "nikara could not store the connection".into()).await
            }
        }
    }
}

fn user_metadata(user: &UserId) -> Metadata {
    Metadata {
        user_id: Some(user.as_str().to_string()),
        ..Metadata::now()
    }
}

/// Single use: the first callback with a state creates `oauth-state-{nonce}`; any later one finds
/// the stream and is refused. Works across hub instances because the store arbitrates.
async fn consume_state(app: &App, nonce: &str, user: &UserId, platform: Platform) -> Result<(), ApiError> {
    let event = NewEvent {
        id: uuid::Uuid::now_v7(),
        event_type: "OAuthStateUsed".into(),
        data: serde_json::to_vec(&serde_json::json!({"platform": platform})).unwrap_or_default(),
        metadata: user_metadata(user),
    };
    match app
        .store
        .append(&format!("oauth-state-{nonce}"), ExpectedVersion::NoStream, vec![event])
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::WrongExpectedVersion { .. }) => Err(ApiError::bad_request(
            "state_replayed",
            "this state was already used; start the connection again",
        )),
        Err(e) => Err(crate::app::AppError::from(e).into()),
    }
}

enum ConnectError {
    Platform(PlatformError),
    NoAccounts(String),
    Internal(String),
}

impl From<PlatformError> for ConnectError {
    fn from(e: PlatformError) -> Self {
        ConnectError::Platform(e)
    }
}

/// Exchange, upgrade (Meta), fetch profiles, then store each account. Nothing is stored unless
/// every platform call succeeded.
async fn connect(app: &App, p: &Provider, user: &UserId, nonce: &str, code: &str) -> Result<(), ConnectError> {
    let verifier = p.pkce.then(|| app.state_key.pkce_verifier(nonce));
    let mut grant = token::exchange_code(p, &app.http, code, &redirect_uri(app), verifier.as_ref()).await?;
    if p.platform.is_meta() {
        // Short-lived (1-2 h) → long-lived (~60 days) user token: the one Meta lets us renew.
        grant = token::meta_exchange(p, &app.http, &grant.access_token).await?;
    }
    let found = platforms::fetch_profiles(&p.api(&app.http), &grant.access_token).await?;
    if found.accounts.is_empty() {
        let why = if found.skipped.is_empty() {
            format!("no {} account was found behind this login", p.platform.display_name())
        } else {
            found.skipped.join("; ")
        };
        return Err(ConnectError::NoAccounts(why));
    }
    if !found.skipped.is_empty() {
        tracing::info!(platform = %p.platform, notes = ?found.skipped, "accounts skipped during connection");
        let cmd = UserCommand::RecordSkipped {
            platform: p.platform,
            notes: found.skipped.clone(),
        };
        app.execute::<User>(&user.stream(), &cmd, user_metadata(user))
            .await
            .map_err(|e| ConnectError::Internal(e.to_string()))?;
    }
    let mut last = None;
    for profile in found.accounts {
        let id = AccountId::derive(user, p.platform, &profile.external_id);
        let tokens = seal(app, &id, &grant, profile.access_token.as_ref()).map_err(ConnectError::Internal)?;
        let cmd = AccountCommand::Connect {
            user_id: user.clone(),
            platform: p.platform,
            profile: AccountProfile {
                external_id: profile.external_id,
                display_name: profile.display_name,
                username: profile.username,
                avatar_url: profile.avatar_url,
                metadata: profile.metadata,
            },
            tokens,
        };
        let done = app
            .execute::<Account>(&id.stream(), &cmd, user_metadata(user))
            .await
            .map_err(|e| ConnectError::Internal(e.to_string()))?;
        last = done.position.or(last);
    }
    app.settle(last).await;
    Ok(())
}

/// Encrypts a grant for an account. For Meta the account publishes with its Page token (which
/// does not expire), and the long-lived *user* token is kept in the refresh slot: it is what
/// `fb_exchange_token` renews, and what new Page tokens are derived from.
fn seal(
    app: &App,
    id: &AccountId,
    grant: &token::Grant,
    page_token: Option<&SecretString>,
) -> Result<StoredTokens, String> {
    use secrecy::ExposeSecret;
    let enc = |plain: &SecretString, kind: &str| {
        app.cipher
            .encrypt(plain.expose_secret().as_bytes(), format!("{id}/{kind}").as_bytes())
            .map_err(|e| e.to_string())
    };
    Ok(match page_token {
        Some(page) => StoredTokens {
            access_token: enc(page, "access")?,
            refresh_token: Some(enc(&grant.access_token, "refresh")?),
            expires_at: None,
            refresh_expires_at: grant.expires_at,
            scopes: grant.scopes.clone(),
        },
        None => StoredTokens {
            access_token: enc(&grant.access_token, "access")?,
            refresh_token: grant.refresh_token.as_ref().map(|r| enc(r, "refresh")).transpose()?,
            expires_at: grant.expires_at,
            refresh_expires_at: grant.refresh_expires_at,
            scopes: grant.scopes.clone(),
        },
    })
}
