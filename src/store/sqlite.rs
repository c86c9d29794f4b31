//! Embedded event store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection. Appenders send requests over a channel and
//! wait; the writer drains everything queued, applies it in one transaction (each request under
//! its own savepoint, so one conflict does not fail its neighbours), commits once, and only then
//! answers. While a commit's fsync runs, new requests queue up and form the next group: that is
//! the group commit, and it is why durability does not cost throughput under concurrency.
//!
//! Readers use their own connections (WAL readers never block the writer). Subscriptions are woken
//! by a `watch` channel that the writer bumps after each durable commit, so a live subscriber can
//! never observe a position that is not yet on disk.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::{
    AppendResult, CurrentRevision, Direction, EventStore, EventStream, ExpectedVersion, MAX_EVENT_BYTES, Metadata,
    NewEvent, Position, RecordedEvent, StoreError, StoreResult, StreamFrom,
};
use crate::metrics;

/// `PRAGMA application_id` of a nikara event log ("nkev"), so we refuse to write into some other
/// application's database by mistake.
const APPLICATION_ID: i64 = 0x6E6B_6576;

/// Upper bound on requests folded into one transaction; keeps a single commit's latency bounded.
const MAX_GROUP: usize = 2048;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY,
    event_id        BLOB    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL,
    revision        INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    data            BLOB    NOT NULL,
    version         INTEGER NOT NULL,
    user_id         TEXT,
    correlation_id  BLOB,
    causation_id    BLOB,
    occurred_at     INTEGER NOT NULL,
    recorded_at     INTEGER NOT NULL,
    UNIQUE (stream, revision)
);
";

struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<AppendResult>>,
}

/// The embedded event store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    head: watch::Sender<Position>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish()
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::io(format!("cannot open the event log at {}: {e}", path.display()), e)
}

impl SqliteStore {
    /// Opens (creating if missing) the event log at `path` and starts the group-commit writer.
    ///
    /// A file that is not a SQLite database, or a database of another application, is refused with
    /// an error naming the path; nothing panics.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::io(format!("cannot create the data directory {}: {e}", parent.display()), e)
            })?;
        }
        let conn = Connection::open(&path).map_err(|e| open_error(&path, e))?;
        init_writer_connection(&conn).map_err(|e| open_error(&path, e))?;
        let head: i64 = conn
            .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| open_error(&path, e))?;
        let (head_tx, _) = watch::channel(Position(head as u64));
        let (sender, receiver) = mpsc::channel::<AppendRequest>();
        let head_for_writer = head_tx.clone();
        let writer = std::thread::Builder::new()
            .name("nikara-store-writer".into())
            .spawn(move || writer_loop(conn, receiver, head_for_writer))
            .map_err(|e| StoreError::io("cannot start the event store writer thread", e))?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                path,
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                head: head_tx,
            }),
        };
        // Fail now, not at the first read, when readers cannot open.
        let reader = store.reader()?;
        store.give_back(reader);
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn reader(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.inner.readers.lock().map_err(|_| poisoned())?.pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| open_error(&self.inner.path, e))?;
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
            .map_err(|e| open_error(&self.inner.path, e))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < 8
        {
            pool.push(conn);
        }
    }

    /// Runs a read on a pooled connection off the async runtime.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store.reader()?;
            let out = f(&conn);
            store.give_back(conn);
            out
        })
        .await
        .map_err(|e| StoreError::io("event store read task failed", e))?
    }

    /// Reads `$all` synchronously; used by the async API and by bulk replays (rebuilds,
    /// benchmarks) that are already on a blocking thread.
    pub fn read_all_blocking(&self, after: Position, max: usize) -> StoreResult<Vec<RecordedEvent>> {
        let conn = self.reader()?;
        let out = read_all_on(&conn, after, max);
        self.give_back(conn);
        out
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("event store reader pool lock poisoned".into())
}

fn init_writer_connection(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = OFF;",
    )?;
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name <> 'events'",
        [],
        |r| r.get(0),
    )?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            Some("the file is a SQLite database of another application, not a nikara event log".into()),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    Ok(())
}

/// Times are stored as nanoseconds since the epoch (valid until 2262), so metadata reads back
/// exactly as appended, as it does on KurrentDB where it is JSON.
fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn from_nanos(ns: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(ns)
}

