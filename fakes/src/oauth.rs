//! The OAuth machinery every fake shares: the consent screen, code and refresh grants, bearer checks.
//! Each platform module supplies its own rules (an [`AuthorizeSpec`]) and its own response shapes.

use poem::http::StatusCode;
use poem::{Request, Response};
use serde_json::json;

use crate::Inner;
use crate::control::Control;
use crate::http::{Params, found, json};
use crate::state::{AccessKind, AccessToken, Challenge, CodeProblem, PendingCode, TokenProblem};

/// Whether the authorize endpoint takes a PKCE challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pkce {
    /// X: `code_challenge` + `code_challenge_method=S256` must be present.
    RequiredS256,
    /// Google: checked at the token endpoint when given (S256 or plain).
    Optional,
    /// Meta, Reddit, TikTok (web), LinkedIn (web): ignored.
    Unused,
}

/// A platform's rules for its consent screen.
#[derive(Debug)]
pub(crate) struct AuthorizeSpec {
    /// `client_id`, or TikTok's `client_key`.
    pub client_param: &'static str,
    /// Meta defaults `response_type` to `code`; everyone else requires it.
    pub response_type_optional: bool,
    /// Characters separating scopes.
    pub scope_separators: &'static [char],
    /// The request must carry every scope of at least one of these sets.
    pub scope_sets: &'static [&'static [&'static str]],
    /// Instead of whole scopes: at least one requested scope must start with this (Google).
    pub scope_prefix: Option<&'static str>,
    pub pkce: Pkce,
    /// Parameters that must have exactly this value (`duration=permanent`, `access_type=offline`).
    pub required: &'static [(&'static str, &'static str)],
    /// Extra parameters on a denied-consent redirect (Meta: `error_reason=user_denied`).
    pub deny_extra: &'static [(&'static str, &'static str)],
}

fn bad_authorize(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        json!({ "error": "invalid_request", "error_description": message }),
    )
}

/// The consent screen: validates the request, then redirects back as a user who clicked "Allow" (or
/// "Cancel", with `control.deny_consent`).
pub(crate) fn authorize(shared: &Inner, req: &Request, spec: &AuthorizeSpec) -> Response {
    let p = Params::query(req);
    let client = spec.client_param;
    match p.get(client) {
        None => return bad_authorize(&format!("missing {client}")),
        Some(id) if id != shared.client_id => return bad_authorize(&format!("unknown {client}: {id}")),
        Some(_) => {}
    }
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return bad_authorize("missing redirect_uri");
    };
    let Ok(mut redirect) = url::Url::parse(redirect_uri) else {
        return bad_authorize("redirect_uri is not an absolute URL");
    };
    match p.get("response_type") {
        Some("code") => {}
        None if spec.response_type_optional => {}
        other => {
            return bad_authorize(&format!(
                "response_type must be code, got {}",
                other.unwrap_or("nothing")
            ));
        }
    }
    let Some(state) = p.get("state") else {
        return bad_authorize("missing state");
    };
    let Some(scope) = p.get("scope") else {
        return bad_authorize("missing scope");
    };
    if let Err(e) = check_scopes(scope, spec) {
        return bad_authorize(&e);
    }
    for (key, want) in spec.required {
        if p.get(key) != Some(want) {
            return bad_authorize(&format!(
                "{key} must be {want}, got {}",
                p.get(key).unwrap_or("nothing")
            ));
        }
    }
    let challenge = match (spec.pkce, p.get("code_challenge"), p.get("code_challenge_method")) {
        (Pkce::Unused, _, _) => None,
        (Pkce::RequiredS256, Some(c), Some("S256")) => Some(Challenge {
            value: c.to_owned(),
            s256: true,
        }),
        (Pkce::RequiredS256, _, _) => {
            return bad_authorize("PKCE required: code_challenge with code_challenge_method=S256");
        }
        (Pkce::Optional, None, _) => None,
        (Pkce::Optional, Some(c), Some("S256")) => Some(Challenge {
            value: c.to_owned(),
            s256: true,
        }),
        (Pkce::Optional, Some(c), None | Some("plain")) => Some(Challenge {
            value: c.to_owned(),
            s256: false,
        }),
        (Pkce::Optional, Some(_), Some(m)) => return bad_authorize(&format!("unsupported code_challenge_method {m}")),
    };
    if shared.control().deny_consent {
        let mut q = redirect.query_pairs_mut();
        q.append_pair("error", "access_denied");
        for (k, v) in spec.deny_extra {
            q.append_pair(k, v);
        }
        q.append_pair("error_description", "The user denied the request.");
        q.append_pair("state", state);
        drop(q);
        return found(redirect.as_str());
    }
    let pending = PendingCode {
        redirect_uri: redirect_uri.to_owned(),
        challenge,
        scope: scope.to_owned(),
        used: false,
    };
    let code = shared.state().new_code(pending);
    redirect
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    found(redirect.as_str())
}

