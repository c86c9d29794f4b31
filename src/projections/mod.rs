//! Projections: folds of the event log into read models in `readmodels.db`.
//!
//! A projection has a fixed name (its checkpoint key), declares the event types it reads, and
//! applies events inside a transaction the runner owns. The runner commits the read-model writes
//! and the new checkpoint in that same transaction, so a crash can neither apply an event twice
//! nor skip one. Read models are caches: `nikara projections rebuild` drops and replays them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, ProjectionLabels};
use crate::store::{EventStore, Position, RecordedEvent, StoreError};

pub mod accounts;
pub mod activity;
pub mod engagement;
pub mod posts;

/// Events applied per read-model transaction at most.
const BATCH: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read model database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection {projection} cannot apply event at position {position}: {message}")]
    Apply {
        projection: &'static str,
        position: u64,
        message: String,
    },
    #[error("unknown projection `{0}`")]
    Unknown(String),
    #[error("read model database lock poisoned")]
    Poisoned,
}

/// A read model kept in `readmodels.db`.
pub trait Projection: Send + Sync + 'static {
    /// Fixed name; also the checkpoint key. Renaming it rebuilds the read model.
    fn name(&self) -> &'static str;
    /// Bump when the schema or the meaning of rows changes: a mismatch drops and replays.
    fn version(&self) -> u32;
    /// Event types this projection reads; others only advance its checkpoint.
    fn event_types(&self) -> &'static [&'static str];
    /// `CREATE TABLE IF NOT EXISTS …` statements.
    fn schema(&self) -> &'static str;
    /// Tables to drop on rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event. Must be idempotent per event (rows keyed by event id or position), which
    /// makes a replay over already-applied events harmless.
    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ProjectionError>;
}

