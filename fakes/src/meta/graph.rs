//! Graph API reads: `/me`, `/{user}/accounts` (pages with page tokens), pages, Instagram business
//! accounts and `/debug_token`. Tokens come as `access_token` parameter or `Authorization: Bearer`.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use serde_json::{Map, Value, json};

use super::{graph_error, token_error};
use crate::control::{Identity, InstagramAccount, MetaPage};
use crate::http::{Params, bearer, ok};
use crate::oauth;
use crate::state::{AccessKind, AccessToken, now_s};
use crate::{Control, Inner};

/// The request's parameters (query and form body) and its checked token.
fn authed(shared: &Inner, req: &Request, body: &str) -> Result<(Params, AccessToken), Response> {
    let p = Params::query(req).merged(Params::parse(body));
    let token = p.get("access_token").map(str::to_owned).or_else(|| bearer(req));
    let at = oauth::check_token(shared, token.as_deref(), true).map_err(token_error)?;
    Ok((p, at))
}

/// A Graph node the fake knows.
enum Node {
    User(Identity),
    Page(MetaPage),
    Instagram(InstagramAccount),
}

fn resolve(ctl: &Control, id: &str, token: &AccessToken) -> Option<Node> {
    let page = |pid: &str| ctl.meta_pages.iter().find(|p| p.id == pid).cloned().map(Node::Page);
    if id == "me" {
        return match &token.kind {
            AccessKind::Page(pid) => page(pid),
            AccessKind::User | AccessKind::ShortLived => Some(Node::User(ctl.identity.clone())),
        };
    }
    if id == ctl.identity.id {
        return Some(Node::User(ctl.identity.clone()));
    }
    page(id).or_else(|| {
        ctl.meta_pages
            .iter()
            .filter_map(|p| p.instagram.as_ref())
            .find(|ig| ig.id == id)
            .cloned()
            .map(Node::Instagram)
    })
}

pub(crate) fn unknown_node(id: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        &format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
             permissions, or does not support this operation."
        ),
        "GraphMethodException",
        100,
        Some(33),
    )
}

fn picture(url: &str) -> Value {
    json!({ "data": { "height": 50, "width": 50, "is_silhouette": false, "url": url } })
}

fn user_json(who: &Identity) -> Map<String, Value> {
    obj(json!({
        "id": who.id,
        "name": who.name,
        "first_name": who.given_name,
        "last_name": who.family_name,
        "short_name": who.given_name,
        "picture": picture(&who.avatar_url),
    }))
}

fn page_json(page: &MetaPage) -> Map<String, Value> {
    let mut m = obj(json!({
        "id": page.id,
        "name": page.name,
        "category": "Community",
        "category_list": [{ "id": "2612", "name": "Community" }],
        "tasks": page.tasks,
        "picture": picture(&page.picture_url),
        "link": format!("https://www.facebook.com/{}", page.id),
        "fan_count": 42,
        "followers_count": 43,
    }));
    if let Some(ig) = &page.instagram {
        m.insert("instagram_business_account".into(), Value::Object(ig_json(ig)));
    }
    m
}

fn ig_json(ig: &InstagramAccount) -> Map<String, Value> {
    obj(json!({
        "id": ig.id,
        "username": ig.username,
        "name": ig.name,
        "profile_picture_url": ig.profile_picture_url,
        "biography": "",
        "followers_count": 42,
        "follows_count": 7,
        "media_count": 3,
    }))
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One requested field: `name`, optionally with a `{sub,fields}` selection (modifiers such as
/// `.type(large)` are ignored).
struct Field<'a> {
    name: &'a str,
    sub: Option<&'a str>,
}

/// Splits a `fields` parameter on top-level commas.
fn parse_fields(s: &str) -> Vec<Field<'_>> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(s.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(field)
        .collect()
}

fn field(part: &str) -> Field<'_> {
    let end = part.find(['.', '{', '(']).unwrap_or(part.len());
    let sub = part
        .find('{')
        .and_then(|open| part.rfind('}').and_then(|close| part.get(open + 1..close)));
    Field {
        name: part.get(..end).unwrap_or(part),
        sub,
    }
}

/// Fields naming another node: without a sub-selection they show only `{"id"}`.
const NODE_REFS: &[&str] = &["instagram_business_account"];

/// Picks the requested fields (`id` always) from a full object, like the Graph API does.
pub(crate) fn select(full: &Map<String, Value>, fields: &str) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(id) = full.get("id") {
        out.insert("id".into(), id.clone());
    }
    for field in parse_fields(fields) {
        let Some(value) = full.get(field.name) else { continue };
        let picked = match (field.sub, value) {
            (Some(sub), Value::Object(m)) => match m.get("data") {
                Some(Value::Object(data)) => json!({ "data": select(data, sub) }),
                _ => Value::Object(select(m, sub)),
            },
            (None, Value::Object(m)) if NODE_REFS.contains(&field.name) => json!({ "id": m.get("id") }),
            _ => value.clone(),
        };
        out.insert(field.name.to_owned(), picked);
    }
    out
}

