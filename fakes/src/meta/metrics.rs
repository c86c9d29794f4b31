//! Engagement on Meta:
//!
//! - Facebook: `GET /{post-id}?fields=…` asking for `reactions`, `comments` or `shares` (with Graph's
//!   modifiers: `.summary(total_count)`, `.limit(0)`, `.type(LOVE)`, `.as(alias)`) → those fields,
//!   `shares` left out when nobody shared, other fields as a plain post read shows them.
//! - Instagram: `GET /{media-id}/insights?metric=likes,comments,shares,saved,reach,views,total_interactions`
//!   → `{"data":[{"name","period":"lifetime","values":[{"value"}],"title","description","id"}]}`;
//!   `impressions` and `plays` are refused (retired in 2025), as are unknown metrics.
//!
//! Any valid token of the fake will do (190 otherwise); an id the fake does not know (or one in
//! `control.metrics_missing`) → 400 code 100 "Unsupported get request".

use std::sync::Arc;

use poem::web::{Data, Path};
use poem::{Request, Response, handler};
use serde_json::{Map, Value, json};

use super::graph::{select, unknown_node};
use super::publish::{fault_response, fb_post_json};
use super::{oauth_exception, token_error};
use crate::http::{Params, bearer, ok};
use crate::metrics::{self, FakeMetrics};
use crate::publish::{self, PublishFault};
use crate::{Inner, oauth};

/// Fields of a post read that make it a metrics call.
const ENGAGEMENT: &[&str] = &["reactions", "comments", "shares"];

/// Insights a media has.
const INSIGHTS: &[&str] = &[
    "likes",
    "comments",
    "shares",
    "saved",
    "reach",
    "views",
    "total_interactions",
];

/// One requested field: its name, its `.type(…)`, whether it asks for a `summary`, and the key it
/// comes back under (`.as(…)`, else the name).
#[derive(Debug)]
struct Field<'a> {
    name: &'a str,
    kind: Option<&'a str>,
    summary: bool,
    key: &'a str,
    raw: &'a str,
}

/// Splits `fields` on top-level commas and reads each part's modifiers.
fn parse_fields(fields: &str) -> Vec<Field<'_>> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in fields.char_indices() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(fields.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(fields.get(start..).unwrap_or(""));
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|raw| {
            let name = raw.get(..raw.find(['.', '{', '(']).unwrap_or(raw.len())).unwrap_or(raw);
            let arg = |modifier: &str| {
                let open = raw.find(&format!(".{modifier}("))? + modifier.len() + 2;
                let close = raw.get(open..)?.find(')')? + open;
                raw.get(open..close)
            };
            Field {
                name,
                kind: arg("type"),
                summary: arg("summary").is_some_and(|s| s != "false" && s != "0"),
                key: arg("as").unwrap_or(name),
                raw,
            }
        })
        .collect()
}

/// `GET /{id}` asking for engagement fields: `None` when it asks for none (a plain node read).
pub(crate) async fn node(shared: &Inner, req: &Request, body: &str, id: &str) -> Option<Response> {
    let p = Params::query(req).merged(Params::parse(body));
    let fields = p.get("fields").unwrap_or("");
    let parsed = parse_fields(fields);
    if !parsed.iter().any(|f| ENGAGEMENT.contains(&f.name)) {
        return None;
    }
    let fault = metrics::begin(shared, "facebook");
    Some(
        post_engagement(shared, req, &p, id, &parsed, fault)
            .await
            .unwrap_or_else(|e| e),
    )
}

fn check_token(shared: &Inner, req: &Request, p: &Params) -> Result<(), Response> {
    let token = p.get("access_token").map(str::to_owned).or_else(|| bearer(req));
    oauth::check_publish_token(shared, token.as_deref())
        .map(|_| ())
        .map_err(token_error)
}

