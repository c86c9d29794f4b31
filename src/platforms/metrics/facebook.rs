//! Facebook: a Page post's reactions (total and by type), comments and shares, one Graph call per
//! post with field aliases for the reaction breakdown. The token is the Page token, in the query.
//! Page post `impressions` were deprecated in 2025, so `views` and `impressions` stay `None`.

use secrecy::SecretString;
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, int_at, invalid_id, missing_as_not_found, one_by_one};
use crate::platforms::http::{self, TokenIn};
use crate::platforms::publish::is_path_safe;
use crate::platforms::{ApiCtx, PlatformError};

/// The reaction types Facebook counts, as the `type(…)` filter names them.
pub const REACTION_TYPES: [&str; 7] = ["LIKE", "LOVE", "WOW", "HAHA", "SAD", "ANGRY", "CARE"];

/// `GET /{post-id}?fields=…` per post.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    let fields = fields();
    let fields = fields.as_str();
    one_by_one(posts, move |post| fetch_one(ctx, token, fields, post)).await
}

async fn fetch_one(ctx: &ApiCtx<'_>, token: &SecretString, fields: &str, post: MetricsRequest<'_>) -> PostMetrics {
    let id = post.platform_post_id;
    if !is_path_safe(id) {
        return Err(invalid_id(ctx.platform, id));
    }
    let path = format!("/{id}?fields={fields}");
    let json = http::send_json(ctx.platform, http::get(ctx, &path, token, TokenIn::Query))
        .await
        .map_err(missing_as_not_found)?;
    map_post(&json).map_err(|m| PlatformError::invalid(ctx.platform, m))
}

/// `reactions.limit(0).summary(total_count),comments.limit(0).summary(true),shares` and one alias per
/// reaction type: `reactions.type(LOVE).limit(0).summary(total_count).as(love)`.
pub fn fields() -> String {
    let mut fields = String::from("reactions.limit(0).summary(total_count),comments.limit(0).summary(true),shares");
    for t in REACTION_TYPES {
        fields.push_str(&format!(
            ",reactions.type({t}).limit(0).summary(total_count).as({})",
            t.to_ascii_lowercase()
        ));
    }
    fields
}

/// `{"reactions":{"summary":{"total_count"}},"comments":{"summary":{"total_count"}},"shares":{"count"},
/// "love":{"summary":{"total_count"}},…}`: likes = all reactions, shares absent = 0 (Graph leaves
/// `shares` out of a post nobody shared), reactions by type from the aliases that came back.
pub fn map_post(json: &Value) -> Result<Metrics, String> {
    if json.get("reactions").is_none() && json.get("comments").is_none() {
        return Err("the post answered without `reactions` or `comments`".to_string());
    }
    let reactions = REACTION_TYPES
        .iter()
        .filter_map(|t| {
            let alias = t.to_ascii_lowercase();
            int_at(json, &format!("/{alias}/summary/total_count")).map(|n| (t.to_string(), n))
        })
        .collect();
    Ok(Metrics {
        likes: int_at(json, "/reactions/summary/total_count"),
        comments: int_at(json, "/comments/summary/total_count"),
        shares: Some(int_at(json, "/shares/count").unwrap_or(0)),
        views: None,
        impressions: None,
        reactions,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_ask_for_totals_and_every_reaction_type() {
        let f = fields();
        assert!(f.starts_with("reactions.limit(0).summary(total_count),comments.limit(0).summary(true),shares,"));
        assert!(f.contains(",reactions.type(LIKE).limit(0).summary(total_count).as(like)"));
        assert!(f.ends_with(",reactions.type(CARE).limit(0).summary(total_count).as(care)"));
        assert_eq!(f.matches(".as(").count(), 7);
    }

    #[test]
    fn maps_a_post_with_reactions_comments_and_shares() {
        let post = json!({
            "reactions": {"data": [], "summary": {"total_count": 12, "viewer_reaction": "NONE"}},
            "comments": {"data": [], "summary": {"order": "ranked", "total_count": 3, "can_comment": true}},
            "shares": {"count": 2},
            "like": {"data": [], "summary": {"total_count": 9, "viewer_reaction": "NONE"}},
            "love": {"data": [], "summary": {"total_count": 2, "viewer_reaction": "NONE"}},
            "wow": {"data": [], "summary": {"total_count": 0, "viewer_reaction": "NONE"}},
            "haha": {"data": [], "summary": {"total_count": 1, "viewer_reaction": "NONE"}},
            "sad": {"data": [], "summary": {"total_count": 0, "viewer_reaction": "NONE"}},
            "angry": {"data": [], "summary": {"total_count": 0, "viewer_reaction": "NONE"}},
            "care": {"data": [], "summary": {"total_count": 0, "viewer_reaction": "NONE"}},
            "id": "112233445566778_122000000000000001"
        });
        let m = map_post(&post).unwrap();
        assert_eq!((m.likes, m.comments, m.shares), (Some(12), Some(3), Some(2)));
        assert_eq!((m.views, m.impressions), (None, None));
        assert_eq!(m.reactions.len(), 7);
        assert_eq!(m.reactions["LIKE"], 9);
        assert_eq!(m.reactions["LOVE"], 2);
        assert_eq!(m.reactions["HAHA"], 1);
    }

    #[test]
    fn unshared_post_has_zero_shares_and_no_breakdown_without_aliases() {
        let post = json!({
            "reactions": {"data": [], "summary": {"total_count": 0}},
            "comments": {"data": [], "summary": {"total_count": 0}},
            "id": "1_2"
        });
        let m = map_post(&post).unwrap();
        assert_eq!((m.likes, m.comments, m.shares), (Some(0), Some(0), Some(0)));
        assert!(m.reactions.is_empty());
        assert!(map_post(&json!({"id": "1_2"})).is_err());
    }
}