/// `GET /{id}?fields=…` for `me`, the user, a page or an Instagram business account; published posts,
/// media and Instagram containers are answered by [`super::publish::node`], reads asking for
/// engagement fields by [`super::metrics::node`].
#[handler]
pub(crate) async fn node(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    if let Some(resp) = super::metrics::node(shared, req, &body, &id).await {
        return resp;
    }
    if let Some(resp) = super::publish::node(shared, req, &body, &id) {
        return resp;
    }
    let (p, at) = match authed(shared, req, &body) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let ctl = shared.control().clone();
    let (full, default) = match resolve(&ctl, &id, &at) {
        Some(Node::User(who)) => (user_json(&who), "id,name"),
        Some(Node::Page(page)) => (page_json(&page), "id,name"),
        Some(Node::Instagram(ig)) => (ig_json(&ig), "id"),
        None => return unknown_node(&id),
    };
    ok(Value::Object(select(&full, p.get("fields").unwrap_or(default))))
}

/// `GET /{user}/accounts`: the user's pages, each with a freshly issued page token.
#[handler]
pub(crate) async fn accounts(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let (p, at) = match authed(shared, req, &body) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let ctl = shared.control().clone();
    match resolve(&ctl, &id, &at) {
        Some(Node::User(_)) => {}
        Some(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "(#100) Tried accessing nonexisting field (accounts)",
                "OAuthException",
                100,
                None,
            );
        }
        None => return unknown_node(&id),
    }
    let fields = p
        .get("fields")
        .unwrap_or("id,name,access_token,category,category_list,tasks,picture");
    let wants_token = parse_fields(fields).iter().any(|f| f.name == "access_token");
    let mut data = Vec::new();
    for page in &ctl.meta_pages {
        let mut full = page_json(page);
        if wants_token {
            let token = shared
                .state()
                .issue_access(at.grant, AccessKind::Page(page.id.clone()), None);
            full.insert("access_token".into(), token.into());
        }
        data.push(Value::Object(select(&full, fields)));
    }
    ok(json!({
        "data": data,
        "paging": { "cursors": { "before": "QVFIUmZAhZA2VfYmVmb3Jl", "after": "QVFIUmZAhZA2VfYWZAZA0ZAy" } },
    }))
}

/// `GET /debug_token?input_token=…&access_token=…` (app token `{id}|{secret}` or any valid token).
#[handler]
pub(crate) async fn debug_token(req: &Request, Data(shared): Data<&Arc<Inner>>) -> Response {
    let p = Params::query(req);
    let app_token = format!("{}|{}", shared.client_id, shared.client_secret);
    let caller = p.get("access_token").map(str::to_owned).or_else(|| bearer(req));
    if caller.as_deref() != Some(app_token.as_str())
        && let Err(failure) = oauth::check_token(shared, caller.as_deref(), false)
    {
        return token_error(failure);
    }
    let Some(input) = p.get("input_token") else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "(#100) The parameter input_token is required",
            "OAuthException",
            100,
            None,
        );
    };
    let user_id = shared.control().identity.id.clone();
    let st = shared.state();
    let mut data = json!({ "app_id": shared.client_id, "application": "nikara (fake)", "user_id": user_id });
    match st.access(input) {
        Ok(at) => {
            let scopes: Vec<String> = st
                .grant(at.grant)
                .map(|g| {
                    g.scope
                        .split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            data["type"] = if matches!(at.kind, AccessKind::Page(_)) {
                "PAGE"
            } else {
                "USER"
            }
            .into();
            if let AccessKind::Page(pid) = &at.kind {
                data["profile_id"] = pid.clone().into();
            }
            data["is_valid"] = (!at.expired()).into();
            data["expires_at"] = at.expires_at.unwrap_or(0).into();
            data["data_access_expires_at"] = (now_s() + 7_776_000).into();
            data["scopes"] = scopes.into();
        }
        Err(_) => {
            data["is_valid"] = false.into();
            data["error"] = json!({ "code": 190, "message": "Invalid OAuth access token." });
        }
    }
    ok(json!({ "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_fields_like_graph() {
        let page = MetaPage::defaults().remove(0);
        let full = page_json(&page);
        let got = Value::Object(select(&full, "instagram_business_account"));
        assert_eq!(
            got,
            json!({ "id": page.id, "instagram_business_account": { "id": "17841400000000001" } })
        );
        let got = Value::Object(select(&full, "name,instagram_business_account{username},picture{url}"));
        assert_eq!(
            got["instagram_business_account"],
            json!({ "id": "17841400000000001", "username": "fake_ig_business" })
        );
        assert_eq!(got["picture"], json!({ "data": { "url": page.picture_url } }));
        let page_b = MetaPage::defaults().remove(1);
        let got = Value::Object(select(&page_json(&page_b), "instagram_business_account"));
        assert_eq!(got, json!({ "id": page_b.id }));
        assert_eq!(parse_fields("id,picture.type(large),a{b,c}").len(), 3);
    }
}
