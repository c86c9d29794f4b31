//! Configuration: compiled-in defaults < `nikara.toml` (optional) < `NIKARA_*` environment.
//!
//! Every secret may also come from a file (`NIKARA_X_FILE`), the usual way to mount Docker or
//! Kubernetes secrets. Everything is validated here, at boot: a bad value stops the process with one
//! line naming the variable and what is wrong with it, instead of failing at the first request.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::crypto::KeyRing;

/// A configuration problem, always naming the variable (as its `NIKARA_*` environment name).
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            var: env_name(key),
            message: message.into(),
        }
    }
}

fn env_name(key: &str) -> String {
    format!("NIKARA_{}", key.to_ascii_uppercase())
}

/// Raw, unvalidated values as figment merges them. Field names are the env names without
/// `NIKARA_`, lower-cased.
#[derive(Debug, Serialize, Deserialize)]
struct Raw {
    listen: String,
    public_url: String,
    data_dir: PathBuf,
    eventstore_url: Option<String>,
    clickhouse_url: Option<String>,
    clickhouse_database: String,
    clickhouse_user: Option<String>,
    jwt_audience: String,
    mail_from: String,
    refresh_margin: Scalar,
    refresh_sweep_interval: Scalar,
    scheduler_tick: Scalar,
    publish_concurrency: Scalar,
    publish_max_attempts: Scalar,
    publish_timeout: Scalar,
    publish_retry_delay: Scalar,
    publish_claim_timeout: Option<Scalar>,
    reconcile_delay: Scalar,
    account_wait: Scalar,
    body_limit: Scalar,
    shutdown_timeout: Scalar,
    log: String,
    /// Everything else (secrets, `*_FILE` paths, per-platform settings), kept as strings so later
    /// features can read their own keys without the core knowing them.
    #[serde(flatten)]
    rest: BTreeMap<String, figment::value::Value>,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            listen: "127.0.0.1:3000".into(),
            public_url: "http://localhost:3000".into(),
            data_dir: PathBuf::from("./data"),
            eventstore_url: None,
            clickhouse_url: None,
            clickhouse_database: "nikara".into(),
            clickhouse_user: None,
            jwt_audience: "authenticated".into(),
            mail_from: "nikara <nikara@localhost>".into(),
            refresh_margin: Scalar::S("5m".into()),
            refresh_sweep_interval: Scalar::S("1m".into()),
            scheduler_tick: Scalar::S("1s".into()),
            publish_concurrency: Scalar::N(64),
            publish_max_attempts: Scalar::N(5),
            publish_timeout: Scalar::S("5m".into()),
            publish_retry_delay: Scalar::S("12s".into()),
            publish_claim_timeout: None,
            reconcile_delay: Scalar::S("10s".into()),
            account_wait: Scalar::S("24h".into()),
            body_limit: Scalar::S("1MiB".into()),
            shutdown_timeout: Scalar::S("10s".into()),
            log: "info".into(),
            rest: BTreeMap::new(),
        }
    }
}

/// A value that may arrive as text (`5m`) or, from the environment, as a bare number (`300`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Scalar {
    N(u64),
    S(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::N(n) => n.to_string(),
            Scalar::S(s) => s.clone(),
        }
    }
}

/// Secret-bearing settings; each also accepts `NIKARA_{NAME}_FILE`.
pub const SECRET_KEYS: &[&str] = &[
    "jwt_secret",
    "encryption_keys",
    "clickhouse_password",
    "smtp_url",
    "meta_app_secret",
    "meta_verify_token",
    "x_consumer_secret",
    "eventstore_url",
];

/// Where events live.
#[derive(Debug, Clone)]
pub enum EventStoreConfig {
    /// `{data_dir}/events.db`.
    Embedded,
    /// KurrentDB connection string (`kurrentdb://…` / `esdb://…`); may hold credentials.
    Kurrent(SecretString),
}

/// ClickHouse HTTP endpoint, when configured.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: Url,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

