//! X Account Activity API deliveries normalised into engagement facts and revocations.
//!
//! The top-level object is read key by key in document order (so `item_index` follows the body even when
//! one delivery carries several arrays); each event is a [`serde_json::Value`] read by reference and
//! moved into [`Normalized::unknown`] only when it is not understood. Rules (the
//! samples in `webhooks/` show each of them):
//!
//! - ids are always the string forms (`id_str`); the integer `id` is read only when `id_str` is absent,
//!   and then exactly (`serde_json` keeps 64-bit integers as integers).
//! - `favorite_events`: a like of a tweet by `for_user_id` → Like; our user liking another's tweet →
//!   skipped.
//! - `tweet_create_events`: our own tweets are skipped; then, first match wins: retweet of ours → Repost,
//!   quote of ours → Quote, reply to one of our tweets → Reply, a mention of us → Mention (post ""). The
//!   engaging tweet's id goes into `comment_id` (so a later `tweet_delete_events` can be matched).
//! - `follow_events` targeting us → Follow ±1; us following someone → skipped.
//! - `user_event.revoke` → [`Revocation`].
//! - every other array's items (`direct_message_events`, `tweet_delete_events`, …), and the newer
//!   `{"data":{…}}` envelope as a whole → unknown, kept raw. `users`/`apps` lookup maps and scalar
//!   flags (`user_has_blocked`) only accompany other events and are not items.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::meta::{id_string, unix_millis};
use super::{EngagementFact, FactKind, NormalizeError, Normalized, Revocation};
use crate::domain::platform::Platform;

const ENVELOPE: &str = "x";

/// Normalise one X Account Activity delivery (`body` = the verified raw bytes).
///
/// `capture_text` keeps the engaging tweet's text in [`EngagementFact::text`]; off by default.
pub fn normalize_x(body: &[u8], capture_text: bool) -> Result<Normalized, NormalizeError> {
    let Top(top) = serde_json::from_slice(body).map_err(|e| NormalizeError::NotJson(e.to_string()))?;
    let Some(top) = top else {
        return Err(NormalizeError::Envelope(ENVELOPE));
    };
    let mut out = Normalized::default();
    let is_account_activity = top
        .iter()
        .any(|(key, _)| key == "for_user_id" || key == "user_event" || key.ends_with("_events"));
    if !is_account_activity {
        if !top.iter().any(|(key, value)| key == "data" && value.is_object()) {
            return Err(NormalizeError::Envelope(ENVELOPE));
        }
        // The newer X Activity API envelope: not read yet, kept whole.
        out.unknown.push(Value::Object(top.into_iter().collect()));
        return Ok(out);
    }
    let for_user_id = top
        .iter()
        .find(|(key, _)| key == "for_user_id")
        .and_then(|(_, value)| id_string(value));
    let us = for_user_id.as_deref();
    for (key, value) in top {
        match key.as_str() {
            "for_user_id" | "users" | "apps" => {}
            "favorite_events" => each(value, &mut out, |event, out| favorite(us, event, out)),
            "tweet_create_events" => each(value, &mut out, |tweet, out| tweet_create(us, tweet, capture_text, out)),
            "follow_events" => each(value, &mut out, |event, out| follow(us, event, out)),
            "user_event" => user_event(us, value, &mut out),
            _ => match value {
                Value::Array(items) => out.unknown.extend(items),
                Value::Object(_) => out.unknown.push(value),
                // Flags such as `user_has_blocked` qualify the events beside them.
                _ => {}
            },
        }
    }
    Ok(out)
}

/// What one event turned into.
enum Outcome {
    Fact(EngagementFact),
    Skip,
    Unknown,
}

/// Runs `classify` on every item of an events array; a non-array is kept raw.
fn each(value: Value, out: &mut Normalized, classify: impl Fn(&Value, &Normalized) -> Outcome) {
    let Value::Array(items) = value else {
        out.unknown.push(value);
        return;
    };
    for item in items {
        match classify(&item, out) {
            Outcome::Fact(fact) => out.facts.push(fact),
            Outcome::Skip => {}
            Outcome::Unknown => out.unknown.push(item),
        }
    }
}

