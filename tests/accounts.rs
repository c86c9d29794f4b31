//! Connect accounts end to end against local fakes of the seven platforms.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, accounts, activity, connect, error_code, settings};
use nikara_fakes::{FakePlatform, Kind};
use secrecy::SecretString;
use serde_json::{Value, json};

fn assert_account(a: &Value, platform: &str, fake: &FakePlatform) {
    assert_eq!(a["platform"], platform, "{a}");
    assert!(a["id"].as_str().unwrap().starts_with("acc_"), "{a}");
    assert!(!a["external_id"].as_str().unwrap().is_empty(), "{a}");
    assert!(a["display_name"].as_str().is_some_and(|s| !s.is_empty()), "{a}");
    assert!(a["avatar_url"].as_str().is_some_and(|s| s.starts_with("http")), "{a}");
    assert!(
        !a["avatar_url"].as_str().unwrap().contains("&amp;"),
        "HTML entities decoded: {a}"
    );
    assert_eq!(a["status"], "active", "{a}");
    assert!(a["connected_at"].as_str().is_some(), "{a}");
    assert!(a["metadata"].is_object(), "{a}");
    let text = a.to_string();
    for token in fake.issued_tokens() {
        assert!(!text.contains(&token), "a token reached the API: {text}");
    }
    assert!(!text.contains(fake.client_secret()));
}

async fn connects(kind: Kind, platform: &str, expected_accounts: usize) -> (TestApp, FakePlatform, String) {
    let fake = FakePlatform::start(kind).await;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let t = app.token("owner", None);
    let location = connect(&app, &fake, platform, &t).await;
    assert_eq!(location, format!("http://localhost:3000/?connected={platform}"));
    let list = accounts(&app, &t).await;
    assert_eq!(list.len(), expected_accounts, "{list:?}");
    for a in &list {
        assert_account(a, platform, &fake);
        let one: Value = app
            .get(&format!("/api/accounts/{}", a["id"].as_str().unwrap()), &t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(&one, a);
    }
    assert!(activity(&app, &t).await.iter().any(|s| s.starts_with("Connected ")));
    (app, fake, t)
}

#[tokio::test]
async fn facebook_connects_one_account_per_page() {
    let (app, _fake, t) = connects(Kind::Meta, "facebook", 2).await;
    let list = accounts(&app, &t).await;
    assert!(list.iter().all(|a| a["metadata"]["page_id"] == a["external_id"]));
    app.stop().await;
}

#[tokio::test]
async fn instagram_connects_business_accounts_and_says_which_pages_it_skipped() {
    let (app, _fake, t) = connects(Kind::Meta, "instagram", 1).await;
    let a = &accounts(&app, &t).await[0];
    assert!(a["username"].as_str().is_some());
    assert!(a["metadata"]["page_id"].as_str().is_some());
    assert!(
        activity(&app, &t)
            .await
            .iter()
            .any(|s| s.contains("has no Instagram business account"))
    );
    app.stop().await;
}

#[tokio::test]
async fn linkedin_connects_with_oidc_profile() {
    let (app, _fake, t) = connects(Kind::Linkedin, "linkedin", 1).await;
    let a = &accounts(&app, &t).await[0];
    assert_eq!(a["metadata"]["profile_source"], "oidc");
    assert!(
        a["metadata"]["author_urn"]
            .as_str()
            .unwrap()
            .starts_with("urn:li:person:")
    );
    app.stop().await;
}

#[tokio::test]
async fn linkedin_maps_the_legacy_lite_profile_to_the_same_fields() {
    let fake = FakePlatform::start(Kind::Linkedin).await;
    fake.control().linkedin_legacy_profile = true;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let t = app.token("owner", None);
    connect(&app, &fake, "linkedin", &t).await;
    let a = &accounts(&app, &t).await[0];
    assert_account(a, "linkedin", &fake);
    assert_eq!(a["metadata"]["profile_source"], "r_liteprofile");
    for field in ["id", "name", "first_name", "last_name", "picture", "author_urn"] {
        assert!(a["metadata"][field].is_string(), "{field} in {a}");
    }
    app.stop().await;
}

#[tokio::test]
async fn x_connects_with_pkce() {
    let (app, fake, _t) = connects(Kind::X, "x", 1).await;
    let token_call = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/2/oauth2/token")
        .unwrap();
    assert!(token_call.body.contains("code_verifier="), "PKCE verifier sent");
    assert!(
        token_call
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v.starts_with("Basic "))
    );
    app.stop().await;
}