fn check_scopes(scope: &str, spec: &AuthorizeSpec) -> Result<(), String> {
    let got: Vec<&str> = scope.split(spec.scope_separators).filter(|s| !s.is_empty()).collect();
    if let Some(prefix) = spec.scope_prefix
        && !got.iter().any(|s| s.starts_with(prefix))
    {
        return Err(format!("scope must include a {prefix}… scope, got {scope:?}"));
    }
    if spec.scope_sets.is_empty() {
        return Ok(());
    }
    let missing_of = |set: &[&str]| -> Vec<String> {
        set.iter()
            .filter(|s| !got.contains(s))
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
    };
    let mut best: Option<Vec<String>> = None;
    for set in spec.scope_sets {
        let missing = missing_of(set);
        if missing.is_empty() {
            return Ok(());
        }
        if best.as_ref().is_none_or(|b| missing.len() < b.len()) {
            best = Some(missing);
        }
    }
    Err(format!("missing scopes {:?} in {scope:?}", best.unwrap_or_default()))
}

/// A successful code or refresh grant.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub scope: String,
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    /// Seconds left on the refresh token, when it expires.
    pub refresh_expires_in: Option<i64>,
}

/// Why a grant failed; each platform maps these to its own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantFailure {
    /// `token_error_500` or `refresh_error_500`.
    Server,
    UnsupportedGrantType,
    Missing(&'static str),
    Code(CodeProblem),
    /// Unknown, rotated-away, revoked or expired refresh token, or `revoke_refresh`.
    RefreshRevoked,
}

/// Refresh token policy of a platform at code exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshPolicy {
    /// Lifetime of refresh tokens (`None`: no expiry).
    pub ttl_s: Option<i64>,
}

/// Runs an `authorization_code` or `refresh_token` grant (client authentication already checked).
pub(crate) fn token_grant(shared: &Inner, p: &Params, policy: RefreshPolicy) -> Result<Issued, GrantFailure> {
    let ctl = shared.control().clone();
    if ctl.token_error_500 {
        return Err(GrantFailure::Server);
    }
    match p.get("grant_type") {
        Some("authorization_code") => code_grant(shared, p, &ctl, policy),
        Some("refresh_token") => refresh_grant(shared, p, &ctl, policy),
        None => Err(GrantFailure::Missing("grant_type")),
        Some(_) => Err(GrantFailure::UnsupportedGrantType),
    }
}

fn code_grant(shared: &Inner, p: &Params, ctl: &Control, policy: RefreshPolicy) -> Result<Issued, GrantFailure> {
    let code = p.get("code").ok_or(GrantFailure::Missing("code"))?;
    let redirect_uri = p.get("redirect_uri").ok_or(GrantFailure::Missing("redirect_uri"))?;
    let mut st = shared.state();
    let pending = st
        .redeem_code(code, Some(redirect_uri), p.get("code_verifier"))
        .map_err(GrantFailure::Code)?;
    let grant = st.new_grant(&pending.scope);
    let access_token = st.issue_access(grant, AccessKind::User, Some(ctl.access_ttl_s));
    // LinkedIn grants refresh tokens to approved partners only: `no_refresh_token` plays the others.
    let refresh_token = (!ctl.no_refresh_token).then(|| st.issue_refresh(grant, policy.ttl_s));
    Ok(Issued {
        scope: pending.scope,
        access_token,
        expires_in: ctl.access_ttl_s,
        refresh_expires_in: refresh_token.as_ref().and(policy.ttl_s),
        refresh_token,
    })
}

