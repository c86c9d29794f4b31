//! ClickHouse test helpers: a fresh database per test on the server named by
//! `NIKARA_TEST_CLICKHOUSE_URL` (the test command starts one with `scripts/clickhouse-test-server`),
//! and private throwaway servers for tests that stop and restart ClickHouse.
//!
//! Tests skip (printing a line) when the variable is unset; CI sets it, so there they run:
//!
//! ```ignore
//! let Some(db) = TestDatabase::create("my_test").await else { return };
//! ```
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nikara::analytics::Client;
use nikara::config::ClickHouseConfig;
use secrecy::SecretString;
use url::Url;

pub const URL_ENV: &str = "NIKARA_TEST_CLICKHOUSE_URL";

/// The test server's URL, or `None` after printing why the test is skipped.
pub fn test_url(test: &str) -> Option<Url> {
    match std::env::var(URL_ENV).ok().filter(|s| !s.trim().is_empty()) {
        Some(u) => Some(Url::parse(u.trim()).unwrap_or_else(|e| panic!("{URL_ENV}=`{u}` is not a URL: {e}"))),
        None => {
            println!("SKIPPED {test}: set {URL_ENV} (e.g. $(scripts/clickhouse-test-server)) to run it");
            None
        }
    }
}

/// A database of its own (`nikara_test_<uuid>`), dropped (best effort) when this is dropped.
pub struct TestDatabase {
    pub config: ClickHouseConfig,
    pub client: Client,
}

impl TestDatabase {
    /// A fresh database name on the test server (not created: migrations create it), or `None`
    /// (skip) when no server is configured.
    pub async fn create(test: &str) -> Option<TestDatabase> {
        let url = test_url(test)?;
        Some(Self::on(url))
    }

    /// A fresh database name on the server at `url`.
    pub fn on(url: Url) -> TestDatabase {
        let config = ClickHouseConfig {
            url,
            database: format!("nikara_test_{}", uuid::Uuid::new_v4().simple()),
            user: None,
            password: None,
        };
        let client = Client::new(&config).unwrap();
        TestDatabase { config, client }
    }

    /// The same database, authenticating as `user`.
    pub fn config_as(&self, user: &str, password: &str) -> ClickHouseConfig {
        ClickHouseConfig {
            user: Some(user.to_string()),
            password: Some(SecretString::from(password.to_string())),
            ..self.config.clone()
        }
    }

    pub fn name(&self) -> &str {
        &self.config.database
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.config.url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {}", self.config.database);
        // Drop runs inside the test's runtime, where blocking clients must not run: use a thread.
        let _ = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .ok()?;
            client.post(url).body(sql).send().ok()
        })
        .join();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/clickhouse-test-server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A ClickHouse server of the test's own (own data dir and ports), for tests that stop and
/// restart it while the shared test server keeps serving the other tests.
pub struct PrivateServer {
    pub dir: tempfile::TempDir,
    pub http_port: u16,
    pub tcp_port: u16,
}

impl PrivateServer {
    /// Starts one (via `scripts/clickhouse-test-server`) and waits until it answers.
    pub fn start() -> PrivateServer {
        let server = PrivateServer {
            dir: tempfile::tempdir().unwrap(),
            http_port: free_port(),
            tcp_port: free_port(),
        };
        server.run("start");
        server
    }

    pub fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}", self.http_port)).unwrap()
    }

    /// Starts it again after [`PrivateServer::stop`] / [`PrivateServer::kill`] (same data).
    pub fn restart(&self) {
        self.run("start");
    }

    /// Graceful stop (SIGTERM).
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Abrupt stop (SIGKILL), like a crash.
    pub fn kill(&self) {
        self.run("kill");
    }

    fn run(&self, command: &str) {
        let out = Command::new("bash")
            .arg(script())
            .arg(command)
            .env("CLICKHOUSE_TEST_DIR", self.dir.path())
            .env("CLICKHOUSE_TEST_HTTP_PORT", self.http_port.to_string())
            .env("CLICKHOUSE_TEST_TCP_PORT", self.tcp_port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "clickhouse-test-server {command} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("kill")
            .env("CLICKHOUSE_TEST_DIR", self.dir.path())
            .env("CLICKHOUSE_TEST_HTTP_PORT", self.http_port.to_string())
            .env("CLICKHOUSE_TEST_TCP_PORT", self.tcp_port.to_string())
            .output();
    }
}
