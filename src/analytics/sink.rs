//! The ClickHouse sink: an asynchronous projection of the event log into the analytics tables.
//!
//! The sink reads `$all` and hands every event to a [`Decoder`] (supplied by the engagement
//! module), which turns it into [`SinkRow`]s: engagement facts, snapshots, post dimension rows,
//! or nothing. Rows are batched (up to [`SinkOptions::max_batch_rows`] or
//! [`SinkOptions::max_batch_delay`], whichever comes first) and written table by table.
//!
//! **Exactly-once totals under at-least-once delivery.** ClickHouse has no transactions, so the
//! checkpoint lives beside the data and the data guards itself:
//!
//! 1. Each row carries its source position (and facts their `item_index`). Before writing, the
//!    sink knows, for each table, the highest key already in that table, and it never writes a
//!    row at or below it. The guard of `engagement_events` is read from `engagement_events`
//!    itself, so an insert that reached the table (and therefore fired the summing materialized
//!    view) is never repeated, whatever happened to the answer.
//! 2. A batch is written in a fixed order (posts, snapshots, engagement events) and then its end
//!    position goes to `sink_checkpoints`. The checkpoint only says where to resume reading the
//!    log; a crash between a table and the checkpoint leaves rows above the checkpoint, which the
//!    per-table guards (re-read from ClickHouse on start and after every error) skip.
//! 3. An insert is sent in key order, so even an insert cut short could only have stored a
//!    prefix, which the guard also covers: exactly for facts (`(position, item_index)`), per
//!    position for snapshots and posts, whose table keys (`(post_id, taken_at)`, `post_id`)
//!    collapse a repeated row anyway and which analysts read through `argMax`/`FINAL`.
//! 4. After a failed attempt, the guards are re-read only once the attempt's inserts (sent under
//!    known `query_id`s) no longer run on the server, so an insert that outlived its client
//!    timeout cannot land behind the guard's back.
//!
//! ClickHouse down: the batch is kept, the sink retries with capped exponential backoff, stops
//! reading the log meanwhile (the log is the buffer), and catches up afterwards. Nothing is
//! lost (the checkpoint never passes an unwritten row) and nothing is doubled (the guards).
//!
//! One sink per ClickHouse database: two sinks writing the same tables (two hubs, or a
//! [`Sink::rebuild`] while a hub runs) could both pass the guard and double-count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::{ClickHouseError, Client, unix_seconds};
use super::migrations::{self, MigrateError};
use crate::metrics::{self, ProjectionLabels};
use crate::store::{EventStore, Position, RecordedEvent, StoreError};

/// The sink's name in `sink_checkpoints` and its `projection` label in metrics.
pub const SINK_NAME: &str = "clickhouse";

/// Tables the sink fills (emptied by [`Sink::rebuild`]); the materialized view's target included.
pub const SINK_TABLES: &[&str] = &[
    "engagement_events",
    "engagement_snapshots",
    "posts",
    "post_engagement_daily",
    "sink_checkpoints",
];

/// One engagement fact: a row of `engagement_events`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventRow {
    /// Source position in the log; set by the sink from the event (whatever the decoder put).
    pub position: u64,
    /// Index of the fact within its delivery; `(position, item_index)` is the row's identity.
    pub item_index: u32,
    pub platform: String,
    pub account_external_id: String,
    /// nikara's account id, `""` when unknown.
    pub account_id: String,
    /// nikara's user id, `""` when unknown.
    pub user_id: String,
    /// nikara's post id when the platform post is one nikara published, else `""`.
    pub post_id: String,
    pub platform_post_id: String,
    /// `like`, `reaction`, `comment`, `reply`, `share`, `quote`, `repost`, `mention`, `follow`.
    pub kind: String,
    /// +1, -1 or 0.
    pub delta: i32,
    pub verb: String,
    pub reaction_type: String,
    pub actor_id: String,
    pub comment_id: String,
    pub text: String,
    #[serde(with = "unix_seconds")]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "unix_seconds")]
    pub received_at: DateTime<Utc>,
}