fn next_index(out: &Normalized) -> u32 {
    u32::try_from(out.facts.len()).unwrap_or(u32::MAX)
}

#[allow(clippy::too_many_arguments)] // one fact's columns
fn fact(
    out: &Normalized,
    us: &str,
    platform_post_id: String,
    kind: FactKind,
    delta: i32,
    verb: &str,
    actor_id: Option<String>,
    comment_id: Option<String>,
    text: Option<String>,
    occurred_at: DateTime<Utc>,
) -> Outcome {
    Outcome::Fact(EngagementFact {
        platform: Platform::X,
        account_external_id: us.to_owned(),
        platform_post_id,
        kind,
        delta,
        verb: verb.to_owned(),
        reaction_type: None,
        actor_id,
        comment_id,
        text,
        occurred_at,
        item_index: next_index(out),
    })
}

fn favorite(us: Option<&str>, event: &Value, out: &Normalized) -> Outcome {
    let Some(us) = us else {
        return Outcome::Unknown;
    };
    let Some(status) = event.get("favorited_status") else {
        return Outcome::Unknown;
    };
    let Some(author) = status.get("user").and_then(tweet_id) else {
        return Outcome::Unknown;
    };
    if author != us {
        // Our user liked someone else's tweet.
        return Outcome::Skip;
    }
    let (Some(tweet), Some(occurred_at)) = (tweet_id(status), occurred_at(event)) else {
        return Outcome::Unknown;
    };
    let actor = event.get("user").and_then(tweet_id);
    fact(
        out,
        us,
        tweet,
        FactKind::Like,
        1,
        "favorite",
        actor,
        None,
        None,
        occurred_at,
    )
}

fn tweet_create(us: Option<&str>, tweet: &Value, capture_text: bool, out: &Normalized) -> Outcome {
    let Some(us) = us else {
        return Outcome::Unknown;
    };
    let Some(author) = tweet.get("user").and_then(tweet_id) else {
        return Outcome::Unknown;
    };
    if author == us {
        // Our own post (including our own replies, quotes and retweets).
        return Outcome::Skip;
    }
    let (Some(own_id), Some(occurred_at)) = (tweet_id(tweet), occurred_at(tweet)) else {
        return Outcome::Unknown;
    };
    let by_us = |status: &Value| status.get("user").and_then(tweet_id).as_deref() == Some(us);
    let (kind, post) = if let Some(original) = tweet.get("retweeted_status").filter(|s| by_us(s)) {
        (FactKind::Repost, tweet_id(original))
    } else if let Some(quoted) = tweet.get("quoted_status").filter(|s| by_us(s)) {
        (FactKind::Quote, tweet_id(quoted))
    } else if let Some(replied) = replied_status(tweet, us) {
        (FactKind::Reply, Some(replied))
    } else if mentions(tweet, us) {
        (FactKind::Mention, Some(String::new()))
    } else {
        return Outcome::Unknown;
    };
    let Some(post) = post else {
        return Outcome::Unknown;
    };
    let text = match (capture_text, kind) {
        (false, _) | (true, FactKind::Repost) => None,
        (true, _) => tweet_text(tweet),
    };
    fact(
        out,
        us,
        post,
        kind,
        1,
        "create",
        Some(author),
        Some(own_id),
        text,
        occurred_at,
    )
}

/// The tweet of ours this one replies to.
fn replied_status(tweet: &Value, us: &str) -> Option<String> {
    let to_user = string_form(tweet, "in_reply_to_user_id_str", "in_reply_to_user_id")?;
    if to_user != us {
        return None;
    }
    string_form(tweet, "in_reply_to_status_id_str", "in_reply_to_status_id")
}

/// Whether `entities.user_mentions` (or the extended tweet's) names us.
fn mentions(tweet: &Value, us: &str) -> bool {
    let lists = [
        tweet.get("entities"),
        tweet
            .get("extended_tweet")
            .and_then(|extended| extended.get("entities")),
    ];
    lists
        .into_iter()
        .flatten()
        .filter_map(|entities| entities.get("user_mentions").and_then(Value::as_array))
        .flatten()
        .any(|mention| tweet_id(mention).as_deref() == Some(us))
}

