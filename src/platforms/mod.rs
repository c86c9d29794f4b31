//! Calls to the platforms' APIs: one file per platform, shared error classification here.
//!
//! Platforms disagree on how they fail: Meta answers 400 with `error.code == 190` for a dead token,
//! TikTok answers HTTP 200 with `error.code != "ok"`, Reddit puts errors in `json.errors`. Every call
//! goes through [`http`], which turns each platform's shape into one [`PlatformError`] that keeps the
//! platform's own message.

use secrecy::SecretString;
use serde_json::Value;

use crate::domain::platform::Platform;

pub mod facebook;
pub mod http;
pub mod instagram;
pub mod linkedin;
pub mod metrics;
pub mod publish;
pub mod reddit;
pub mod tiktok;
pub mod x;
pub mod youtube;

/// What a platform call needs: the shared HTTP client, the API origin and the identity to send.
#[derive(Debug, Clone, Copy)]
pub struct ApiCtx<'a> {
    pub http: &'a reqwest::Client,
    pub platform: Platform,
    /// API origin without a trailing slash (Meta: with the Graph version, e.g. `…/v21.0`).
    pub api_url: &'a str,
    /// User-Agent for every call (Reddit requires `<platform>:<app id>:<version> (by /u/<user>)`).
    pub user_agent: &'a str,
}

/// One account found behind a grant.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The platform's id of the account (page id, IG user id, LinkedIn `sub`, …).
    pub external_id: String,
    pub display_name: Option<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    /// The mapped profile as JSON (stable field names per platform, documented in README).
    pub metadata: Value,
    /// The token to store for this account when it is not the user's grant (Facebook and Instagram
    /// publish with the Page token).
    pub access_token: Option<SecretString>,
}

/// Accounts found behind one grant, and what was passed over (said to the user, not an error).
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub accounts: Vec<Profile>,
    pub skipped: Vec<String>,
}

/// A platform call that did not give what we asked, classified. Messages are the platform's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The token is dead (revoked, expired, password changed): the user must reconnect.
    #[error("{platform} rejected the token: {message}")]
    Unauthorized {
        platform: Platform,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Rate limited; `retry_after_s` when the platform said.
    #[error("{platform} rate limit: {message}")]
    RateLimited {
        platform: Platform,
        retry_after_s: Option<u64>,
        message: String,
    },
    /// Any other refusal, with the platform's status and message.
    #[error("{platform} answered {status}: {message}")]
    Api {
        platform: Platform,
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// Network failure or timeout: nothing (usable) came back.
    #[error("{platform} is unreachable: {message}")]
    Transport { platform: Platform, message: String },
    /// The platform answered, but not in the shape it documents.
    #[error("{platform} answered unexpectedly: {message}")]
    Invalid { platform: Platform, message: String },
}

impl PlatformError {
    /// Worth retrying later: network errors, timeouts, 5xx and rate limits.
    pub fn is_transient(&self) -> bool {
        match self {
            PlatformError::Transport { .. } | PlatformError::RateLimited { .. } => true,
            PlatformError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Stable snake_case code for redirects (`/?error=`), API errors and events.
    pub fn code(&self) -> &'static str {
        match self {
            PlatformError::Unauthorized { .. } => "token_rejected",
            PlatformError::RateLimited { .. } => "rate_limited",
            PlatformError::Api { status, .. } if *status >= 500 => "platform_unavailable",
            PlatformError::Api { .. } => "platform_error",
            PlatformError::Transport { .. } => "platform_unavailable",
            PlatformError::Invalid { .. } => "platform_invalid_response",
        }
    }

    pub fn invalid(platform: Platform, message: impl Into<String>) -> Self {
        PlatformError::Invalid {
            platform,
            message: message.into(),
        }
    }
}

/// Fetches the accounts a fresh grant gives access to, per platform.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch_profiles(ctx: &ApiCtx<'_>, token: &SecretString) -> Result<Profiles, PlatformError> {
    match ctx.platform {
        Platform::Facebook => facebook::fetch_profiles(ctx, token).await,
        Platform::Instagram => instagram::fetch_profiles(ctx, token).await,
        Platform::Linkedin => linkedin::fetch_profiles(ctx, token).await,
        Platform::X => x::fetch_profiles(ctx, token).await,
        Platform::Tiktok => tiktok::fetch_profiles(ctx, token).await,
        Platform::Reddit => reddit::fetch_profiles(ctx, token).await,
        Platform::Youtube => youtube::fetch_profiles(ctx, token).await,
    }
}

/// String field at a JSON pointer, when present and non-empty.
pub fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}
