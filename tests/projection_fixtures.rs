//! Golden fixtures: every `projections/<name>/events.jsonl` is replayed through the real projection
//! code and must produce `projections/<name>/expected.json`. `UPDATE_FIXTURES=1` rewrites them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use nikara::projections::{Projection, ReadModels, accounts, activity, engagement, posts};
use nikara::store::{Metadata, Position, RecordedEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    position: u64,
    stream: String,
    revision: u64,
    #[serde(rename = "type")]
    event_type: String,
    data: serde_json::Value,
    metadata: Meta,
}

#[derive(Deserialize)]
struct Meta {
    user_id: Option<String>,
    occurred_at: DateTime<Utc>,
    version: u16,
}

fn load(path: &Path) -> Vec<RecordedEvent> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()));
            RecordedEvent {
                id: uuid::Uuid::from_u64_pair(0, line.position),
                stream: line.stream,
                revision: line.revision,
                position: Position(line.position),
                event_type: line.event_type,
                data: serde_json::to_vec(&line.data).unwrap(),
                metadata: Metadata {
                    user_id: line.metadata.user_id,
                    correlation_id: None,
                    causation_id: None,
                    occurred_at: line.metadata.occurred_at,
                    version: line.metadata.version,
                },
                recorded_at: line.metadata.occurred_at,
            }
        })
        .collect()
}

fn compare(name: &str, actual: serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("projections")
        .join(name)
        .join("expected.json");
    let pretty = format!("{}\n", serde_json::to_string_pretty(&actual).unwrap());
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        pretty,
        expected,
        "{} differs (UPDATE_FIXTURES=1 to accept)",
        path.display()
    );
}

/// Applies events one at a time (as live delivery does, duplicates included) and then again as one
/// batch (as a replay does): both must give the same read model.
fn replay(p: &dyn Projection, events: &[RecordedEvent]) -> ReadModels {
    let dir = tempfile::tempdir().unwrap().keep();
    let models = ReadModels::open(dir.join("readmodels.db")).unwrap();
    models.prepare(p).unwrap();
    for ev in events {
        models.apply_batch(p, std::slice::from_ref(ev), ev.position).unwrap();
    }
    let last = events.last().map(|e| e.position).unwrap_or_default();
    models.apply_batch(p, events, last).unwrap();
    models
}

#[tokio::test]
async fn activity_fixture() {
    let events = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/activity/events.jsonl"));
    let p = activity::Activity;
    let models = replay(&p, &events);
    let mut out = BTreeMap::new();
    for user in ["alice", "bob", "carol"] {
        let rows = models.read(move |c| activity::list(c, user, 100, None)).await.unwrap();
        out.insert(user, rows);
    }
    compare("activity", serde_json::to_value(out).unwrap());
    let _ = Arc::new(p);
}

#[tokio::test]
async fn accounts_fixture() {
    let events = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/accounts/events.jsonl"));
    let models = replay(&accounts::Accounts, &events);
    let mut out = BTreeMap::new();
    for user in ["alice", "bob"] {
        let rows = models.read(move |c| accounts::list(c, user, 100, None)).await.unwrap();
        out.insert(user.to_string(), serde_json::to_value(rows).unwrap());
    }
    let kids = models.read(accounts::live_tokens_per_kid).await.unwrap();
    out.insert("live_tokens_per_kid".to_string(), serde_json::to_value(kids).unwrap());
    compare("accounts", serde_json::to_value(out).unwrap());
}

#[tokio::test]
async fn posts_fixture() {
    let events = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("projections/posts/events.jsonl"));
    let models = replay(&posts::Posts, &events);
    // The due query joins the accounts read model: give it its table.
    models.prepare(&accounts::Accounts).unwrap();
    let mut out = BTreeMap::new();
    for user in ["alice", "bob"] {
        let rows = models
            .read(move |c| posts::list(c, user, &posts::Filter::default(), 100))
            .await
            .unwrap();
        out.insert(user.to_string(), serde_json::to_value(rows).unwrap());
    }
    let first = "post_00000000000000000000000000000001";
    out.insert(
        "attempts_of_first".into(),
        serde_json::to_value(models.read(move |c| posts::attempts(c, first)).await.unwrap()).unwrap(),
    );
    for at in ["2026-11-03T08:59:59Z", "2026-11-03T09:00:00Z"] {
        let now = chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc);
        let due = models
            .read(move |c| posts::due(c, now, chrono::Duration::hours(24), 100))
            .await
            .unwrap();
        let ids: Vec<String> = due.into_iter().map(|d| d.id).collect();
        out.insert(format!("due_at_{at}"), serde_json::to_value(ids).unwrap());
    }
    compare("posts", serde_json::to_value(out).unwrap());
}

#[derive(Deserialize)]
struct Delivery {
    position: u64,
    platform: String,
    sample: String,
}

#[tokio::test]
async fn engagement_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lines = std::fs::read_to_string(root.join("projections/engagement/deliveries.jsonl")).unwrap();
    let events: Vec<RecordedEvent> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let d: Delivery = serde_json::from_str(l).unwrap();
            let body = std::fs::read_to_string(root.join("webhooks").join(&d.platform).join(format!("{}.json", d.sample))).unwrap();
            let data = serde_json::json!({"platform": d.platform, "received_at": "2026-11-27T05:00:00Z", "headers": [], "body": body});
            RecordedEvent {
                id: uuid::Uuid::from_u64_pair(1, d.position),
                stream: format!("webhook-{}", d.platform),
                revision: d.position,
                position: Position(d.position),
                event_type: "WebhookDeliveryReceived".into(),
                data: serde_json::to_vec(&data).unwrap(),
                metadata: Metadata {
                    user_id: None,
                    correlation_id: None,
                    causation_id: None,
                    occurred_at: chrono::DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z").unwrap().with_timezone(&Utc),
                    version: 1,
                },
                recorded_at: chrono::DateTime::parse_from_rfc3339("2026-11-27T05:00:00Z").unwrap().with_timezone(&Utc),
            }
        })
        .collect();
    let models = replay(&engagement::Engagement { capture_text: false }, &events);
    // Net totals per (platform, platform post id), and per kind, as the API folds them.
    let totals =
        models
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT platform, platform_post_id, kind, SUM(delta), COUNT(*) FROM engagement_facts
                 GROUP BY platform, platform_post_id, kind ORDER BY platform, platform_post_id, kind",
                )?;
                let rows = stmt.query_map([], |r| {
                Ok(serde_json::json!({"platform": r.get::<_, String>(0)?, "platform_post_id": r.get::<_, String>(1)?,
                    "kind": r.get::<_, String>(2)?, "net": r.get::<_, i64>(3)?, "facts": r.get::<_, i64>(4)?}))
            })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .unwrap();
    let first = models
        .read(|c| engagement::post_engagement(c, "none", "facebook", "112233445566778_9000000001"))
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    out.insert(
        "facts_by_post_and_kind".to_string(),
        serde_json::to_value(totals).unwrap(),
    );
    out.insert(
        "post_112233445566778_9000000001".to_string(),
        serde_json::to_value(first).unwrap(),
    );
    compare("engagement", serde_json::to_value(out).unwrap());
}
