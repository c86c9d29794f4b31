//! OAuth 2.0 for the seven platforms: which app, which endpoints, which quirks.
//!
//! One code path with per-platform knobs (client-auth style, PKCE, scope separator, extra
//! parameters, Meta's GET token endpoint, TikTok's `client_key`) rather than the `oauth2` crate
//! plus exceptions: four of the seven platforms bend the spec somewhere, and the knobs are data.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{Config, ConfigError};
use crate::domain::platform::Platform;

pub mod state;
pub mod token;

/// How the app authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (X, Reddit).
    Basic,
    /// `client_id` and `client_secret` form fields (LinkedIn, Google).
    Body,
    /// `client_key` and `client_secret` form fields (TikTok).
    TiktokBody,
    /// `GET` with `client_id` and `client_secret` in the query (Meta).
    MetaQuery,
}

/// One configured platform app.
#[derive(Clone)]
pub struct Provider {
    pub platform: Platform,
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth_url: Url,
    pub token_url: Url,
    /// API origin without trailing slash.
    pub api_url: String,
    pub scopes: &'static [&'static str],
    pub scope_separator: &'static str,
    pub client_auth: ClientAuth,
    pub pkce: bool,
    pub extra_auth_params: &'static [(&'static str, &'static str)],
    /// Where tokens are revoked on disconnect, for platforms that have such an endpoint.
    pub revoke_url: Option<Url>,
    /// User-Agent for every call to this platform.
    pub user_agent: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("platform", &self.platform)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("auth_url", &self.auth_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("api_url", &self.api_url)
            .finish()
    }
}

struct Defaults {
    auth: &'static str,
    token: &'static str,
    api: &'static str,
    scopes: &'static [&'static str],
    sep: &'static str,
    auth_style: ClientAuth,
    pkce: bool,
    extra: &'static [(&'static str, &'static str)],
}

const GRAPH: &str = "https://graph.facebook.com/v21.0";

fn defaults(p: Platform) -> Defaults {
    match p {
        Platform::Facebook => Defaults {
            auth: "https://www.facebook.com/v21.0/dialog/oauth",
            token: "https://graph.facebook.com/v21.0/oauth/access_token",
            api: GRAPH,
            scopes: &[
                "pages_show_list",
                "pages_manage_posts",
                "pages_read_engagement",
                "pages_manage_engagement",
                "pages_read_user_engagement",
                "pages_manage_metadata",
                "pages_read_insights",
            ],
            sep: ",",
            auth_style: ClientAuth::MetaQuery,
            pkce: false,
            extra: &[],
        },
        Platform::Instagram => Defaults {
            auth: "https://www.facebook.com/v21.0/dialog/oauth",
            token: "https://graph.facebook.com/v21.0/oauth/access_token",
            api: GRAPH,
            scopes: &[
                "instagram_basic",
                "pages_show_list",
                "instagram_content_publish",
                "pages_read_engagement",
                "instagram_manage_comments",
                "instagram_manage_insights",
            ],
            sep: ",",
            auth_style: ClientAuth::MetaQuery,
            pkce: false,
            extra: &[],
        },
        Platform::Linkedin => Defaults {
            auth: "https://www.linkedin.com/oauth/v2/authorization",
            token: "https://www.linkedin.com/oauth/v2/accessToken",
            api: "https://api.linkedin.com",
            scopes: &["openid", "profile", "email", "w_member_social"],
            sep: " ",
            auth_style: ClientAuth::Body,
            pkce: false,
            extra: &[],
        },
        Platform::X => Defaults {
            auth: "https://x.com/i/oauth2/authorize",
            token: "https://api.x.com/2/oauth2/token",
            api: "https://api.x.com",
            scopes: &["tweet.read", "tweet.write", "users.read", "offline.access"],
            sep: " ",
            auth_style: ClientAuth::Basic,
            pkce: true,
            extra: &[],
        },
        Platform::Tiktok => Defaults {
            auth: "https://www.tiktok.com/v2/auth/authorize/",
            token: "https://open.tiktokapis.com/v2/oauth/token/",
            api: "https://open.tiktokapis.com",
            scopes: &["user.info.basic", "video.publish", "video.list"],
            sep: ",",
            auth_style: ClientAuth::TiktokBody,
            pkce: false,
            extra: &[],
        },
        Platform::Reddit => Defaults {
            auth: "https://www.reddit.com/api/v1/authorize",
            token: "https://www.reddit.com/api/v1/access_token",
            api: "https://oauth.reddit.com",
            scopes: &["identity", "submit", "read"],
            sep: ",",
            auth_style: ClientAuth::Basic,
            pkce: false,
            extra: &[("duration", "permanent")],
        },
        Platform::Youtube => Defaults {
            auth: "https://accounts.google.com/o/oauth2/v2/auth",
            token: "https://oauth2.googleapis.com/token",
            api: "https://www.googleapis.com",
            scopes: &[
                "https://www.googleapis.com/auth/youtube.upload",
                "https://www.googleapis.com/auth/youtube.readonly",
            ],
            sep: " ",
            auth_style: ClientAuth::Body,
            pkce: true,
            extra: &[
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("include_granted_scopes", "true"),
            ],
        },
    }
}