#[tokio::test]
async fn tiktok_connects() {
    let (app, fake, _t) = connects(Kind::Tiktok, "tiktok", 1).await;
    let token_call = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v2/oauth/token/")
        .unwrap();
    assert!(token_call.body.contains("client_key="));
    app.stop().await;
}

#[tokio::test]
async fn reddit_connects_and_decodes_html_entities() {
    let (app, _fake, _t) = connects(Kind::Reddit, "reddit", 1).await;
    app.stop().await;
}

#[tokio::test]
async fn youtube_connects_one_account_per_channel() {
    let (app, _fake, _t) = connects(Kind::Google, "youtube", 1).await;
    app.stop().await;
}

#[tokio::test]
async fn reconnecting_the_same_account_does_not_duplicate_it_and_keeps_the_refresh_token() {
    let fake = FakePlatform::start(Kind::Google).await;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let t = app.token("owner", None);
    connect(&app, &fake, "youtube", &t).await;
    let first = accounts(&app, &t).await;
    connect(&app, &fake, "youtube", &t).await;
    let second = accounts(&app, &t).await;
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 1);
    assert_eq!(first[0]["id"], second[0]["id"]);
    let types: Vec<String> = app
        .running
        .app
        .store
        .read_stream(
            &format!("account-{}", first[0]["id"].as_str().unwrap()),
            nikara::store::StreamFrom::Start,
            nikara::store::Direction::Forwards,
            10,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, vec!["AccountConnected", "AccountReconnected"]);
    app.stop().await;
}

