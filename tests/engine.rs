//! The automation engine end to end against the platform fakes: every platform publishes, failures
//! are classified and retried as promised, cancel/disconnect/idempotency behave, and a post is
//! published once even with two schedulers racing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestApp, accounts, connect, error_code, settings};
use nikara_fakes::{FakePlatform, Kind, PublishFault};
use serde_json::{Value, json};

struct World {
    app: TestApp,
    fake: FakePlatform,
    token: String,
    account: String,
}

fn fast(c: &mut nikara::config::Config) {
    c.scheduler_tick = Duration::from_millis(50);
    c.publish_retry_delay = Duration::from_millis(100);
    c.publish_timeout = Duration::from_secs(2);
    c.publish_claim_timeout = Duration::from_secs(3);
    c.reconcile_delay = Duration::from_millis(500);
    c.refresh_sweep_interval = Duration::from_secs(3600);
}

async fn world(kind: Kind, platform: &str) -> World {
    world_with(kind, platform, |_| {}).await
}

async fn world_with(kind: Kind, platform: &str, tweak: impl FnOnce(&mut nikara::config::Config)) -> World {
    let fake = FakePlatform::start(kind).await;
    let apply = settings(&[&fake]);
    let app = TestApp::spawn_with(move |c| {
        apply(c);
        fast(c);
        tweak(c);
    })
    .await;
    let token = app.token("owner", Some("owner@example.com"));
    connect(&app, &fake, platform, &token).await;
    let account = accounts(&app, &token).await[0]["id"].as_str().unwrap().to_string();
    World {
        app,
        fake,
        token,
        account,
    }
}

