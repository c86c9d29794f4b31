//! Startup: resolve secrets, open the store and read models, start projections and the server,
//! and shut all of it down in order. This is startup code, so errors are `anyhow` with context.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use poem::Server;
use poem::listener::TcpAcceptor;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::JwtKeys;
use crate::config::{Config, EventStoreConfig};
use crate::crypto::{KeyRing, TokenCipher};
use crate::projections::{self, ReadModels, Runner};
use crate::secrets::{self, DEV_JWT_SECRET_FILE, DEV_KEYS_FILE};
use crate::store::EventStore;
use crate::store::sqlite::SqliteStore;

/// Fills in the JWT secret and key ring from the data dir when they are not configured,
/// generating them (mode 0600) on first use, and says so in the log.
pub fn resolve_dev_secrets(config: &mut Config) -> anyhow::Result<()> {
    if config.jwt_secret.is_none() {
        let path = config.data_dir.join(DEV_JWT_SECRET_FILE);
        let (secret, generated) = secrets::read_or_create(&path, secrets::random_secret)
            .with_context(|| format!("cannot read or create the development JWT secret at {}", path.display()))?;
        if generated {
            tracing::warn!(path = %path.display(), "generated a development JWT secret (set NIKARA_JWT_SECRET in production)");
        } else {
            tracing::info!(path = %path.display(), "using the development JWT secret");
        }
        config.jwt_secret = Some(SecretString::from(secret));
    }
    if config.encryption_keys.is_none() {
        let path = config.data_dir.join(DEV_KEYS_FILE);
        let (ring, generated) = KeyRing::load_or_generate(&path)
            .with_context(|| format!("cannot read or create the development key ring at {}", path.display()))?;
        if generated {
            tracing::warn!(path = %path.display(), "generated a development encryption key ring (set NIKARA_ENCRYPTION_KEYS in production)");
        } else {
            tracing::info!(path = %path.display(), "using the development encryption key ring");
        }
        config.encryption_keys = Some(ring);
    }
    Ok(())
}

/// Opens the configured event store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    match &config.eventstore {
        EventStoreConfig::Embedded => {
            let path = config.events_db();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .context("event store open task failed")??;
            tracing::info!(path = %store.path().display(), "embedded event store open");
            Ok(Arc::new(store))
        }
        #[cfg(feature = "kurrentdb")]
        EventStoreConfig::Kurrent(url) => {
            use secrecy::ExposeSecret;
            let store = crate::store::kurrent::KurrentStore::connect(url.expose_secret())
                .await
                .context("cannot connect to KurrentDB (NIKARA_EVENTSTORE_URL)")?;
            tracing::info!("KurrentDB event store connected");
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "kurrentdb"))]
        EventStoreConfig::Kurrent(_) => anyhow::bail!("NIKARA_EVENTSTORE_URL: built without the kurrentdb feature"),
    }
}

/// Opens `readmodels.db` under the data dir.
pub fn open_read_models(config: &Config) -> anyhow::Result<ReadModels> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let path = config.readmodels_db();
    ReadModels::open(&path).with_context(|| format!("cannot open the read models at {}", path.display()))
}

/// Refuses to start when a live token is encrypted under a key id the ring does not hold: such a
/// hub could not publish for those accounts, and the operator removed a key too early.
pub async fn check_key_ring(store: &Arc<dyn EventStore>, models: &ReadModels, ring: &KeyRing) -> anyhow::Result<()> {
    let accounts: Arc<dyn projections::Projection> = Arc::new(projections::accounts::Accounts);
    projections::catch_up(store, models, &[accounts])
        .await
        .context("cannot bring the accounts read model up to date")?;
    let live = models
        .read(projections::accounts::live_tokens_per_kid)
        .await
        .context("cannot count live tokens per key")?;
    let known = ring.kids();
    let missing: Vec<String> = live
        .iter()
        .filter(|(kid, _)| !known.contains(&kid.as_str()))
        .map(|(kid, n)| format!("{kid} ({n} live tokens)"))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "NIKARA_ENCRYPTION_KEYS: live tokens are encrypted under key id(s) {} that the key ring does not hold; \
             add the key(s) back, run `nikara keys rotate`, and remove a key only when `nikara keys status` shows 0 for it",
            missing.join(", ")
        );
    }
    Ok(())
}

