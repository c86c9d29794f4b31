//! Token endpoint calls: code exchange, Meta's long-lived exchange, refresh, revocation.
//!
//! Lifetimes come from each response (`expires_in`, `refresh_expires_in`,
//! `refresh_token_expires_in`), never from constants: the platforms' docs contradict themselves.

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{ClientAuth, Provider};
use crate::platforms::{PlatformError, http};

/// What a token endpoint granted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

fn seconds(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
}

/// Parses a token response; `now` anchors the relative lifetimes.
pub fn parse_grant(p: &Provider, body: &Value, now: DateTime<Utc>) -> Result<Grant, PlatformError> {
    // Instagram Login wraps the grant as {"data":[{…}]}; accept both.
    let body = body
        .get("data")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .filter(|_| body.get("access_token").is_none())
        .unwrap_or(body);
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| PlatformError::invalid(p.platform, "token response has no access_token"))?;
    let refresh = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_string()));
    let scopes = match body.get("scope") {
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Grant {
        access_token: SecretString::from(access.to_string()),
        refresh_token: refresh,
        expires_at: seconds(body, "expires_in").map(|s| now + Duration::seconds(s)),
        refresh_expires_at: seconds(body, "refresh_expires_in")
            .or_else(|| seconds(body, "refresh_token_expires_in"))
            .map(|s| now + Duration::seconds(s)),
        scopes,
    })
}

/// Sends a form to the token endpoint with the provider's client-auth style.
async fn token_call(
    p: &Provider,
    http_client: &reqwest::Client,
    mut form: Vec<(&str, String)>,
) -> Result<Value, PlatformError> {
    let req = match p.client_auth {
        ClientAuth::MetaQuery => {
            form.push(("client_id", p.client_id.clone()));
            form.push(("client_secret", p.secret().to_string()));
            http_client.get(p.token_url.clone()).query(&form)
        }
        ClientAuth::Basic => http_client
            .post(p.token_url.clone())
            .basic_auth(&p.client_id, Some(p.secret()))
            .form(&form),
        ClientAuth::Body => {
            form.push(("client_id", p.client_id.clone()));
            form.push(("client_secret", p.secret().to_string()));
            http_client.post(p.token_url.clone()).form(&form)
        }
        ClientAuth::TiktokBody => {
            form.push(("client_key", p.client_id.clone()));
            form.push(("client_secret", p.secret().to_string()));
            http_client.post(p.token_url.clone()).form(&form)
        }
    };
    let req = req
        .header(reqwest::header::USER_AGENT, &p.user_agent)
        .header(reqwest::header::ACCEPT, "application/json");
    http::send_json(p.platform, req).await
}

/// Exchanges an authorization code.
#[tracing::instrument(skip_all, fields(platform = %p.platform))]
pub async fn exchange_code(
    p: &Provider,
    http_client: &reqwest::Client,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&SecretString>,
) -> Result<Grant, PlatformError> {
    let mut form = vec![("code", code.to_string()), ("redirect_uri", redirect_uri.to_string())];
    if p.client_auth != ClientAuth::MetaQuery {
        form.push(("grant_type", "authorization_code".to_string()));
    }
    if let Some(v) = verifier {
        form.push(("code_verifier", v.expose_secret().to_string()));
    }
    let body = token_call(p, http_client, form).await?;
    parse_grant(p, &body, Utc::now())
}

/// Meta: trades a (short- or long-lived) user token for a fresh long-lived one. This is Meta's
/// refresh; an expired token cannot be exchanged (code 190: the user must log in again).
#[tracing::instrument(skip_all, fields(platform = %p.platform))]
pub async fn meta_exchange(
    p: &Provider,
    http_client: &reqwest::Client,
    token: &SecretString,
) -> Result<Grant, PlatformError> {
    let form = vec![
        ("grant_type", "fb_exchange_token".to_string()),
        ("fb_exchange_token", token.expose_secret().to_string()),
    ];
    let body = token_call(p, http_client, form).await?;
    parse_grant(p, &body, Utc::now())
}

/// A refresh-token grant.
#[tracing::instrument(skip_all, fields(platform = %p.platform))]
pub async fn refresh(
    p: &Provider,
    http_client: &reqwest::Client,
    refresh_token: &SecretString,
) -> Result<Grant, PlatformError> {
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.expose_secret().to_string()),
    ];
    let body = token_call(p, http_client, form).await?;
    parse_grant(p, &body, Utc::now())
}

/// Revokes a token where the platform has an endpoint (Google, Reddit); a no-op elsewhere.
#[tracing::instrument(skip_all, fields(platform = %p.platform))]
pub async fn revoke(
    p: &Provider,
    http_client: &reqwest::Client,
    token: &SecretString,
    kind: &str,
) -> Result<(), PlatformError> {
    let Some(url) = &p.revoke_url else { return Ok(()) };
    let mut req = http_client
        .post(url.clone())
        .header(reqwest::header::USER_AGENT, &p.user_agent);
    req = match p.client_auth {
        ClientAuth::Basic => req
            .basic_auth(&p.client_id, Some(p.secret()))
            .form(&[("token", token.expose_secret()), ("token_type_hint", kind)]),
        _ => req.form(&[("token", token.expose_secret())]),
    };
    let resp = req.send().await.map_err(|e| http::transport(p.platform, &e))?;
    if resp.status().is_success() {
        return Ok(());
    }
    http::read_json(p.platform, resp).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn provider() -> Provider {
        let mut c = Config::for_tests("/tmp/unused");
        c.extra
            .insert("tiktok_client_id".into(), SecretString::from("k".to_string()));
        c.extra
            .insert("tiktok_client_secret".into(), SecretString::from("s".to_string()));
        super::super::Registry::from_config(&c)
            .expect("registry")
            .get(crate::domain::platform::Platform::Tiktok)
            .cloned()
            .expect("tiktok")
    }

    #[test]
    fn lifetimes_come_from_the_response() {
        let now = Utc::now();
        let g = parse_grant(
            &provider(),
            &json!({"access_token":"a","refresh_token":"r","expires_in":86400,"refresh_expires_in":"31536000","scope":"user.info.basic,video.publish"}),
            now,
        )
        .expect("grant");
        assert_eq!(g.expires_at, Some(now + Duration::seconds(86400)));
        assert_eq!(g.refresh_expires_at, Some(now + Duration::seconds(31_536_000)));
        assert_eq!(g.scopes, vec!["user.info.basic", "video.publish"]);
        let wrapped =
            parse_grant(&provider(), &json!({"data":[{"access_token":"ig","user_id":1}]}), now).expect("grant");
        assert_eq!(wrapped.access_token.expose_secret(), "ig");
        assert!(wrapped.expires_at.is_none() && wrapped.refresh_token.is_none());
        assert!(parse_grant(&provider(), &json!({"token_type":"bearer"}), now).is_err());
    }
}