fn writer_loop(mut conn: Connection, receiver: mpsc::Receiver<AppendRequest>, head: watch::Sender<Position>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = receiver.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(req) => group.push(req),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = commit_group(&mut conn, &group);
        let m = metrics::global();
        m.store_commit_seconds.observe(started.elapsed().as_secs_f64());
        m.store_group_size.observe(group.len() as f64);
        match outcome {
            Ok((results, new_head)) => {
                if let Some(p) = new_head {
                    head.send_if_modified(|h| {
                        let changed = p > *h;
                        if changed {
                            *h = p;
                        }
                        changed
                    });
                }
                for (req, result) in group.drain(..).zip(results) {
                    let _ = req.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event store commit failed; the group's appends are rejected");
                let msg = e.to_string();
                for req in group.drain(..) {
                    let _ = req.reply.send(Err(StoreError::Io {
                        message: format!("event store commit failed: {msg}"),
                        source: Box::new(std::io::Error::other(msg.clone())),
                    }));
                }
            }
        }
    }
    // Channel closed: every sender is gone, so nothing more can arrive. Fold the WAL back into the
    // main file so the next open starts clean.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

type GroupOutcome = (Vec<StoreResult<AppendResult>>, Option<Position>);

fn commit_group(conn: &mut Connection, group: &[AppendRequest]) -> rusqlite::Result<GroupOutcome> {
    let now = nanos(Utc::now());
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    let mut new_head = None;
    for req in group {
        let mut sp = tx.savepoint()?;
        let result = apply_one(&sp, req, now);
        match &result {
            Ok(r) => {
                sp.commit()?;
                new_head = Some(new_head.map_or(r.position, |h: Position| h.max(r.position)));
            }
            Err(_) => {
                sp.rollback()?;
                sp.commit()?;
            }
        }
        results.push(result);
    }
    tx.commit()?;
    Ok((results, new_head))
}

/// Applies one append inside the group's transaction. Returns a store error for contract failures;
/// SQLite errors bubble up as `Io` for this request only (its savepoint is rolled back).
fn apply_one(conn: &Connection, req: &AppendRequest, now: i64) -> StoreResult<AppendResult> {
    let io = |e: rusqlite::Error| StoreError::io(format!("append to {} failed: {e}", req.stream), e);
    // Idempotency first: a retried append whose events are all stored answers the original result,
    // whatever the expectation says now.
    let mut find = conn
        .prepare_cached("SELECT position, stream, revision FROM events WHERE event_id = ?1")
        .map_err(io)?;
    let mut already = Vec::new();
    for ev in &req.events {
        let row: Option<(i64, String, i64)> = find
            .query_row(params![ev.id.as_bytes().as_slice()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(io)?;
        if let Some(found) = row {
            already.push(found);
        }
    }
    if !already.is_empty() {
        if already.len() != req.events.len() {
            return Err(StoreError::InvalidAppend(format!(
                "{} of {} event ids are already stored; a retry must resend exactly the same events",
                already.len(),
                req.events.len()
            )));
        }
        if let Some((_, other, _)) = already.iter().find(|(_, s, _)| s != &req.stream) {
            return Err(StoreError::InvalidAppend(format!(
                "event id already stored in another stream ({other})"
            )));
        }
        let pos = already.iter().map(|(p, _, _)| *p).max().unwrap_or_default();
        let last = current_revision(conn, &req.stream).map_err(io)?;
        return Ok(AppendResult {
            position: Position(pos as u64),
            next_expected: last.unwrap_or(0),
        });
    }

    let current = current_revision(conn, &req.stream).map_err(io)?;
    if !req.expected.is_satisfied_by(current) {
        return Err(StoreError::WrongExpectedVersion {
            stream: req.stream.clone(),
            expected: req.expected,
            actual: CurrentRevision(current),
        });
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (event_id, stream, revision, event_type, data, version, user_id,
                                 correlation_id, causation_id, occurred_at, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(io)?;
    let mut revision = current.map_or(0, |r| r + 1);
    let mut position = 0;
    for ev in &req.events {
        let m = &ev.metadata;
        insert
            .execute(params![
                ev.id.as_bytes().as_slice(),
                req.stream,
                revision as i64,
                ev.event_type,
                ev.data,
                m.version,
                m.user_id,
                m.correlation_id.as_ref().map(|u| u.as_bytes().to_vec()),
                m.causation_id.as_ref().map(|u| u.as_bytes().to_vec()),
                nanos(m.occurred_at),
                now,
            ])
            .map_err(io)?;
        position = conn.last_insert_rowid();
        revision += 1;
    }
    Ok(AppendResult {
        position: Position(position as u64),
        next_expected: revision - 1,
    })
}

fn current_revision(conn: &Connection, stream: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT revision FROM events WHERE stream = ?1 ORDER BY revision DESC LIMIT 1")?
        .query_row([stream], |r| r.get::<_, i64>(0))
        .optional()
        .map(|o| o.map(|r| r as u64))
}

const COLUMNS: &str = "position, event_id, stream, revision, event_type, data, version, user_id, \
                       correlation_id, causation_id, occurred_at, recorded_at";

fn uuid_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    let bytes: Option<Vec<u8>> = row.get(idx)?;
    match bytes {
        None => Ok(None),
        Some(b) => Uuid::from_slice(&b)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Blob, Box::new(e))),
    }
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    Ok(RecordedEvent {
        position: Position(row.get::<_, i64>(0)? as u64),
        id: uuid_col(row, 1)?.unwrap_or_default(),
        stream: row.get(2)?,
        revision: row.get::<_, i64>(3)? as u64,
        event_type: row.get(4)?,
        data: row.get(5)?,
        metadata: Metadata {
            version: row.get(6)?,
            user_id: row.get(7)?,
            correlation_id: uuid_col(row, 8)?,
            causation_id: uuid_col(row, 9)?,
            occurred_at: from_nanos(row.get(10)?),
        },
        recorded_at: from_nanos(row.get(11)?),
    })
}

fn read_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::io(format!("event store read failed: {other}"), other),
    }
}

