//! The application: wiring of store, read models, projections and keys, and the one generic way a
//! command runs (load the stream, decide, append at the revision read, retry on conflict).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::auth::{Caller, JwtKeys};
use crate::config::Config;
use crate::crypto::TokenCipher;
use crate::domain::user::{User, UserCommand};
use crate::domain::{Aggregate, DomainEvent, EventError};
use crate::oauth::Registry;
use crate::oauth::state::StateKey;
use crate::projections::{ProjectionError, ReadModels, Runner};
use crate::store::{Direction, EventStore, ExpectedVersion, Metadata, Position, StoreError, StreamFrom};

/// How many times a command is re-decided after losing an optimistic-concurrency race.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
    #[error("{0}")]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
}

/// What a command produced.
#[derive(Debug)]
pub struct Executed<A> {
    pub state: A,
    /// Position of the last appended event, `None` when the command decided nothing.
    pub position: Option<Position>,
    pub revision: Option<u64>,
}

/// An account's single-flight refresh lock; it holds when this hub last completed a refresh.
pub type RefreshLock = Arc<tokio::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>>;

/// Keys and outside-world clients an [`App`] is built with.
#[derive(Debug)]
pub struct Services {
    pub jwt: JwtKeys,
    pub cipher: TokenCipher,
    pub registry: Registry,
    pub mailer: Arc<dyn crate::notify::mail::Mailer>,
    /// ClickHouse, when configured: the client the API reads with, and the sink's status.
    pub analytics: Option<Analytics>,
}

/// ClickHouse side of a hub.
#[derive(Debug, Clone)]
pub struct Analytics {
    pub client: crate::analytics::Client,
    pub sink: crate::analytics::SinkHandle,
}

/// Shared state of one running hub.
#[derive(Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<dyn EventStore>,
    pub models: ReadModels,
    pub runner: Runner,
    pub jwt: JwtKeys,
    pub cipher: TokenCipher,
    /// Configured platform apps.
    pub registry: Registry,
    /// Signs OAuth states and derives PKCE verifiers.
    pub state_key: StateKey,
    /// One HTTP client for every platform call (connection reuse, bounded timeouts).
    pub http: reqwest::Client,
    /// One lock per account: concurrent needs for one account's refresh make one platform call.
    /// Holds when this hub last completed a refresh of the account.
    refresh_locks: Mutex<HashMap<String, RefreshLock>>,
    /// ClickHouse, when configured.
    pub analytics: Option<Analytics>,
    /// Wakes the scheduler early (a post was scheduled, a publish finished).
    pub engine_wakeup: tokio::sync::Notify,
    /// Notification mail transport (SMTP, or the outbox folder).
    pub mailer: Arc<dyn crate::notify::mail::Mailer>,
    /// Last `email` claim recorded per user, so an authenticated request costs no store read once
    /// the user is known.
    seen_users: Mutex<HashMap<String, Option<String>>>,
    pub started: Instant,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn EventStore>,
        models: ReadModels,
        runner: Runner,
        services: Services,
    ) -> Self {
        let Services {
            jwt,
            cipher,
            registry,
            mailer,
            analytics,
        } = services;
        let state_key = StateKey::derive(&jwt.secret());
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        App {
            config,
            store,
            models,
            runner,
            jwt,
            cipher,
            registry,
            state_key,
            http,
            analytics,
            refresh_locks: Mutex::new(HashMap::new()),
            engine_wakeup: tokio::sync::Notify::new(),
            mailer,
            seen_users: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// Folds a whole stream into aggregate state; also answers the stream's last revision.
    pub async fn load<A: Aggregate>(&self, stream: &str) -> Result<(A, Option<u64>), AppError> {
        let mut state = A::default();
        let mut revision = None;
        let mut from = StreamFrom::Start;
        loop {
            let page = self.store.read_stream(stream, from, Direction::Forwards, 512).await?;
            let len = page.len();
            for ev in &page {
                if let Some(e) = A::Event::from_recorded(ev)? {
                    state.apply(&e);
                }
                revision = Some(ev.revision);
            }
            match revision {
                Some(r) if len == 512 => from = StreamFrom::Revision(r + 1),
                _ => break,
            }
        }
        Ok((state, revision))
    }

    /// Runs a command against the aggregate in `stream`: decide over current state, append at the
    /// revision read. Losing a race re-reads and re-decides, so decisions always see the latest
    /// facts.
    pub async fn execute<A: Aggregate>(
        &self,
        stream: &str,
        command: &A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, AppError> {
        let mut attempt = 0;
        loop {
            let (mut state, revision) = self.load::<A>(stream).await?;
            let events = state
                .decide(command, chrono::Utc::now())
                .map_err(|e| AppError::Rejected(Box::new(e)))?;
            if events.is_empty() {
                return Ok(Executed {
                    state,
                    position: None,
                    revision,
                });
            }
            let new: Vec<_> = events
                .iter()
                .map(|e| e.to_new_event(metadata.clone()))
                .collect::<Result<_, _>>()?;
            match self
                .store
                .append(stream, ExpectedVersion::from_current(revision), new)
                .await
            {
                Ok(result) => {
                    for e in &events {
                        state.apply(e);
                    }
                    return Ok(Executed {
                        state,
                        position: Some(result.position),
                        revision: Some(result.next_expected),
                    });
                }
                Err(StoreError::WrongExpectedVersion { .. }) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::debug!(stream, attempt, "conflict; re-deciding");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Metadata for an event caused by `caller`'s request.
    pub fn metadata_for(caller: &Caller, correlation_id: Option<Uuid>) -> Metadata {
        Metadata {
            user_id: Some(caller.user_id.as_str().to_string()),
            correlation_id,
            ..Metadata::now()
        }
    }

    /// Records the caller's existence and email claim, once per change. Called on every
    /// authenticated request; after the first it is a map lookup.
    pub async fn observe_caller(&self, caller: &Caller) -> Result<(), AppError> {
        let key = caller.user_id.as_str();
        if let Ok(seen) = self.seen_users.lock()
            && let Some(known) = seen.get(key)
            && (caller.email.is_none() || *known == caller.email)
        {
            return Ok(());
        }
        let cmd = UserCommand::Observe {
            email_claim: caller.email.clone(),
        };
        let done = self
            .execute::<User>(&caller.user_id.stream(), &cmd, Self::metadata_for(caller, None))
            .await?;
        if let Ok(mut seen) = self.seen_users.lock() {
            seen.insert(key.to_string(), done.state.email_claim.clone());
        }
        Ok(())
    }

    /// The single-flight lock of an account's refresh.
    pub fn refresh_lock(&self, account_id: &str) -> RefreshLock {
        let mut locks = self.refresh_locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            // Drop locks nobody holds; keeps the map bounded over a long uptime.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(account_id.to_string()).or_default().clone()
    }

    /// Read-your-writes: waits (bounded) until projections have applied `position`.
    pub async fn settle(&self, position: Option<Position>) {
        if let Some(p) = position
            && !self.runner.wait_for(p, Duration::from_secs(1)).await
        {
            tracing::warn!(position = p.0, "read models did not catch up within 1 s");
        }
    }
}
