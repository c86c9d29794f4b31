//! The automation engine: the scheduler that claims due posts and the publisher that runs them.
//!
//! Every tick (and whenever a post is scheduled or a publish finishes) the scheduler reads due
//! posts from the queue read model and starts a task per post, bounded by a global semaphore and
//! one per platform. A task claims its post by appending `PublishAttemptStarted` at the revision it
//! read: any number of schedulers may run against one store, and a post is claimed once. Claims
//! whose outcome was never recorded are found after `publish_timeout` + 1 minute and reconciled
//! (see [`publish::recover`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::domain::platform::Platform;
use crate::domain::post::RetryPolicy;
use crate::projections::posts;

pub mod publish;

/// Default publishes in flight per platform: the platforms' own rate limits differ by orders of
/// magnitude (Reddit allows about one write per second per user, Meta's Graph API is generous).
pub fn default_concurrency(p: Platform) -> usize {
    match p {
        Platform::X => 10,
        Platform::Linkedin => 2,
        Platform::Reddit => 1,
        Platform::Facebook | Platform::Instagram => 50,
        Platform::Tiktok => 5,
        Platform::Youtube => 2,
    }
}

/// Engine settings, from [`Config`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub tick: Duration,
    pub global_concurrency: usize,
    pub per_platform: BTreeMap<Platform, usize>,
    pub retry: RetryPolicy,
    pub publish_timeout: Duration,
    /// A claim older than this without an outcome is presumed abandoned (crash) and recovered.
    pub claim_timeout: Duration,
    pub reconcile_delay: Duration,
    pub account_wait: chrono::Duration,
    pub refresh_margin: chrono::Duration,
}

impl EngineConfig {
    /// Reads the engine settings; `NIKARA_PUBLISH_CONCURRENCY_{P}` overrides a platform's default.
    pub fn from_config(config: &Config) -> Result<EngineConfig, ConfigError> {
        let mut per_platform = BTreeMap::new();
        for p in Platform::ALL {
            let key = format!("publish_concurrency_{}", p.as_str());
            let n = match config.extra(&key) {
                None => default_concurrency(p),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ConfigError {
                        var: format!("NIKARA_{}", key.to_ascii_uppercase()),
                        message: format!("`{v}` is not a positive count"),
                    })?,
            };
            per_platform.insert(p, n);
        }
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Ok(EngineConfig {
            tick: config.scheduler_tick,
            global_concurrency: config.publish_concurrency,
            per_platform,
            retry: RetryPolicy {
                max_attempts: config.publish_max_attempts,
                first_delay: chrono(config.publish_retry_delay),
                ..RetryPolicy::default()
            },
            publish_timeout: config.publish_timeout,
            claim_timeout: config.publish_claim_timeout,
            reconcile_delay: config.reconcile_delay,
            account_wait: chrono(config.account_wait),
            refresh_margin: chrono(config.refresh_margin),
        })
    }
}

/// One scheduler instance. Several may run against one store (tests run two on purpose).
#[derive(Debug)]
pub struct Scheduler {
    app: Arc<App>,
    pub config: EngineConfig,
    /// Identifies this instance's claims.
    pub worker: Uuid,
    in_flight: Mutex<HashSet<String>>,
    global: Arc<Semaphore>,
    per_platform: BTreeMap<Platform, Arc<Semaphore>>,
}

struct InFlightGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.id);
        }
    }
}

impl Scheduler {
    pub fn new(app: Arc<App>, config: EngineConfig) -> Arc<Scheduler> {
        let per_platform = config
            .per_platform
            .iter()
            .map(|(p, n)| (*p, Arc::new(Semaphore::new(*n))))
            .collect();
        Arc::new(Scheduler {
            app,
            global: Arc::new(Semaphore::new(config.global_concurrency)),
            per_platform,
            config,
            worker: Uuid::new_v4(),
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    fn in_flight(&self) -> usize {
        self.in_flight.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Tasks queued or running at most; beyond this the scheduler waits for some to finish.
    fn max_pending(&self) -> usize {
        self.config.global_concurrency * 4
    }

    /// One pass: recover abandoned claims, then start tasks for due posts. Answers how many tasks
    /// were started.
    pub async fn tick(self: &Arc<Self>) -> usize {
        let now = Utc::now();
        let room = self.max_pending().saturating_sub(self.in_flight());
        if room == 0 {
            return 0;
        }
        let busy = self.in_flight();
        let claim_cutoff = now - chrono::Duration::from_std(self.config.claim_timeout).unwrap_or_default();
        let give_up = self.config.account_wait;
        let found = self
            .app
            .models
            .read(move |c| {
                let stale = posts::stale_claims(c, claim_cutoff, 100)?;
                let due = posts::due(c, now, give_up, room + busy)?;
                Ok((stale, due))
            })
            .await;
        let (stale, due) = match found {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot read the queue");
                return 0;
            }
        };
        let mut started = 0;
        for d in stale {
            if self.claim_local(&d.id) {
                let this = self.clone();
                tokio::spawn(async move {
                    let _guard = InFlightGuard {
                        set: &this.in_flight,
                        id: d.id.clone(),
                    };
                    publish::recover(&this.app, &this.config, &d.id).await;
                });
                started += 1;
            }
        }
        for d in due {
            if started >= room {
                break;
            }
            if !self.claim_local(&d.id) {
                continue;
            }
            started += 1;
            let this = self.clone();
            let platform = d.platform.parse::<Platform>().ok();
            tokio::spawn(async move {
                let _guard = InFlightGuard {
                    set: &this.in_flight,
                    id: d.id.clone(),
                };
                // Platform first: a task waiting for a busy platform must not hold a global permit
                // that another platform's post could use.
                let _platform = match platform.and_then(|p| this.per_platform.get(&p).cloned()) {
                    Some(s) => s.acquire_owned().await.ok(),
                    None => None,
                };
                let Ok(_global) = this.global.clone().acquire_owned().await else {
                    return;
                };
                publish::publish_one(&this.app, &this.config, this.worker, &d.id).await;
                this.app.engine_wakeup.notify_one();
            });
        }
        started
    }

    fn claim_local(&self, id: &str) -> bool {
        self.in_flight
            .lock()
            .map(|mut s| s.insert(id.to_string()))
            .unwrap_or(false)
    }

    /// Ticks every `config.tick`, or sooner when woken (a post scheduled, a publish finished),
    /// until shutdown. In-flight publishes finish before this returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            self.tick().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.tick) => {}
                _ = self.app.engine_wakeup.notified() => {}
            }
        }
        // Let running publishes record their outcome (bounded by the shutdown timeout upstream).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