/// One metrics poll of a post: a row of `engagement_snapshots`. `None` = not reported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub post_id: String,
    pub platform: String,
    pub platform_post_id: String,
    pub account_id: String,
    pub user_id: String,
    #[serde(with = "unix_seconds")]
    pub taken_at: DateTime<Utc>,
    pub likes: Option<i64>,
    pub comments: Option<i64>,
    pub shares: Option<i64>,
    pub views: Option<i64>,
    pub impressions: Option<i64>,
    /// Parallel to `reaction_counts`.
    pub reaction_types: Vec<String>,
    pub reaction_counts: Vec<i64>,
    /// `sync` (polled) or `webhook`.
    pub source: String,
    /// Set by the sink.
    pub position: u64,
}

/// A published post: a row of the `posts` dimension.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PostRow {
    pub post_id: String,
    pub user_id: String,
    pub account_id: String,
    pub platform: String,
    pub platform_post_id: String,
    #[serde(with = "unix_seconds")]
    pub published_at: DateTime<Utc>,
    /// Set by the sink.
    pub position: u64,
}

/// What a decoder makes of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkRow {
    Event(EventRow),
    Snapshot(SnapshotRow),
    Post(PostRow),
}

/// Turns one recorded event into rows (most events: none). Must be deterministic (a replay must
/// give the same rows) and cheap to call for event types it ignores. An `Err` means the event
/// cannot be decoded: it is logged, counted in `nikara_projection_errors{projection="clickhouse"}`
/// and skipped (retrying cannot fix it, and stopping would stall all analytics).
pub type Decoder = Arc<dyn Fn(&RecordedEvent) -> Result<Vec<SinkRow>, String> + Send + Sync>;

/// Tuning.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Rows per batch at most.
    pub max_batch_rows: usize,
    /// Longest a row waits in the batch.
    pub max_batch_delay: Duration,
    /// First retry delay after an error; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Apply the ClickHouse migrations before following (retried like everything else).
    pub migrate: bool,
    /// How often the lag is measured (and ClickHouse pinged).
    pub monitor_interval: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_batch_rows: 50_000,
            max_batch_delay: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            migrate: true,
            monitor_interval: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    /// A failed attempt's insert is still running on the server: its outcome must be known
    /// before the guards are read again.
    #[error("an earlier insert ({0}) is still running on ClickHouse; waiting for it to finish")]
    InsertStillRunning(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A snapshot of the sink's state, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkStatus {
    /// Last log position whose rows are all in ClickHouse.
    pub position: u64,
    /// Age of the oldest event not yet in ClickHouse (0 when caught up).
    pub lag_seconds: f64,
    /// Whether the last request to ClickHouse succeeded.
    pub connected: bool,
    /// Whether the sink has reached the head of the log seen when it started.
    pub caught_up: bool,
    /// The last ClickHouse or decode error, until the next successful write.
    pub last_error: Option<String>,
    /// Rows written since the process started.
    pub rows_written: u64,
}

#[derive(Debug, Default)]
struct Shared {
    position: AtomicU64,
    lag_millis: AtomicU64,
    connected: AtomicBool,
    caught_up: AtomicBool,
    rows: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

/// A cheap, cloneable view of a running sink's status.
#[derive(Debug, Clone)]
pub struct SinkHandle(Arc<Shared>);

impl SinkHandle {
    pub fn status(&self) -> SinkStatus {
        let s = &self.0;
        SinkStatus {
            position: s.position.load(Ordering::Acquire),
            lag_seconds: s.lag_millis.load(Ordering::Acquire) as f64 / 1000.0,
            connected: s.connected.load(Ordering::Acquire),
            caught_up: s.caught_up.load(Ordering::Acquire),
            last_error: s.last_error.lock().ok().and_then(|g| g.clone()),
            rows_written: s.rows.load(Ordering::Acquire),
        }
    }

    /// Ready when ClickHouse answers, the first catch-up is done and the lag is within `max_lag`.
    pub fn ready(&self, max_lag: Duration) -> Result<(), String> {
        let st = self.status();
        if !st.connected {
            return Err(format!(
                "ClickHouse is unreachable: {}",
                st.last_error.as_deref().unwrap_or("no answer yet")
            ));
        }
        if !st.caught_up {
            return Err("the ClickHouse sink is still catching up".into());
        }
        if st.lag_seconds > max_lag.as_secs_f64() {
            return Err(format!("the ClickHouse sink is {:.1}s behind", st.lag_seconds));
        }
        Ok(())
    }
}

/// Highest keys already stored, per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guards {
    checkpoint: u64,
    events: (u64, u32),
    snapshots: u64,
    posts: u64,
}

