//! What a fake remembers: one-time codes, grants, tokens and every request it saw.
//!
//! A *grant* is one user authorization (one code exchange). Access and refresh tokens hang off a
//! grant, so revoking any token of a grant kills them all, as platforms do on revocation.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// One request the fake received, recorded before any handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// Lower-case header names, values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Raw body, lossily decoded as UTF-8.
    pub body: String,
}

pub(crate) type GrantId = usize;

/// PKCE challenge stored with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub value: String,
    /// `true` for S256, `false` for plain.
    pub s256: bool,
}

impl Challenge {
    pub(crate) fn verifies(&self, verifier: &str) -> bool {
        if self.s256 {
            pkce_s256(verifier) == self.value
        } else {
            verifier == self.value
        }
    }
}

/// `base64url-nopad(sha256(verifier))`, the S256 code challenge of a verifier.
pub(crate) fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub(crate) struct PendingCode {
    pub redirect_uri: String,
    pub challenge: Option<Challenge>,
    pub scope: String,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub scope: String,
    pub revoked: bool,
}

/// What an access token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AccessKind {
    /// A user token (Meta: long-lived).
    User,
    /// Meta's short-lived user token from the code exchange.
    ShortLived,
    /// A Meta Page token for this page id.
    Page(String),
}

#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub grant: GrantId,
    pub kind: AccessKind,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
}

impl AccessToken {
    pub(crate) fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| now_s() >= at)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub grant: GrantId,
    /// Rotated away or revoked.
    pub dead: bool,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
}

/// Why a presented token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Unknown,
    Revoked,
    Expired,
}

/// Why a code cannot be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeProblem {
    Unknown,
    Used,
    RedirectMismatch,
    VerifierMissing,
    VerifierMismatch,
}

#[derive(Debug)]
pub(crate) struct State {
    slug: &'static str,
    codes: HashMap<String, PendingCode>,
    grants: Vec<Grant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    pub issued: Vec<String>,
    pub requests: Vec<Recorded>,
    pub token_requests: usize,
}

pub(crate) fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random url-safe string: 32 bytes, base64url without padding.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Lower-case hex of `n` random bytes (trace ids, log ids).
pub(crate) fn random_hex(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

impl State {
    pub(crate) fn new(slug: &'static str) -> State {
        State {
            slug,
            codes: HashMap::new(),
            grants: Vec::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            issued: Vec::new(),
            requests: Vec::new(),
            token_requests: 0,
        }
    }

    pub(crate) fn new_code(&mut self, pending: PendingCode) -> String {
        let code = format!("fake-{}-code-{}", self.slug, random_token());
        self.codes.insert(code.clone(), pending);
        code
    }

    /// Consumes a code if the redirect URI (when `Some`) and the PKCE verifier check out. A failed
    /// check leaves the code usable; a used code stays used.
    pub(crate) fn redeem_code(
        &mut self,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<PendingCode, CodeProblem> {
        let pending = self.codes.get_mut(code).ok_or(CodeProblem::Unknown)?;
        if pending.used {
            return Err(CodeProblem::Used);
        }
        if let Some(uri) = redirect_uri
            && uri != pending.redirect_uri
        {
            return Err(CodeProblem::RedirectMismatch);
        }
        if let Some(challenge) = &pending.challenge {
            let verifier = verifier.filter(|v| !v.is_empty()).ok_or(CodeProblem::VerifierMissing)?;
            if !challenge.verifies(verifier) {
                return Err(CodeProblem::VerifierMismatch);
            }
        }
        pending.used = true;
        Ok(pending.clone())
    }

    pub(crate) fn new_grant(&mut self, scope: &str) -> GrantId {
        self.grants.push(Grant {
            scope: scope.to_owned(),
            revoked: false,
        });
        self.grants.len() - 1
    }

    pub(crate) fn grant(&self, id: GrantId) -> Option<&Grant> {
        self.grants.get(id)
    }

    /// Issues an access token; `ttl_s: None` never expires.
    pub(crate) fn issue_access(&mut self, grant: GrantId, kind: AccessKind, ttl_s: Option<i64>) -> String {
        let tag = match kind {
            AccessKind::User => "at",
            AccessKind::ShortLived => "st",
            AccessKind::Page(_) => "pt",
        };
        let token = format!("fake-{}-{tag}-{}", self.slug, random_token());
        let expires_at = ttl_s.map(|t| now_s().saturating_add(t));
        self.access.insert(
            token.clone(),
            AccessToken {
                grant,
                kind,
                expires_at,
            },
        );
        self.issued.push(token.clone());
        token
    }

    /// Issues a refresh token; `ttl_s: None` never expires.
    pub(crate) fn issue_refresh(&mut self, grant: GrantId, ttl_s: Option<i64>) -> String {
        let expires_at = ttl_s.map(|t| now_s().saturating_add(t));
        let token = format!("fake-{}-rt-{}", self.slug, random_token());
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                grant,
                dead: false,
                expires_at,
            },
        );
        self.issued.push(token.clone());
        token
    }

    /// The access token, whether or not it expired; `Err` if unknown or revoked.
    pub(crate) fn access(&self, token: &str) -> Result<&AccessToken, TokenProblem> {
        let at = self.access.get(token).ok_or(TokenProblem::Unknown)?;
        if self.grants.get(at.grant).is_none_or(|g| g.revoked) {
            return Err(TokenProblem::Revoked);
        }
        Ok(at)
    }

    /// Validates a refresh token; when `consume`, it is dead afterwards (rotation).
    pub(crate) fn use_refresh(&mut self, token: &str, consume: bool) -> Result<RefreshToken, TokenProblem> {
        let rt = self.refresh.get_mut(token).ok_or(TokenProblem::Unknown)?;
        if rt.dead || self.grants.get(rt.grant).is_none_or(|g| g.revoked) {
            return Err(TokenProblem::Revoked);
        }
        if rt.expires_at.is_some_and(|at| now_s() >= at) {
            return Err(TokenProblem::Expired);
        }
        if consume {
            rt.dead = true;
        }
        Ok(rt.clone())
    }

    /// Revokes the grant behind an access or refresh token; `false` if the token is unknown.
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        let grant = match (self.access.get(token), self.refresh.get(token)) {
            (Some(at), _) => at.grant,
            (None, Some(rt)) => rt.grant,
            (None, None) => return false,
        };
        if let Some(g) = self.grants.get_mut(grant) {
            g.revoked = true;
        }
        true
    }
}