async fn post_engagement(
    shared: &Inner,
    req: &Request,
    p: &Params,
    id: &str,
    fields: &[Field<'_>],
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    check_token(shared, req, p)?;
    publish::gate(fault, |f| fault_response(f, id)).await?;
    let m = metrics::lookup(shared, "facebook", id).ok_or_else(|| unknown_node(id))?;
    let post = metrics::published(shared, "facebook", id);
    let mut out = Map::new();
    out.insert("id".into(), id.into());
    let plain: Vec<&str> = fields
        .iter()
        .filter(|f| !ENGAGEMENT.contains(&f.name))
        .map(|f| f.raw)
        .collect();
    if let Some(post) = &post
        && !plain.is_empty()
    {
        out.extend(select(&fb_post_json(post), &plain.join(",")));
    }
    for f in fields {
        if let Some(value) = engagement_field(&m, f) {
            out.insert(f.key.to_owned(), value);
        }
    }
    Ok(ok(Value::Object(out)))
}

/// One engagement field of a post as Graph shows it (`None`: left out).
fn engagement_field(m: &FakeMetrics, f: &Field<'_>) -> Option<Value> {
    let edge = |summary: Value| {
        let mut v = json!({ "data": [] });
        if f.summary {
            v["summary"] = summary;
        }
        v
    };
    match f.name {
        "reactions" => {
            let total = f.kind.map_or(m.likes, |k| m.reaction(&k.to_ascii_uppercase()));
            Some(edge(json!({ "total_count": total, "viewer_reaction": "NONE" })))
        }
        "comments" => Some(edge(
            json!({ "order": "ranked", "total_count": m.comments, "can_comment": true }),
        )),
        "shares" => (m.shares > 0).then(|| json!({ "count": m.shares })),
        _ => None,
    }
}

/// `GET /{media-id}/insights?metric=…`.
#[handler]
pub(crate) async fn insights(
    req: &Request,
    Path(id): Path<String>,
    body: String,
    Data(shared): Data<&Arc<Inner>>,
) -> Response {
    let fault = metrics::begin(shared, "instagram");
    insights_inner(shared, req, &body, &id, fault)
        .await
        .unwrap_or_else(|e| e)
}

async fn insights_inner(
    shared: &Inner,
    req: &Request,
    body: &str,
    id: &str,
    fault: Option<PublishFault>,
) -> Result<Response, Response> {
    let p = Params::query(req).merged(Params::parse(body));
    check_token(shared, req, &p)?;
    publish::gate(fault, |f| fault_response(f, id)).await?;
    let m = metrics::lookup(shared, "instagram", id).ok_or_else(|| unknown_node(id))?;
    let Some(asked) = p.get("metric") else {
        return Err(oauth_exception("(#100) The parameter metric is required", 100, None));
    };
    let mut data = Vec::new();
    for (i, name) in asked.split(',').map(str::trim).enumerate() {
        let value = match name {
            "likes" => m.likes,
            "comments" => m.comments,
            "shares" => m.shares,
            "saved" => m.saved,
            "reach" => m.reach,
            "views" => m.views,
            "total_interactions" => m.likes + m.comments + m.shares + m.saved,
            "impressions" | "plays" => {
                return Err(oauth_exception(
                    &format!(
                        "(#100) The {name} metric is no longer supported for media insights since April 21, 2025; \
                         use views"
                    ),
                    100,
                    None,
                ));
            }
            _ => {
                return Err(oauth_exception(
                    &format!(
                        "(#100) metric[{i}] must be one of the following values: {}",
                        INSIGHTS.join(", ")
                    ),
                    100,
                    None,
                ));
            }
        };
        data.push(json!({
            "name": name,
            "period": "lifetime",
            "values": [{ "value": value }],
            "title": title(name),
            "description": format!("The number of {} of the media.", name.replace('_', " ")),
            "id": format!("{id}/insights/{name}/lifetime"),
        }));
    }
    Ok(ok(json!({ "data": data })))
}

fn title(name: &str) -> String {
    let mut t = name.replace('_', " ");
    if let Some(first) = t.get(..1).map(str::to_ascii_uppercase) {
        t.replace_range(..1, &first);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_graph_field_modifiers() {
        let fields = parse_fields(
            "reactions.limit(0).summary(total_count),comments.summary(true),shares,\
             reactions.type(LOVE).limit(0).summary(total_count).as(love),message",
        );
        let names: Vec<(&str, Option<&str>, bool, &str)> =
            fields.iter().map(|f| (f.name, f.kind, f.summary, f.key)).collect();
        assert_eq!(
            names,
            vec![
                ("reactions", None, true, "reactions"),
                ("comments", None, true, "comments"),
                ("shares", None, false, "shares"),
                ("reactions", Some("LOVE"), true, "love"),
                ("message", None, false, "message"),
            ]
        );
        assert_eq!(title("total_interactions"), "Total interactions");
    }
}
