//! What `publish` and `lag` share: a zero-latency fake platform (the Meta fake: Facebook Pages) and
//! the hub in this process, one Facebook Page connected through the real OAuth flow, two ways to
//! schedule posts, and what the platform and the read model show afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use nikara::Running;
use nikara::app::App;
use nikara::config::Config;
use nikara::domain::ids::{PostId, UserId};
use nikara::domain::platform::Platform;
use nikara::domain::post::{Post, PostCommand};
use nikara::projections::posts::{self, PostRow};
use nikara::store::Metadata;
use nikara_fakes::{FakePlatform, Kind};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

/// The platform every post goes to: Facebook has the highest default concurrency (50).
pub const PLATFORM: Platform = Platform::Facebook;

/// The user the load test acts as.
const USER: &str = "loadtest";

/// How posts are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CreateVia {
    /// `app.execute::<Post>(PostCommand::Schedule)` in this process: the same `PostScheduled`
    /// event the API appends, without HTTP, JSON and validation.
    Library,
    /// `POST /api/posts` (JSON, bearer token) over HTTP to the in-process hub.
    Api,
}

impl CreateVia {
    pub fn describe(self) -> &'static str {
        match self {
            CreateVia::Library => "library: app.execute::<Post>(PostCommand::Schedule) in-process",
            CreateVia::Api => "api: POST /api/posts over HTTP",
        }
    }
}

/// The engine settings of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// `publish_concurrency`: publishes in flight, all platforms together.
    pub global: usize,
    /// `publish_concurrency_facebook`.
    pub platform: usize,
    /// `scheduler_tick`.
    pub tick: Duration,
}

