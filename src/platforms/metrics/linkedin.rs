//! LinkedIn: a member post's totals from `memberCreatorPostAnalytics` (scope `r_member_postAnalytics`),
//! which answers one metric per call: REACTION → likes, COMMENT → comments, RESHARE → shares,
//! IMPRESSION → impressions (MEMBERS_REACHED has no field in [`Metrics`] and is not asked). Four calls
//! per post; the first refusal of a post ends that post's calls.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{Metrics, MetricsRequest, PostMetrics, int, invalid_id, missing_as_not_found, one_by_one};
use crate::platforms::http;
use crate::platforms::publish::linkedin::LINKEDIN_VERSION;
use crate::platforms::{ApiCtx, PlatformError};

/// The metrics asked for, in order.
pub const QUERY_TYPES: [&str; 4] = ["REACTION", "COMMENT", "RESHARE", "IMPRESSION"];

/// `GET /rest/memberCreatorPostAnalytics?q=entity&entity=…&queryType=…&aggregation=TOTAL` per metric.
#[tracing::instrument(skip_all, fields(platform = %ctx.platform))]
pub async fn fetch(
    ctx: &ApiCtx<'_>,
    token: &SecretString,
    posts: &[MetricsRequest<'_>],
) -> Result<Vec<PostMetrics>, PlatformError> {
    one_by_one(posts, move |post| fetch_one(ctx, token, post)).await
}

async fn fetch_one(ctx: &ApiCtx<'_>, token: &SecretString, post: MetricsRequest<'_>) -> PostMetrics {
    let urn = post.platform_post_id;
    let entity = entity(urn).ok_or_else(|| invalid_id(ctx.platform, urn))?;
    let mut m = Metrics::default();
    for query_type in QUERY_TYPES {
        let request = ctx
            .http
            .get(format!("{}{}", ctx.api_url, analytics_path(&entity, query_type)))
            .header(reqwest::header::USER_AGENT, ctx.user_agent)
            .header("LinkedIn-Version", LINKEDIN_VERSION)
            .header("X-Restli-Protocol-Version", "2.0.0")
            .bearer_auth(token.expose_secret());
        let json = http::send_json(ctx.platform, request)
            .await
            .map_err(missing_as_not_found)?;
        let count = read_count(&json, query_type).map_err(|e| PlatformError::invalid(ctx.platform, e))?;
        match query_type {
            "REACTION" => m.likes = Some(count),
            "COMMENT" => m.comments = Some(count),
            "RESHARE" => m.shares = Some(count),
            _ => m.impressions = Some(count),
        }
    }
    Ok(m)
}

/// The Rest.li `entity` of a post URN, URN-encoded: `(share:urn%3Ali%3Ashare%3A7123)` or
/// `(ugc:urn%3Ali%3AugcPost%3A7123)`. `None` for anything else.
pub fn entity(urn: &str) -> Option<String> {
    let (kind, id) = if let Some(id) = urn.strip_prefix("urn:li:share:") {
        ("share", id)
    } else if let Some(id) = urn.strip_prefix("urn:li:ugcPost:") {
        ("ugc", id)
    } else {
        return None;
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("({kind}:{})", urn.replace(':', "%3A")))
}

/// The path and query of one metric's lifetime total.
pub fn analytics_path(entity: &str, query_type: &str) -> String {
    format!("/rest/memberCreatorPostAnalytics?q=entity&entity={entity}&queryType={query_type}&aggregation=TOTAL")
}

/// The count of `{"elements":[{"count":N,"metricType":{"com.linkedin…CreatorPostAnalyticsMetricTypeV1":"REACTION"}}]}`:
/// the elements of that metric type (or without one), summed; no elements is 0.
pub fn read_count(json: &Value, query_type: &str) -> Result<i64, String> {
    let elements = json
        .get("elements")
        .and_then(Value::as_array)
        .ok_or("the analytics answered without an `elements` array")?;
    let ours: Vec<&Value> = elements
        .iter()
        .filter(|e| metric_type(e).is_none_or(|t| t == query_type))
        .collect();
    if ours.is_empty() && !elements.is_empty() {
        return Err(format!("the analytics answered no {query_type} element"));
    }
    ours.iter()
        .map(|e| int(e.get("count")).or_else(|| int(e.get("value"))))
        .try_fold(0i64, |sum, n| {
            n.map(|n| sum.saturating_add(n))
                .ok_or_else(|| format!("a {query_type} element has no count"))
        })
}

/// `metricType` as a plain string or as Rest.li's one-member union object.
fn metric_type(element: &Value) -> Option<&str> {
    match element.get("metricType")? {
        Value::String(s) => Some(s),
        Value::Object(m) if m.len() == 1 => m.values().next().and_then(Value::as_str),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entities_and_paths() {
        assert_eq!(
            entity("urn:li:share:7260000000000000001").as_deref(),
            Some("(share:urn%3Ali%3Ashare%3A7260000000000000001)")
        );
        assert_eq!(
            entity("urn:li:ugcPost:6443156446455693312").as_deref(),
            Some("(ugc:urn%3Ali%3AugcPost%3A6443156446455693312)")
        );
        assert_eq!(entity("urn:li:share:12&x=1"), None);
        assert_eq!(entity("urn:li:person:abc"), None);
        assert_eq!(entity("7123"), None);
        assert_eq!(
            analytics_path("(share:urn%3Ali%3Ashare%3A1)", "REACTION"),
            "/rest/memberCreatorPostAnalytics?q=entity&entity=(share:urn%3Ali%3Ashare%3A1)&queryType=REACTION&aggregation=TOTAL"
        );
    }

    #[test]
    fn reads_the_documented_answer() {
        let json = json!({"paging": {"start": 0, "count": 10, "links": []}, "elements": [{"count": 42,
            "metricType": {"com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1": "REACTION"}}]});
        assert_eq!(read_count(&json, "REACTION"), Ok(42));
        assert!(read_count(&json, "COMMENT").is_err());
        assert_eq!(
            read_count(&json!({"elements": [{"count": 3, "metricType": "COMMENT"}]}), "COMMENT"),
            Ok(3)
        );
        assert_eq!(read_count(&json!({"elements": [{"value": 5}]}), "RESHARE"), Ok(5));
        assert_eq!(read_count(&json!({"elements": []}), "RESHARE"), Ok(0));
        assert!(read_count(&json!({"message": "x"}), "RESHARE").is_err());
        assert!(read_count(&json!({"elements": [{"metricType": "RESHARE"}]}), "RESHARE").is_err());
    }
}