/// Validated configuration. `Debug` shows no secret: they are `SecretString`s.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub eventstore: EventStoreConfig,
    pub clickhouse: Option<ClickHouseConfig>,
    /// HS256 secret; `None` means "use or generate the development secret in the data dir".
    pub jwt_secret: Option<SecretString>,
    pub jwt_audience: String,
    /// Token key ring; `None` means "use or generate the development ring in the data dir".
    pub encryption_keys: Option<KeyRing>,
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub refresh_margin: Duration,
    /// How often the refresh sweeper runs.
    pub refresh_sweep_interval: Duration,
    /// How often the scheduler looks for due posts (it is also woken by new posts).
    pub scheduler_tick: Duration,
    /// Publishes in flight at once, all platforms together.
    pub publish_concurrency: usize,
    /// Attempts per post before a transient failure becomes final.
    pub publish_max_attempts: u32,
    /// Longest a publish may take (uploads, processing polls) before its outcome counts as unknown.
    pub publish_timeout: Duration,
    /// Delay before the first retry of a transient failure (then ×4 with up to 25 % jitter).
    pub publish_retry_delay: Duration,
    /// A claim older than this without an outcome is presumed abandoned (a crash) and recovered.
    pub publish_claim_timeout: Duration,
    /// After a request went out and no answer came back, wait this long before looking for the
    /// post on the platform (it may still be processing the request).
    pub reconcile_delay: Duration,
    /// How long a due post waits for its account to be reconnected before it fails.
    pub account_wait: Duration,
    /// Largest accepted request body on `/api` routes.
    pub body_limit: usize,
    pub shutdown_timeout: Duration,
    /// `tracing` filter directive (`NIKARA_LOG`, or `RUST_LOG` when set).
    pub log: String,
    /// Settings this module does not interpret (per-platform OAuth apps and the like), with
    /// secrets already resolved from their `_FILE` variants. Keys are lower-case env names
    /// without the prefix.
    pub extra: BTreeMap<String, SecretString>,
}

