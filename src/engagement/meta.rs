//! Meta webhook deliveries (Facebook Page `feed`, Instagram `comments` and `mentions`) normalised into
//! engagement facts.
//!
//! The body is parsed once into a [`serde_json::Value`]; each change is read by reference and only a
//! change that is not understood is moved (not copied) into [`Normalized::unknown`]. Rules (the
//! samples in `webhooks/` show each of them):
//!
//! - envelope `{"object":"page"|"instagram","entry":[…]}`; a top-level array of such envelopes (the shape
//!   Meta's Instagram examples show) is read envelope by envelope. Anything else is an error.
//! - Instagram entries may carry `changes` or, in the older shape, `field`/`value` directly.
//! - Page `feed`: `reaction`/`like`/`comment`/`share` items are facts; `status`/`post`/`photo`/`video` by
//!   the page itself are our own posts and are skipped; every other item, verb or field is kept raw.
//! - `occurred_at`: `value.created_time` (unix seconds), else `entry.time`; a change with neither is
//!   kept raw rather than dated arbitrarily.
//! - `item_index` numbers the facts of one delivery 0, 1, 2… in document order.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{EngagementFact, FactKind, NormalizeError, Normalized};
use crate::domain::platform::Platform;

const ENVELOPE: &str = "meta";

/// Normalise one Meta webhook delivery (`body` = the verified raw bytes).
///
/// `capture_text` keeps comment and share messages in [`EngagementFact::text`]; off by default.
pub fn normalize_meta(body: &[u8], capture_text: bool) -> Result<Normalized, NormalizeError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let mut out = Normalized::default();
    match root {
        Value::Object(envelope) => envelope_into(envelope, capture_text, &mut out)?,
        Value::Array(envelopes) if !envelopes.is_empty() => {
            for envelope in envelopes {
                let Value::Object(envelope) = envelope else {
                    return Err(NormalizeError::Envelope(ENVELOPE));
                };
                envelope_into(envelope, capture_text, &mut out)?;
            }
        }
        _ => return Err(NormalizeError::Envelope(ENVELOPE)),
    }
    Ok(out)
}

/// What one change turned into.
enum Outcome {
    Fact(Draft),
    /// Understood and deliberately not a fact (our own post).
    Skip,
    /// Not understood: kept raw.
    Unknown,
}