fn tweet_text(tweet: &Value) -> Option<String> {
    tweet
        .get("extended_tweet")
        .and_then(|extended| extended.get("full_text"))
        .or_else(|| tweet.get("full_text"))
        .or_else(|| tweet.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn follow(us: Option<&str>, event: &Value, out: &Normalized) -> Outcome {
    let Some(us) = us else {
        return Outcome::Unknown;
    };
    let (Some(verb), Some(target)) = (
        event.get("type").and_then(Value::as_str),
        event.get("target").and_then(tweet_id),
    ) else {
        return Outcome::Unknown;
    };
    let delta = match verb {
        "follow" => 1,
        "unfollow" => -1,
        _ => return Outcome::Unknown,
    };
    let source = event.get("source").and_then(tweet_id);
    if target != us {
        // Our user followed or unfollowed someone: skipped; anything else is not ours to read.
        return if source.as_deref() == Some(us) {
            Outcome::Skip
        } else {
            Outcome::Unknown
        };
    }
    let Some(occurred_at) = event.get("created_timestamp").and_then(unix_millis) else {
        return Outcome::Unknown;
    };
    fact(
        out,
        us,
        String::new(),
        FactKind::Follow,
        delta,
        verb,
        source,
        None,
        None,
        occurred_at,
    )
}

fn user_event(us: Option<&str>, value: Value, out: &mut Normalized) {
    let revocation = value.get("revoke").and_then(|revoke| {
        let user = revoke
            .get("source")
            .and_then(|source| source.get("user_id"))
            .and_then(id_string)
            .or_else(|| us.map(str::to_owned))?;
        let app = revoke
            .get("target")
            .and_then(|target| target.get("app_id"))
            .and_then(id_string)
            .unwrap_or_else(|| "?".to_owned());
        let when = revoke
            .get("date_time")
            .and_then(Value::as_str)
            .unwrap_or("an unknown time");
        Some(Revocation {
            platform: Platform::X,
            message: format!("access revoked on X: user {user} de-authorised app {app} at {when}"),
            external_id: user,
        })
    });
    match revocation {
        Some(revocation) => out.revocations.push(revocation),
        None => out.unknown.push(value),
    }
}

/// `occurred_at` of a tweet or favorite: `timestamp_ms`, else `created_at` ("Wed Oct 10 20:19:24 +0000
/// 2018").
fn occurred_at(event: &Value) -> Option<DateTime<Utc>> {
    event.get("timestamp_ms").and_then(unix_millis).or_else(|| {
        let created = event.get("created_at").and_then(Value::as_str)?;
        DateTime::parse_from_str(created, "%a %b %d %H:%M:%S %z %Y")
            .map(|t| t.with_timezone(&Utc))
            .ok()
    })
}

/// The string id of a tweet or user object: `id_str`, else `id`.
fn tweet_id(object: &Value) -> Option<String> {
    string_form(object, "id_str", "id")
}

fn string_form(object: &Value, string_key: &str, integer_key: &str) -> Option<String> {
    object
        .get(string_key)
        .and_then(id_string)
        .or_else(|| object.get(integer_key).and_then(id_string))
}

/// The top level of a delivery: its keys in document order (`None` when the JSON is not an object).
struct Top(Option<Vec<(String, Value)>>);

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Top(Some(entries)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top(None))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    use super::*;

    const US: &str = "1512345678901234567";
    const OURS: &str = "1850000000000000001";
    const ADA: &str = "1400000000000000001";
    const MS: i64 = 1_779_267_600_417;

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn user(id: &str) -> Value {
        json!({"id": id.parse::<u64>().unwrap(), "id_str": id, "screen_name": format!("user{}", &id[id.len() - 3..])})
    }

    fn our_tweet() -> Value {
        json!({"id": OURS.parse::<u64>().unwrap(), "id_str": OURS, "text": "We launched", "user": user(US),
            "entities": {"user_mentions": []}})
    }

    fn tweet(id: &str, author: &str, text: &str) -> Value {
        json!({"created_at": "Wed May 20 09:00:00 +0000 2026", "id": id.parse::<u64>().unwrap(), "id_str": id,
            "text": text, "user": user(author), "in_reply_to_status_id_str": null, "in_reply_to_user_id_str": null,
            "entities": {"hashtags": [], "urls": [], "user_mentions": []}, "timestamp_ms": MS.to_string()})
    }

    fn with(mut value: Value, key: &str, field: Value) -> Value {
        value.as_object_mut().unwrap().insert(key.into(), field);
        value
    }

    fn mentioning_us(value: Value) -> Value {
        with(
            value,
            "entities",
            json!({"user_mentions": [{"id": US.parse::<u64>().unwrap(), "id_str": US, "indices": [0, 12]}]}),
        )
    }

    fn creates(tweets: Vec<Value>) -> Value {
        json!({"for_user_id": US, "tweet_create_events": tweets})
    }

    fn run(body: &Value, capture_text: bool) -> Normalized {
        normalize_x(&serde_json::to_vec(body).unwrap(), capture_text).unwrap()
    }

    fn kinds(out: &Normalized) -> Vec<(FactKind, &str, Option<&str>)> {
        out.facts
            .iter()
            .map(|f| (f.kind, f.platform_post_id.as_str(), f.comment_id.as_deref()))
            .collect()
    }

    fn favorite_of(status: Value, liker: &str) -> Value {
        json!({"id": "a7ba59eab0bfcba386f7acedac279542", "created_at": "Wed May 20 09:11:40 +0000 2026",
            "timestamp_ms": MS, "favorited_status": status, "user": user(liker)})
    }

    #[test]
    fn a_like_of_our_tweet_is_a_like_and_ours_of_theirs_is_skipped() {
        let body = json!({"for_user_id": US, "favorite_events": [
            favorite_of(our_tweet(), ADA),
            favorite_of(tweet("1850000000000000201", ADA, "theirs"), US)]});
        let out = run(&body, true);
        assert_eq!(
            out.facts,
            vec![EngagementFact {
                platform: Platform::X,
                account_external_id: US.into(),
                platform_post_id: OURS.into(),
                kind: FactKind::Like,
                delta: 1,
                verb: "favorite".into(),
                reaction_type: None,
                actor_id: Some(ADA.into()),
                comment_id: None,
                text: None,
                occurred_at: at_ms(MS),
                item_index: 0,
            }]
        );
        assert!(out.unknown.is_empty() && out.revocations.is_empty());
    }

    #[test]
    fn string_ids_win_over_integer_ids() {
        // A client that went through f64 would see 1850000000000000000; the string form is the truth.
        let status = json!({"id": 1_850_000_000_000_000_000_u64, "id_str": OURS, "user": {"id": 1, "id_str": US}});
        let out = run(
            &json!({"for_user_id": US, "favorite_events": [favorite_of(status, ADA)]}),
            false,
        );
        assert_eq!(out.facts[0].platform_post_id, OURS);
        // Only without id_str is the integer read, exactly.
        let status = json!({"id": 1_850_000_000_000_000_001_u64, "user": {"id": 1_512_345_678_901_234_567_u64}});
        let out = run(
            &json!({"for_user_id": US, "favorite_events": [favorite_of(status, ADA)]}),
            false,
        );
        assert_eq!(out.facts[0].platform_post_id, OURS);
    }

    #[test]
    fn a_reply_to_our_tweet_is_a_reply_with_the_reply_as_comment() {
        let reply = mentioning_us(tweet("1850000000000000101", ADA, "@nikara_demo Congrats!"));
        let reply = with(reply, "in_reply_to_status_id_str", json!(OURS));
        let reply = with(reply, "in_reply_to_user_id_str", json!(US));
        let body = creates(vec![reply]);
        let out = run(&body, false);
        assert_eq!(kinds(&out), vec![(FactKind::Reply, OURS, Some("1850000000000000101"))]);
        let fact = &out.facts[0];
        assert_eq!(
            (fact.delta, fact.verb.as_str(), fact.actor_id.as_deref()),
            (1, "create", Some(ADA))
        );
        assert_eq!((fact.text.as_deref(), fact.occurred_at), (None, at_ms(MS)));
        assert_eq!(
            run(&body, true).facts[0].text.as_deref(),
            Some("@nikara_demo Congrats!")
        );
    }

    #[test]
    fn a_reply_to_someone_else_that_mentions_us_is_a_mention() {
        let reply = mentioning_us(tweet("1850000000000000101", ADA, "@bo @nikara_demo look"));
        let reply = with(reply, "in_reply_to_status_id_str", json!("1850000000000000201"));
        let reply = with(reply, "in_reply_to_user_id_str", json!("1400000000000000002"));
        assert_eq!(
            kinds(&run(&creates(vec![reply]), false)),
            vec![(FactKind::Mention, "", Some("1850000000000000101"))]
        );
    }

    #[test]
    fn a_quote_of_our_tweet_is_a_quote() {
        let quote = with(
            tweet("1850000000000000102", ADA, "Read this"),
            "quoted_status",
            our_tweet(),
        );
        let quote = with(quote, "quoted_status_id_str", json!(OURS));
        let out = run(&creates(vec![quote]), true);
        assert_eq!(kinds(&out), vec![(FactKind::Quote, OURS, Some("1850000000000000102"))]);
        assert_eq!(out.facts[0].text.as_deref(), Some("Read this"));
    }

    #[test]
    fn a_retweet_of_our_tweet_is_a_repost_without_text() {
        let retweet = mentioning_us(tweet("1850000000000000103", ADA, "RT @nikara_demo: We launched"));
        let retweet = with(retweet, "retweeted_status", our_tweet());
        let out = run(&creates(vec![retweet]), true);
        assert_eq!(kinds(&out), vec![(FactKind::Repost, OURS, Some("1850000000000000103"))]);
        assert_eq!(out.facts[0].text, None, "a retweet has no text of its own");
    }

    #[test]
    fn a_mention_has_no_post_and_reads_extended_tweets() {
        let plain = mentioning_us(tweet("1850000000000000104", ADA, "Trying @nikara_demo"));
        let long = with(
            tweet("1850000000000000105", ADA, "A long one…"),
            "truncated",
            json!(true),
        );
        let long = with(
            long,
            "extended_tweet",
            json!({"full_text": "A long one that mentions @nikara_demo at the end",
                "entities": {"user_mentions": [{"id_str": US}]}}),
        );
        let out = run(&creates(vec![plain, long]), true);
        assert_eq!(
            kinds(&out),
            vec![
                (FactKind::Mention, "", Some("1850000000000000104")),
                (FactKind::Mention, "", Some("1850000000000000105")),
            ]
        );
        assert_eq!(
            out.facts[1].text.as_deref(),
            Some("A long one that mentions @nikara_demo at the end")
        );
    }

    #[test]
    fn our_own_tweets_are_skipped_whatever_they_are() {
        let own = mentioning_us(tweet("1850000000000000004", US, "@nikara_demo note to self"));
        let own_quote = with(tweet("1850000000000000005", US, "Again"), "quoted_status", our_tweet());
        let own_retweet = with(tweet("1850000000000000006", US, "RT"), "retweeted_status", our_tweet());
        let own_reply = with(
            tweet("1850000000000000007", US, "thread 2/2"),
            "in_reply_to_user_id_str",
            json!(US),
        );
        let own_reply = with(own_reply, "in_reply_to_status_id_str", json!(OURS));
        let out = run(&creates(vec![own, own_quote, own_retweet, own_reply]), false);
        assert_eq!(out, Normalized::default());
    }

    #[test]
    fn the_first_matching_rule_wins() {
        // A retweet that also mentions us and carries a quote of ours: a repost.
        let retweet = mentioning_us(with(
            tweet("1850000000000000110", ADA, "RT"),
            "retweeted_status",
            our_tweet(),
        ));
        let retweet = with(retweet, "quoted_status", our_tweet());
        // A reply to our tweet that quotes ours: a quote.
        let quote_reply = with(tweet("1850000000000000111", ADA, "see"), "quoted_status", our_tweet());
        let quote_reply = with(quote_reply, "in_reply_to_user_id_str", json!(US));
        let quote_reply = with(quote_reply, "in_reply_to_status_id_str", json!("1850000000000000002"));
        // A retweet of someone else's tweet that mentions us: a mention.
        let other_rt = with(
            tweet("1850000000000000112", ADA, "RT"),
            "retweeted_status",
            tweet("1850000000000000299", "1400000000000000009", "x"),
        );
        let other_rt = mentioning_us(other_rt);
        let out = run(&creates(vec![retweet, quote_reply, other_rt]), false);
        let got: Vec<_> = kinds(&out).into_iter().map(|(kind, post, _)| (kind, post)).collect();
        assert_eq!(
            got,
            vec![
                (FactKind::Repost, OURS),
                (FactKind::Quote, OURS),
                (FactKind::Mention, "")
            ]
        );
    }

    #[test]
    fn a_tweet_that_is_none_of_ours_is_kept_raw() {
        let unrelated = tweet("1850000000000000120", ADA, "hello world");
        let reply_without_status = with(
            tweet("1850000000000000121", ADA, "hi"),
            "in_reply_to_user_id_str",
            json!(US),
        );
        let no_author = json!({"id_str": "1850000000000000122", "text": "?"});
        let tweets = vec![unrelated, reply_without_status, no_author, json!(7)];
        let out = run(&creates(tweets.clone()), false);
        assert!(out.facts.is_empty());
        assert_eq!(out.unknown, tweets);
    }

    #[test]
    fn occurred_at_is_timestamp_ms_then_created_at() {
        let mut no_ms = mentioning_us(tweet("1850000000000000130", ADA, "a"));
        no_ms.as_object_mut().unwrap().remove("timestamp_ms");
        let numeric_ms = with(
            mentioning_us(tweet("1850000000000000131", ADA, "b")),
            "timestamp_ms",
            json!(MS + 1),
        );
        let mut neither = mentioning_us(tweet("1850000000000000132", ADA, "c"));
        neither.as_object_mut().unwrap().remove("timestamp_ms");
        neither
            .as_object_mut()
            .unwrap()
            .insert("created_at".into(), json!("yesterday"));
        let out = run(&creates(vec![no_ms, numeric_ms, neither]), false);
        let times: Vec<_> = out.facts.iter().map(|f| f.occurred_at).collect();
        assert_eq!(times, vec![at_ms(1_779_267_600_000), at_ms(MS + 1)]);
        assert_eq!(out.unknown.len(), 1, "no usable time");
    }

    fn follow_event(kind: &str, source: &str, target: &str) -> Value {
        json!({"type": kind, "created_timestamp": MS.to_string(), "target": {"id": target, "screen_name": "t"},
            "source": {"id": source, "screen_name": "s"}})
    }

    #[test]
    fn follows_and_unfollows_of_us_count_and_ours_of_others_are_skipped() {
        let body = json!({"for_user_id": US, "follow_events": [
            follow_event("follow", ADA, US),
            follow_event("unfollow", ADA, US),
            follow_event("follow", US, ADA),
            follow_event("unfollow", US, ADA),
            follow_event("block", ADA, US),
            follow_event("follow", ADA, "1400000000000000002")]});
        let out = run(&body, true);
        let got: Vec<_> = out
            .facts
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.delta,
                    f.verb.as_str(),
                    f.platform_post_id.as_str(),
                    f.actor_id.as_deref(),
                    f.item_index,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (FactKind::Follow, 1, "follow", "", Some(ADA), 0),
                (FactKind::Follow, -1, "unfollow", "", Some(ADA), 1),
            ]
        );
        assert_eq!(out.facts[0].occurred_at, at_ms(MS));
        assert_eq!(
            out.unknown.len(),
            2,
            "an unknown type and a follow between two other users"
        );
    }

    #[test]
    fn a_revoke_is_a_revocation() {
        let revoke = json!({"revoke": {"date_time": "2026-05-20T09:30:00+00:00", "target": {"app_id": "29000001"},
            "source": {"user_id": US}}});
        let out = run(&json!({"user_event": revoke}), false);
        assert_eq!(
            out.revocations,
            vec![Revocation {
                platform: Platform::X,
                external_id: US.into(),
                message: "access revoked on X: user 1512345678901234567 de-authorised app 29000001 at \
                          2026-05-20T09:30:00+00:00"
                    .into(),
            }]
        );
        assert!(out.facts.is_empty() && out.unknown.is_empty());

        // Without source.user_id the delivery's user is the one who revoked.
        let bare = json!({"for_user_id": US, "user_event": {"revoke": {}}});
        let out = run(&bare, false);
        assert_eq!(out.revocations[0].external_id, US);
        // Anything else in user_event, or a revoke naming nobody, is kept raw.
        let other = json!({"user_event": {"something_new": {}}});
        assert_eq!(run(&other, false).unknown, vec![json!({"something_new": {}})]);
        let nobody = json!({"user_event": {"revoke": {"date_time": "now"}}});
        assert_eq!(run(&nobody, false).unknown.len(), 1);
    }

    #[test]
    fn other_arrays_are_kept_raw_item_by_item() {
        let dm = json!({"type": "message_create", "id": "1850000000000000901"});
        let deleted = json!({"status": {"id": "1850000000000000101", "user_id": ADA}, "timestamp_ms": "1"});
        let body = json!({"for_user_id": US, "direct_message_events": [dm], "tweet_delete_events": [deleted],
            "block_events": [{"type": "block"}], "user_has_blocked": "true", "users": {ADA: user(ADA)},
            "apps": {"1": {"id": "1"}}, "mute_events": [], "something_new": {"a": 1}});
        let out = run(&body, true);
        assert!(out.facts.is_empty());
        // serde_json's json! sorts keys; the wire order is what counts, and these keys sort the same way.
        assert_eq!(
            out.unknown,
            vec![json!({"type": "block"}), dm, json!({"a": 1}), deleted]
        );
    }

    #[test]
    fn the_newer_activity_envelope_is_kept_whole() {
        let body = json!({"data": {"event_uuid": "1", "filter": {"user_id": US}, "event_type": "post.create",
            "payload": {"id": "1"}}});
        let out = run(&body, false);
        assert_eq!(out.unknown, vec![body]);
    }

    #[test]
    fn item_index_follows_the_document_order_of_the_body() {
        let body = format!(
            r#"{{"tweet_create_events":[{}],"for_user_id":"{US}","favorite_events":[{}],"follow_events":[{}]}}"#,
            mentioning_us(tweet("1850000000000000140", ADA, "hi @nikara_demo")),
            favorite_of(our_tweet(), ADA),
            follow_event("follow", ADA, US),
        );
        let out = normalize_x(body.as_bytes(), false).unwrap();
        let got: Vec<_> = out.facts.iter().map(|f| (f.item_index, f.kind)).collect();
        assert_eq!(
            got,
            vec![(0, FactKind::Mention), (1, FactKind::Like), (2, FactKind::Follow)]
        );
    }

    #[test]
    fn events_without_for_user_id_are_kept_raw() {
        let body = json!({"favorite_events": [favorite_of(our_tweet(), ADA)], "follow_events": [follow_event("follow", ADA, US)],
            "tweet_create_events": [mentioning_us(tweet("1850000000000000150", ADA, "x"))]});
        let out = run(&body, false);
        assert_eq!((out.facts.len(), out.unknown.len()), (0, 3));
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error() {
        for body in [&b""[..], b"{", b"for_user_id", b"\xff", b"{\"for_user_id\":\"1\"} {}"] {
            assert!(
                matches!(normalize_x(body, false), Err(NormalizeError::NotJson(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn json_that_is_not_an_envelope_is_an_error() {
        for body in [
            "{}",
            "[]",
            "[{\"for_user_id\":\"1\"}]",
            "\"x\"",
            "1",
            "-1",
            "1.5",
            "true",
            "null",
            r#"{"data":"not an object"}"#,
            r#"{"id":"1","text":"a bare tweet"}"#,
        ] {
            let got = normalize_x(body.as_bytes(), false);
            assert!(matches!(got, Err(NormalizeError::Envelope("x"))), "{body}: {got:?}");
        }
    }

    #[test]
    fn odd_shapes_inside_an_envelope_are_kept_raw() {
        let body = json!({"for_user_id": US, "favorite_events": {"not": "an array"},
            "follow_events": ["x", {"type": "follow"}]});
        let out = run(&body, false);
        assert!(out.facts.is_empty());
        assert_eq!(
            out.unknown,
            vec![json!({"not": "an array"}), json!("x"), json!({"type": "follow"})]
        );
    }

    // ---- signed samples (webhooks/x/) ----------------------------------------------------------

    /// Facts, unknown, revocations, kind and delta of each fact.
    type Expected = (usize, usize, usize, Vec<(FactKind, i32)>);

    /// Sample name → what it normalises to.
    fn expected() -> BTreeMap<&'static str, Expected> {
        use FactKind::*;
        BTreeMap::from([
            ("favorite", (1, 0, 0, vec![(Like, 1)])),
            ("reply", (1, 0, 0, vec![(Reply, 1)])),
            ("quote", (1, 0, 0, vec![(Quote, 1)])),
            ("retweet", (1, 0, 0, vec![(Repost, 1)])),
            ("mention", (1, 0, 0, vec![(Mention, 1)])),
            ("own_tweet", (0, 0, 0, vec![])),
            ("follow", (1, 0, 0, vec![(Follow, 1)])),
            ("unfollow", (1, 0, 0, vec![(Follow, -1)])),
            ("revoke", (0, 0, 1, vec![])),
            ("unknown_dm", (0, 1, 0, vec![])),
        ])
    }

    fn samples_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks").join("x")
    }

    fn secret() -> String {
        std::fs::read_to_string(samples_dir().join("SECRET"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn signature(secret: &str, bytes: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(bytes);
        format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn every_signed_sample_verifies_and_normalises_as_expected() {
        let dir = samples_dir();
        let secret = secret();
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
            let header = headers.get("x-twitter-webhooks-signature");
            assert_eq!(header, Some(&signature(&secret, &body)), "{name}: signature");
            let mut tampered = body.clone();
            tampered[body.len() / 2] ^= 1;
            assert_ne!(header, Some(&signature(&secret, &tampered)), "{name}");

            let out = normalize_x(&body, false).unwrap();
            let (facts, unknown, revocations, kinds) = &expected[name.as_str()];
            assert_eq!(
                (out.facts.len(), out.unknown.len(), out.revocations.len()),
                (*facts, *unknown, *revocations),
                "{name}"
            );
            assert_eq!(
                &out.facts.iter().map(|f| (f.kind, f.delta)).collect::<Vec<_>>(),
                kinds,
                "{name}"
            );
            assert!(
                out.facts
                    .iter()
                    .all(|f| f.account_external_id == US && f.text.is_none()),
                "{name}"
            );
            assert!(
                out.facts.iter().enumerate().all(|(i, f)| f.item_index as usize == i),
                "{name}"
            );
        }
    }

    #[test]
    fn sample_details() {
        let read = |name: &str| std::fs::read(samples_dir().join(format!("{name}.json"))).unwrap();
        let post = |name: &str| {
            normalize_x(&read(name), false)
                .unwrap()
                .facts
                .remove(0)
                .platform_post_id
        };
        assert_eq!(post("favorite"), "1850000000000000001");
        assert_eq!(post("reply"), "1850000000000000001");
        assert_eq!(post("quote"), "1850000000000000002");
        assert_eq!(post("retweet"), "1850000000000000003");
        assert_eq!(post("mention"), "");
        let reply = normalize_x(&read("reply"), true).unwrap().facts.remove(0);
        assert_eq!(
            reply.text.as_deref(),
            Some("@nikara_demo Congrats! Does it support Reddit too?")
        );
        assert_eq!(reply.comment_id.as_deref(), Some("1850000000000000101"));
        assert_eq!(reply.occurred_at, at_ms(1_779_268_400_417));
        let revoke = normalize_x(&read("revoke"), false).unwrap();
        assert_eq!(revoke.revocations[0].external_id, US);
    }

    #[test]
    fn the_crc_vector_matches_the_secret() {
        let vector: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(samples_dir().join("crc_vector.json")).unwrap()).unwrap();
        let token = &vector["crc_token"];
        assert!(!token.is_empty());
        assert_eq!(vector["response_token"], signature(&secret(), token.as_bytes()));
    }
}