#[derive(Debug, Default)]
struct Batch {
    events: Vec<EventRow>,
    snapshots: Vec<SnapshotRow>,
    posts: Vec<PostRow>,
    /// Position of the last event added (rows or not).
    upto: u64,
    /// Events added.
    seen: u64,
    started: Option<Instant>,
}

impl Batch {
    fn new(after: u64) -> Batch {
        Batch {
            upto: after,
            ..Batch::default()
        }
    }

    fn rows(&self) -> usize {
        self.events.len() + self.snapshots.len() + self.posts.len()
    }

    /// Decodes and adds one event; events at or below the batch's position (a redelivery) are
    /// ignored.
    fn add(&mut self, ev: &RecordedEvent, decoder: &Decoder, shared: &Shared) {
        let pos = ev.position.0;
        if pos <= self.upto {
            return;
        }
        self.upto = pos;
        self.seen += 1;
        self.started.get_or_insert_with(Instant::now);
        match decoder(ev) {
            Ok(rows) => {
                let first_event_row = self.events.len();
                for row in rows {
                    match row {
                        SinkRow::Event(mut r) => {
                            r.position = pos;
                            self.events.push(r);
                        }
                        SinkRow::Snapshot(mut r) => {
                            r.position = pos;
                            self.snapshots.push(r);
                        }
                        SinkRow::Post(mut r) => {
                            r.position = pos;
                            self.posts.push(r);
                        }
                    }
                }
                // Inserts go out in key order (the guard relies on it), and a key only once.
                let mut facts = self.events.split_off(first_event_row);
                facts.sort_by_key(|r| r.item_index);
                let decoded = facts.len();
                facts.dedup_by_key(|r| r.item_index);
                if facts.len() != decoded {
                    tracing::warn!(
                        position = pos,
                        dropped = decoded - facts.len(),
                        "the decoder gave several facts the same item_index; kept the first of each"
                    );
                }
                self.events.append(&mut facts);
            }
            Err(message) => {
                tracing::error!(position = pos, event_type = %ev.event_type, error = %message,
                    "ClickHouse sink cannot decode an event; skipping it");
                error_metric();
                shared.set_error(Some(format!(
                    "cannot decode {} at position {pos}: {message}",
                    ev.event_type
                )));
            }
        }
    }

    fn clear(&mut self) {
        let upto = self.upto;
        *self = Batch::new(upto);
    }
}

fn labels() -> ProjectionLabels {
    ProjectionLabels {
        projection: SINK_NAME.to_string(),
    }
}

fn error_metric() {
    metrics::global().projection_errors.get_or_create(&labels()).inc();
}

/// Writes batches, keeping the guards in memory between writes (re-read after any error).
struct Writer {
    client: Client,
    guards: Option<Guards>,
    last_checkpoint: Instant,
    /// Query ids of the inserts of the current attempt.
    sent: Vec<String>,
    /// Inserts of a failed attempt that may still be running server-side (e.g. the client timed
    /// out): the guards are re-read only once none of them runs, so a late insert cannot land
    /// after the guard was read and be written a second time.
    unsettled: Vec<String>,
}

impl Writer {
    fn new(client: Client) -> Writer {
        Writer {
            client,
            guards: None,
            last_checkpoint: Instant::now(),
            sent: Vec::new(),
            unsettled: Vec::new(),
        }
    }

    async fn guards(&mut self) -> Result<Guards, SinkError> {
        if let Some(g) = self.guards {
            return Ok(g);
        }
        while let Some(id) = self.unsettled.last() {
            if self.client.is_running(id).await? {
                return Err(SinkError::InsertStillRunning(id.clone()));
            }
            self.unsettled.pop();
        }
        let g = load_guards(&self.client).await?;
        self.guards = Some(g);
        Ok(g)
    }

    /// One attempt at writing `batch`; `force_checkpoint` writes the checkpoint even for a batch
    /// without rows. Returns the rows written.
    async fn write(&mut self, batch: &Batch, force_checkpoint: bool) -> Result<usize, SinkError> {
        self.sent.clear();
        let r = self.try_write(batch, force_checkpoint).await;
        if r.is_err() {
            // Whatever reached ClickHouse, the next attempt re-reads what is there, once the
            // inserts of this attempt are known to be over.
            self.guards = None;
            self.unsettled.append(&mut self.sent);
        }
        r
    }