fn read_all_on(conn: &Connection, after: Position, max: usize) -> StoreResult<Vec<RecordedEvent>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))
        .map_err(read_err)?;
    let rows = stmt
        .query_map(params![after.0 as i64, max as i64], row_to_event)
        .map_err(read_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(stream = %stream, events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> StoreResult<AppendResult> {
        if events.is_empty() {
            return Err(StoreError::InvalidAppend("an append needs at least one event".into()));
        }
        if stream.is_empty() {
            return Err(StoreError::InvalidAppend("stream name is empty".into()));
        }
        let mut ids = std::collections::HashSet::with_capacity(events.len());
        for ev in &events {
            if !ids.insert(ev.id) {
                return Err(StoreError::InvalidAppend(format!(
                    "event id {} appears twice in one append",
                    ev.id
                )));
            }
            // Metadata is a handful of fixed-size columns plus the user id.
            let size = ev.data.len() + ev.event_type.len() + ev.metadata.user_id.as_ref().map_or(0, String::len) + 64;
            if size > MAX_EVENT_BYTES {
                return Err(StoreError::TooLarge {
                    size,
                    limit: MAX_EVENT_BYTES,
                });
            }
        }
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let count = events.len();
        {
            let sender = self.inner.sender.lock().map_err(|_| poisoned())?;
            let sender = sender.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(AppendRequest {
                    stream: stream.to_owned(),
                    expected,
                    events,
                    reply,
                })
                .map_err(|_| StoreError::Closed)?;
        }
        let result = answer.await.map_err(|_| StoreError::Closed)?;
        let m = metrics::global();
        m.store_append_seconds.observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            m.store_appends.inc();
            m.store_appended_events.inc_by(count as u64);
        }
        result
    }

    #[tracing::instrument(skip_all, fields(stream = %stream))]
    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let stream = stream.to_owned();
        self.with_reader(move |conn| {
            let (cmp, order, start) = match (direction, from) {
                (Direction::Forwards, StreamFrom::Start) => (">=", "ASC", 0),
                (Direction::Forwards, StreamFrom::Revision(r)) => (">=", "ASC", r as i64),
                (Direction::Backwards, StreamFrom::Start) => ("<=", "DESC", i64::MAX),
                (Direction::Backwards, StreamFrom::Revision(r)) => ("<=", "DESC", r as i64),
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision {cmp} ?2 ORDER BY revision {order} LIMIT ?3"
                ))
                .map_err(read_err)?;
            let rows = stmt
                .query_map(params![stream, start, max as i64], row_to_event)
                .map_err(read_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
        })
        .await
    }

    async fn read_all(&self, after: Position, max: usize) -> StoreResult<Vec<RecordedEvent>> {
        self.with_reader(move |conn| read_all_on(conn, after, max)).await
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        struct State {
            store: SqliteStore,
            after: Position,
            buffer: VecDeque<RecordedEvent>,
            head: watch::Receiver<Position>,
            failed: bool,
        }
        let state = State {
            store: self.clone(),
            after,
            buffer: VecDeque::new(),
            head: self.inner.head.subscribe(),
            failed: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.failed {
                return None;
            }
            loop {
                if let Some(ev) = st.buffer.pop_front() {
                    st.after = ev.position;
                    return Some((Ok(ev), st));
                }
                // Mark the current head as seen *before* reading, so a commit that lands after
                // the read wakes us: no lost wake-up, hence no stall at the handover.
                st.head.borrow_and_update();
                match st.store.read_all(st.after, 1024).await {
                    Ok(batch) if !batch.is_empty() => st.buffer.extend(batch),
                    Ok(_) => {
                        // Woken by our own writer at once; commits by another process on the same
                        // file (a CLI command while the hub runs) are noticed within 250 ms.
                        let after = st.after;
                        tokio::select! {
                            woke = st.head.wait_for(|h| *h > after) => {
                                if woke.is_err() {
                                    return None;
                                }
                            }
                            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                        }
                    }
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                }
            }
        }))
    }

    async fn head(&self) -> StoreResult<Position> {
        // The file is the truth (another process may have appended); keep the watch in step.
        let on_disk = self
            .with_reader(|conn| {
                conn.prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")
                    .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                    .map_err(read_err)
            })
            .await?;
        let p = Position(on_disk as u64);
        self.inner.head.send_if_modified(|h| {
            let newer = p > *h;
            if newer {
                *h = p;
            }
            newer
        });
        Ok(p)
    }

    async fn stream_revision(&self, stream: &str) -> StoreResult<Option<u64>> {
        let stream = stream.to_owned();
        self.with_reader(move |conn| current_revision(conn, &stream).map_err(read_err))
            .await
    }

    async fn shutdown(&self) {
        let sender = self.inner.sender.lock().ok().and_then(|mut s| s.take());
        drop(sender);
        let writer = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = writer {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
