//! Exactly once under crashes: a real `nikara` process publishing a burst is SIGKILLed, restarted
//! on the same data dir, and must end with zero duplicates at the platform and every post either
//! published or `outcome_unknown` (never silently lost, never blindly retried).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nikara::domain::ids::UserId;
use nikara_fakes::{FakePlatform, Kind};
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "crash-test-secret-crash-test-secret";
const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn spawn(dir: &std::path::Path, fake: &FakePlatform) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nikara"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NIKARA_LISTEN", "127.0.0.1:0")
        .env("NIKARA_DATA_DIR", dir)
        .env("NIKARA_JWT_SECRET", SECRET)
        .env("NIKARA_ENCRYPTION_KEYS", KEYS)
        .env("NIKARA_SCHEDULER_TICK", "50ms")
        .env("NIKARA_PUBLISH_TIMEOUT", "2s")
        .env("NIKARA_PUBLISH_CLAIM_TIMEOUT", "3s")
        .env("NIKARA_RECONCILE_DELAY", "200ms")
        .env("NIKARA_PUBLISH_RETRY_DELAY", "100ms")
        .env("NIKARA_PUBLISH_CONCURRENCY_X", "16")
        .env("NIKARA_REFRESH_SWEEP_INTERVAL", "1h")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in fake.settings() {
        cmd.env(format!("NIKARA_{}", k.to_ascii_uppercase()), v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("addr=Some(") {
                let rest = &line[i + "addr=Some(".len()..];
                let _ = tx.send(rest.split(')').next().unwrap_or_default().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => (child, format!("http://{addr}")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nikara did not start");
        }
    }
}

async fn statuses(client: &reqwest::Client, base: &str, token: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/posts?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for p in page["items"].as_array().unwrap() {
            out.insert(
                p["text"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_burst_leaves_no_duplicate_and_no_lost_post() {
    const POSTS: usize = 300;
    let fake = FakePlatform::start(Kind::X).await;
    // Slow enough that publishes are in flight when the process dies.
    fake.control().publish_latency_ms = 30;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn(dir.path(), &fake);
    let keys = nikara::auth::JwtKeys::new(SecretString::from(SECRET.to_string()), "authenticated");
    let token = keys
        .mint(&UserId::parse("owner").unwrap(), None, Duration::from_secs(3600))
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Connect the account through the fake's consent screen.
    let start: Value = client
        .post(format!("{base}/api/oauth/x/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callback = fake.consent(start["authorize_url"].as_str().unwrap()).await;
    let callback = callback.replacen("http://localhost:3000", &base, 1);
    assert_eq!(client.get(callback).send().await.unwrap().status(), 302);
    let accounts: Value = client
        .get(format!("{base}/api/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = accounts["items"][0]["id"].as_str().unwrap().to_string();

    // The burst: every post due in a second.
    let due = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let created = futures::future::join_all((0..POSTS).map(|i| {
        let (client, base, token, account, due) = (
            client.clone(),
            base.clone(),
            token.clone(),
            account.clone(),
            due.clone(),
        );
        async move {
            let body = json!({"account_id": account, "text": format!("burst post {i}"), "scheduled_at": due});
            client
                .post(format!("{base}/api/posts"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    }))
    .await;
    assert!(created.iter().all(|s| s.as_u16() == 201));

    // Kill it in the middle of the burst.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.publish_count() < POSTS / 4 {
        assert!(Instant::now() < deadline, "publishing did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = fake.publish_count();
    assert!(at_kill < POSTS, "the kill came too late to test anything ({at_kill})");

    // Restart on the same data dir; recovery reconciles the abandoned claims.
    let (mut child, base) = spawn(dir.path(), &fake);
    let deadline = Instant::now() + Duration::from_secs(90);
    let final_states = loop {
        let s = statuses(&client, &base, &token).await;
        let open = s.values().filter(|v| *v == "scheduled" || *v == "publishing").count();
        if s.len() == POSTS && open == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "still open: {open} of {}", s.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let published = fake.published();
    let mut per_text: HashMap<&str, usize> = HashMap::new();
    for p in &published {
        *per_text.entry(p.text.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = per_text.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates at the platform: {duplicates:?}");
    for (text, status) in &final_states {
        assert!(status == "published" || status == "outcome_unknown", "{text}: {status}");
        if status == "published" {
            assert_eq!(per_text.get(text.as_str()), Some(&1), "{text} published once");
        }
    }
    let published_posts = final_states.values().filter(|s| *s == "published").count();
    let unknown = final_states.values().filter(|s| *s == "outcome_unknown").count();
    // Every platform post belongs to a post nikara shows as published, or to one it says it cannot
    // know about (left to a person); nothing is at the platform that nikara thinks is unpublished.
    for p in &published {
        let status = final_states.get(&p.text).map(String::as_str);
        assert!(
            matches!(status, Some("published" | "outcome_unknown")),
            "{}: {status:?}",
            p.text
        );
    }
    assert!(published_posts <= published.len() && published.len() <= published_posts + unknown);
    eprintln!(
        "killed after {at_kill} publishes; final: {published_posts} published, {unknown} outcome_unknown, {} at the platform",
        published.len()
    );
}