    async fn insert<T: Serialize>(&mut self, table: &str, rows: &[T]) -> Result<usize, ClickHouseError> {
        let id = format!("nikara-sink-{}", uuid::Uuid::new_v4().simple());
        self.sent.push(id.clone());
        self.client.insert_json_each_row_as(table, rows, Some(&id)).await
    }

    async fn try_write(&mut self, batch: &Batch, force_checkpoint: bool) -> Result<usize, SinkError> {
        let mut g = self.guards().await?;
        let mut written = 0;

        let posts: Vec<&PostRow> = batch.posts.iter().filter(|r| r.position > g.posts).collect();
        if let Some(last) = posts.last().map(|r| r.position) {
            written += self.insert("posts", &posts).await?;
            g.posts = last;
            self.guards = Some(g);
        }
        let snaps: Vec<&SnapshotRow> = batch.snapshots.iter().filter(|r| r.position > g.snapshots).collect();
        if let Some(last) = snaps.last().map(|r| r.position) {
            written += self.insert("engagement_snapshots", &snaps).await?;
            g.snapshots = last;
            self.guards = Some(g);
        }
        let events: Vec<&EventRow> = batch
            .events
            .iter()
            .filter(|r| (r.position, r.item_index) > g.events)
            .collect();
        if let Some(last) = events.last().map(|r| (r.position, r.item_index)) {
            written += self.insert("engagement_events", &events).await?;
            g.events = last;
            self.guards = Some(g);
        }
        let due = written > 0 || force_checkpoint || self.last_checkpoint.elapsed() >= Duration::from_secs(10);
        if batch.upto > g.checkpoint && due {
            #[derive(Serialize)]
            struct Checkpoint<'a> {
                sink: &'a str,
                position: u64,
                #[serde(with = "unix_seconds")]
                updated_at: DateTime<Utc>,
            }
            self.insert(
                "sink_checkpoints",
                &[Checkpoint {
                    sink: SINK_NAME,
                    position: batch.upto,
                    updated_at: Utc::now(),
                }],
            )
            .await?;
            g.checkpoint = batch.upto;
            self.last_checkpoint = Instant::now();
        }
        // Rows at or below the batch end are settled, whether written now or before.
        g.posts = g.posts.max(batch.upto);
        g.snapshots = g.snapshots.max(batch.upto);
        if g.events.0 < batch.upto {
            g.events = (batch.upto, u32::MAX);
        }
        self.guards = Some(g);
        Ok(written)
    }
}

#[derive(Debug, Deserialize)]
struct Pos {
    position: u64,
}

#[derive(Debug, Deserialize)]
struct PosItem {
    position: u64,
    item_index: u32,
}

async fn load_guards(client: &Client) -> Result<Guards, ClickHouseError> {
    let checkpoint = client
        .select_json::<Pos>(&format!(
            "SELECT position FROM sink_checkpoints WHERE sink = '{SINK_NAME}' ORDER BY position DESC LIMIT 1"
        ))
        .await?
        .first()
        .map_or(0, |p| p.position);
    // engagement_events is ordered by (position, item_index): the WHERE prunes to the tail.
    let events = client
        .select_json::<PosItem>(&format!(
            "SELECT position, item_index FROM engagement_events WHERE position > {checkpoint}
             ORDER BY position DESC, item_index DESC LIMIT 1"
        ))
        .await?
        .first()
        .map_or((checkpoint, u32::MAX), |p| (p.position, p.item_index));
    let tail = |table: &'static str| {
        let client = client.clone();
        async move {
            Ok::<u64, ClickHouseError>(
                client
                    .select_json::<Pos>(&format!(
                        "SELECT position FROM {table} WHERE position > {checkpoint} ORDER BY position DESC LIMIT 1"
                    ))
                    .await?
                    .first()
                    .map_or(checkpoint, |p| p.position),
            )
        }
    };
    let snapshots = tail("engagement_snapshots").await?;
    let posts = tail("posts").await?;
    Ok(Guards {
        checkpoint,
        events,
        snapshots,
        posts,
    })
}

/// The sink. Build it with [`Sink::new`], keep a [`Sink::handle`] for status, then
/// [`Sink::spawn`] (or `run`) it.
pub struct Sink {
    client: Client,
    decoder: Decoder,
    options: SinkOptions,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("client", &self.client)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(client: Client, decoder: Decoder) -> Sink {
        Sink {
            client,
            decoder,
            options: SinkOptions::default(),
            shared: Arc::new(Shared::default()),
        }
    }