impl World {
    async fn create(&self, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/api/posts"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, id: &str) -> Value {
        self.app
            .get(&format!("/api/posts/{id}"), &self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the post leaves `scheduled`/`publishing` (or the deadline) and answers it.
    async fn settled(&self, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let p = self.post(id).await;
            let s = p["status"].as_str().unwrap_or_default().to_string();
            if !(s == "scheduled" || s == "publishing") || std::time::Instant::now() > deadline {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn content(platform: &str, fake: &FakePlatform, text: &str) -> Value {
    match platform {
        "instagram" => json!({"text": text, "media_urls": [fake.media_url("photo.jpg")]}),
        "tiktok" => {
            json!({"text": text, "title": "clip", "media_urls": [fake.media_url("clip.mp4")], "options": {"privacy_level": "SELF_ONLY"}})
        }
        "youtube" => {
            json!({"text": text, "title": "A video", "media_urls": [fake.media_url("video.mp4")], "options": {"privacy_status": "unlisted"}})
        }
        "reddit" => json!({"text": text, "title": "A title", "options": {"subreddit": "rust"}}),
        _ => json!({"text": text}),
    }
}

#[tokio::test]
async fn every_platform_publishes_end_to_end() {
    for (kind, platform) in [
        (Kind::Meta, "facebook"),
        (Kind::Meta, "instagram"),
        (Kind::Linkedin, "linkedin"),
        (Kind::X, "x"),
        (Kind::Tiktok, "tiktok"),
        (Kind::Reddit, "reddit"),
        (Kind::Google, "youtube"),
    ] {
        let w = world(kind, platform).await;
        let text = format!("hello from nikara to {platform}");
        let mut body = content(platform, &w.fake, &text);
        body["account_id"] = json!(w.account);
        let resp = w.create(body).await;
        assert_eq!(resp.status(), 201, "{platform}: {}", resp.text().await.unwrap());
        let post: Value = resp.json().await.unwrap();
        assert_eq!(
            post["status"], "scheduled",
            "{platform}: the answer shows the state it produced"
        );
        let done = w.settled(post["id"].as_str().unwrap(), 20).await;
        assert_eq!(done["status"], "published", "{platform}: {done}");
        let published = w.fake.published();
        assert_eq!(published.len(), 1, "{platform}: exactly one post on the platform");
        assert_eq!(
            done["platform_post_id"].as_str().unwrap(),
            published[0].id,
            "{platform}"
        );
        assert!(
            done["url"].as_str().is_some_and(|u| u.starts_with("https://")),
            "{platform}: {done}"
        );
        assert_eq!(done["attempts"], 1);
        assert_eq!(done["attempt_history"][0]["outcome"], "published");
        w.app.stop().await;
    }
}

#[tokio::test]
async fn a_500_is_retried_and_then_succeeds() {
    let w = world(Kind::X, "x").await;
    w.fake.control().publish_faults.push_back(PublishFault::ServerError);
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "retry me"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "published", "{done}");
    assert_eq!(done["attempts"], 2);
    let first = &done["attempt_history"][0];
    assert_eq!(
        (first["outcome"].as_str(), first["class"].as_str()),
        (Some("failed"), Some("transient"))
    );
    assert!(first["status"].as_u64().is_some_and(|s| s >= 500), "{first}");
    assert_eq!(w.fake.published().len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let w = world(Kind::X, "x").await;
    w.fake
        .control()
        .publish_faults
        .push_back(PublishFault::RateLimited { retry_after_s: 2 });
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "rate limited"}))
        .await
        .json()
        .await
        .unwrap();
    let id = post["id"].as_str().unwrap();
    // While waiting it stays scheduled, with attempts, the next attempt time and the error.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let waiting = loop {
        let p = w.post(id).await;
        if p["attempts"] == 1 && p["status"] == "scheduled" {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "{p}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = &waiting["attempt_history"][0];
    let started = chrono::DateTime::parse_from_rfc3339(first["started_at"].as_str().unwrap()).unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(waiting["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(
        next - started >= chrono::Duration::milliseconds(1900),
        "Retry-After honoured: {waiting}"
    );
    assert!(waiting["error"].as_str().is_some());
    let done = w.settled(id, 20).await;
    assert_eq!(done["status"], "published");
    let second =
        chrono::DateTime::parse_from_rfc3339(done["attempt_history"][1]["started_at"].as_str().unwrap()).unwrap();
    assert!(second >= next, "not before the platform said");
    w.app.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_fails_with_the_platforms_message() {
    let w = world(Kind::Linkedin, "linkedin").await;
    w.fake.control().publish_faults.push_back(PublishFault::Rejected {
        message: "Content is a duplicate of urn:li:share:42".into(),
    });
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "nope"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"], 1, "permanent failures are not retried");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("Content is a duplicate of urn:li:share:42"),
        "{done}"
    );
    assert_eq!(done["attempt_history"][0]["class"], "permanent");
    w.app.stop().await;
}

#[tokio::test]
async fn a_refused_token_is_refreshed_once_then_the_account_needs_the_user() {
    let w = world(Kind::X, "x").await;
    // Once: refresh and retry succeed.
    w.fake.control().publish_faults.push_back(PublishFault::Unauthorized);
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "after a refresh"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "published", "{done}");
    // Twice: the post fails with "reconnect the account", the account needs the user.
    {
        let mut c = w.fake.control();
        c.publish_faults.push_back(PublishFault::Unauthorized);
        c.publish_faults.push_back(PublishFault::Unauthorized);
    }
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "still refused"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().starts_with("reconnect the account"),
        "{done}"
    );
    let account: Value = w
        .app
        .get(&format!("/api/accounts/{}", w.account), &w.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["status"], "needs_reauth", "{account}");
    w.app.stop().await;
}

#[tokio::test]
async fn cancel_before_publishing_and_409_after() {
    let w = world(Kind::X, "x").await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "later", "scheduled_at": later}))
        .await
        .json()
        .await
        .unwrap();
    let id = post["id"].as_str().unwrap();
    let resp = w
        .app
        .client
        .delete(w.app.url(&format!("/api/posts/{id}")))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(w.post(id).await["status"], "cancelled");
    let now: Value = w
        .create(json!({"account_id": w.account, "text": "now"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(now["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "published");
    let resp = w
        .app
        .client
        .delete(w.app.url(&format!("/api/posts/{}", done["id"].as_str().unwrap())))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.1, "not_cancellable");
    assert_eq!(w.fake.published().len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn disconnecting_an_account_cancels_its_scheduled_posts() {
    let w = world(Kind::Reddit, "reddit").await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"account_id": w.account, "text": format!("t{i}"), "title": "T", "options": {"subreddit": "rust"}, "scheduled_at": later});
        let p: Value = w.create(body).await.json().await.unwrap();
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    let scheduled: Value = w
        .app
        .get(
            &format!("/api/posts?account_id={}&status=scheduled", w.account),
            &w.token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        scheduled["items"].as_array().unwrap().len(),
        3,
        "what the dashboard's confirmation counts"
    );
    let resp = w
        .app
        .client
        .delete(w.app.url(&format!("/api/accounts/{}", w.account)))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    for id in &ids {
        let p = w.post(id).await;
        assert_eq!(p["status"], "cancelled", "{p}");
        assert_eq!(p["error"], "the account was disconnected");
    }
    w.app.stop().await;
}

#[tokio::test]
async fn idempotency_key_answers_the_same_post_and_refuses_another_body() {
    let w = world(Kind::X, "x").await;
    let send = |body: Value| {
        w.app
            .client
            .post(w.app.url("/api/posts"))
            .bearer_auth(&w.token)
            .header("Idempotency-Key", "k-123")
            .json(&body)
            .send()
    };
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!({"account_id": w.account, "text": "once", "scheduled_at": later});
    let (a, b) = tokio::join!(send(body.clone()), send(body.clone()));
    let (a, b): (Value, Value) = (a.unwrap().json().await.unwrap(), b.unwrap().json().await.unwrap());
    assert_eq!(a["id"], b["id"], "concurrent repeats answer the same post");
    let c: Value = send(body).await.unwrap().json().await.unwrap();
    assert_eq!(a["id"], c["id"]);
    let other = send(json!({"account_id": w.account, "text": "different"}))
        .await
        .unwrap();
    assert_eq!(
        error_code(other).await,
        (
            409,
            "idempotency_key_reused".into(),
            "this Idempotency-Key was used with a different request body".into()
        )
    );
    let list: Value = w
        .app
        .get("/api/posts", &w.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    w.app.stop().await;
}

#[tokio::test]
async fn validation_answers_422_field_by_field() {
    let w = world(Kind::Meta, "instagram").await;
    let resp = w
        .create(json!({"account_id": w.account, "text": "x".repeat(2201), "options": {"subreddit": "rust"}}))
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["options.subreddit", "media_urls", "text"], "{body}");
    let foreign = w
        .create(json!({"account_id": "acc_00000000000000000000000000000000", "text": "hi"}))
        .await;
    let body: Value = foreign.json().await.unwrap();
    assert_eq!(body["error"]["fields"][0]["field"], "account_id");
    let none = w.create(json!({"text": "hi"})).await;
    assert_eq!(none.status(), 422);
    assert!(w.fake.published().is_empty());
    w.app.stop().await;
}

#[tokio::test]
async fn one_request_schedules_one_post_per_account() {
    let x = FakePlatform::start(Kind::X).await;
    let li = FakePlatform::start(Kind::Linkedin).await;
    let apply = settings(&[&x, &li]);
    let app = TestApp::spawn_with(move |c| {
        apply(c);
        fast(c);
    })
    .await;
    let t = app.token("owner", None);
    connect(&app, &x, "x", &t).await;
    connect(&app, &li, "linkedin", &t).await;
    let ids: Vec<String> = accounts(&app, &t)
        .await
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let resp = app
        .client
        .post(app.url("/api/posts"))
        .bearer_auth(&t)
        .json(&json!({"account_ids": ids, "text": "everywhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while x.published().len() + li.published().len() < 2 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn posts_of_a_revoked_account_wait_and_resume_after_reconnection() {
    let w = world(Kind::Google, "youtube").await;
    w.fake.control().revoke_refresh = true;
    let resp = w
        .app
        .client
        .post(w.app.url(&format!("/api/accounts/{}/refresh", w.account)))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let mut body = content("youtube", &w.fake, "waits");
    body["account_id"] = json!(w.account);
    let post: Value = w.create(body).await.json().await.unwrap();
    let id = post["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let waiting = w.post(&id).await;
    assert_eq!(
        waiting["status"], "scheduled",
        "not claimed while the account needs the user: {waiting}"
    );
    assert_eq!(waiting["attempts"], 0);
    assert!(w.fake.published().is_empty());
    w.fake.control().revoke_refresh = false;
    connect(&w.app, &w.fake, "youtube", &w.token).await;
    let done = w.settled(&id, 20).await;
    assert_eq!(done["status"], "published", "{done}");
    w.app.stop().await;
}

#[tokio::test]
async fn posts_waiting_too_long_for_their_account_fail() {
    let w = world_with(Kind::X, "x", |c| c.account_wait = Duration::from_millis(200)).await;
    nikara::lifecycle::refresh::mark_revoked(&w.app.running.app, &w.account, "X said: revoked")
        .await
        .unwrap();
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "too late"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .starts_with("account needs reconnection"),
        "{done}"
    );
    w.app.stop().await;
}

#[tokio::test]
async fn no_answer_from_a_platform_that_cannot_be_searched_is_outcome_unknown() {
    let w = world_with(Kind::Linkedin, "linkedin", |c| {
        c.publish_timeout = Duration::from_millis(500)
    })
    .await;
    w.fake.control().publish_faults.push_back(PublishFault::SlowMs(1500));
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "slow"}))
        .await
        .json()
        .await
        .unwrap();
    let id = post["id"].as_str().unwrap().to_string();
    let done = w.settled(&id, 20).await;
    assert_eq!(done["status"], "outcome_unknown", "{done}");
    let msg = done["error"].as_str().unwrap();
    assert!(msg.contains("LinkedIn") && msg.contains("retry"), "{msg}");
    // A person checks and retries knowingly.
    let retried = w
        .app
        .client
        .post(w.app.url(&format!("/api/posts/{id}/retry")))
        .bearer_auth(&w.token)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    let done = w.settled(&id, 20).await;
    assert_eq!(done["status"], "published", "{done}");
    w.app.stop().await;
}

#[tokio::test]
async fn no_answer_from_x_is_reconciled_without_a_duplicate() {
    let w = world_with(Kind::X, "x", |c| c.publish_timeout = Duration::from_millis(500)).await;
    w.fake.control().publish_faults.push_back(PublishFault::SlowMs(1000));
    let post: Value = w
        .create(json!({"account_id": w.account, "text": "did it land?"}))
        .await
        .json()
        .await
        .unwrap();
    let done = w.settled(post["id"].as_str().unwrap(), 20).await;
    assert_eq!(done["status"], "published", "{done}");
    assert_eq!(done["attempt_history"][0]["outcome"], "published (reconciled)");
    assert_eq!(w.fake.published().len(), 1, "found on the platform, not sent again");
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_schedulers_publish_a_thousand_due_posts_exactly_once() {
    let w = world_with(Kind::Meta, "facebook", |c| c.publish_concurrency = 32).await;
    // A second scheduler on the same store, racing the hub's own.
    let app = w.app.running.app.clone();
    let second = nikara::engine::Scheduler::new(
        app.clone(),
        nikara::engine::EngineConfig::from_config(&app.config).unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(second.clone().run(stop.clone()));
    let mut bodies = Vec::new();
    for i in 0..1000 {
        bodies.push(json!({"account_id": w.account, "text": format!("post number {i}")}));
    }
    let client = w.app.client.clone();
    let url = w.app.url("/api/posts");
    let token = w.token.clone();
    let created: Vec<String> = futures::future::join_all(bodies.into_iter().map(|b| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let v: Value = client
                .post(url)
                .bearer_auth(token)
                .json(&b)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    }))
    .await;
    assert_eq!(created.len(), 1000);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while w.fake.published().len() < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "published {}",
            w.fake.published().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let published = w.fake.published();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in &published {
        *seen.entry(p.text.clone()).or_default() += 1;
    }
    assert_eq!(published.len(), 1000, "no duplicates");
    assert!(seen.values().all(|n| *n == 1));
    // Both schedulers did part of the work (claims went both ways).
    let workers: std::collections::HashSet<String> = {
        let mut set = std::collections::HashSet::new();
        for id in created.iter().take(200) {
            let evs = app
                .store
                .read_stream(
                    &format!("post-{id}"),
                    nikara::store::StreamFrom::Start,
                    nikara::store::Direction::Forwards,
                    10,
                )
                .await
                .unwrap();
            for e in evs.iter().filter(|e| e.event_type == "PublishAttemptStarted") {
                let v: Value = serde_json::from_slice(&e.data).unwrap();
                set.insert(v["worker"].as_str().unwrap().to_string());
            }
        }
        set
    };
    assert_eq!(workers.len(), 2, "both schedulers claimed posts");
    stop.cancel();
    handle.await.unwrap();
    w.app.stop().await;
}