impl EngineSettings {
    pub fn label(&self) -> String {
        format!(
            "global {}, facebook {}, tick {} ms",
            self.global,
            self.platform,
            self.tick.as_millis()
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "publish_concurrency": self.global,
            "publish_concurrency_facebook": self.platform,
            "scheduler_tick_ms": u64::try_from(self.tick.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// A fake platform and a hub with one connected Facebook Page.
#[derive(Debug)]
pub struct World {
    pub fake: FakePlatform,
    pub hub: Running,
    pub poster: Poster,
    _dir: tempfile::TempDir,
}

impl World {
    /// Starts the fake and the hub, and connects the fake's first Facebook Page like a user would:
    /// `POST /api/oauth/facebook/start`, consent at the fake, the callback on the hub.
    pub async fn start(settings: EngineSettings) -> anyhow::Result<World> {
        let fake = FakePlatform::start(Kind::Meta).await;
        fake.control().publish_latency_ms = 0;
        let dir = tempfile::tempdir()?;
        let mut config = Config::for_tests(dir.path());
        for (k, v) in fake.settings() {
            config.extra.insert(k, SecretString::from(v));
        }
        config.scheduler_tick = settings.tick;
        config.publish_concurrency = settings.global;
        config.extra.insert(
            format!("publish_concurrency_{}", PLATFORM.as_str()),
            SecretString::from(settings.platform.to_string()),
        );
        // Nothing expires during a run; keep the sweeper out of the measurement.
        config.refresh_sweep_interval = Duration::from_secs(3600);
        let hub = nikara::start(config).await.context("cannot start the hub")?;
        let user = UserId::parse(USER).context("user id")?;
        let token = hub
            .app
            .jwt
            .mint(&user, Some("loadtest@example.com"), Duration::from_secs(24 * 3600))
            .context("cannot mint a token")?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        let base = hub.url();
        let account_id = connect(&hub, &fake, &http, &base, &token).await?;
        let poster = Poster {
            app: hub.app.clone(),
            http,
            base,
            token,
            user: USER.to_string(),
            account_id,
        };
        Ok(World {
            fake,
            hub,
            poster,
            _dir: dir,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.hub.stop().await.context("the hub did not stop cleanly")
    }

    /// Waits until the fake has `n` publishes or `timeout` passes; answers whether it got there.
    pub async fn wait_published(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.fake.publish_count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until no post is `scheduled` or `publishing` in the read model (or `timeout`).
    pub async fn wait_settled(&self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let open: i64 = self
                .hub
                .app
                .models
                .read(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM posts WHERE status IN ('scheduled', 'publishing')",
                        [],
                        |r| r.get(0),
                    )
                })
                .await?;
            if open == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the platform shows.
    pub fn platform_record(&self) -> PlatformRecord {
        let published = self.fake.published();
        let mut first_at: HashMap<String, i64> = HashMap::with_capacity(published.len());
        for p in &published {
            first_at
                .entry(p.text.clone())
                .and_modify(|at| *at = (*at).min(p.at_unix_ms))
                .or_insert(p.at_unix_ms);
        }
        PlatformRecord {
            total: published.len() as u64,
            duplicates: (published.len() - first_at.len()) as u64,
            first_at,
        }
    }

    /// Every post of the load-test user, as the read model shows it.
    pub async fn read_model(&self) -> anyhow::Result<Vec<PostRow>> {
        let rows = self
            .hub
            .app
            .models
            .read(|c| posts::list(c, USER, &posts::Filter::default(), 10_000_000))
            .await?;
        Ok(rows)
    }
}

/// The fake's published posts, by text (every scheduled post has its own text).
#[derive(Debug, Default)]
pub struct PlatformRecord {
    /// Publishes the platform received, duplicates included.
    pub total: u64,
    /// Publishes beyond the first of the same text.
    pub duplicates: u64,
    /// Text → time of its first publish (unix ms, the fake's clock, which is this machine's).
    pub first_at: HashMap<String, i64>,
}

/// Post statuses in the read model, e.g. `{"published": 10000}`.
pub fn status_counts(rows: &[PostRow]) -> Map<String, Value> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for r in rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let mut keys: Vec<_> = counts.into_iter().collect();
    keys.sort();
    keys.into_iter().map(|(k, v)| (k.to_string(), Value::from(v))).collect()
}

/// A scheduled post.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub id: String,
    pub text: String,
    pub scheduled_at: DateTime<Utc>,
}

/// Schedules posts for the connected account; cheap to clone into tasks.
#[derive(Clone)]
pub struct Poster {
    pub app: Arc<App>,
    http: reqwest::Client,
    base: String,
    token: String,
    user: String,
    pub account_id: String,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl Poster {
    /// Schedules one post for `at` (`None`: now). `wake` does what the API does after storing a post
    /// (wait for the read model, wake the scheduler); the API path always does it.
    pub async fn schedule(
        &self,
        via: CreateVia,
        text: String,
        at: Option<DateTime<Utc>>,
        wake: bool,
    ) -> anyhow::Result<Scheduled> {
        match via {
            CreateVia::Library => self.schedule_library(text, at.unwrap_or_else(Utc::now), wake).await,
            CreateVia::Api => self.schedule_api(text, at).await,
        }
    }

    async fn schedule_library(&self, text: String, at: DateTime<Utc>, wake: bool) -> anyhow::Result<Scheduled> {
        let id = PostId::new();
        let cmd = PostCommand::Schedule {
            user_id: self.user.clone(),
            account_id: self.account_id.clone(),
            platform: PLATFORM,
            text: text.clone(),
            title: None,
            media_urls: Vec::new(),
            options: Map::new(),
            scheduled_at: at,
        };
        let meta = Metadata {
            user_id: Some(self.user.clone()),
            ..Metadata::now()
        };
        let done = self.app.execute::<Post>(&id.stream(), &cmd, meta).await?;
        if wake {
            self.app.settle(done.position).await;
            self.app.engine_wakeup.notify_one();
        }
        Ok(Scheduled {
            id: id.to_string(),
            text,
            scheduled_at: at,
        })
    }

    async fn schedule_api(&self, text: String, at: Option<DateTime<Utc>>) -> anyhow::Result<Scheduled> {
        let mut body = json!({"account_id": self.account_id, "text": text});
        if let Some(at) = at {
            body["scheduled_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        let resp = self
            .http
            .post(format!("{}/api/posts", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        if status.as_u16() != 201 {
            let text = resp.text().await.unwrap_or_default();
            bail!("POST /api/posts answered {status}: {text}");
        }
        let v: Value = resp.json().await?;
        let id = v["id"].as_str().context("no id in the created post")?.to_string();
        let scheduled_at = v["scheduled_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .context("no scheduled_at in the created post")?;
        Ok(Scheduled { id, text, scheduled_at })
    }
}

/// The OAuth flow against the fake; answers the connected Facebook Page's account id.
async fn connect(
    hub: &Running,
    fake: &FakePlatform,
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<String> {
    let platform = PLATFORM.as_str();
    let start = http
        .post(format!("{base}/api/oauth/{platform}/start"))
        .bearer_auth(token)
        .send()
        .await?;
    if !start.status().is_success() {
        let status = start.status();
        bail!(
            "POST /api/oauth/{platform}/start answered {status}: {}",
            start.text().await.unwrap_or_default()
        );
    }
    let body: Value = start.json().await?;
    let authorize_url = body["authorize_url"]
        .as_str()
        .context("no authorize_url in the OAuth start answer")?;
    let callback = fake.consent(authorize_url).await;
    // The callback is built on the configured public URL; the hub listens elsewhere.
    let public = hub.app.config.public_url.as_str().trim_end_matches('/');
    let callback = callback.replacen(public, base, 1);
    let resp = http.get(&callback).send().await?;
    if resp.status().as_u16() != 302 {
        let status = resp.status();
        bail!(
            "the OAuth callback answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: Value = http
            .get(format!("{base}/api/accounts"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let found = list["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|a| a["platform"] == platform)
                .and_then(|a| a["id"].as_str())
        });
        if let Some(id) = found {
            return Ok(id.to_string());
        }
        if Instant::now() >= deadline {
            bail!("no {platform} account after the OAuth flow: {list}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `b - a` as a sample duration (negative differences count as zero).
pub fn micros_between(a_us: i64, b_us: i64) -> Duration {
    Duration::from_micros(u64::try_from(b_us - a_us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_never_go_negative() {
        assert_eq!(micros_between(1_000, 3_500), Duration::from_micros(2_500));
        assert_eq!(micros_between(3_500, 1_000), Duration::ZERO);
    }
}