/// Read-model times are stored in one fixed RFC 3339 format (microseconds, `Z`), so that string
/// order is time order in SQL comparisons.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Parses a stored read-model time.
pub fn time(s: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The read-model database: one write connection shared by every projection (SQLite has one
/// writer anyway), and a small pool of readers for the API.
#[derive(Clone)]
pub struct ReadModels {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for ReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModels").field("path", &self.path).finish()
    }
}

impl ReadModels {
    /// Opens (creating) `readmodels.db` and the checkpoint table.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadModels, ProjectionError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS checkpoints (
                 name       TEXT PRIMARY KEY,
                 version    INTEGER NOT NULL,
                 position   INTEGER NOT NULL,
                 updated_at TEXT NOT NULL
             );",
        )?;
        Ok(ReadModels {
            path,
            writer: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Runs a read on a pooled read-only connection, off the async runtime.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match this.readers.lock().map_err(|_| ProjectionError::Poisoned)?.pop() {
                Some(c) => c,
                None => {
                    let c = Connection::open(&this.path)?;
                    c.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")?;
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut pool) = this.readers.lock()
                && pool.len() < 8
            {
                pool.push(conn);
            }
            Ok(out?)
        })
        .await
        .map_err(|e| ProjectionError::Apply {
            projection: "reader",
            position: 0,
            message: e.to_string(),
        })?
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ProjectionError>,
    ) -> Result<T, ProjectionError> {
        let mut conn = self.writer.lock().map_err(|_| ProjectionError::Poisoned)?;
        f(&mut conn)
    }

    /// Creates the projection's tables and returns its checkpoint, dropping the read model first
    /// when its stored version differs from the code's.
    pub fn prepare(&self, p: &dyn Projection) -> Result<Position, ProjectionError> {
        self.with_writer(|conn| {
            let row: Option<(u32, i64)> = conn
                .query_row(
                    "SELECT version, position FROM checkpoints WHERE name = ?1",
                    [p.name()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let tx = conn.transaction()?;
            let position = match row {
                Some((v, pos)) if v == p.version() => Position(pos as u64),
                other => {
                    if other.is_some() {
                        tracing::info!(projection = p.name(), "read model version changed; rebuilding");
                    }
                    reset_on(&tx, p)?;
                    Position::START
                }
            };
            tx.execute_batch(p.schema())?;
            tx.commit()?;
            Ok(position)
        })
    }

    /// Drops the projection's tables and checkpoint (the first half of a rebuild).
    pub fn reset(&self, p: &dyn Projection) -> Result<(), ProjectionError> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            reset_on(&tx, p)?;
            tx.execute_batch(p.schema())?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Applies a batch and moves the checkpoint to `upto` in one transaction.
    pub fn apply_batch(
        &self,
        p: &dyn Projection,
        events: &[RecordedEvent],
        upto: Position,
    ) -> Result<usize, ProjectionError> {
        self.with_writer(|conn| {
            let tx = conn.transaction()?;
            let types = p.event_types();
            let mut applied = 0;
            for ev in events {
                if types.contains(&ev.event_type.as_str()) {
                    p.apply(&tx, ev)?;
                    applied += 1;
                }
            }
            tx.execute(
                "INSERT INTO checkpoints (name, version, position, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET version = excluded.version, position = excluded.position,
                                                 updated_at = excluded.updated_at",
                params![p.name(), p.version(), upto.0 as i64, chrono::Utc::now().to_rfc3339()],
            )?;
            tx.commit()?;
            Ok(applied)
        })
    }

    /// Stores a reactor's checkpoint (reactors are not projections: their effects are outside the
    /// read models, so they keep only a position here).
    pub fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        self.with_writer(|conn| {
            conn.execute(
                "INSERT INTO checkpoints (name, version, position, updated_at) VALUES (?1, 1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                params![name, position.0 as i64, chrono::Utc::now().to_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// The stored checkpoint of a projection.
    pub fn checkpoint(&self, name: &str) -> Result<Option<Position>, ProjectionError> {
        self.with_writer(|conn| {
            Ok(conn
                .query_row("SELECT position FROM checkpoints WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .map(|p| Position(p as u64)))
        })
    }
}

fn reset_on(tx: &Transaction<'_>, p: &dyn Projection) -> Result<(), ProjectionError> {
    for table in p.tables() {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table};"))?;
    }
    tx.execute("DELETE FROM checkpoints WHERE name = ?1", [p.name()])?;
    Ok(())
}

/// Every projection of the hub, in one place so the runner, the rebuild command and the tests
/// agree on the set. `capture_text` keeps comment text in the engagement read model.
pub fn all_with(capture_text: bool) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(activity::Activity),
        Arc::new(accounts::Accounts),
        Arc::new(posts::Posts),
        Arc::new(engagement::Engagement { capture_text }),
    ]
}

/// [`all_with`] without text capture (the default).
pub fn all() -> Vec<Arc<dyn Projection>> {
    all_with(false)
}

/// Live state of one projection, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct ProjectionStatus {
    pub position: AtomicU64,
    /// Set once the first catch-up after startup reached the head seen at startup.
    pub caught_up: AtomicBool,
    behind_since: Mutex<Option<Instant>>,
}

impl ProjectionStatus {
    /// How long the projection has been behind the head (zero when caught up).
    pub fn lag(&self) -> Duration {
        self.behind_since
            .lock()
            .ok()
            .and_then(|b| b.map(|t| t.elapsed()))
            .unwrap_or_default()
    }
}

/// Runs projections: catch up from the checkpoint, then follow the live log.
#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn EventStore>,
    models: ReadModels,
    projections: Vec<Arc<dyn Projection>>,
    status: Arc<HashMap<&'static str, Arc<ProjectionStatus>>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field(
                "projections",
                &self.projections.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Runner {
    pub fn new(store: Arc<dyn EventStore>, models: ReadModels, projections: Vec<Arc<dyn Projection>>) -> Self {
        let status = projections
            .iter()
            .map(|p| (p.name(), Arc::new(ProjectionStatus::default())))
            .collect();
        Runner {
            store,
            models,
            projections,
            status: Arc::new(status),
        }
    }

    pub fn status(&self) -> &HashMap<&'static str, Arc<ProjectionStatus>> {
        &self.status
    }

    /// Ready when every projection has caught up once and is within `max_lag` of the head.
    pub fn ready(&self, max_lag: Duration) -> Result<(), String> {
        for (name, st) in self.status.iter() {
            if !st.caught_up.load(Ordering::Acquire) {
                return Err(format!("projection {name} is still catching up"));
            }
            let lag = st.lag();
            if lag > max_lag {
                return Err(format!("projection {name} is {:.1}s behind", lag.as_secs_f64()));
            }
        }
        Ok(())
    }

    /// Spawns one task per projection plus the lag monitor; they stop when `shutdown` fires.
    pub fn spawn(&self, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        for p in &self.projections {
            let this = self.clone();
            let p = p.clone();
            let token = shutdown.clone();
            handles.push(tokio::spawn(async move { this.run_one(p, token).await }));
        }
        let this = self.clone();
        handles.push(tokio::spawn(async move { this.monitor(shutdown).await }));
        handles
    }

    /// Tracks how far behind each projection is. Sampling every 100 ms bounds the error of the
    /// lag figure; a projection is "behind" from the first sample that sees the head ahead of it.
    async fn monitor(&self, shutdown: CancellationToken) {
        let m = metrics::global();
        loop {
            if let Ok(head) = self.store.head().await {
                for (name, st) in self.status.iter() {
                    let pos = Position(st.position.load(Ordering::Acquire));
                    if let Ok(mut b) = st.behind_since.lock() {
                        if pos >= head {
                            *b = None;
                        } else if b.is_none() {
                            *b = Some(Instant::now());
                        }
                    }
                    let labels = ProjectionLabels {
                        projection: (*name).to_string(),
                    };
                    m.projection_lag_seconds
                        .get_or_create(&labels)
                        .set(st.lag().as_secs_f64());
                    m.projection_position.get_or_create(&labels).set(pos.0 as i64);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn run_one(&self, p: Arc<dyn Projection>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.follow(p.clone(), &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    metrics::global()
                        .projection_errors
                        .get_or_create(&ProjectionLabels {
                            projection: p.name().to_string(),
                        })
                        .inc();
                    tracing::error!(projection = p.name(), error = %e, "projection failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Catches up and follows until shutdown (Ok) or a failure (Err, retried by the caller from
    /// the last committed checkpoint).
    async fn follow(&self, p: Arc<dyn Projection>, shutdown: &CancellationToken) -> Result<(), ProjectionError> {
        let status = self.status.get(p.name()).cloned().unwrap_or_default();
        let models = self.models.clone();
        let prepared = p.clone();
        let mut position = tokio::task::spawn_blocking(move || models.prepare(prepared.as_ref()))
            .await
            .map_err(|e| ProjectionError::Apply {
                projection: p.name(),
                position: 0,
                message: e.to_string(),
            })??;
        status.position.store(position.0, Ordering::Release);
        let startup_head = self.store.head().await?;
        if position >= startup_head {
            status.caught_up.store(true, Ordering::Release);
        }
        let mut events = self.store.subscribe_all(position);
        let labels = ProjectionLabels {
            projection: p.name().to_string(),
        };
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = events.next() => match next {
                    None => return Ok(()),
                    Some(ev) => ev?,
                },
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match events.next().now_or_never() {
                    Some(Some(ev)) => batch.push(ev?),
                    _ => break,
                }
            }
            let upto = batch.last().map(|e| e.position).unwrap_or(position);
            let models = self.models.clone();
            let proj = p.clone();
            let applied = tokio::task::spawn_blocking(move || models.apply_batch(proj.as_ref(), &batch, upto))
                .await
                .map_err(|e| ProjectionError::Apply {
                    projection: p.name(),
                    position: upto.0,
                    message: e.to_string(),
                })??;
            position = upto;
            status.position.store(position.0, Ordering::Release);
            if position >= startup_head {
                status.caught_up.store(true, Ordering::Release);
            }
            metrics::global()
                .projection_events
                .get_or_create(&labels)
                .inc_by(applied as u64);
        }
    }

    /// Waits until every projection has applied everything up to `position` (read-your-writes
    /// for commands whose response reads a model), or `timeout` passes.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .status
                .values()
                .all(|s| s.position.load(Ordering::Acquire) >= position.0)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

use futures::FutureExt;

/// Drops and replays projections from the start of the log, reporting progress through
/// `progress(applied_events, head)`. Used by `nikara projections rebuild` and the benchmarks.
pub async fn rebuild(
    store: Arc<dyn EventStore>,
    models: &ReadModels,
    projections: &[Arc<dyn Projection>],
    mut progress: impl FnMut(u64, Position),
) -> Result<u64, ProjectionError> {
    let head = store.head().await?;
    for p in projections {
        models.reset(p.as_ref())?;
    }
    let mut position = Position::START;
    let mut seen = 0u64;
    // Read ahead one page while the previous one is applied.
    let mut next = Some(tokio::spawn({
        let store = store.clone();
        async move { store.read_all(position, 10_000).await }
    }));
    while let Some(handle) = next.take() {
        let page = handle.await.map_err(|e| ProjectionError::Apply {
            projection: "rebuild",
            position: position.0,
            message: e.to_string(),
        })??;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        position = last;
        if position < head {
            let store = store.clone();
            next = Some(tokio::spawn(async move { store.read_all(last, 10_000).await }));
        }
        let models = models.clone();
        let projections = projections.to_vec();
        let count = page.len() as u64;
        tokio::task::spawn_blocking(move || -> Result<(), ProjectionError> {
            for p in &projections {
                models.apply_batch(p.as_ref(), &page, last)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ProjectionError::Apply {
            projection: "rebuild",
            position: position.0,
            message: e.to_string(),
        })??;
        seen += count;
        progress(seen, head);
    }
    Ok(seen)
}

/// Brings projections up to the head of the log from their checkpoints, synchronously. Used where a
/// command needs a current read model without the runner (CLI commands, startup checks).
pub async fn catch_up(
    store: &Arc<dyn EventStore>,
    models: &ReadModels,
    projections: &[Arc<dyn Projection>],
) -> Result<(), ProjectionError> {
    for p in projections {
        let (m, proj) = (models.clone(), p.clone());
        let mut position = tokio::task::spawn_blocking(move || m.prepare(proj.as_ref()))
            .await
            .map_err(|e| ProjectionError::Apply {
                projection: p.name(),
                position: 0,
                message: e.to_string(),
            })??;
        loop {
            let page = store.read_all(position, 10_000).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let (m, proj) = (models.clone(), p.clone());
            tokio::task::spawn_blocking(move || m.apply_batch(proj.as_ref(), &page, last))
                .await
                .map_err(|e| ProjectionError::Apply {
                    projection: p.name(),
                    position: last.0,
                    message: e.to_string(),
                })??;
            position = last;
        }
    }
    Ok(())
}

/// Finds projections by name (`None`: all of them).
pub fn select(name: Option<&str>) -> Result<Vec<Arc<dyn Projection>>, ProjectionError> {
    select_with(name, false)
}

/// [`select`] with the text-capture setting.
pub fn select_with(name: Option<&str>, capture_text: bool) -> Result<Vec<Arc<dyn Projection>>, ProjectionError> {
    let all = all_with(capture_text);
    match name {
        None => Ok(all),
        Some(n) => {
            let found: Vec<_> = all.into_iter().filter(|p| p.name() == n).collect();
            if found.is_empty() {
                Err(ProjectionError::Unknown(n.to_string()))
            } else {
                Ok(found)
            }
        }
    }
}
