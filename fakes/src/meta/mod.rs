//! Meta (Facebook Login, serving Facebook Pages and Instagram business accounts): the dialog, the
//! `GET /oauth/access_token` code exchange and `fb_exchange_token` (Meta's "refresh"), and the Graph
//! API reads in [`graph`], publishing on pages and Instagram accounts in [`publish`], and engagement
//! (post reactions, comments, shares; media insights) in [`metrics`]. Graph errors are HTTP 400 with
//! `error.code` 190 for token problems.

mod graph;
mod metrics;
mod publish;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, Route, get, handler, post};
use serde_json::{Value, json};

use crate::Inner;
use crate::http::{Params, json, ok};
use crate::oauth::{self, AuthFailure, AuthorizeSpec, Pkce};
use crate::state::{AccessKind, CodeProblem, TokenProblem, random_token};

/// The Graph API version of every path.
pub(crate) const VERSION: &str = "v21.0";
/// Lifetime of the short-lived user token from the code exchange.
const SHORT_LIVED_TTL_S: i64 = 3600;

pub(crate) fn routes() -> Route {
    let v = VERSION;
    Route::new()
        .at(format!("/{v}/dialog/oauth"), get(authorize))
        .at(
            format!("/{v}/oauth/access_token"),
            get(token_endpoint).post(token_endpoint),
        )
        .at(format!("/{v}/debug_token"), get(graph::debug_token))
        .at(format!("/{v}/:id"), get(graph::node))
        .at(format!("/{v}/:id/accounts"), get(graph::accounts))
        .at(
            format!("/{v}/:id/feed"),
            get(publish::feed_list).post(publish::feed_post),
        )
        .at(format!("/{v}/:id/photos"), post(publish::photos_post))
        .at(
            format!("/{v}/:id/media"),
            get(publish::ig_media_list).post(publish::ig_media_create),
        )
        .at(format!("/{v}/:id/media_publish"), post(publish::ig_media_publish))
        .at(format!("/{v}/:id/insights"), get(metrics::insights))
}

/// Facebook and Instagram (Facebook Login) share the app, so both point at this fake.
pub(crate) fn settings(shared: &Inner) -> Vec<(String, String)> {
    let v = VERSION;
    let (auth, token, api) = (
        format!("/{v}/dialog/oauth"),
        format!("/{v}/oauth/access_token"),
        format!("/{v}"),
    );
    let mut all = oauth::settings("facebook", shared, &auth, &token, &api);
    all.extend(oauth::settings("instagram", shared, &auth, &token, &api));
    all
}

const FACEBOOK_SCOPES: &[&str] = &[
    "pages_show_list",
    "pages_manage_posts",
    "pages_read_engagement",
    "pages_manage_engagement",
    "pages_read_user_engagement",
    "pages_manage_metadata",
    "pages_read_insights",
];

const INSTAGRAM_SCOPES: &[&str] = &[
    "instagram_basic",
    "pages_show_list",
    "instagram_content_publish",
    "pages_read_engagement",
    "instagram_manage_comments",
    "instagram_manage_insights",
];

/// Meta takes comma- or space-separated scopes; a request must carry all of Facebook's or all of
/// Instagram's.
const SPEC: AuthorizeSpec = AuthorizeSpec {
    client_param: "client_id",
    response_type_optional: true,
    scope_separators: &[',', ' '],
    scope_sets: &[FACEBOOK_SCOPES, INSTAGRAM_SCOPES],
    scope_prefix: None,
    pkce: Pkce::Unused,
    required: &[],
    deny_extra: &[("error_reason", "user_denied")],
};

#[handler]
async fn authorize(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::authorize(shared, req, &SPEC)
}

/// A Graph error: `{"error":{"message","type","code","error_subcode"?,"fbtrace_id"}}`.
pub(crate) fn graph_error(status: StatusCode, message: &str, kind: &str, code: u32, subcode: Option<u32>) -> Response {
    let mut error = json!({ "message": message, "type": kind, "code": code, "fbtrace_id": fbtrace_id() });
    if let Some(sub) = subcode {
        error["error_subcode"] = sub.into();
    }
    if status.is_server_error() {
        error["is_transient"] = true.into();
    }
    json(status, json!({ "error": error }))
}

fn fbtrace_id() -> String {
    random_token().chars().take(11).collect()
}

fn oauth_exception(message: &str, code: u32, subcode: Option<u32>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, message, "OAuthException", code, subcode)
}