impl Config {
    /// Loads defaults < `file` (or `./nikara.toml` when present) < environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, Env::prefixed("NIKARA_"))
    }

    /// Like [`Config::load`] with an explicit environment provider (tests use `Env::raw().only(..)`
    /// equivalents through figment's `Jail`, or pass a map).
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError {
                        var: "--config".into(),
                        message: format!("{} does not exist", path.display()),
                    });
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("nikara.toml")),
        }
        figment = figment.merge(env);
        let raw: Raw = figment.extract().map_err(|e| {
            let key = e.path.join("_");
            let key = if key.is_empty() { "config".to_string() } else { key };
            ConfigError::new(&key, e.kind.to_string())
        })?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Config, ConfigError> {
        let listen = parse_listen(&raw.listen)?;
        let public_url = parse_http_url("public_url", &raw.public_url)?;
        if raw.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }

        let mut rest: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &raw.rest {
            let text = match v {
                figment::value::Value::String(_, s) => s.clone(),
                figment::value::Value::Num(_, n) => match n.to_u128() {
                    Some(u) => u.to_string(),
                    None => n.to_f64().map(|f| f.to_string()).unwrap_or_default(),
                },
                figment::value::Value::Bool(_, b) => b.to_string(),
                _ => return Err(ConfigError::new(k, "expected a string")),
            };
            rest.insert(k.to_ascii_lowercase(), text);
        }
        // Resolve every `X_FILE` into `X`, for the known secrets and for any other `_file` key.
        let file_keys: Vec<String> = rest.keys().filter(|k| k.ends_with("_file")).cloned().collect();
        for fk in file_keys {
            let key = fk.trim_end_matches("_file").to_string();
            let path = rest.remove(&fk).unwrap_or_default();
            if rest.contains_key(&key) || (key == "eventstore_url" && raw.eventstore_url.is_some()) {
                return Err(ConfigError::new(
                    &key,
                    format!("set either {} or {}, not both", env_name(&key), env_name(&fk)),
                ));
            }
            let content = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(&fk, format!("cannot read {path}: {e}")))?;
            rest.insert(key, content.trim_end_matches(['\n', '\r']).to_string());
        }

        let eventstore_url = raw.eventstore_url.clone().or_else(|| rest.remove("eventstore_url"));
        let eventstore = match eventstore_url.filter(|s| !s.is_empty()) {
            None => EventStoreConfig::Embedded,
            Some(url) => {
                let ok = ["kurrentdb://", "kurrentdb+discover://", "esdb://", "esdb+discover://"]
                    .iter()
                    .any(|p| url.starts_with(p));
                if !ok {
                    return Err(ConfigError::new(
                        "eventstore_url",
                        "must be a kurrentdb://, kurrentdb+discover://, esdb:// or esdb+discover:// connection string (unset it for the embedded store)",
                    ));
                }
                if !cfg!(feature = "kurrentdb") {
                    return Err(ConfigError::new(
                        "eventstore_url",
                        "this binary was built without the `kurrentdb` feature",
                    ));
                }
                EventStoreConfig::Kurrent(SecretString::from(url))
            }
        };

        let clickhouse = match raw.clickhouse_url.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(u) => Some(ClickHouseConfig {
                url: parse_http_url("clickhouse_url", u)?,
                database: valid_identifier("clickhouse_database", &raw.clickhouse_database)?,
                user: raw.clickhouse_user.clone().filter(|s| !s.is_empty()),
                password: rest.remove("clickhouse_password").map(SecretString::from),
            }),
        };

        let jwt_secret = match rest.remove("jwt_secret") {
            Some(s) if s.len() < 16 => {
                return Err(ConfigError::new(
                    "jwt_secret",
                    "is shorter than 16 bytes; use at least 32 random bytes",
                ));
            }
            Some(s) => Some(SecretString::from(s)),
            None => None,
        };
        if raw.jwt_audience.is_empty() {
            return Err(ConfigError::new("jwt_audience", "must not be empty"));
        }

        let encryption_keys = match rest.remove("encryption_keys") {
            Some(s) => Some(KeyRing::parse(&s).map_err(|e| ConfigError::new("encryption_keys", e.to_string()))?),
            None => None,
        };

        let smtp_url = match rest.remove("smtp_url").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let parsed = Url::parse(&s).map_err(|e| ConfigError::new("smtp_url", format!("is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    return Err(ConfigError::new(
                        "smtp_url",
                        "must start with smtp:// (plain or ?tls=required for STARTTLS) or smtps:// (TLS)",
                    ));
                }
                Some(SecretString::from(s))
            }
        };

        Ok(Config {
            listen,
            public_url,
            data_dir: raw.data_dir,
            eventstore,
            clickhouse,
            jwt_secret,
            jwt_audience: raw.jwt_audience,
            encryption_keys,
            smtp_url,
            mail_from: raw.mail_from,
            refresh_margin: parse_duration("refresh_margin", &raw.refresh_margin.text())?,
            refresh_sweep_interval: parse_duration("refresh_sweep_interval", &raw.refresh_sweep_interval.text())?,
            scheduler_tick: parse_duration("scheduler_tick", &raw.scheduler_tick.text())?,
            publish_concurrency: parse_count("publish_concurrency", &raw.publish_concurrency.text())?,
            publish_max_attempts: parse_count("publish_max_attempts", &raw.publish_max_attempts.text())? as u32,
            publish_timeout: parse_duration("publish_timeout", &raw.publish_timeout.text())?,
            publish_retry_delay: parse_duration("publish_retry_delay", &raw.publish_retry_delay.text())?,
            publish_claim_timeout: {
                let timeout = parse_duration("publish_timeout", &raw.publish_timeout.text())?;
                match &raw.publish_claim_timeout {
                    None => timeout + Duration::from_secs(60),
                    Some(v) => {
                        let claim = parse_duration("publish_claim_timeout", &v.text())?;
                        if claim <= timeout {
                            return Err(ConfigError::new(
                                "publish_claim_timeout",
                                "must be longer than NIKARA_PUBLISH_TIMEOUT (a live publish must never look abandoned)",
                            ));
                        }
                        claim
                    }
                }
            },
            reconcile_delay: parse_duration("reconcile_delay", &raw.reconcile_delay.text())?,
            account_wait: parse_duration("account_wait", &raw.account_wait.text())?,
            body_limit: parse_size("body_limit", &raw.body_limit.text())?,
            shutdown_timeout: parse_duration("shutdown_timeout", &raw.shutdown_timeout.text())?,
            log: raw.log,
            extra: rest.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect(),
        })
    }

    /// A configuration for tests and the load test: everything default, data under `data_dir`,
    /// fixed secrets so no file is generated.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Config {
        let mut c = Self::validate(Raw::default()).unwrap_or_else(|e| panic!("default config is invalid: {e}"));
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.data_dir = data_dir.into();
        c.jwt_secret = Some(SecretString::from("test-secret-test-secret-test-secret".to_string()));
        c.encryption_keys = KeyRing::parse("test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").ok();
        c
    }

    /// `NIKARA_ENGAGEMENT_CAPTURE_TEXT`: keep comment and reply text (off by default).
    pub fn capture_text(&self) -> bool {
        self.extra("engagement_capture_text")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    }

    /// `NIKARA_ENGAGEMENT_SYNC_INTERVAL`: how often the engagement sync looks for due posts.
    pub fn engagement_sync_interval(&self) -> Duration {
        self.extra("engagement_sync_interval")
            .and_then(parse_duration_str)
            .unwrap_or(Duration::from_secs(60))
    }

    /// A setting this module does not interpret (e.g. `facebook_client_id`), if set.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra.get(key).map(|s| s.expose_secret())
    }

    /// Path of the embedded event log.
    pub fn events_db(&self) -> PathBuf {
        self.data_dir.join("events.db")
    }

    /// Path of the embedded read models.
    pub fn readmodels_db(&self) -> PathBuf {
        self.data_dir.join("readmodels.db")
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || {
        ConfigError::new(
            "listen",
            format!("`{s}` is not an address to listen on (expected host:port, e.g. 127.0.0.1:3000 or 0.0.0.0:3000)"),
        )
    };
    // Accept `localhost:3000` and other resolvable names, but only if they have a port.
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    (host, port)
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

fn parse_http_url(key: &str, s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| ConfigError::new(key, format!("`{s}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            key,
            format!("`{s}` must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

fn valid_identifier(key: &str, s: &str) -> Result<String, ConfigError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::new(
            key,
            format!("`{s}` must be letters, digits and underscores"),
        ));
    }
    Ok(s.to_string())
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `7d` (a bare number means seconds).
pub fn parse_duration_str(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    parse_duration_str(s)
        .ok_or_else(|| ConfigError::new(key, format!("`{s}` is not a duration (e.g. 500ms, 30s, 5m, 1h, 7d)")))
}

fn parse_count(key: &str, s: &str) -> Result<usize, ConfigError> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| ConfigError::new(key, format!("`{s}` is not a count between 1 and 100000")))
}

fn parse_size(key: &str, s: &str) -> Result<usize, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| ConfigError::new(key, format!("`{s}` is not a size (e.g. 1048576, 512KiB, 1MiB)")))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        _ => {
            return Err(ConfigError::new(
                key,
                format!("`{s}` has an unknown unit (use B, KiB or MiB)"),
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| ConfigError::new(key, format!("`{s}` is out of range")))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail fixes the closure signature
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(Config::load(None));
            Ok(())
        });
        out.unwrap_or_else(|| Err(ConfigError::new("jail", "did not run")))
    }

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.listen, "127.0.0.1:3000".parse().expect("addr"));
        assert_eq!(c.public_url.as_str(), "http://localhost:3000/");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(matches!(c.eventstore, EventStoreConfig::Embedded));
        assert!(c.clickhouse.is_none() && c.jwt_secret.is_none() && c.encryption_keys.is_none());
        assert_eq!(c.refresh_margin, Duration::from_secs(300));
        assert_eq!(c.body_limit, 1024 * 1024);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "listen = \"127.0.0.1:4000\"\ndata_dir = \"/tmp/x\"\n")?;
            jail.set_env("NIKARA_LISTEN", "127.0.0.1:5000");
            let c = Config::load(Some(Path::new("custom.toml"))).expect("load");
            assert_eq!(c.listen.port(), 5000);
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let cases: &[(&str, &str)] = &[
            ("NIKARA_LISTEN", "not-an-address"),
            ("NIKARA_ENCRYPTION_KEYS", "k1:not-base64!!"),
            ("NIKARA_PUBLIC_URL", "ftp://x"),
            ("NIKARA_CLICKHOUSE_URL", "::nope"),
            ("NIKARA_EVENTSTORE_URL", "postgres://db"),
            ("NIKARA_SMTP_URL", "http://mail"),
            ("NIKARA_REFRESH_MARGIN", "soon"),
            ("NIKARA_BODY_LIMIT", "12 parsecs"),
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).expect_err(var);
            assert_eq!(&err.var, var, "{err}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_debug() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("jwt.txt", "a-very-long-secret-from-a-file-0123456789\n")?;
            let path = jail.directory().join("jwt.txt");
            jail.set_env("NIKARA_JWT_SECRET_FILE", path.display().to_string());
            jail.set_env("NIKARA_FACEBOOK_CLIENT_SECRET", "fb-secret-value");
            let c = Config::load(None).expect("load");
            let secret = c.jwt_secret.as_ref().expect("secret");
            assert_eq!(secret.expose_secret(), "a-very-long-secret-from-a-file-0123456789");
            assert_eq!(c.extra("facebook_client_secret"), Some("fb-secret-value"));
            let debug = format!("{c:?}");
            assert!(!debug.contains("a-very-long-secret"), "{debug}");
            assert!(!debug.contains("fb-secret-value"), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn a_secret_and_its_file_together_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("k", "x")?;
            jail.set_env("NIKARA_JWT_SECRET", "0123456789abcdef0123");
            jail.set_env(
                "NIKARA_JWT_SECRET_FILE",
                jail.directory().join("k").display().to_string(),
            );
            let err = Config::load(None).expect_err("both set");
            assert_eq!(err.var, "NIKARA_JWT_SECRET");
            Ok(())
        });
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration_str("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration_str("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration_str("5 m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration_str("x"), None);
        assert_eq!(parse_size("k", "4MiB").expect("size"), 4 * 1024 * 1024);
        assert!(parse_size("k", "0").is_err());
    }
}
