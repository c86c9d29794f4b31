//! HTTP surface of the foundation, against a real hub on port 0.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{SECRET, TestApp, error_code};
use serde_json::json;

#[tokio::test]
async fn health_readiness_metrics_spec_and_docs() {
    let app = TestApp::spawn().await;
    let h: serde_json::Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    app.wait_ready().await;
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(
        ready["projections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "activity")
    );

    // Produce an append so store metrics exist.
    let t = app.token("metrics-user", None);
    assert_eq!(app.get("/api/me", &t).send().await.unwrap().status(), 200);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "nikara_http_requests_total{route=\"healthz\",method=\"GET\",status=\"200\"}",
        "nikara_http_request_duration_seconds_count{route=\"get_me\"}",
        "nikara_store_appends_total",
        "nikara_store_append_duration_seconds_count",
        "nikara_projection_lag_seconds{projection=\"activity\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }

    let spec = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert!(
        spec.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(spec.text().await.unwrap(), nikara::api::openapi_json());
    let docs = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(docs.contains("SwaggerUIBundle"), "Swagger UI is served from the binary");
    assert!(!docs.contains("cdn.") && !docs.contains("unpkg.com"), "no CDN");
    app.running.stop().await.unwrap();
}

fn sign(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn every_bad_token_is_401_with_the_contract_body() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(json!({"sub":"u1","aud":"authenticated","exp":exp}).to_string())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("definitely-not-a-jwt".into())),
        (
            "wrong signature",
            Some(sign(
                json!({"sub":"u1","aud":"authenticated","exp":exp}),
                "some-other-secret-0123456789",
            )),
        ),
        (
            "expired",
            Some(sign(json!({"sub":"u1","aud":"authenticated","exp":exp - 3600}), SECRET)),
        ),
        (
            "wrong audience",
            Some(sign(json!({"sub":"u1","aud":"anon","exp":exp}), SECRET)),
        ),
        ("alg none", Some(none)),
    ];
    for (name, token) in cases {
        let mut req = app.client.get(app.url("/api/me"));
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{name}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{name}");
        let (_, code, _) = error_code(resp).await;
        assert_eq!(code, "unauthorized", "{name}");
    }
    // Nothing was recorded for rejected callers.
    assert_eq!(app.running.app.store.head().await.unwrap().0, 0);
}

#[tokio::test]
async fn profile_round_trip_with_validation_and_read_your_writes() {
    let app = TestApp::spawn().await;
    let t = app.token("alice", Some("alice@example.com"));
    let me: serde_json::Value = app.get("/api/me", &t).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        me,
        json!({"user_id":"alice","email":"alice@example.com","email_source":"token","notifications":true})
    );

    let put = app
        .put("/api/me", &t)
        .json(&json!({"email":"ops@example.org","notifications":false}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let me: serde_json::Value = put.json().await.unwrap();
    assert_eq!(me["email"], "ops@example.org");
    assert_eq!(me["email_source"], "profile");
    let again: serde_json::Value = app.get("/api/me", &t).send().await.unwrap().json().await.unwrap();
    assert_eq!(again, me);

    let bad = app
        .put("/api/me", &t)
        .json(&json!({"email":"nope"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(bad).await;
    assert_eq!((status, code.as_str()), (422, "invalid_email"));
    assert!(message.contains("nope"));

    let malformed = app
        .put("/api/me", &t)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_code(malformed).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{message}");
    assert!(!message.is_empty());

    // The activity log shows both steps, newest first, right after the command answered.
    let page: serde_json::Value = app.get("/api/activity", &t).send().await.unwrap().json().await.unwrap();
    let types: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, vec!["UserProfileUpdated", "UserFirstSeen"]);
    assert_eq!(
        page["items"][0]["summary"],
        "Notification email set to ops@example.org; notifications off"
    );
    assert_eq!(page["next_cursor"], serde_json::Value::Null);

    let first: serde_json::Value = app
        .get("/api/activity?limit=1", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: serde_json::Value = app
        .get(&format!("/api/activity?limit=1&before={cursor}"), &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"][0]["type"], "UserFirstSeen");
    assert_eq!(second["next_cursor"], serde_json::Value::Null);

    let bad_limit = app.get("/api/activity?limit=0", &t).send().await.unwrap();
    assert_eq!(error_code(bad_limit).await.0, 422);
    let bad_cursor = app.get("/api/activity?before=xyz", &t).send().await.unwrap();
    assert_eq!(error_code(bad_cursor).await.1, "invalid_cursor");

    // Another user sees none of it.
    let bob = app.token("bob", None);
    let theirs: serde_json::Value = app
        .get("/api/activity", &bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["stream"] == "user-bob"),
        "{theirs}"
    );
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_413_with_or_without_a_length() {
    let app = TestApp::spawn_with(|c| c.body_limit = 64 * 1024).await;
    let t = app.token("big", None);
    let big = format!("{{\"email\":\"{}@example.com\"}}", "a".repeat(70 * 1024));
    let resp = app
        .put("/api/me", &t)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));

    // Chunked: no Content-Length header.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = app
        .put("/api/me", &t)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.0, 413);
    // Nothing was stored for the refused requests beyond the caller's first sighting.
    let events = app
        .running
        .app
        .store
        .read_all(nikara::store::Position::START, 100)
        .await
        .unwrap();
    assert!(events.iter().all(|e| e.event_type == "UserFirstSeen"), "{events:?}");
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/api/nothing-here")).send().await.unwrap();
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_flushes() {
    let app = TestApp::spawn().await;
    let t = app.token("carol", None);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let req = app
            .put("/api/me", &t)
            .json(&json!({"email": format!("c{i}@example.com")}));
        tasks.push(tokio::spawn(
            async move { req.send().await.map(|r| r.status().as_u16()) },
        ));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dir = app.dir.path().to_path_buf();
    let started = std::time::Instant::now();
    app.running.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(200)) = t.await {
            ok += 1;
        }
    }
    // Every request that was answered 200 is durable: reopen the log and count.
    let store = nikara::store::sqlite::SqliteStore::open(dir.join("events.db")).unwrap();
    use nikara::store::EventStore;
    let events = store.read_all(nikara::store::Position::START, 1000).await.unwrap();
    let updates = events.iter().filter(|e| e.event_type == "UserProfileUpdated").count();
    assert!(updates >= ok, "{updates} stored < {ok} acknowledged");
}