fn refresh_grant(shared: &Inner, p: &Params, ctl: &Control, policy: RefreshPolicy) -> Result<Issued, GrantFailure> {
    if ctl.refresh_error_500 {
        return Err(GrantFailure::Server);
    }
    let token = p.get("refresh_token").ok_or(GrantFailure::Missing("refresh_token"))?;
    if ctl.revoke_refresh {
        return Err(GrantFailure::RefreshRevoked);
    }
    let rotate = ctl.refresh_rotates && !ctl.omit_refresh_on_refresh;
    let mut st = shared.state();
    let old = st
        .use_refresh(token, rotate)
        .map_err(|_| GrantFailure::RefreshRevoked)?;
    let scope = st.grant(old.grant).map(|g| g.scope.clone()).unwrap_or_default();
    let access_token = st.issue_access(old.grant, AccessKind::User, Some(ctl.access_ttl_s));
    let (refresh_token, expires_at) = if ctl.omit_refresh_on_refresh {
        (None, old.expires_at)
    } else if rotate {
        // A rotated refresh token starts a fresh lifetime; a kept one keeps its own (LinkedIn's
        // does not reset).
        let new = st.issue_refresh(old.grant, policy.ttl_s);
        (Some(new), policy.ttl_s.map(|t| crate::state::now_s() + t))
    } else {
        (Some(token.to_owned()), old.expires_at)
    };
    Ok(Issued {
        scope,
        access_token,
        expires_in: ctl.access_ttl_s,
        refresh_token,
        refresh_expires_in: expires_at.map(|at| (at - crate::state::now_s()).max(0)),
    })
}

/// Why an API call's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// `control.profile_401` is set.
    Injected,
    Missing,
    Token(TokenProblem),
}

/// Checks an API token. `profile` marks profile endpoints, which `control.profile_401` breaks.
pub(crate) fn check_token(shared: &Inner, token: Option<&str>, profile: bool) -> Result<AccessToken, AuthFailure> {
    let (injected, enforce) = {
        let c = shared.control();
        (c.profile_401, c.enforce_access_expiry)
    };
    if profile && injected {
        return Err(AuthFailure::Injected);
    }
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthFailure::Missing)?;
    let st = shared.state();
    let at = st.access(token).map_err(AuthFailure::Token)?;
    if enforce && at.expired() {
        return Err(AuthFailure::Token(TokenProblem::Expired));
    }
    Ok(at.clone())
}

/// Checks the token of a publish endpoint (publish, status poll, reconcile listing): unknown,
/// revoked and expired tokens are refused whatever the knobs say; `profile_401` does not apply.
pub(crate) fn check_publish_token(shared: &Inner, token: Option<&str>) -> Result<AccessToken, AuthFailure> {
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthFailure::Missing)?;
    let st = shared.state();
    let at = st.access(token).map_err(AuthFailure::Token)?;
    if at.expired() {
        return Err(AuthFailure::Token(TokenProblem::Expired));
    }
    Ok(at.clone())
}

/// Counts a call to a token endpoint.
pub(crate) fn count_token_request(shared: &Inner) {
    shared.state().token_requests += 1;
}

/// The five nikara settings of one platform.
pub(crate) fn settings(
    platform: &str,
    shared: &Inner,
    auth_path: &str,
    token_path: &str,
    api_path: &str,
) -> Vec<(String, String)> {
    let base = &shared.base_url;
    vec![
        (format!("{platform}_client_id"), shared.client_id.clone()),
        (format!("{platform}_client_secret"), shared.client_secret.clone()),
        (format!("{platform}_auth_url"), format!("{base}{auth_path}")),
        (format!("{platform}_token_url"), format!("{base}{token_path}")),
        (format!("{platform}_api_url"), format!("{base}{api_path}")),
    ]
}