/// A fact before it gets its place in the delivery.
struct Draft {
    platform_post_id: String,
    kind: FactKind,
    delta: i32,
    verb: String,
    reaction_type: Option<String>,
    actor_id: Option<String>,
    comment_id: Option<String>,
    text: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// The entry a change belongs to.
struct Entry {
    platform: Option<Platform>,
    account: Option<String>,
    time: Option<DateTime<Utc>>,
}

fn envelope_into(
    mut envelope: Map<String, Value>,
    capture_text: bool,
    out: &mut Normalized,
) -> Result<(), NormalizeError> {
    let platform = match envelope.get("object") {
        Some(Value::String(object)) => match object.as_str() {
            "page" => Some(Platform::Facebook),
            "instagram" => Some(Platform::Instagram),
            // Another Meta object (user, permissions, whatsapp_business_account…): a valid envelope
            // whose changes nikara does not read.
            _ => None,
        },
        _ => return Err(NormalizeError::Envelope(ENVELOPE)),
    };
    let Some(Value::Array(entries)) = envelope.remove("entry") else {
        return Err(NormalizeError::Envelope(ENVELOPE));
    };
    for entry in entries {
        let Value::Object(mut entry) = entry else {
            out.unknown.push(entry);
            continue;
        };
        let ctx = Entry {
            platform,
            account: entry.get("id").and_then(id_string),
            time: entry.get("time").and_then(unix_seconds),
        };
        let mut seen = false;
        if let Some(changes) = entry.remove("changes") {
            seen = true;
            match changes {
                Value::Array(changes) => {
                    for change in changes {
                        change_into(&ctx, change, capture_text, out);
                    }
                }
                other => out.unknown.push(other),
            }
        }
        if !seen && platform == Some(Platform::Instagram) && entry.contains_key("field") {
            // The older Instagram shape: `field`/`value` sit on the entry itself.
            change_into(&ctx, Value::Object(entry), capture_text, out);
        } else if !seen {
            // `messaging`, `standby`… or an entry without changes: not engagement nikara reads.
            out.unknown.push(Value::Object(entry));
        }
    }
    Ok(())
}

fn change_into(ctx: &Entry, change: Value, capture_text: bool, out: &mut Normalized) {
    let outcome = classify(ctx, &change, capture_text);
    match (outcome, ctx.platform, &ctx.account) {
        (Outcome::Fact(draft), Some(platform), Some(account)) => {
            let item_index = u32::try_from(out.facts.len()).unwrap_or(u32::MAX);
            out.facts.push(EngagementFact {
                platform,
                account_external_id: account.clone(),
                platform_post_id: draft.platform_post_id,
                kind: draft.kind,
                delta: draft.delta,
                verb: draft.verb,
                reaction_type: draft.reaction_type,
                actor_id: draft.actor_id,
                comment_id: draft.comment_id,
                text: draft.text,
                occurred_at: draft.occurred_at,
                item_index,
            });
        }
        (Outcome::Skip, _, _) => {}
        _ => out.unknown.push(change),
    }
}

fn classify(ctx: &Entry, change: &Value, capture_text: bool) -> Outcome {
    if ctx.account.is_none() {
        return Outcome::Unknown;
    }
    let (Some(field), Some(value)) = (change.get("field").and_then(Value::as_str), change.get("value")) else {
        return Outcome::Unknown;
    };
    match (ctx.platform, field) {
        (Some(Platform::Facebook), "feed") => page_feed(ctx, value, capture_text),
        (Some(Platform::Instagram), "comments") => instagram_comment(ctx, value, capture_text),
        (Some(Platform::Instagram), "mentions") => instagram_mention(ctx, value),
        _ => Outcome::Unknown,
    }
}

fn page_feed(ctx: &Entry, value: &Value, capture_text: bool) -> Outcome {
    let Some(item) = value.get("item").and_then(Value::as_str) else {
        return Outcome::Unknown;
    };
    let from_id = value.get("from").and_then(|from| from.get("id")).and_then(id_string);
    let kind = match item {
        "reaction" => FactKind::Reaction,
        "like" => FactKind::Like,
        "comment" => FactKind::Comment,
        "share" => FactKind::Share,
        // Posts by the page itself are ours, not engagement. A visitor's post is neither: kept raw.
        "status" | "post" | "photo" | "video" => {
            return match from_id {
                Some(author) if Some(&author) != ctx.account.as_ref() => Outcome::Unknown,
                _ => Outcome::Skip,
            };
        }
        _ => return Outcome::Unknown,
    };
    let Some(verb) = value.get("verb").and_then(Value::as_str) else {
        return Outcome::Unknown;
    };
    let delta = match verb {
        "add" | "unhide" => 1,
        "remove" | "hide" => -1,
        "edited" => 0,
        // block/unblock and anything newer: kept raw.
        _ => return Outcome::Unknown,
    };
    let Some(platform_post_id) = value.get("post_id").and_then(id_string) else {
        return Outcome::Unknown;
    };
    let Some(occurred_at) = value.get("created_time").and_then(unix_seconds).or(ctx.time) else {
        return Outcome::Unknown;
    };
    let (actor_id, comment_id, reaction_type, text) = match kind {
        FactKind::Share => (
            value.get("sender_id").and_then(id_string).or(from_id),
            None,
            None,
            text_of(value, "message", capture_text),
        ),
        FactKind::Comment => (
            from_id,
            value.get("comment_id").and_then(id_string),
            None,
            text_of(value, "message", capture_text),
        ),
        // Reactions and likes: `comment_id` is set when the reaction is on a comment of the post.
        _ => (
            from_id,
            value.get("comment_id").and_then(id_string),
            value.get("reaction_type").and_then(Value::as_str).map(str::to_owned),
            None,
        ),
    };
    Outcome::Fact(Draft {
        platform_post_id,
        kind,
        delta,
        verb: verb.to_owned(),
        reaction_type,
        actor_id,
        comment_id,
        text,
        occurred_at,
    })
}

fn instagram_comment(ctx: &Entry, value: &Value, capture_text: bool) -> Outcome {
    let media_id = value.get("media").and_then(|media| media.get("id")).and_then(id_string);
    let (Some(platform_post_id), Some(comment_id)) = (media_id, value.get("id").and_then(id_string)) else {
        return Outcome::Unknown;
    };
    let Some(occurred_at) = value.get("created_time").and_then(unix_seconds).or(ctx.time) else {
        return Outcome::Unknown;
    };
    Outcome::Fact(Draft {
        platform_post_id,
        kind: FactKind::Comment,
        delta: 1,
        verb: "add".to_owned(),
        reaction_type: None,
        actor_id: value.get("from").and_then(|from| from.get("id")).and_then(id_string),
        comment_id: Some(comment_id),
        text: text_of(value, "text", capture_text),
        occurred_at,
    })
}

fn instagram_mention(ctx: &Entry, value: &Value) -> Outcome {
    let Some(platform_post_id) = value.get("media_id").and_then(id_string) else {
        return Outcome::Unknown;
    };
    let Some(occurred_at) = ctx.time else {
        return Outcome::Unknown;
    };
    Outcome::Fact(Draft {
        platform_post_id,
        kind: FactKind::Mention,
        delta: 1,
        verb: "add".to_owned(),
        reaction_type: None,
        actor_id: None,
        comment_id: value.get("comment_id").and_then(id_string),
        text: None,
        occurred_at,
    })
}

fn text_of(value: &Value, key: &str, capture_text: bool) -> Option<String> {
    if !capture_text {
        return None;
    }
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An id as a string: a non-empty JSON string as is, an integer in decimal (exact for 64-bit ids, which
/// `serde_json` keeps as integers). Anything else is no id.
pub(super) fn id_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// Unix seconds (an integer or a numeric string) or a Graph API / RFC 3339 date string.
pub(super) fn unix_seconds(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|secs| DateTime::from_timestamp(secs, 0)),
        Value::String(s) => match s.parse::<i64>() {
            Ok(secs) => DateTime::from_timestamp(secs, 0),
            Err(_) => DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z"))
                .map(|t| t.with_timezone(&Utc))
                .ok(),
        },
        _ => None,
    }
}

/// Unix milliseconds, an integer or a numeric string.
pub(super) fn unix_millis(value: &Value) -> Option<DateTime<Utc>> {
    let millis = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse::<i64>().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    use super::*;

    const PAGE: &str = "112233445566778";
    const POST: &str = "112233445566778_9000000001";
    const IG: &str = "17841400000000001";
    const T: i64 = 1_779_267_600;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn page(changes: Vec<Value>) -> Value {
        json!({"entry": [{"id": PAGE, "time": T, "changes": changes}], "object": "page"})
    }

    fn feed(value: Value) -> Value {
        json!({"field": "feed", "value": value})
    }

    fn run(body: &Value, capture_text: bool) -> Normalized {
        normalize_meta(&serde_json::to_vec(body).unwrap(), capture_text).unwrap()
    }

    fn reaction(verb: &str) -> Value {
        json!({"item": "reaction", "verb": verb, "reaction_type": "love", "post_id": POST, "parent_id": POST,
            "created_time": T + 3, "from": {"id": "24816000000000001", "name": "Ada"}})
    }

    fn comment(verb: &str) -> Value {
        json!({"item": "comment", "verb": verb, "comment_id": "9000000001_2100000000000001", "post_id": POST,
            "parent_id": POST, "created_time": T + 4, "message": "Nice!", "from": {"id": "24816000000000002"}})
    }

    fn share(verb: &str) -> Value {
        json!({"item": "share", "verb": verb, "share_id": "10000000000000001", "post_id": POST,
            "sender_id": "24816000000000003", "created_time": T + 5, "published": 1, "message": "Worth a read",
            "link": "https://example.com/launch"})
    }

    #[test]
    fn a_reaction_becomes_a_reaction_fact_with_its_type() {
        let out = run(&page(vec![feed(reaction("add"))]), false);
        assert_eq!(
            out.facts,
            vec![EngagementFact {
                platform: Platform::Facebook,
                account_external_id: PAGE.into(),
                platform_post_id: POST.into(),
                kind: FactKind::Reaction,
                delta: 1,
                verb: "add".into(),
                reaction_type: Some("love".into()),
                actor_id: Some("24816000000000001".into()),
                comment_id: None,
                text: None,
                occurred_at: at(T + 3),
                item_index: 0,
            }]
        );
        assert!(out.unknown.is_empty() && out.revocations.is_empty());
    }

    #[test]
    fn verbs_map_to_deltas_for_every_item() {
        let like = |verb: &str| json!({"item": "like", "verb": verb, "post_id": POST, "from": {"id": "1"}});
        for (verb, delta) in [("add", 1), ("remove", -1), ("hide", -1), ("unhide", 1), ("edited", 0)] {
            let out = run(
                &page(vec![
                    feed(reaction(verb)),
                    feed(comment(verb)),
                    feed(share(verb)),
                    feed(like(verb)),
                ]),
                false,
            );
            let got: Vec<_> = out.facts.iter().map(|f| (f.kind, f.delta, f.verb.as_str())).collect();
            assert_eq!(
                got,
                vec![
                    (FactKind::Reaction, delta, verb),
                    (FactKind::Comment, delta, verb),
                    (FactKind::Share, delta, verb),
                    (FactKind::Like, delta, verb),
                ],
                "verb {verb}"
            );
            assert!(out.unknown.is_empty(), "verb {verb}");
        }
    }

    #[test]
    fn block_unblock_unknown_and_missing_verbs_are_kept_raw() {
        let mut missing = comment("add");
        missing.as_object_mut().unwrap().remove("verb");
        let changes = vec![
            feed(comment("block")),
            feed(comment("unblock")),
            feed(reaction("mute")),
            feed(missing),
        ];
        let out = run(&page(changes.clone()), false);
        assert!(out.facts.is_empty());
        assert_eq!(out.unknown, changes, "kept raw, as delivered, in order");
    }

    #[test]
    fn a_like_item_is_a_like() {
        let out = run(
            &page(vec![feed(
                json!({"item": "like", "verb": "add", "post_id": POST, "from": {"id": "7"}}),
            )]),
            false,
        );
        let fact = &out.facts[0];
        assert_eq!(
            (fact.kind, fact.delta, fact.reaction_type.as_deref()),
            (FactKind::Like, 1, None)
        );
        assert_eq!(fact.actor_id.as_deref(), Some("7"));
        assert_eq!(fact.occurred_at, at(T), "no created_time: entry.time");
    }

    #[test]
    fn a_comment_carries_its_id_actor_and_text_only_when_captured() {
        let body = page(vec![feed(comment("add"))]);
        let fact = run(&body, false).facts.remove(0);
        assert_eq!(fact.kind, FactKind::Comment);
        assert_eq!(fact.comment_id.as_deref(), Some("9000000001_2100000000000001"));
        assert_eq!(fact.actor_id.as_deref(), Some("24816000000000002"));
        assert_eq!(fact.reaction_type, None);
        assert_eq!(fact.text, None, "text capture is off");
        assert_eq!(run(&body, true).facts[0].text.as_deref(), Some("Nice!"));
    }

    #[test]
    fn a_share_takes_its_actor_from_sender_id_else_from() {
        let body = page(vec![feed(share("add"))]);
        let fact = run(&body, false).facts.remove(0);
        assert_eq!((fact.kind, fact.delta), (FactKind::Share, 1));
        assert_eq!(fact.actor_id.as_deref(), Some("24816000000000003"));
        assert_eq!((fact.comment_id, fact.text), (None, None));
        assert_eq!(run(&body, true).facts[0].text.as_deref(), Some("Worth a read"));

        let mut from_only = share("add");
        let value = from_only.as_object_mut().unwrap();
        value.remove("sender_id");
        value.insert("from".into(), json!({"id": "24816000000000009"}));
        let fact = run(&page(vec![feed(from_only)]), false).facts.remove(0);
        assert_eq!(fact.actor_id.as_deref(), Some("24816000000000009"));
    }

    #[test]
    fn a_reaction_on_a_comment_names_the_comment_and_has_no_text() {
        let mut value = reaction("add");
        value
            .as_object_mut()
            .unwrap()
            .insert("comment_id".into(), json!("9000000001_2100000000000001"));
        let fact = run(&page(vec![feed(value)]), true).facts.remove(0);
        assert_eq!(fact.comment_id.as_deref(), Some("9000000001_2100000000000001"));
        assert_eq!(fact.text, None);
    }

    #[test]
    fn our_own_posts_are_skipped_and_a_visitors_post_is_kept_raw() {
        let mut changes = Vec::new();
        for item in ["status", "post", "photo", "video"] {
            changes.push(feed(
                json!({"item": item, "verb": "add", "post_id": POST, "from": {"id": PAGE}}),
            ));
            changes.push(feed(json!({"item": item, "verb": "edited", "post_id": POST})));
        }
        let out = run(&page(changes), false);
        assert_eq!(out, Normalized::default(), "neither a fact nor unknown");

        let visitor =
            feed(json!({"item": "post", "verb": "add", "post_id": POST, "from": {"id": "24816000000000001"}}));
        let out = run(&page(vec![visitor.clone()]), false);
        assert!(out.facts.is_empty());
        assert_eq!(out.unknown, vec![visitor]);
    }

    #[test]
    fn unknown_items_and_fields_are_kept_raw() {
        let changes = vec![
            feed(json!({"item": "event", "verb": "add", "post_id": POST})),
            feed(json!({"verb": "add", "post_id": POST})),
            json!({"field": "ratings", "value": {"item": "rating", "verb": "add", "rating": 5}}),
            json!({"field": "mention", "value": {"item": "post", "verb": "add", "post_id": POST}}),
            json!({"field": "feed"}),
            json!({"value": reaction("add")}),
            json!("not an object"),
        ];
        let out = run(&page(changes.clone()), false);
        assert!(out.facts.is_empty());
        assert_eq!(out.unknown, changes);
    }

    #[test]
    fn a_change_without_post_id_is_kept_raw() {
        let mut value = reaction("add");
        value.as_object_mut().unwrap().insert("post_id".into(), json!(""));
        let out = run(&page(vec![feed(value)]), false);
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 1));
    }

    #[test]
    fn occurred_at_is_created_time_then_entry_time() {
        let mut numeric_string = reaction("add");
        numeric_string
            .as_object_mut()
            .unwrap()
            .insert("created_time".into(), json!((T + 9).to_string()));
        let mut graph_date = reaction("add");
        graph_date
            .as_object_mut()
            .unwrap()
            .insert("created_time".into(), json!("2026-05-20T09:00:10+0000"));
        let mut garbage = reaction("add");
        garbage
            .as_object_mut()
            .unwrap()
            .insert("created_time".into(), json!("soon"));
        let mut absent = reaction("add");
        absent.as_object_mut().unwrap().remove("created_time");
        let out = run(
            &page(vec![
                feed(reaction("add")),
                feed(numeric_string),
                feed(graph_date),
                feed(garbage),
                feed(absent),
            ]),
            false,
        );
        let times: Vec<_> = out.facts.iter().map(|f| f.occurred_at).collect();
        assert_eq!(times, vec![at(T + 3), at(T + 9), at(T + 10), at(T), at(T)]);
    }

    #[test]
    fn without_created_time_or_entry_time_a_change_is_kept_raw() {
        let mut value = reaction("add");
        value.as_object_mut().unwrap().remove("created_time");
        let body = json!({"object": "page", "entry": [{"id": PAGE, "changes": [feed(value)]}]});
        let out = run(&body, false);
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 1));
    }

    fn ig_comment_value() -> Value {
        json!({"from": {"id": "17850000000000001", "username": "ada"}, "media": {"id": "17900000000000001",
            "media_product_type": "FEED"}, "id": "17860000000000001", "text": "Beautiful"})
    }

    #[test]
    fn instagram_comments_read_the_same_in_both_envelope_shapes() {
        let current = json!({"object": "instagram", "entry": [{"id": IG, "time": T, "changes": [
            {"field": "comments", "value": ig_comment_value()}]}]});
        let legacy = json!({"object": "instagram", "entry": [
            {"id": IG, "time": T, "field": "comments", "value": ig_comment_value()}]});
        let out = run(&current, true);
        assert_eq!(
            out.facts,
            vec![EngagementFact {
                platform: Platform::Instagram,
                account_external_id: IG.into(),
                platform_post_id: "17900000000000001".into(),
                kind: FactKind::Comment,
                delta: 1,
                verb: "add".into(),
                reaction_type: None,
                actor_id: Some("17850000000000001".into()),
                comment_id: Some("17860000000000001".into()),
                text: Some("Beautiful".into()),
                occurred_at: at(T),
                item_index: 0,
            }]
        );
        assert_eq!(run(&legacy, true), out);
        assert_eq!(run(&legacy, false).facts[0].text, None);
    }

    #[test]
    fn instagram_comment_without_media_or_id_is_kept_raw() {
        let mut no_media = ig_comment_value();
        no_media.as_object_mut().unwrap().remove("media");
        let mut no_id = ig_comment_value();
        no_id.as_object_mut().unwrap().remove("id");
        let changes = vec![
            json!({"field": "comments", "value": no_media}),
            json!({"field": "comments", "value": no_id}),
        ];
        let out = run(
            &json!({"object": "instagram", "entry": [{"id": IG, "time": T, "changes": changes}]}),
            false,
        );
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 2));
    }

    #[test]
    fn instagram_mentions_with_and_without_a_comment() {
        let body = json!({"object": "instagram", "entry": [{"id": IG, "time": T, "changes": [
            {"field": "mentions", "value": {"media_id": "17900000000000101", "comment_id": "17860000000000010"}},
            {"field": "mentions", "value": {"media_id": "17900000000000102"}},
            {"field": "mentions", "value": {"comment_id": "17860000000000011"}}]}]});
        let out = run(&body, true);
        let got: Vec<_> = out
            .facts
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.delta,
                    f.platform_post_id.as_str(),
                    f.comment_id.as_deref(),
                    f.item_index,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (FactKind::Mention, 1, "17900000000000101", Some("17860000000000010"), 0),
                (FactKind::Mention, 1, "17900000000000102", None, 1),
            ]
        );
        assert_eq!(out.unknown.len(), 1, "a mention without media_id");
    }

    #[test]
    fn other_instagram_fields_are_kept_raw() {
        let changes: Vec<Value> = ["live_comments", "messages", "story_insights", "feed"]
            .into_iter()
            .map(|field| json!({"field": field, "value": ig_comment_value()}))
            .collect();
        let out = run(
            &json!({"object": "instagram", "entry": [{"id": IG, "time": T, "changes": changes}]}),
            false,
        );
        assert!(out.facts.is_empty());
        assert_eq!(out.unknown, changes);
        // …and a page does not read Instagram fields.
        let out = run(
            &page(vec![json!({"field": "comments", "value": ig_comment_value()})]),
            false,
        );
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 1));
    }

    #[test]
    fn item_index_counts_facts_from_zero_in_document_order_across_entries() {
        let body = json!({"object": "page", "entry": [
            {"id": PAGE, "time": T, "changes": [
                feed(reaction("add")),
                feed(json!({"item": "status", "verb": "add", "post_id": POST})),
                feed(comment("block")),
                feed(comment("add"))]},
            {"id": "998877665544332", "time": T + 60, "changes": [
                feed(share("add")),
                feed(reaction("remove"))]}]});
        let out = run(&body, false);
        let got: Vec<_> = out
            .facts
            .iter()
            .map(|f| (f.item_index, f.kind, f.account_external_id.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, FactKind::Reaction, PAGE),
                (1, FactKind::Comment, PAGE),
                (2, FactKind::Share, "998877665544332"),
                (3, FactKind::Reaction, "998877665544332"),
            ]
        );
        assert_eq!(out.unknown.len(), 1);
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error() {
        for body in [
            &b""[..],
            b"not json",
            b"{\"object\":\"page\",",
            b"\xff\xfe",
            b"{} trailing",
        ] {
            assert!(
                matches!(normalize_meta(body, false), Err(NormalizeError::NotJson(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn json_that_is_not_an_envelope_is_an_error() {
        for body in [
            "{}",
            "[]",
            "[1]",
            "\"page\"",
            "42",
            "null",
            r#"{"object":"page"}"#,
            r#"{"entry":[]}"#,
            r#"{"object":1,"entry":[]}"#,
            r#"{"object":"page","entry":{}}"#,
            r#"[{"object":"page","entry":[]},{"object":"page"}]"#,
        ] {
            let got = normalize_meta(body.as_bytes(), false);
            assert!(matches!(got, Err(NormalizeError::Envelope("meta"))), "{body}: {got:?}");
        }
    }

    #[test]
    fn an_array_of_envelopes_is_read_in_order() {
        let body = json!([page(vec![feed(reaction("add"))]), page(vec![feed(comment("add"))])]);
        let got: Vec<_> = run(&body, false).facts.iter().map(|f| (f.item_index, f.kind)).collect();
        assert_eq!(got, vec![(0, FactKind::Reaction), (1, FactKind::Comment)]);
    }

    #[test]
    fn odd_entries_are_kept_raw() {
        let messaging = json!({"id": PAGE, "time": T, "messaging": [{"sender": {"id": "1"}}]});
        let body = json!({"object": "page", "entry": [
            messaging,
            "not an entry",
            {"id": PAGE, "time": T, "changes": {"field": "feed"}},
            {"time": T, "changes": [feed(reaction("add"))]},
            {"id": PAGE, "time": T, "changes": []}]});
        let out = run(&body, false);
        assert!(out.facts.is_empty());
        assert_eq!(
            out.unknown,
            vec![
                messaging,
                json!("not an entry"),
                json!({"field": "feed"}),
                feed(reaction("add")), // no entry id: no account to put it under
            ]
        );
    }

    #[test]
    fn other_meta_objects_are_envelopes_whose_changes_are_unknown() {
        let body = json!({"object": "user", "entry": [{"id": "1", "time": T, "changes": [feed(reaction("add"))]}]});
        let out = run(&body, false);
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 1));
    }

    #[test]
    fn numeric_ids_become_exact_strings() {
        let value = json!({"item": "reaction", "verb": "add", "reaction_type": "like", "post_id": POST,
            "from": {"id": 24_816_000_000_000_001_u64}});
        let body =
            json!({"object": "page", "entry": [{"id": 112_233_445_566_778_u64, "time": T, "changes": [feed(value)]}]});
        let fact = run(&body, false).facts.remove(0);
        assert_eq!(fact.account_external_id, PAGE);
        assert_eq!(fact.actor_id.as_deref(), Some("24816000000000001"));
    }

    #[test]
    fn a_thousand_change_batch_is_read_whole() {
        let changes: Vec<Value> = (0..1000)
            .map(|i| feed(if i % 2 == 0 { reaction("add") } else { comment("add") }))
            .collect();
        let out = run(&page(changes), false);
        assert_eq!(out.facts.len(), 1000);
        assert!(out.facts.iter().enumerate().all(|(i, f)| f.item_index as usize == i));
    }

    // ---- signed samples (webhooks/meta/) -------------------------------------------------------

    /// Facts, unknown, sum of deltas, fact kinds with their counts in order of first appearance.
    type Expected = (usize, usize, i32, Vec<(FactKind, usize)>);

    /// Sample name → what it normalises to.
    fn expected() -> BTreeMap<&'static str, Expected> {
        use FactKind::*;
        BTreeMap::from([
            ("feed_reaction_add", (1, 0, 1, vec![(Reaction, 1)])),
            ("feed_reaction_remove", (1, 0, -1, vec![(Reaction, 1)])),
            ("feed_comment_add", (1, 0, 1, vec![(Comment, 1)])),
            ("feed_comment_edited", (1, 0, 0, vec![(Comment, 1)])),
            ("feed_comment_hide", (1, 0, -1, vec![(Comment, 1)])),
            ("feed_share_add", (1, 0, 1, vec![(Share, 1)])),
            (
                "feed_batch_100",
                (91, 4, 35, vec![(Reaction, 40), (Comment, 36), (Share, 10), (Like, 5)]),
            ),
            ("instagram_comment", (1, 0, 1, vec![(Comment, 1)])),
            ("instagram_comment_legacy_shape", (2, 0, 2, vec![(Comment, 2)])),
            ("instagram_mention", (2, 0, 2, vec![(Mention, 2)])),
            ("unknown_field", (1, 2, 1, vec![(Reaction, 1)])),
        ])
    }

    fn samples_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks").join("meta")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex(&mac.finalize().into_bytes()))
    }

    #[test]
    fn every_signed_sample_verifies_and_normalises_as_expected() {
        let dir = samples_dir();
        let secret = std::fs::read_to_string(dir.join("SECRET")).unwrap();
        let secret = secret.trim().as_bytes();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".headers.json").map(str::to_owned))
            .collect();
        names.sort();
        let expected = expected();
        assert_eq!(
            names,
            expected.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            "samples on disk"
        );
        for name in &names {
            let body = std::fs::read(dir.join(format!("{name}.json"))).unwrap();
            let headers: BTreeMap<String, String> =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.headers.json"))).unwrap()).unwrap();
            assert_eq!(
                headers.get("content-type").map(String::as_str),
                Some("application/json"),
                "{name}"
            );
            assert_eq!(
                headers.get("x-hub-signature-256"),
                Some(&signature(secret, &body)),
                "{name}: signature"
            );
            let mut tampered = body.clone();
            tampered[body.len() / 2] ^= 1;
            assert_ne!(
                headers.get("x-hub-signature-256"),
                Some(&signature(secret, &tampered)),
                "{name}"
            );

            let out = normalize_meta(&body, false).unwrap();
            let (facts, unknown, delta, kinds) = &expected[name.as_str()];
            assert_eq!(
                (out.facts.len(), out.unknown.len()),
                (*facts, *unknown),
                "{name}: facts, unknown"
            );
            assert_eq!(out.facts.iter().map(|f| f.delta).sum::<i32>(), *delta, "{name}: deltas");
            let mut got: Vec<(FactKind, usize)> = Vec::new();
            for fact in &out.facts {
                match got.iter_mut().find(|(kind, _)| *kind == fact.kind) {
                    Some((_, n)) => *n += 1,
                    None => got.push((fact.kind, 1)),
                }
            }
            assert_eq!(&got, kinds, "{name}: kinds");
            assert!(
                out.facts.iter().enumerate().all(|(i, f)| f.item_index as usize == i),
                "{name}"
            );
            assert!(
                out.facts.iter().all(|f| f.text.is_none()),
                "{name}: no text without capture"
            );
            assert!(out.revocations.is_empty());
            let with_text = normalize_meta(&body, true).unwrap();
            assert_eq!(
                with_text.facts.len(),
                out.facts.len(),
                "{name}: capture changes text only"
            );
        }
    }

    #[test]
    fn sample_details() {
        let read = |name: &str| std::fs::read(samples_dir().join(format!("{name}.json"))).unwrap();
        let fact = normalize_meta(&read("feed_comment_add"), true).unwrap().facts.remove(0);
        assert_eq!(
            fact.text.as_deref(),
            Some("Congrats on the launch! \u{1f389}"),
            "escaped emoji decoded"
        );
        assert_eq!(fact.platform_post_id, "112233445566778_9000000001");
        let out = normalize_meta(&read("feed_batch_100"), false).unwrap();
        let entry_times: Vec<_> = (0..4).map(|e| at(1_779_268_600 + e * 300 + 290)).collect();
        let fallbacks = out
            .facts
            .iter()
            .filter(|f| entry_times.contains(&f.occurred_at))
            .count();
        assert_eq!(
            fallbacks, 3,
            "three changes without created_time date from entry.time (the fourth is unknown)"
        );
        let legacy = normalize_meta(&read("instagram_comment_legacy_shape"), false).unwrap();
        assert_eq!(legacy.facts[1].occurred_at, at(T + 470));
    }
}
