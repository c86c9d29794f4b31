//! The hub with ClickHouse: webhook facts and synced snapshots reach ClickHouse exactly once, the API
//! answers from ClickHouse, and its answers equal the embedded read model's.
#![allow(clippy::unwrap_used)]

#[path = "common/clickhouse.rs"]
mod ch;
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{TestApp, accounts, connect, settings};
use hmac::{Hmac, Mac};
use nikara::projections::engagement::{self as model, SeriesQuery};
use nikara_fakes::{FakePlatform, Kind};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;

const META_SECRET: &str = "meta-app-secret-for-tests-0123456789";
const X_SECRET: &str = "x-consumer-secret-for-tests-0123456789";

fn sig_hex(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    format!(
        "sha256={}",
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn sig_b64(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
    )
}

async fn wait_published(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p: Value = app
            .get(&format!("/api/posts/{id}"), token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if p["status"] == "published" {
            return p;
        }
        assert!(Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the sink has written everything up to the log's head.
async fn sink_caught_up(app: &TestApp) {
    let a = &app.running.app;
    let head = a.store.head().await.unwrap();
    assert!(a.runner.wait_for(head, Duration::from_secs(10)).await);
    let sink = &a.analytics.as_ref().unwrap().sink;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.status().position < head.0 {
        assert!(Instant::now() < deadline, "sink stuck at {:?}", sink.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_and_the_embedded_model_answer_the_same() {
    let Some(db) = ch::TestDatabase::create("clickhouse_and_the_embedded_model_answer_the_same").await else {
        return;
    };
    let meta = FakePlatform::start(Kind::Meta).await;
    let x = FakePlatform::start(Kind::X).await;
    let apply = settings(&[&meta, &x]);
    let ch_config = db.config.clone();
    let app = TestApp::spawn_with(move |c| {
        apply(c);
        c.clickhouse = Some(ch_config);
        c.extra
            .insert("meta_app_secret".into(), SecretString::from(META_SECRET.to_string()));
        c.extra
            .insert("x_consumer_secret".into(), SecretString::from(X_SECRET.to_string()));
        c.scheduler_tick = Duration::from_millis(50);
    })
    .await;
    let token = app.token("owner", None);
    connect(&app, &meta, "facebook", &token).await;
    connect(&app, &x, "x", &token).await;
    let accts = accounts(&app, &token).await;
    let fb = accts.iter().find(|a| a["external_id"] == "112233445566778").unwrap();
    let xa = accts.iter().find(|a| a["platform"] == "x").unwrap();
    let mut published = Vec::new();
    for (account, text) in [(fb, "fb post"), (xa, "x post")] {
        let p: Value = app
            .client
            .post(app.url("/api/posts"))
            .bearer_auth(&token)
            .json(&json!({"account_id": account["id"], "text": text}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        published.push(wait_published(&app, &token, p["id"].as_str().unwrap()).await);
    }
    let (fb_post, x_post) = (&published[0], &published[1]);
    let fb_ppid = fb_post["platform_post_id"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();

    // A snapshot first (sync), then webhook deltas after it, with a remove and a duplicate.
    let n = nikara::engagement::sync::sync_once(&app.running.app, &Default::default(), &Default::default()).await;
    assert_eq!(n, 2);
    let changes = |verb: &str, who: &str, kind: &str| json!({"field": "feed", "value": {"item": "reaction", "verb": verb, "reaction_type": kind, "post_id": fb_ppid, "created_time": now, "from": {"id": who}}});
    let bodies = [
        json!({"object": "page", "entry": [{"id": "112233445566778", "time": now, "changes": [changes("add", "a", "love"), changes("add", "b", "like"), changes("add", "c", "haha")]}]}),
        json!({"object": "page", "entry": [{"id": "112233445566778", "time": now, "changes": [changes("remove", "b", "like"), {"field": "feed", "value": {"item": "comment", "verb": "add", "post_id": fb_ppid, "comment_id": "c9", "created_time": now, "from": {"id": "d"}}}]}]}),
    ];
    for b in &bodies {
        let body = serde_json::to_vec(b).unwrap();
        for _ in 0..2 {
            let r = app
                .client
                .post(app.url("/webhooks/meta"))
                .header("x-hub-signature-256", sig_hex(META_SECRET, &body))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let me = "1512345678901234567";
    let tweet = x_post["platform_post_id"].as_str().unwrap();
    let xb = serde_json::to_vec(&json!({"for_user_id": me, "favorite_events": [
        {"id": "f1", "timestamp_ms": format!("{now}000"), "favorited_status": {"id_str": tweet, "user": {"id_str": me}}, "user": {"id_str": "7"}},
        {"id": "f2", "timestamp_ms": format!("{now}000"), "favorited_status": {"id_str": tweet, "user": {"id_str": me}}, "user": {"id_str": "8"}}
    ]})).unwrap();
    let r = app
        .client
        .post(app.url("/webhooks/x"))
        .header("x-twitter-webhooks-signature", sig_b64(X_SECRET, &xb))
        .body(xb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sink_caught_up(&app).await;

    // The API (ClickHouse) against the embedded model, post by post and per day.
    for post in [fb_post, x_post] {
        let api: Value = app
            .get(
                &format!("/api/posts/{}/engagement", post["id"].as_str().unwrap()),
                &token,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (id, platform, ppid) = (
            post["id"].as_str().unwrap().to_string(),
            post["platform"].as_str().unwrap().to_string(),
            post["platform_post_id"].as_str().unwrap().to_string(),
        );
        let local = app
            .running
            .app
            .models
            .read(move |c| model::post_engagement(c, &id, &platform, &ppid))
            .await
            .unwrap();
        assert_eq!(api["likes"].as_i64(), Some(local.likes), "{api} vs {local:?}");
        assert_eq!(api["comments"].as_i64(), Some(local.comments));
        assert_eq!(api["shares"].as_i64(), Some(local.shares));
        assert_eq!(api["views"].as_i64(), local.views);
        assert_eq!(api["reactions"], serde_json::to_value(&local.reactions).unwrap());
        assert_eq!(api["source"], "sync");
    }
    let fb_api: Value = app
        .get(
            &format!("/api/posts/{}/engagement", fb_post["id"].as_str().unwrap()),
            &token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let snapshot_likes = meta.metrics_of("facebook", fb_ppid).map(|m| m.likes).unwrap_or(0);
    assert_eq!(
        fb_api["likes"].as_i64(),
        Some(snapshot_likes + 2),
        "snapshot + love + haha (the like was removed): {fb_api}"
    );
    assert_eq!(
        fb_api["comments"].as_i64().unwrap(),
        meta.metrics_of("facebook", fb_ppid).map(|m| m.comments).unwrap_or(0) + 1
    );

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let api: Value = app
        .get(&format!("/api/analytics/engagement?from={today}&to={today}"), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let q = SeriesQuery {
        user_id: "owner".into(),
        from: nikara::api::engagement::parse_bound(&today, false).unwrap(),
        to: nikara::api::engagement::parse_bound(&today, true).unwrap(),
        platform: None,
        account_id: None,
    };
    let local = app
        .running
        .app
        .models
        .read(move |c| model::series(c, &q))
        .await
        .unwrap();
    assert_eq!(
        api["series"],
        serde_json::to_value(&local).unwrap(),
        "ClickHouse and the embedded model agree"
    );
    assert!(!local.is_empty());

    // Analysts see the same in their tables: duplicates not double counted.
    let rows: Vec<Value> = db
        .client
        .select_json("SELECT platform, toInt64(sum(likes)) AS likes, toInt64(sum(comments)) AS comments FROM post_engagement_daily GROUP BY platform ORDER BY platform")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"platform": "facebook", "likes": 2, "comments": 1}),
            json!({"platform": "x", "likes": 2, "comments": 0})
        ]
    );
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["clickhouse"]["connected"], true, "{ready}");
    app.stop().await;
}
