//! Webhooks and engagement end to end (embedded backend): verification, durable deduplicated
//! intake, normalisation, remove verbs, the engagement API, X revocation, the sync worker.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use common::{TestApp, accounts, connect, settings};
use hmac::{Hmac, Mac};
use nikara_fakes::{FakePlatform, Kind};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;

const META_SECRET: &str = "meta-app-secret-for-tests-0123456789";
const X_SECRET: &str = "x-consumer-secret-for-tests-0123456789";

fn hmac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn meta_sig(body: &[u8]) -> String {
    format!(
        "sha256={}",
        hmac(META_SECRET, body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn x_sig(body: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(hmac(X_SECRET, body))
    )
}

fn webhook_settings(c: &mut nikara::config::Config) {
    c.extra
        .insert("meta_app_secret".into(), SecretString::from(META_SECRET.to_string()));
    c.extra
        .insert("meta_verify_token".into(), SecretString::from("verify-me".to_string()));
    c.extra
        .insert("x_consumer_secret".into(), SecretString::from(X_SECRET.to_string()));
    c.scheduler_tick = Duration::from_millis(50);
    c.refresh_sweep_interval = Duration::from_secs(3600);
}

async fn post_meta(app: &TestApp, body: &[u8], sig: Option<String>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/webhooks/meta"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("x-hub-signature-256", s);
    }
    req.send().await.unwrap()
}

async fn post_x(app: &TestApp, body: &[u8], sig: Option<String>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/webhooks/x"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = sig {
        req = req.header("x-twitter-webhooks-signature", s);
    }
    req.send().await.unwrap()
}

fn reaction(post: &str, verb: &str, kind: &str, actor: &str, at: i64) -> Value {
    json!({"field": "feed", "value": {"item": "reaction", "verb": verb, "reaction_type": kind, "post_id": post,
        "parent_id": post, "created_time": at, "from": {"id": actor, "name": "Someone"}}})
}

fn meta_delivery(page: &str, changes: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "page", "entry": [{"id": page, "time": 1764220000, "changes": changes}]}))
        .unwrap()
}

async fn head(app: &TestApp) -> u64 {
    app.running.app.store.head().await.unwrap().0
}