    pub fn with_options(mut self, options: SinkOptions) -> Sink {
        self.options = options;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Status that stays readable after the sink is moved into its task.
    pub fn handle(&self) -> SinkHandle {
        SinkHandle(self.shared.clone())
    }

    pub fn status(&self) -> SinkStatus {
        self.handle().status()
    }

    /// Runs [`Sink::run`] on a task.
    pub fn spawn(self, store: Arc<dyn EventStore>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(store, shutdown))
    }

    /// Migrates (when [`SinkOptions::migrate`]), catches up from the checkpoint in ClickHouse,
    /// then follows the log until `shutdown`. Every failure (ClickHouse down, a store error) is
    /// retried with capped backoff from what ClickHouse holds; this returns only on shutdown.
    pub async fn run(self, store: Arc<dyn EventStore>, shutdown: CancellationToken) {
        let monitor = tokio::spawn(monitor(
            self.shared.clone(),
            self.client.clone(),
            store.clone(),
            self.options.monitor_interval,
            shutdown.clone(),
        ));
        let mut backoff = self.options.min_backoff;
        let mut migrated = !self.options.migrate;
        loop {
            let attempt = async {
                if !migrated {
                    let report = migrations::migrate(&self.client).await?;
                    tracing::info!(
                        server = %report.server_version,
                        database = %report.database,
                        applied = report.applied.len(),
                        "ClickHouse schema up to date"
                    );
                    migrated = true;
                }
                self.follow(&store, &shutdown).await
            };
            let started = Instant::now();
            match attempt.await {
                Ok(()) => break,
                Err(e) => {
                    self.failed(&e);
                    if started.elapsed() > self.options.max_backoff {
                        backoff = self.options.min_backoff;
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff, "ClickHouse sink failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
            }
        }
        monitor.abort();
    }

    fn failed(&self, e: &(dyn std::error::Error + 'static)) {
        error_metric();
        let unreachable = matches!(
            e.downcast_ref::<ClickHouseError>(),
            Some(ClickHouseError::Unreachable { .. })
        ) || matches!(
            e.downcast_ref::<SinkError>(),
            Some(SinkError::ClickHouse(ClickHouseError::Unreachable { .. }))
        );
        if unreachable {
            self.shared.connected.store(false, Ordering::Release);
        }
        self.shared.set_error(Some(e.to_string()));
    }

    fn committed(&self, batch: &Batch, written: usize, head_at_start: u64) {
        let s = &self.shared;
        s.position.store(batch.upto, Ordering::Release);
        s.connected.store(true, Ordering::Release);
        s.rows.fetch_add(written as u64, Ordering::AcqRel);
        if batch.upto >= head_at_start {
            s.caught_up.store(true, Ordering::Release);
        }
        if written > 0 {
            s.set_error(None);
        }
        let m = metrics::global();
        m.clickhouse_position.set(batch.upto as i64);
        m.projection_events.get_or_create(&labels()).inc_by(batch.seen);
    }

    async fn follow(&self, store: &Arc<dyn EventStore>, shutdown: &CancellationToken) -> Result<(), SinkError> {
        let mut writer = Writer::new(self.client.clone());
        let g = writer.guards().await?;
        self.shared.connected.store(true, Ordering::Release);
        let head = store.head().await?.0;
        self.check_not_ahead(g.checkpoint.max(g.events.0).max(g.snapshots).max(g.posts), head);
        self.shared.position.store(g.checkpoint, Ordering::Release);
        if g.checkpoint >= head {
            self.shared.caught_up.store(true, Ordering::Release);
        }
        let mut events = store.subscribe_all(Position(g.checkpoint));
        let mut batch = Batch::new(g.checkpoint);
        loop {
            let deadline = batch
                .started
                .map(|t| tokio::time::Instant::from_std(t + self.options.max_batch_delay));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // One quick attempt to keep what is batched; the log has it anyway.
                    if batch.seen > 0
                        && let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), writer.write(&batch, true)).await
                    {
                        self.committed(&batch, n, head);
                    }
                    return Ok(());
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if !self.flush(&mut writer, &mut batch, head, shutdown).await {
                        return Ok(());
                    }
                }
                next = events.next() => match next {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(ev)) => {
                        batch.add(&ev, &self.decoder, &self.shared);
                        if batch.rows() >= self.options.max_batch_rows
                            && !self.flush(&mut writer, &mut batch, head, shutdown).await
                        {
                            return Ok(());
                        }
                    }
                },
            }
        }
    }

    /// Writes the batch, retrying until it is in or `shutdown` fires (then `false`).
    async fn flush(&self, writer: &mut Writer, batch: &mut Batch, head: u64, shutdown: &CancellationToken) -> bool {
        let mut backoff = self.options.min_backoff;
        loop {
            match writer.write(batch, false).await {
                Ok(n) => {
                    self.committed(batch, n, head);
                    batch.clear();
                    return true;
                }
                Err(e) => {
                    self.failed(&e);
                    tracing::warn!(error = %e, rows = batch.rows(), retry_in = ?backoff,
                        "ClickHouse sink cannot write a batch; keeping it and retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
            }
        }
    }

    fn check_not_ahead(&self, stored: u64, head: u64) {
        if stored > head {
            let msg = format!(
                "ClickHouse database {} holds rows up to log position {stored}, beyond the log's head {head}: it was filled from another event log; rebuild it",
                self.client.database()
            );
            tracing::error!("{msg}");
            self.shared.set_error(Some(msg));
        }
    }

    /// Writes everything up to the log's current head, without retries (an error is returned),
    /// and returns the position reached. For commands and tests; the hub uses [`Sink::run`].
    pub async fn catch_up(&self, store: &Arc<dyn EventStore>) -> Result<Position, SinkError> {
        let mut writer = Writer::new(self.client.clone());
        let g = writer.guards().await?;
        let head = store.head().await?.0;
        self.check_not_ahead(g.checkpoint.max(g.events.0).max(g.snapshots).max(g.posts), head);
        let mut position = g.checkpoint;
        let mut batch = Batch::new(position);
        while position < head {
            let page = store.read_all(Position(position), 10_000).await?;
            let Some(last) = page.last().map(|e| e.position.0) else {
                break;
            };
            for ev in &page {
                batch.add(ev, &self.decoder, &self.shared);
                if batch.rows() >= self.options.max_batch_rows {
                    let n = writer.write(&batch, false).await.inspect_err(|e| self.failed(e))?;
                    self.committed(&batch, n, head);
                    batch.clear();
                }
            }
            position = last;
        }
        let n = writer.write(&batch, true).await.inspect_err(|e| self.failed(e))?;
        self.committed(&batch, n, head);
        Ok(Position(batch.upto))
    }

    /// Empties the sink's tables (`TRUNCATE`, which 18.16 supports) and replays the whole log.
    /// Stop the hub's sink first: two writers could double-count. Returns the position reached.
    pub async fn rebuild(&self, store: &Arc<dyn EventStore>) -> Result<Position, SinkError> {
        if self.options.migrate {
            migrations::migrate(&self.client).await?;
        }
        for table in SINK_TABLES {
            self.client
                .query(&format!("TRUNCATE TABLE IF EXISTS {table}"))
                .await
                .inspect_err(|e| self.failed(e))?;
        }
        let s = &self.shared;
        s.position.store(0, Ordering::Release);
        s.caught_up.store(false, Ordering::Release);
        self.catch_up(store).await
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

/// Measures the lag (age of the oldest event the sink has not written) and pings ClickHouse.
async fn monitor(
    shared: Arc<Shared>,
    client: Client,
    store: Arc<dyn EventStore>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = 0u64;
    loop {
        let pos = shared.position.load(Ordering::Acquire);
        if let Ok(head) = store.head().await {
            let lag = if head.0 <= pos {
                Duration::ZERO
            } else {
                match store.read_all(Position(pos), 1).await {
                    Ok(next) => next
                        .first()
                        .and_then(|e| (Utc::now() - e.recorded_at).to_std().ok())
                        .unwrap_or_default(),
                    Err(_) => Duration::from_millis(shared.lag_millis.load(Ordering::Acquire)),
                }
            };
            shared.lag_millis.store(lag.as_millis() as u64, Ordering::Release);
            metrics::global().clickhouse_lag_seconds.set(lag.as_secs_f64());
        }
        if tick.is_multiple_of(4) {
            let up = client.ping().await.is_ok();
            shared.connected.store(up, Ordering::Release);
        }
        tick += 1;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
