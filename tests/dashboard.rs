//! The dashboard: its security headers and caching, and the whole page in a real browser (Debian's
//! Chromium driven by `tests/browser/dashboard.mjs` with playwright-core) against the platform fakes:
//! connect through a consent redirect, a revoked account flagged, disconnect with its confirmation,
//! compose and schedule, published and failed posts in history, engagement, phone width, no console
//! errors or CSP violations. Screenshots land in `target/screenshots/` (or `$SCREENSHOT_DIR`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestApp, accounts, connect, settings};
use nikara::Running;
use nikara_fakes::{FakePlatform, Kind, PublishFault};
use secrecy::SecretString;
use serde_json::{Value, json};

const META_SECRET: &str = "meta-app-secret-for-dashboard-tests-0123";

#[tokio::test]
async fn the_page_and_its_assets_carry_the_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/", "/?connected=x", "/?error=access_denied", "/?reconnect=acc_1"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(h["content-security-policy"], nikara::ui::CSP);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-cache");
        let body = r.text().await.unwrap();
        assert!(body.contains("/ui/app.js") && body.contains("/ui/app.css"));
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "no inline code"
        );
    }
    let csp = nikara::ui::CSP;
    for directive in [
        "default-src 'self'",
        "img-src 'self' https: data:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/vendor/uPlot.iife.min.js", "text/javascript"),
        ("/ui/vendor/uPlot.min.css", "text/css"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(r.headers()["content-security-policy"], csp);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates by ETag");
    }
    assert_eq!(
        app.client.get(app.url("/ui/nope.js")).send().await.unwrap().status(),
        404
    );
    // Everything else is where it was.
    for (path, status) in [
        ("/healthz", 200),
        ("/openapi.json", 200),
        ("/docs", 200),
        ("/metrics", 200),
        ("/api/accounts", 401),
        ("/api/platforms", 401),
    ] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            status,
            "{path}"
        );
    }
    app.stop().await;
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn fast(c: &mut nikara::config::Config) {
    c.scheduler_tick = Duration::from_millis(50);
    c.publish_retry_delay = Duration::from_millis(100);
    c.publish_timeout = Duration::from_secs(2);
    c.publish_claim_timeout = Duration::from_secs(3);
    c.reconcile_delay = Duration::from_millis(500);
    c.refresh_sweep_interval = Duration::from_secs(3600);
    c.extra
        .insert("meta_app_secret".into(), SecretString::from(META_SECRET.to_string()));
    c.extra
        .insert("engagement_sync_interval".into(), SecretString::from("1s".to_string()));
}

/// A hub whose PUBLIC_URL is its real address, so the OAuth redirects land on it in the browser.
async fn hub_on_its_own_address(fakes: &[&FakePlatform]) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = nikara::config::Config::for_tests(dir.path());
    settings(fakes)(&mut config);
    fast(&mut config);
    config.listen = addr;
    config.public_url = format!("http://{addr}").parse().unwrap();
    let hub = nikara::Hub::build(config).await.unwrap();
    let app = hub.app.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(hub.serve(listener, shutdown.clone()));
    TestApp {
        running: Running {
            addr,
            app,
            shutdown,
            handle,
        },
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        dir,
    }
}