/// A built hub: state plus its background tasks.
#[derive(Debug)]
pub struct Hub {
    pub app: Arc<App>,
    background: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hub {
    /// Opens everything and starts projections. Secrets must be resolved (see
    /// [`resolve_dev_secrets`]).
    pub async fn build(mut config: Config) -> anyhow::Result<Hub> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        resolve_dev_secrets(&mut config)?;
        let jwt_secret = config
            .jwt_secret
            .clone()
            .context("JWT secret missing after resolution")?;
        let ring = config
            .encryption_keys
            .clone()
            .context("key ring missing after resolution")?;
        let registry = crate::oauth::Registry::from_config(&config)?;
        let engine_config = crate::engine::EngineConfig::from_config(&config)?;
        let mailer = crate::notify::mail::from_config(&config).context("cannot set up notification mail")?;
        tracing::info!(via = %mailer.describe(), "notification mail");
        let store = open_store(&config).await?;
        let models = open_read_models(&config)?;
        check_key_ring(&store, &models, &ring).await?;
        let runner = Runner::new(
            store.clone(),
            models.clone(),
            projections::all_with(config.capture_text()),
        );
        let background = CancellationToken::new();
        let mut tasks = runner.spawn(background.clone());
        // ClickHouse: the sink migrates and retries on its own, so a ClickHouse outage never keeps
        // the hub from starting; it catches up when ClickHouse is back.
        let analytics = match &config.clickhouse {
            None => None,
            Some(ch) => {
                let client = crate::analytics::Client::new(ch).context("NIKARA_CLICKHOUSE_URL")?;
                let attribution = crate::engagement::clickhouse::warm(&store)
                    .await
                    .context("cannot read the log to start the ClickHouse sink")?;
                let sink = crate::analytics::Sink::new(
                    client.clone(),
                    crate::engagement::clickhouse::decoder(attribution, config.capture_text()),
                );
                let handle = sink.handle();
                tasks.push(sink.spawn(store.clone(), background.clone()));
                tracing::info!(url = %client.url(), "ClickHouse sink started");
                Some(crate::app::Analytics { client, sink: handle })
            }
        };
        let jwt = JwtKeys::new(jwt_secret, config.jwt_audience.clone());
        let app = Arc::new(App::new(
            Arc::new(config),
            store,
            models,
            runner,
            crate::app::Services {
                jwt,
                cipher: TokenCipher::new(ring),
                registry,
                mailer,
                analytics,
            },
        ));
        let interval = app.config.refresh_sweep_interval;
        tasks.push(tokio::spawn(crate::lifecycle::sweeper::run(
            app.clone(),
            interval,
            background.clone(),
        )));
        tasks.push(tokio::spawn(crate::lifecycle::notifier::run(
            app.clone(),
            background.clone(),
        )));
        tasks.push(tokio::spawn(crate::engagement::revocations::run(
            app.clone(),
            background.clone(),
        )));
        tasks.push(tokio::spawn(crate::engagement::sync::run(
            app.clone(),
            app.config.engagement_sync_interval(),
            crate::engagement::sync::Schedule::default(),
            background.clone(),
        )));
        let scheduler = crate::engine::Scheduler::new(app.clone(), engine_config);
        tasks.push(tokio::spawn(scheduler.run(background.clone())));
        Ok(Hub { app, background, tasks })
    }

    /// Serves HTTP on `listener` until `shutdown` fires, then stops accepting, lets in-flight
    /// requests finish (bounded by the configured timeout), stops background work and flushes
    /// the store.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = listener.local_addr().ok();
        let acceptor = TcpAcceptor::from_tokio(listener).context("cannot use the listener")?;
        let timeout = self.app.config.shutdown_timeout;
        tracing::info!(addr = ?addr, "nikara listening");
        let routes = crate::api::routes(self.app.clone());
        let signal = shutdown.clone();
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(routes, async move { signal.cancelled().await }, Some(timeout))
            .await
            .context("HTTP server failed")?;
        self.stop().await;
        Ok(())
    }

    /// Stops background tasks and flushes the store.
    pub async fn stop(self) {
        self.background.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.app.store.shutdown().await;
        tracing::info!("nikara stopped");
    }
}

/// Runs the hub on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    Hub::build(config).await?.serve(listener, shutdown).await
}

/// A hub running in the background (tests, load test).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop; returns the server's result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await.context("server task panicked")?
    }
}

/// Builds a hub and serves it on `config.listen` (use port 0 for tests) in a background task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let hub = Hub::build(config).await?;
    let app = hub.app.clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(hub.serve(listener, shutdown.clone()));
    Ok(Running {
        addr,
        app,
        shutdown,
        handle,
    })
}
