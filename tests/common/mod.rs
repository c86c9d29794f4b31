//! Test harness: a real hub on 127.0.0.1:0 with its own temp data dir.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use nikara::Running;
use nikara::config::Config;
use nikara::domain::ids::UserId;
use nikara_fakes::FakePlatform;
use secrecy::SecretString;
use serde_json::Value;

pub struct TestApp {
    pub running: Running,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub const SECRET: &str = "test-secret-test-secret-test-secret";

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_at(tempfile::tempdir().unwrap(), tweak).await
    }

    /// A hub on an existing data dir (restarts).
    pub async fn spawn_at(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::for_tests(dir.path());
        tweak(&mut config);
        let running = nikara::start(config).await.unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        TestApp { running, client, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.url(), path)
    }

    /// A valid token for `user`.
    pub fn token(&self, user: &str, email: Option<&str>) -> String {
        self.running
            .app
            .jwt
            .mint(&UserId::parse(user).unwrap(), email, Duration::from_secs(600))
            .unwrap()
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(token)
    }

    pub fn put(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path)).bearer_auth(token)
    }

    /// Stops the hub and hands back its data dir for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.stop().await.unwrap();
        self.dir
    }

    /// A client that does not follow redirects (the OAuth callback answers 302).
    pub fn no_redirects(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// Rewrites a URL built from the configured public URL onto this hub's real address.
    pub fn local(&self, url: &str) -> String {
        let public = self.running.app.config.public_url.as_str().trim_end_matches('/');
        url.replacen(public, &self.running.url(), 1)
    }

    pub async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.client.get(self.url("/readyz")).send().await.unwrap();
            if r.status() == 200 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready: {}",
                r.text().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts the contract's error body and returns its code.
pub async fn error_code(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message in {body}"))
        .to_string();
    (status, code, message)
}

pub fn settings(fakes: &[&FakePlatform]) -> impl FnOnce(&mut nikara::config::Config) + use<> {
    let all: Vec<(String, String)> = fakes.iter().flat_map(|f| f.settings()).collect();
    move |c| {
        for (k, v) in all {
            c.extra.insert(k, SecretString::from(v));
        }
    }
}

/// start → consent at the fake → callback; answers the callback's redirect Location.
pub async fn connect(app: &TestApp, fake: &FakePlatform, platform: &str, token: &str) -> String {
    let start = app
        .client
        .post(app.url(&format!("/api/oauth/{platform}/start")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200, "{}", start.text().await.unwrap());
    let body: Value = start.json().await.unwrap();
    let authorize_url = body["authorize_url"].as_str().unwrap();
    let callback = fake.consent(authorize_url).await;
    let resp = app.no_redirects().get(app.local(&callback)).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    resp.headers()["location"].to_str().unwrap().to_string()
}

pub async fn accounts(app: &TestApp, token: &str) -> Vec<Value> {
    let list: Value = app
        .get("/api/accounts", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"].as_array().unwrap().clone()
}

pub async fn activity(app: &TestApp, token: &str) -> Vec<String> {
    let page: Value = app
        .get("/api/activity", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["summary"].as_str().unwrap().to_string())
        .collect()
}