#[tokio::test]
async fn failures_redirect_with_a_code_and_store_nothing() {
    let fake = FakePlatform::start(Kind::X).await;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let t = app.token("owner", None);

    fake.control().deny_consent = true;
    assert_eq!(
        connect(&app, &fake, "x", &t).await,
        "http://localhost:3000/?error=access_denied"
    );
    fake.control().deny_consent = false;

    fake.control().token_error_500 = true;
    assert_eq!(
        connect(&app, &fake, "x", &t).await,
        "http://localhost:3000/?error=platform_unavailable"
    );
    fake.control().token_error_500 = false;

    fake.control().profile_401 = true;
    assert_eq!(
        connect(&app, &fake, "x", &t).await,
        "http://localhost:3000/?error=token_rejected"
    );
    fake.control().profile_401 = false;

    // A bad code: a valid state, but a code the platform never issued.
    let start: Value = app
        .client
        .post(app.url("/api/oauth/x/start"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authorize = url::Url::parse(start["authorize_url"].as_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let resp = app
        .no_redirects()
        .get(app.url("/api/oauth/callback"))
        .query(&[("code", "not-a-code"), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://localhost:3000/?error=")
    );

    assert!(accounts(&app, &t).await.is_empty(), "nothing half-stored");
    let log = activity(&app, &t).await;
    assert!(
        log.iter().filter(|s| s.starts_with("Could not connect X")).count() >= 4,
        "{log:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_expired_and_replayed_states_are_400() {
    let fake = FakePlatform::start(Kind::Reddit).await;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let t = app.token("owner", None);
    let client = app.no_redirects();

    let missing = client.get(app.url("/api/oauth/callback?code=c")).send().await.unwrap();
    assert_eq!(error_code(missing).await.1, "invalid_state");

    let (state, _) =
        app.running
            .app
            .state_key
            .issue("owner", nikara::domain::platform::Platform::Reddit, chrono::Utc::now());
    let tampered = format!("{}x", state);
    let resp = client
        .get(app.url("/api/oauth/callback"))
        .query(&[("code", "c"), ("state", tampered.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (
            400,
            "invalid_state".into(),
            "the state parameter's signature is invalid".into()
        )
    );

    let old = chrono::Utc::now() - chrono::Duration::minutes(11);
    let (expired, _) = app
        .running
        .app
        .state_key
        .issue("owner", nikara::domain::platform::Platform::Reddit, old);
    let resp = client
        .get(app.url("/api/oauth/callback"))
        .query(&[("code", "c"), ("state", expired.as_str())])
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (400, "invalid_state"));
    assert!(message.contains("expired"));

    // Replay: the same callback twice.
    let start: Value = app
        .client
        .post(app.url("/api/oauth/reddit/start"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callback = app.local(&fake.consent(start["authorize_url"].as_str().unwrap()).await);
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 302);
    let again = client.get(&callback).send().await.unwrap();
    assert_eq!(error_code(again).await.1, "state_replayed");
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_unconfigured_platforms_are_404() {
    let app = TestApp::spawn().await;
    let t = app.token("owner", None);
    let unknown = app
        .client
        .post(app.url("/api/oauth/myspace/start"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await.1, "unknown_platform");
    let unconfigured = app
        .client
        .post(app.url("/api/oauth/tiktok/start"))
        .bearer_auth(&t)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(unconfigured).await;
    assert_eq!((status, code.as_str()), (404, "platform_not_configured"));
    assert!(
        message.contains("NIKARA_TIKTOK_CLIENT_ID") && message.contains("NIKARA_TIKTOK_CLIENT_SECRET"),
        "{message}"
    );
    let platforms: Value = app
        .get("/api/platforms", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(platforms["items"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn platforms_lists_the_configured_ones_with_scopes() {
    let meta = FakePlatform::start(Kind::Meta).await;
    let app = TestApp::spawn_with(settings(&[&meta])).await;
    let t = app.token("owner", None);
    let platforms: Value = app
        .get("/api/platforms", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = platforms["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["facebook", "instagram"]);
    assert!(
        platforms["items"][0]["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "pages_manage_posts")
    );
    assert!(!platforms.to_string().contains(meta.client_secret()));
    app.stop().await;
}

#[tokio::test]
async fn another_users_account_is_404_on_every_route_that_takes_an_id() {
    let fake = FakePlatform::start(Kind::X).await;
    let app = TestApp::spawn_with(settings(&[&fake])).await;
    let alice = app.token("alice", None);
    connect(&app, &fake, "x", &alice).await;
    let id = accounts(&app, &alice).await[0]["id"].as_str().unwrap().to_string();
    let mallory = app.token("mallory", None);
    assert!(accounts(&app, &mallory).await.is_empty());

    // Walk the spec: every /api path with an {id} parameter, every method.
    let spec: Value = serde_json::from_str(&nikara::api::openapi_json()).unwrap();
    let mut walked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/") || !path.contains("{id}") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            let url = app.url(&path.replace("{id}", &id));
            let req = match method.as_str() {
                "get" => app.client.get(url),
                "delete" => app.client.delete(url),
                "post" => app.client.post(url).json(&json!({})),
                "put" => app.client.put(url).json(&json!({})),
                "patch" => app.client.patch(url).json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.bearer_auth(&mallory).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{method} {path}");
            walked += 1;
        }
    }
    assert!(walked >= 2, "walked {walked} routes");
    // Alice still has her account.
    assert_eq!(accounts(&app, &alice).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn disconnect_revokes_where_possible_and_hides_the_account() {
    for (kind, platform, revoke_path) in [
        (Kind::Google, "youtube", Some("/revoke")),
        (Kind::Reddit, "reddit", Some("/api/v1/revoke_token")),
        (Kind::X, "x", None),
    ] {
        let fake = FakePlatform::start(kind).await;
        let app = TestApp::spawn_with(settings(&[&fake])).await;
        let t = app.token("owner", None);
        connect(&app, &fake, platform, &t).await;
        let id = accounts(&app, &t).await[0]["id"].as_str().unwrap().to_string();
        let resp = app
            .client
            .delete(app.url(&format!("/api/accounts/{id}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        assert!(accounts(&app, &t).await.is_empty());
        assert_eq!(
            app.get(&format!("/api/accounts/{id}"), &t)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let again = app
            .client
            .delete(app.url(&format!("/api/accounts/{id}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 404);
        let revoked = fake.requests().iter().any(|r| Some(r.path.as_str()) == revoke_path);
        assert_eq!(revoked, revoke_path.is_some(), "{platform}");
        app.stop().await;
    }
}

/// Every token the fakes issued, grepped for in every file of the data dir (log, WAL, read models).
fn assert_no_plaintext_tokens(dir: &std::path::Path, tokens: &[String]) {
    assert!(!tokens.is_empty());
    let mut files = 0;
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for t in tokens {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "plaintext token found in {}",
                entry.display()
            );
        }
    }
    assert!(files >= 2);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn no_plaintext_token_reaches_the_disk() {
    let fakes = [
        FakePlatform::start(Kind::Meta).await,
        FakePlatform::start(Kind::Linkedin).await,
        FakePlatform::start(Kind::X).await,
        FakePlatform::start(Kind::Tiktok).await,
        FakePlatform::start(Kind::Reddit).await,
        FakePlatform::start(Kind::Google).await,
    ];
    let refs: Vec<&FakePlatform> = fakes.iter().collect();
    let app = TestApp::spawn_with(settings(&refs)).await;
    let t = app.token("owner", None);
    for (fake, platform) in fakes
        .iter()
        .zip(["facebook", "linkedin", "x", "tiktok", "reddit", "youtube"])
    {
        connect(&app, fake, platform, &t).await;
    }
    connect(&app, &fakes[0], "instagram", &t).await;
    assert_eq!(accounts(&app, &t).await.len(), 2 + 1 + 1 + 1 + 1 + 1 + 1);
    let tokens: Vec<String> = fakes.iter().flat_map(|f| f.issued_tokens()).collect();
    let dir = app.stop().await;
    assert_no_plaintext_tokens(dir.path(), &tokens);
}

#[tokio::test]
async fn key_rotation_end_to_end() {
    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";
    let ring = |s: &str| nikara::crypto::KeyRing::parse(s).unwrap();
    let fake = FakePlatform::start(Kind::Google).await;
    let s = fake.settings();
    let with = move |keys: &'static str| {
        let s = s.clone();
        move |c: &mut nikara::config::Config| {
            c.encryption_keys = Some(ring(keys));
            for (k, v) in s {
                c.extra.insert(k, SecretString::from(v));
            }
        }
    };
    let app = TestApp::spawn_with(with(K1)).await;
    let t = app.token("owner", None);
    connect(&app, &fake, "youtube", &t).await;
    let id = accounts(&app, &t).await[0]["id"].as_str().unwrap().to_string();
    let dir = app.stop().await;

    // Dropping k1 while tokens still use it: the hub refuses to start, naming the key.
    let mut config = nikara::config::Config::for_tests(dir.path());
    config.encryption_keys = Some(ring(K2));
    let err = nikara::start(config).await.unwrap_err();
    assert!(format!("{err:#}").contains("k1 (2 live tokens)"), "{err:#}");

    // k2 becomes primary; rotate; k1 counts zero.
    let app = TestApp::spawn_at(
        dir,
        with("k2:HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=,k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    )
    .await;
    let a = &app.running.app;
    assert!(
        nikara::keys::rotate_account(a.store.as_ref(), &a.cipher, &id)
            .await
            .unwrap()
    );
    assert!(
        !nikara::keys::rotate_account(a.store.as_ref(), &a.cipher, &id)
            .await
            .unwrap(),
        "second run: nothing to do"
    );
    let head = a.store.head().await.unwrap();
    assert!(a.runner.wait_for(head, std::time::Duration::from_secs(5)).await);
    let live = a
        .models
        .read(nikara::projections::accounts::live_tokens_per_kid)
        .await
        .unwrap();
    assert_eq!(live, vec![("k2".to_string(), 2)]);
    let dir = app.stop().await;

    // Only k2 now: starts, and the tokens still decrypt (disconnect revokes with the plaintext).
    let app = TestApp::spawn_at(dir, with(K2)).await;
    let before = fake.requests().len();
    let resp = app
        .client
        .delete(app.url(&format!("/api/accounts/{id}")))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let revoke = fake.requests()[before..]
        .iter()
        .find(|r| r.path == "/revoke")
        .cloned()
        .expect("revoked");
    let issued = fake.issued_tokens();
    assert!(
        issued
            .iter()
            .any(|tok| revoke.body.contains(tok.as_str()) || revoke.query.contains(tok.as_str())),
        "the decrypted token was sent"
    );
    app.stop().await;
}