/// The configured platforms. A platform without a client id and secret is absent.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: BTreeMap<Platform, Provider>,
}

fn setting(config: &Config, p: Platform, suffix: &str) -> Option<String> {
    let own = config.extra(&format!("{}_{suffix}", p.as_str())).map(str::to_string);
    // Instagram uses Facebook Login: Facebook's app and endpoints unless its own are set.
    own.or_else(|| {
        (p == Platform::Instagram)
            .then(|| config.extra(&format!("facebook_{suffix}")).map(str::to_string))
            .flatten()
    })
    .filter(|s| !s.is_empty())
}

fn url_setting(config: &Config, p: Platform, suffix: &str, default: &str) -> Result<Url, ConfigError> {
    let raw = setting(config, p, suffix).unwrap_or_else(|| default.to_string());
    let url = Url::parse(&raw).map_err(|e| ConfigError {
        var: format!("{}_{}", p.env_prefix(), suffix.to_ascii_uppercase()),
        message: format!("`{raw}` is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError {
            var: format!("{}_{}", p.env_prefix(), suffix.to_ascii_uppercase()),
            message: format!("`{raw}` must be an http(s) URL"),
        });
    }
    Ok(url)
}

impl Registry {
    /// Reads `NIKARA_{P}_CLIENT_ID`/`_CLIENT_SECRET` and the endpoint overrides. A platform with only
    /// one of id and secret is a configuration error, not silently absent.
    pub fn from_config(config: &Config) -> Result<Registry, ConfigError> {
        let mut providers = BTreeMap::new();
        for p in Platform::ALL {
            let id = setting(config, p, "client_id");
            let secret = setting(config, p, "client_secret");
            let (client_id, client_secret) = match (id, secret) {
                (None, None) => continue,
                (Some(id), Some(secret)) => (id, SecretString::from(secret)),
                (Some(_), None) => {
                    return Err(ConfigError {
                        var: format!("{}_CLIENT_SECRET", p.env_prefix()),
                        message: format!("is required because {}_CLIENT_ID is set", p.env_prefix()),
                    });
                }
                (None, Some(_)) => {
                    return Err(ConfigError {
                        var: format!("{}_CLIENT_ID", p.env_prefix()),
                        message: format!("is required because {}_CLIENT_SECRET is set", p.env_prefix()),
                    });
                }
            };
            let d = defaults(p);
            let auth_url = url_setting(config, p, "auth_url", d.auth)?;
            let token_url = url_setting(config, p, "token_url", d.token)?;
            let api_url = url_setting(config, p, "api_url", d.api)?
                .as_str()
                .trim_end_matches('/')
                .to_string();
            let revoke_url = match p {
                Platform::Youtube => {
                    let mut u = token_url.clone();
                    u.set_path("/revoke");
                    u.set_query(None);
                    Some(u)
                }
                Platform::Reddit => token_url.join("revoke_token").ok(),
                _ => None,
            };
            let user_agent = match p {
                Platform::Reddit => setting(config, p, "user_agent").unwrap_or_else(|| {
                    format!(
                        "web:{}:{} (by /u/{})",
                        client_id,
                        env!("CARGO_PKG_VERSION"),
                        setting(config, p, "username").unwrap_or_else(|| "nikara".into())
                    )
                }),
                _ => format!("nikara/{}", env!("CARGO_PKG_VERSION")),
            };
            providers.insert(
                p,
                Provider {
                    platform: p,
                    client_id,
                    client_secret,
                    auth_url,
                    token_url,
                    api_url,
                    scopes: d.scopes,
                    scope_separator: d.sep,
                    client_auth: d.auth_style,
                    pkce: d.pkce,
                    extra_auth_params: d.extra,
                    revoke_url,
                    user_agent,
                },
            );
        }
        Ok(Registry { providers })
    }

    pub fn get(&self, p: Platform) -> Option<&Provider> {
        self.providers.get(&p)
    }

    pub fn configured(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }
}

impl Provider {
    /// The consent URL the user's browser goes to.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: Option<&str>) -> Url {
        let mut url = self.auth_url.clone();
        {
            let mut q = url.query_pairs_mut();
            let id_param = if self.client_auth == ClientAuth::TiktokBody {
                "client_key"
            } else {
                "client_id"
            };
            q.append_pair(id_param, &self.client_id);
            q.append_pair("redirect_uri", redirect_uri);
            q.append_pair("response_type", "code");
            q.append_pair("scope", &self.scopes.join(self.scope_separator));
            q.append_pair("state", state);
            if let Some(challenge) = code_challenge {
                q.append_pair("code_challenge", challenge);
                q.append_pair("code_challenge_method", "S256");
            }
            for (k, v) in self.extra_auth_params {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// The secret, for the token endpoint only.
    pub(crate) fn secret(&self) -> &str {
        self.client_secret.expose_secret()
    }

    /// Context for API calls with this provider.
    pub fn api<'a>(&'a self, http: &'a reqwest::Client) -> crate::platforms::ApiCtx<'a> {
        crate::platforms::ApiCtx {
            http,
            platform: self.platform,
            api_url: &self.api_url,
            user_agent: &self.user_agent,
        }
    }
}