#[tokio::test]
async fn signatures_are_verified_over_the_raw_bytes_and_failures_store_nothing() {
    let app = TestApp::spawn_with(webhook_settings).await;
    let body = meta_delivery(
        "112233445566778",
        vec![reaction("112233445566778_1", "add", "like", "u1", 1764220000)],
    );
    let before = head(&app).await;
    // Missing, wrong, from another secret, one byte changed, legacy sha1 only.
    assert_eq!(post_meta(&app, &body, None).await.status(), 401);
    assert_eq!(post_meta(&app, &body, Some("sha256=00".into())).await.status(), 401);
    let other = format!(
        "sha256={}",
        hmac("not-the-secret", &body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(post_meta(&app, &body, Some(other)).await.status(), 401);
    let mut changed = body.clone();
    let last = changed.len() - 2;
    changed[last] ^= 1;
    assert_eq!(post_meta(&app, &changed, Some(meta_sig(&body))).await.status(), 401);
    let resp = app
        .client
        .post(app.url("/webhooks/meta"))
        .header("x-hub-signature", "sha1=abc")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post_meta(&app, b"not even json", None).await;
    assert_eq!(resp.status(), 401, "unverified bodies are never parsed");
    assert_eq!(head(&app).await, before, "nothing stored");
    // X the same way.
    let xbody = br#"{"for_user_id":"1","favorite_events":[]}"#;
    assert_eq!(post_x(&app, xbody, None).await.status(), 401);
    assert_eq!(
        post_x(&app, xbody, Some(meta_sig(xbody))).await.status(),
        401,
        "hex is Meta's encoding, not X's"
    );
    assert_eq!(head(&app).await, before);
    // The good ones are stored once, whatever the retries.
    assert_eq!(post_meta(&app, &body, Some(meta_sig(&body))).await.status(), 200);
    let after_one = head(&app).await;
    assert!(after_one > before);
    assert_eq!(post_meta(&app, &body, Some(meta_sig(&body))).await.status(), 200);
    assert_eq!(head(&app).await, after_one, "a duplicate delivery changes nothing");
    assert_eq!(post_x(&app, xbody, Some(x_sig(xbody))).await.status(), 200);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nikara_webhook_deliveries_total{platform=\"meta\",outcome=\"bad_signature\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn verification_challenge_and_crc() {
    let app = TestApp::spawn_with(webhook_settings).await;
    let ok = app
        .client
        .get(app.url("/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444", "the raw challenge");
    for q in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
        "hub.challenge=1",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/webhooks/meta?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{q}");
    }
    let crc: Value = app
        .client
        .get(app.url("/webhooks/x?crc_token=abc123"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected = format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(hmac(X_SECRET, b"abc123"))
    );
    assert_eq!(crc["response_token"], expected);
    assert_eq!(
        app.client.get(app.url("/webhooks/x")).send().await.unwrap().status(),
        400
    );
    app.stop().await;
}

#[tokio::test]
async fn unconfigured_webhooks_answer_404_and_oversized_bodies_413() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.client
            .get(app.url("/webhooks/x?crc_token=a"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(post_meta(&app, b"{}", None).await.status(), 404);
    app.stop().await;
    let app = TestApp::spawn_with(webhook_settings).await;
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let resp = post_meta(&app, &big, Some(meta_sig(&big))).await;
    assert_eq!(resp.status(), 413);
    // 3 MiB is fine (Meta batches): over the API's 1 MiB limit, under the webhooks' 4 MiB.
    let mut changes = Vec::new();
    let filler = "x".repeat(3000);
    for i in 0..1000 {
        changes.push(json!({"field": "feed", "value": {"item": "comment", "verb": "add", "post_id": "112233445566778_1", "comment_id": format!("c{i}"), "created_time": 1764220000, "from": {"id": "u"}, "message": filler}}));
    }
    let body = meta_delivery("112233445566778", changes);
    assert!(body.len() > 2 * 1024 * 1024);
    assert_eq!(post_meta(&app, &body, Some(meta_sig(&body))).await.status(), 200);
    app.stop().await;
}

/// A connected Facebook page and X account with one published post each.
struct Published {
    app: TestApp,
    token: String,
    fb_post: Value,
    x_post: Value,
    x: FakePlatform,
}

async fn published() -> Published {
    let meta = FakePlatform::start(Kind::Meta).await;
    let x = FakePlatform::start(Kind::X).await;
    let apply = settings(&[&meta, &x]);
    let app = TestApp::spawn_with(move |c| {
        apply(c);
        webhook_settings(c);
    })
    .await;
    let token = app.token("owner", Some("owner@example.com"));
    connect(&app, &meta, "facebook", &token).await;
    connect(&app, &x, "x", &token).await;
    let accts = accounts(&app, &token).await;
    let mut posts = Vec::new();
    for platform in ["facebook", "x"] {
        let a = accts
            .iter()
            .find(|a| a["platform"] == platform && (platform != "facebook" || a["external_id"] == "112233445566778"))
            .unwrap();
        let p: Value = app
            .client
            .post(app.url("/api/posts"))
            .bearer_auth(&token)
            .json(&json!({"account_id": a["id"], "text": format!("engage with {platform}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = p["id"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let p: Value = app
                .get(&format!("/api/posts/{id}"), &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if p["status"] == "published" {
                posts.push(p);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{p}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Published {
        app,
        token,
        fb_post: posts[0].clone(),
        x_post: posts[1].clone(),
        x,
    }
}

async fn engagement(p: &Published, post: &Value) -> Value {
    let id = post["id"].as_str().unwrap();
    p.app
        .get(&format!("/api/posts/{id}/engagement"), &p.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn settle(app: &TestApp) {
    let a = &app.running.app;
    let head = a.store.head().await.unwrap();
    assert!(a.runner.wait_for(head, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn webhook_facts_count_on_our_posts_and_remove_verbs_decrement() {
    let p = published().await;
    let page = "112233445566778";
    let fb_id = p.fb_post["platform_post_id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let deliveries = [
        meta_delivery(
            page,
            vec![
                reaction(&fb_id, "add", "love", "u1", now),
                reaction(&fb_id, "add", "like", "u2", now),
            ],
        ),
        meta_delivery(
            page,
            vec![
                json!({"field": "feed", "value": {"item": "comment", "verb": "add", "post_id": fb_id, "comment_id": "c1", "created_time": now, "from": {"id": "u3"}, "message": "nice"}}),
            ],
        ),
        meta_delivery(
            page,
            vec![
                json!({"field": "feed", "value": {"item": "share", "verb": "add", "post_id": fb_id, "share_id": "s1", "sender_id": "u4", "created_time": now}}),
            ],
        ),
        meta_delivery(page, vec![reaction(&fb_id, "remove", "like", "u2", now)]),
    ];
    for d in &deliveries {
        assert_eq!(post_meta(&p.app, d, Some(meta_sig(d))).await.status(), 200);
    }
    // A retry of the first delivery (Meta retries for 36 h) is absorbed.
    assert_eq!(
        post_meta(&p.app, &deliveries[0], Some(meta_sig(&deliveries[0])))
            .await
            .status(),
        200
    );
    settle(&p.app).await;
    let e = engagement(&p, &p.fb_post).await;
    assert_eq!(
        (e["likes"].as_i64(), e["comments"].as_i64(), e["shares"].as_i64()),
        (Some(1), Some(1), Some(1)),
        "{e}"
    );
    assert_eq!(e["reactions"], json!({"love": 1}));
    assert_eq!(e["source"], "webhook");

    // X: a like of our tweet, a reply, a retweet and a quote count; our own tweet does not.
    let me = "1512345678901234567";
    let tweet = p.x_post["platform_post_id"].as_str().unwrap().to_string();
    let ours = json!({"id_str": tweet, "user": {"id_str": me}, "text": "engage with x"});
    let x = json!({"for_user_id": me,
    "favorite_events": [{"id": "f1", "created_at": "Thu Nov 27 05:00:00 +0000 2026", "timestamp_ms": format!("{}000", now), "favorited_status": ours, "user": {"id_str": "77"}}],
    "tweet_create_events": [
        {"id_str": "r1", "user": {"id_str": "78"}, "in_reply_to_status_id_str": tweet, "in_reply_to_user_id_str": me, "text": "@me hi", "timestamp_ms": format!("{}000", now)},
        {"id_str": "rt1", "user": {"id_str": "79"}, "retweeted_status": ours, "text": "RT", "timestamp_ms": format!("{}000", now)},
        {"id_str": "q1", "user": {"id_str": "80"}, "quoted_status": ours, "text": "look", "timestamp_ms": format!("{}000", now)},
        {"id_str": "own", "user": {"id_str": me}, "text": "my own", "timestamp_ms": format!("{}000", now)}
    ]});
    let body = serde_json::to_vec(&x).unwrap();
    assert_eq!(post_x(&p.app, &body, Some(x_sig(&body))).await.status(), 200);
    settle(&p.app).await;
    let e = engagement(&p, &p.x_post).await;
    assert_eq!(
        (e["likes"].as_i64(), e["comments"].as_i64(), e["shares"].as_i64()),
        (Some(1), Some(1), Some(2)),
        "{e}"
    );

    // Per day, for the caller's accounts.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let s: Value = p
        .app
        .get(&format!("/api/analytics/engagement?from={today}&to={today}"), &p.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let series = s["series"].as_array().unwrap();
    let fb = series.iter().find(|d| d["platform"] == "facebook").unwrap();
    assert_eq!(
        (
            fb["date"].as_str(),
            fb["likes"].as_i64(),
            fb["comments"].as_i64(),
            fb["shares"].as_i64()
        ),
        (Some(today.as_str()), Some(1), Some(1), Some(1))
    );
    let xs = series.iter().find(|d| d["platform"] == "x").unwrap();
    assert_eq!((xs["likes"].as_i64(), xs["shares"].as_i64()), (Some(1), Some(2)));
    // Another user sees nothing of it.
    let other = p.app.token("stranger", None);
    let s: Value = p
        .app
        .get("/api/analytics/engagement", &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["series"], json!([]));
    let resp = p
        .app
        .get(
            &format!("/api/posts/{}/engagement", p.fb_post["id"].as_str().unwrap()),
            &other,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let bad = p
        .app
        .get("/api/analytics/engagement?from=yesterday", &p.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let _ = &p.x;
    p.app.stop().await;
}

#[tokio::test]
async fn x_revoke_webhook_revokes_the_account() {
    let p = published().await;
    let body = serde_json::to_vec(&json!({"for_user_id": "1512345678901234567", "user_event": {"revoke": {"date_time": "2026-11-27T05:00:00.000Z", "target": {"app_id": "1"}, "source": {"user_id": "1512345678901234567"}}}})).unwrap();
    assert_eq!(post_x(&p.app, &body, Some(x_sig(&body))).await.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = accounts(&p.app, &p.token).await;
        let x = list.iter().find(|a| a["platform"] == "x").unwrap();
        if x["status"] == "revoked" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{x}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.app.stop().await;
}

#[tokio::test]
async fn the_sync_worker_snapshots_published_posts() {
    let p = published().await;
    let app = &p.app.running.app;
    let n =
        nikara::engagement::sync::sync_once(app, &nikara::engagement::sync::Schedule::default(), &Default::default())
            .await;
    assert!(n >= 2, "both published posts synced: {n}");
    settle(&p.app).await;
    let e = engagement(&p, &p.x_post).await;
    assert_eq!(e["source"], "sync", "{e}");
    assert!(e["likes"].as_i64().is_some());
    // Not due again right away.
    let again =
        nikara::engagement::sync::sync_once(app, &nikara::engagement::sync::Schedule::default(), &Default::default())
            .await;
    assert_eq!(again, 0);
    let accts = accounts(&p.app, &p.token).await;
    assert!(
        accts.iter().any(|a| a["last_synced_at"].is_string()),
        "last_synced_at updated"
    );
    p.app.stop().await;
}

#[tokio::test]
async fn the_signed_samples_replay_through_the_cli() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks");
    let meta_secret = std::fs::read_to_string(root.join("meta/SECRET"))
        .unwrap()
        .trim()
        .to_string();
    let x_secret = std::fs::read_to_string(root.join("x/SECRET"))
        .unwrap()
        .trim()
        .to_string();
    let app = TestApp::spawn_with(move |c| {
        c.extra
            .insert("meta_app_secret".into(), SecretString::from(meta_secret));
        c.extra.insert("x_consumer_secret".into(), SecretString::from(x_secret));
    })
    .await;
    let before = head(&app).await;
    for dir in ["meta", "x"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nikara"))
            .args([
                "webhooks",
                "replay",
                root.join(dir).to_str().unwrap(),
                "--to",
                &app.running.url(),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NIKARA_DATA_DIR", app.dir.path().join("cli"))
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("0 refused"), "{stdout}");
    }
    let after = head(&app).await;
    assert!(after > before);
    // Replaying again stores nothing new: the deliveries are deduplicated by content.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nikara"))
        .args([
            "webhooks",
            "replay",
            root.join("meta").to_str().unwrap(),
            "--to",
            &app.running.url(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NIKARA_DATA_DIR", app.dir.path().join("cli"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(head(&app).await, after);
    app.stop().await;
}