async fn create_post(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .client
        .post(app.url("/api/posts"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p: Value = app
            .get(&format!("/api/posts/{id}"), token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !matches!(p["status"].as_str(), Some("scheduled" | "publishing")) || std::time::Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn meta_signature(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(META_SECRET.as_bytes()).unwrap();
    m.update(body);
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Likes, a comment and a share on a Facebook post, delivered as Meta's signed webhooks.
async fn engage(app: &TestApp, page: &str, post: &str) {
    let now = chrono::Utc::now().timestamp();
    let mut changes = Vec::new();
    for (i, kind) in ["like", "love", "like", "like", "haha"].iter().enumerate() {
        changes.push(json!({"field": "feed", "value": {"item": "reaction", "verb": "add", "reaction_type": kind,
            "post_id": post, "parent_id": post, "created_time": now, "from": {"id": format!("fan{i}"), "name": "Someone"}}}));
    }
    changes.push(
        json!({"field": "feed", "value": {"item": "comment", "verb": "add", "post_id": post, "comment_id": "c1",
        "created_time": now, "from": {"id": "fan9"}, "message": "Congratulations!"}}),
    );
    changes.push(
        json!({"field": "feed", "value": {"item": "share", "verb": "add", "post_id": post, "share_id": "s1",
        "sender_id": "fan8", "created_time": now}}),
    );
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": page, "time": now, "changes": changes}]}))
        .unwrap();
    let r = app
        .client
        .post(app.url("/webhooks/meta"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", meta_signature(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(node) = which("node") else {
        println!("SKIPPED: `node` is not installed; the dashboard browser test needs Node 20+ and /usr/bin/chromium");
        return;
    };
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        println!(
            "SKIPPED: /usr/bin/chromium is missing (apt-get install chromium); the dashboard browser test needs it"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = root.join("tests/browser");
    if !browser.join("node_modules/playwright-core").is_dir() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&browser)
            .status()
            .expect("npm is needed to install playwright-core (npm ci --prefix tests/browser)");
        assert!(status.success(), "npm ci --prefix tests/browser failed");
    }

    let x = FakePlatform::start(Kind::X).await;
    let meta = FakePlatform::start(Kind::Meta).await;
    let reddit = FakePlatform::start(Kind::Reddit).await;
    let app = hub_on_its_own_address(&[&x, &meta, &reddit]).await;
    let token = app.token("owner", Some("owner@example.com"));

    // Facebook (two Pages) and Reddit are connected beforehand; X is connected in the browser.
    connect(&app, &meta, "facebook", &token).await;
    connect(&app, &reddit, "reddit", &token).await;
    let list = accounts(&app, &token).await;
    let id_of = |f: &dyn Fn(&Value) -> bool| list.iter().find(|a| f(a)).unwrap()["id"].as_str().unwrap().to_string();
    let page_a = id_of(&|a| a["external_id"] == "112233445566778");
    let page_b = id_of(&|a| a["external_id"] == "223344556677889");
    let reddit_account = id_of(&|a| a["platform"] == "reddit");
    nikara::lifecycle::refresh::mark_revoked(
        &app.running.app,
        &page_b,
        "Error validating access token: The user has not authorized application 1234567890.",
    )
    .await
    .unwrap();

    // One scheduled Reddit post (the disconnect dialog counts it), one published Facebook post with
    // engagement, one the platform refused.
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    create_post(
        &app,
        &token,
        json!({"account_id": reddit_account, "title": "Weekly thread", "text": "What are you building?",
            "options": {"subreddit": "rust"}, "scheduled_at": in_an_hour}),
    )
    .await;
    let post = create_post(
        &app,
        &token,
        json!({"account_id": page_a, "text": "We just opened our new studio downtown. Come say hi this weekend!"}),
    )
    .await;
    let post = settled(&app, &token, post["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "published", "{post}");
    engage(&app, "112233445566778", post["platform_post_id"].as_str().unwrap()).await;
    meta.control().publish_faults.push_back(PublishFault::Rejected {
        message: "(#506) Duplicate status message".into(),
    });
    let refused = create_post(
        &app,
        &token,
        json!({"account_id": page_a, "text": "We just opened our new studio downtown. Come say hi this weekend!"}),
    )
    .await;
    assert_eq!(
        settled(&app, &token, refused["id"].as_str().unwrap()).await["status"],
        "failed"
    );

    let shots = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("screenshots")
        });
    let run = tokio::process::Command::new(&node)
        .arg(browser.join("dashboard.mjs"))
        .current_dir(root)
        .env("HUB_URL", app.running.url())
        .env("TOKEN", &token)
        .env("SCREENSHOT_DIR", &shots)
        .env("REVOKED_ACCOUNT", &page_b)
        .env("REDDIT_ACCOUNT", &reddit_account)
        .env("FB_ACCOUNT", &page_a)
        .env("CHROMIUM", chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test took more than 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "node tests/browser/dashboard.mjs failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    println!("screenshots in {}", shots.display());
    app.stop().await;
}