fn transient() -> Response {
    graph_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "An unexpected error has occurred. Please retry your request later.",
        "OAuthException",
        2,
        None,
    )
}

/// 400 + OAuthException for a refused token (190; 2500 when there is none).
pub(crate) fn token_error(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Missing => oauth_exception(
            "An active access token must be used to query information about the current user.",
            2500,
            None,
        ),
        AuthFailure::Token(TokenProblem::Unknown) => oauth_exception("Invalid OAuth access token.", 190, Some(460)),
        AuthFailure::Token(TokenProblem::Expired) => {
            oauth_exception("Error validating access token: Session has expired.", 190, Some(463))
        }
        AuthFailure::Injected | AuthFailure::Token(TokenProblem::Revoked) => oauth_exception(
            "Error validating access token: The session has been invalidated because the user changed their \
             password or Facebook has changed the session for security reasons.",
            190,
            Some(460),
        ),
    }
}

/// `GET|POST /oauth/access_token`: the code exchange (short-lived user token) or, with
/// `grant_type=fb_exchange_token`, the long-lived exchange. Credentials travel as parameters.
#[handler]
async fn token_endpoint(req: &Request, body: String, Data(shared): Data<&Arc<Inner>>) -> Response {
    oauth::count_token_request(shared);
    let p = Params::query(req).merged(Params::parse(&body));
    if p.get("client_id") != Some(shared.client_id.as_str()) {
        return oauth_exception("Error validating application. Invalid application ID.", 101, None);
    }
    if p.get("client_secret") != Some(shared.client_secret.as_str()) {
        return oauth_exception("Error validating client secret.", 1, None);
    }
    if shared.control().token_error_500 {
        return transient();
    }
    match p.get("grant_type") {
        Some("fb_exchange_token") => exchange(shared, &p),
        None | Some("authorization_code") => code_exchange(shared, &p),
        Some(other) => oauth_exception(&format!("Unsupported grant_type: {other}"), 100, None),
    }
}

fn token_response(access_token: String, expires_in: Option<i64>) -> Response {
    let mut body = json!({ "access_token": access_token, "token_type": "bearer" });
    if let Some(ttl) = expires_in {
        body["expires_in"] = Value::from(ttl);
    }
    ok(body)
}

fn code_exchange(shared: &Inner, p: &Params) -> Response {
    let Some(code) = p.get("code") else {
        return oauth_exception("Missing code parameter.", 100, None);
    };
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return oauth_exception("Missing redirect_uri parameter.", 191, None);
    };
    let mut st = shared.state();
    match st.redeem_code(code, Some(redirect_uri), None) {
        Ok(pending) => {
            let grant = st.new_grant(&pending.scope);
            let token = st.issue_access(grant, AccessKind::ShortLived, Some(SHORT_LIVED_TTL_S));
            token_response(token, Some(SHORT_LIVED_TTL_S))
        }
        Err(CodeProblem::Used) => oauth_exception("This authorization code has been used.", 100, Some(36009)),
        Err(CodeProblem::RedirectMismatch) => oauth_exception(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you \
             used in the OAuth dialog request",
            100,
            Some(36008),
        ),
        Err(_) => oauth_exception("Invalid verification code format.", 100, Some(36008)),
    }
}

/// `fb_exchange_token`: a valid, unexpired user token becomes a long-lived one (`access_ttl_s`).
fn exchange(shared: &Inner, p: &Params) -> Response {
    let ctl = shared.control().clone();
    if ctl.refresh_error_500 {
        return transient();
    }
    let Some(old) = p.get("fb_exchange_token") else {
        return oauth_exception("Missing fb_exchange_token parameter.", 100, None);
    };
    if ctl.revoke_refresh {
        return token_error(AuthFailure::Token(TokenProblem::Revoked));
    }
    let mut st = shared.state();
    let at = match st.access(old) {
        Ok(at) if matches!(at.kind, AccessKind::Page(_)) => {
            return token_error(AuthFailure::Token(TokenProblem::Unknown));
        }
        Ok(at) if at.expired() => return token_error(AuthFailure::Token(TokenProblem::Expired)),
        Ok(at) => at.clone(),
        Err(problem) => return token_error(AuthFailure::Token(problem)),
    };
    let token = st.issue_access(at.grant, AccessKind::User, Some(ctl.access_ttl_s));
    token_response(token, Some(ctl.access_ttl_s))
}
