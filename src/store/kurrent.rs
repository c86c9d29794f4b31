//! KurrentDB backend (feature `kurrentdb`): the event log lives in a KurrentDB (formerly
//! EventStoreDB) server, reached over gRPC with the official `kurrentdb` client.
//!
//! How the contract maps onto KurrentDB:
//!
//! - **Positions** are KurrentDB commit positions. Since 20.x every event appended through gRPC is
//!   its own implicitly committed record whose commit and prepare positions are equal, so a commit
//!   position identifies exactly one event and positions only grow. Reading `$all` from a position
//!   is inclusive on the server, so reads and subscriptions drop everything at or before the
//!   caller's position themselves to get the contract's "strictly after".
//! - **System events** (event types or streams starting with `$`: projections, stats, metadata,
//!   tombstones, links) are not part of nikara's log. `$all` reads and subscriptions exclude them
//!   with the server-side event-type filter and drop `$` streams client-side, and appends refuse
//!   `$` names so nothing nikara writes could vanish from `read_all`.
//! - **Idempotency** combines a look at the stream's tail before writing
//!   (`KurrentStore::find_retried`) with KurrentDB's own deduplication by event id, and reads the
//!   stored event back to answer the original position (`KurrentStore::locate_appended`).
//! - **Data** is stored byte for byte: the event body goes in as the record's data and
//!   [`Metadata`] as JSON in the record's custom metadata.
//!
//! Requires KurrentDB / EventStoreDB 22.10 or newer (stream reads must carry log positions), a max
//! append size of at least [`MAX_EVENT_BYTES`], and a user allowed to read `$all`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, ClientSettingsParseError, EventData, ReadAllOptions,
    ReadStreamOptions, ResolvedEvent, RetryOptions, StreamPosition, StreamState, SubscribeToAllOptions, Subscription,
    SubscriptionFilter,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    AppendResult, CurrentRevision, Direction, EventStore, EventStream, ExpectedVersion, MAX_EVENT_BYTES, Metadata,
    NewEvent, Position, RecordedEvent, StoreError, StoreResult, StreamFrom,
};

/// KurrentDB reports "no log position" as `u64::MAX` (the server maps its `-1` onto the unsigned
/// wire field); such a value must never leak out as a real position.
const NO_POSITION: u64 = u64::MAX;

/// Page size when `head()` has to walk back over events in `$` streams that the server-side
/// event-type filter let through. One page almost always suffices.
const HEAD_PAGE: usize = 32;

/// How often a live subscription tries to resubscribe after its gRPC stream drops before it gives
/// up and reports the error, and how long it waits between tries. The client resumes from the last
/// event it delivered, so a short server restart or leader election is invisible to consumers,
/// while a real outage still surfaces within about half a minute.
const SUBSCRIPTION_RETRIES: usize = 10;
const SUBSCRIPTION_RETRY_DELAY: Duration = Duration::from_secs(3);

/// How often an append is retried after the server timed it out, and the base of the linear
/// backoff between tries (see [`is_retryable_write_timeout`]).
const APPEND_RETRIES: u32 = 4;
const APPEND_RETRY_DELAY: Duration = Duration::from_millis(100);

/// KurrentDB stores this many 100 ns ticks per second in an event's `created` timestamp.
const TICKS_PER_SECOND: i64 = 10_000_000;

/// The KurrentDB-backed event store. Cheap to clone: clones share one gRPC connection pool and one
/// shutdown switch.
#[derive(Clone)]
pub struct KurrentStore {
    client: Client,
    /// Where we connect, without credentials, for `Debug` and error messages.
    endpoints: Arc<str>,
    closed: Arc<AtomicBool>,
    /// Cancelled by `shutdown()` so live subscriptions end instead of outliving the store.
    shutdown: CancellationToken,
}

/// Deliberately hand-written: the connection string may carry a user name and password, and
/// neither `ClientSettings` nor the URL may ever end up in a log line.
impl fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentStore")
            .field("endpoints", &self.endpoints)
            .field("credentials", &"[redacted]")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// A backend failure carried as text, for the client errors that do not implement
/// `std::error::Error` (`eyre::Report`) or whose message would repeat the connection string.
#[derive(Debug)]
struct BackendError(String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

impl KurrentStore {
    /// Connects to KurrentDB. Accepts the client's connection strings: `kurrentdb://`, `esdb://`,
    /// `kdb://` and their `+discover` variants, e.g. `kurrentdb://admin:changeit@localhost:2113` or
    /// `kurrentdb://localhost:2113?tls=false`.
    ///
    /// The client connects lazily, so this also reads the head of `$all` once: a wrong address, bad
    /// credentials or a user without `$all` access fail at startup rather than on the first request.
    pub async fn connect(url: &str) -> StoreResult<KurrentStore> {
        let settings: ClientSettings = url.parse().map_err(|e: ClientSettingsParseError| {
            StoreError::io("invalid KurrentDB connection string", redact_parse_error(&e))
        })?;
        let endpoints = describe_endpoints(&settings);
        let client = Client::new(settings).map_err(|report| {
            StoreError::io(
                format!("could not create a KurrentDB client for {endpoints}"),
                BackendError(format!("{report:#}")),
            )
        })?;
        let store = KurrentStore {
            client,
            endpoints: Arc::from(endpoints.as_str()),
            closed: Arc::new(AtomicBool::new(false)),
            shutdown: CancellationToken::new(),
        };
        match store.head().await {
            Ok(head) => {
                tracing::info!(endpoints = %endpoints, head = %head, "connected to KurrentDB");
                Ok(store)
            }
            Err(StoreError::Io { message, source }) => Err(StoreError::Io {
                message: format!("could not reach KurrentDB at {endpoints}: {message}"),
                source,
            }),
            Err(other) => Err(other),
        }
    }

    /// Reads raw events of one stream; a missing, soft-deleted or tombstoned stream reads as empty,
    /// which is what the contract asks of `read_stream`.
    async fn read_raw(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> StoreResult<Vec<ResolvedEvent>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // `position()` also sets the direction (Start → forwards, End → backwards), so the explicit
        // direction must be applied after it.
        let position = match (from, direction) {
            (StreamFrom::Start, Direction::Forwards) => StreamPosition::Start,
            (StreamFrom::Start, Direction::Backwards) => StreamPosition::End,
            (StreamFrom::Revision(r), _) => StreamPosition::Position(r),
        };
        let options = ReadStreamOptions::default().position(position).max_count(max);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let context = || format!("reading stream {stream} from KurrentDB failed");
        let mut reader = match self.client.read_stream(stream, &options).await {
            Ok(reader) => reader,
            Err(kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(context(), e)),
        };
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(event)) => out.push(event),
                Ok(None) => return Ok(out),
                // The server reports a missing or deleted stream in the response body, i.e. on the
                // first `next()`, not when the call is made.
                Err(kurrentdb::Error::ResourceNotFound | kurrentdb::Error::ResourceDeleted) => return Ok(Vec::new()),
                Err(e) => return Err(StoreError::io(context(), e)),
            }
        }
    }

    /// Reads one page of `$all` with system event types filtered out on the server.
    async fn read_all_page(
        &self,
        position: StreamPosition<kurrentdb::Position>,
        backwards: bool,
        count: usize,
    ) -> StoreResult<Vec<ResolvedEvent>> {
        let options = ReadAllOptions::default()
            .position(position)
            .filter(user_events_filter())
            .max_count(count);
        let options = if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        let context = "reading $all from KurrentDB failed";
        let mut reader = self
            .client
            .read_all(&options)
            .await
            .map_err(|e| StoreError::io(context, e))?;
        let mut out = Vec::with_capacity(count.min(1024));
        while let Some(event) = reader.next().await.map_err(|e| StoreError::io(context, e))? {
            out.push(event);
        }
        Ok(out)
    }

    /// Answers a retried append from the stream's tail, before anything is written: if the last
    /// `ids.len()` events of the stream are exactly this call's events, the call is a retry of the
    /// append that stored them, and the answer is its original position (and the stream's current
    /// revision, like the embedded backend).
    ///
    /// Why not leave it all to the server: KurrentDB deduplicates only where it looks. With a
    /// concrete expectation *behind* the stream's end it compares the ids at the expected
    /// revisions, and with `Any`/`Exists` it consults a bounded in-memory cache of recent ids, but
    /// when the expectation equals the current revision (the caller re-read the stream, which
    /// already contains its own earlier write, and retried) or the cache was lost to a restart, it
    /// writes the events a second time. The most common retry (the last append, repeated) lands
    /// exactly on the tail, which is what this checks. Anything short of a full match goes on to
    /// the server, whose cache may still recognise it (or answer a wrong expected version).
    async fn find_retried(
        &self,
        stream: &str,
        ids: &HashSet<Uuid>,
        last_id: Uuid,
    ) -> StoreResult<Option<AppendResult>> {
        let tail = self
            .read_raw(stream, StreamFrom::Start, Direction::Backwards, ids.len())
            .await?;
        let mut current = None;
        let mut matched = 0;
        let mut original = None;
        for resolved in &tail {
            let Some(event) = resolved.event.as_ref() else { continue };
            // Read backwards: the first event is the stream's last.
            current.get_or_insert(event.revision);
            if ids.contains(&event.id) {
                matched += 1;
            }
            if event.id == last_id {
                original = Some(log_position(event, resolved.commit_position).ok_or_else(|| missing_position(event))?);
            }
        }
        match (matched == ids.len(), original, current) {
            (true, Some(position), Some(current)) => {
                tracing::debug!(stream = %stream, position, "append is a retry of the stream's last append");
                Ok(Some(AppendResult {
                    position: Position(position),
                    next_expected: current,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Finds the stored copy of the last event of an append that KurrentDB acknowledged, and
    /// answers its revision and position.
    ///
    /// Why read it back instead of trusting the write result: when KurrentDB deduplicates a retried
    /// append (same event ids), it answers success with the *original* revisions, but fills in the
    /// original position only if the original event is already indexed (otherwise "no position",
    /// which the client turns into 0). For a multi-event append the write result's position is not
    /// documented to be that of the *last* event either. The event at the acknowledged revision is,
    /// in both cases, our last event, and its stored position is exactly what the contract wants.
    /// The read goes to the leader that acknowledged the write, so it sees it.
    ///
    /// If the read-back does not find our event (the stream was deleted in between, or the server
    /// answered something unexpected), the write result's own position is the best remaining answer.
    async fn locate_appended(
        &self,
        stream: &str,
        last_id: Uuid,
        write: &kurrentdb::WriteResult,
    ) -> StoreResult<AppendResult> {
        let revision = write.next_expected_version;
        let found = self
            .read_raw(stream, StreamFrom::Revision(revision), Direction::Forwards, 1)
            .await?;
        let stored = found
            .first()
            .and_then(|resolved| resolved.event.as_ref())
            .filter(|event| event.id == last_id && event.revision == revision);
        if let Some(position) = stored.and_then(|event| log_position(event, None)) {
            if position != write.position.commit {
                tracing::debug!(
                    stream = %stream,
                    position,
                    write_position = write.position.commit,
                    "append answered with the stored position (deduplicated retry or multi-event append)"
                );
            }
            return Ok(AppendResult {
                position: Position(position),
                next_expected: revision,
            });
        }
        if write.position.commit != 0 && write.position.commit != NO_POSITION {
            tracing::warn!(
                stream = %stream,
                revision,
                event_id = %last_id,
                "could not read back an acknowledged append; answering the write result's position"
            );
            return Ok(AppendResult {
                position: Position(write.position.commit),
                next_expected: revision,
            });
        }
        Err(StoreError::Corrupt(format!(
            "KurrentDB acknowledged the append of event {last_id} to stream {stream} at revision {revision}, \
             but the event cannot be read back and the server gave no position"
        )))
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    /// Appends with KurrentDB's optimistic concurrency check; see `KurrentStore::locate_appended`
    /// for how retries answer the original position.
    ///
    /// Costs three round trips (tail check, write, read-back): correctness of the idempotent answer
    /// was preferred over append latency.
    ///
    /// Idempotency caveat: KurrentDB has no index from event id to event, so a retry is recognised
    /// only when its events are the stream's tail (`KurrentStore::find_retried`), sit at the
    /// revisions a stale concrete expectation (`NoStream`, `Revision(n)` behind the end) points at,
    /// or are still in the server's cache of recent ids (`Any`/`Exists`). A retry of an older
    /// append, after other events were appended to the same stream and after a server restart (or
    /// long enough for the cache to forget it), is stored again. The embedded backend has no such
    /// window. When the server (not the tail check) recognises a retry, `next_expected` is the
    /// revision of the original's last event rather than the stream's current revision.
    #[tracing::instrument(skip_all, fields(stream = %stream))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> StoreResult<AppendResult> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        if events.is_empty() {
            return Err(StoreError::InvalidAppend("an append needs at least one event".into()));
        }
        if stream.is_empty() {
            return Err(StoreError::InvalidAppend("stream name is empty".into()));
        }
        if stream.starts_with('$') {
            // `$` streams are KurrentDB's; `read_all` filters them out, so events written there
            // would silently be missing from the log.
            return Err(StoreError::InvalidAppend(format!(
                "stream name {stream} starts with '$', which KurrentDB reserves for system streams"
            )));
        }

        let mut seen = HashSet::with_capacity(events.len());
        let mut last_id = Uuid::nil();
        let mut total = 0usize;
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            if event.event_type.is_empty() || event.event_type.starts_with('$') {
                return Err(StoreError::InvalidAppend(format!(
                    "event type {:?} is empty or starts with '$', which KurrentDB reserves for system events",
                    event.event_type
                )));
            }
            if !seen.insert(event.id) {
                return Err(StoreError::InvalidAppend(format!(
                    "event id {} appears twice in one append",
                    event.id
                )));
            }
            let metadata = serde_json::to_vec(&event.metadata)
                .map_err(|e| StoreError::InvalidAppend(format!("event metadata cannot be serialized: {e}")))?;
            // Checked here, before anything is sent, so both backends refuse the same events with
            // the same error instead of KurrentDB answering with its own (configurable) limit.
            let size = event.data.len() + metadata.len() + event.event_type.len();
            if size > MAX_EVENT_BYTES {
                return Err(StoreError::TooLarge {
                    size,
                    limit: MAX_EVENT_BYTES,
                });
            }
            total += size;
            last_id = event.id;
            // `EventData::binary` rather than `EventData::json`: the latter re-serializes a Rust
            // value, and without serde_json's `raw_value` feature the only way to feed it our
            // already-encoded JSON is to parse and re-encode it, which would reorder object keys
            // and change bytes. Storing the caller's bytes verbatim keeps both backends
            // byte-identical; the price is that KurrentDB's UI shows the data as binary.
            batch.push(
                EventData::binary(&event.event_type, Bytes::from(event.data))
                    .id(event.id)
                    .metadata(Bytes::from(metadata)),
            );
        }

        if let Some(original) = self.find_retried(stream, &seen, last_id).await? {
            return Ok(original);
        }

        let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
        let mut attempt = 0u32;
        let write = loop {
            // `EventData` clones share their payload buffers, so a retry copies no event data.
            let error = match self.client.append_to_stream(stream, &options, batch.clone()).await {
                Ok(write) => break write,
                Err(e) => e,
            };
            // See `is_retryable_write_timeout`: a retry with the same ids is how KurrentDB expects a
            // dropped duplicate to be resolved, and it cannot store anything twice.
            if attempt < APPEND_RETRIES && is_retryable_write_timeout(&error) {
                attempt += 1;
                tracing::debug!(stream = %stream, attempt, error = %error, "KurrentDB write timed out; retrying");
                tokio::time::sleep(APPEND_RETRY_DELAY * attempt).await;
                continue;
            }
            return Err(append_error(stream, expected, total, error));
        };
        self.locate_appended(stream, last_id, &write).await
    }

    #[tracing::instrument(skip_all, fields(stream = %stream))]
    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let raw = self.read_raw(stream, from, direction, max).await?;
        let mut out = Vec::with_capacity(raw.len());
        for resolved in raw {
            if let Some(event) = convert(resolved)? {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Pages through `$all` until `max` nikara events are collected or the log ends: the
    /// server-side filter only knows event types, so events of `$` streams are dropped here and a
    /// page can yield fewer events than it read. Returning a short (or empty) answer while more
    /// events exist would make catch-up loops believe they are at the head.
    async fn read_all(&self, after: Position, max: usize) -> StoreResult<Vec<RecordedEvent>> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        let mut cursor = after;
        while out.len() < max {
            // One more than needed: reading from a position includes the event at it, which we skip.
            let want = (max - out.len()).saturating_add(1);
            let page = self.read_all_page(all_position(cursor), false, want).await?;
            let read = page.len();
            let mut advanced = false;
            for resolved in page {
                let Some(event) = resolved.event.as_ref() else { continue };
                let Some(position) = log_position(event, resolved.commit_position) else {
                    return Err(missing_position(event));
                };
                if cursor > Position::START && position <= cursor.0 {
                    continue;
                }
                cursor = Position(position);
                advanced = true;
                if let Some(event) = convert_user_event(resolved)? {
                    out.push(event);
                }
            }
            if read < want || !advanced {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// A filtered catch-up subscription: the server replays `$all` from `after`, then streams new
    /// events, excluding system event types. Events at or before `after` (whatever the server's
    /// view on an event sitting exactly at the start position) and any the client re-delivers after
    /// an automatic resubscribe are dropped by position, which keeps the "no duplicate" promise.
    /// The stream ends after its first error, or when the store shuts down.
    fn subscribe_all(&self, after: Position) -> EventStream {
        struct State {
            client: Client,
            options: SubscribeToAllOptions,
            subscription: Option<Subscription>,
            after: Position,
            shutdown: CancellationToken,
            failed: bool,
        }

        let options = SubscribeToAllOptions::default()
            .position(all_position(after))
            .filter(user_events_filter())
            .retry_options(
                RetryOptions::default()
                    .retry_limit(SUBSCRIPTION_RETRIES)
                    .retry_delay(SUBSCRIPTION_RETRY_DELAY),
            );
        let state = State {
            client: self.client.clone(),
            options,
            subscription: None,
            after,
            shutdown: self.shutdown.clone(),
            failed: false,
        };

        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.failed || st.shutdown.is_cancelled() {
                return None;
            }
            loop {
                let subscription = match st.subscription.as_mut() {
                    Some(subscription) => subscription,
                    // The client's subscribe call is async but only builds the request; the gRPC
                    // call happens on the first `next()`.
                    None => st.subscription.insert(st.client.subscribe_to_all(&st.options).await),
                };
                let next = tokio::select! {
                    biased;
                    _ = st.shutdown.cancelled() => return None,
                    next = subscription.next() => next,
                };
                let resolved = match next {
                    Ok(resolved) => resolved,
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(StoreError::io("KurrentDB subscription to $all failed", e)), st));
                    }
                };
                let Some(event) = resolved.event.as_ref() else { continue };
                let position = match log_position(event, resolved.commit_position) {
                    Some(position) => position,
                    None => {
                        st.failed = true;
                        return Some((Err(missing_position(event)), st));
                    }
                };
                if st.after > Position::START && position <= st.after.0 {
                    continue;
                }
                st.after = Position(position);
                match convert_user_event(resolved) {
                    Ok(Some(event)) => return Some((Ok(event), st)),
                    Ok(None) => continue,
                    Err(e) => {
                        st.failed = true;
                        return Some((Err(e), st));
                    }
                }
            }
        }))
    }

    /// Reads `$all` backwards, filtered, until the first nikara event. Reading backwards from a
    /// position is exclusive on the server, so each further page starts at the last event seen.
    async fn head(&self) -> StoreResult<Position> {
        let mut from = StreamPosition::End;
        loop {
            let page = self.read_all_page(from, true, HEAD_PAGE).await?;
            let read = page.len();
            for resolved in &page {
                let Some(event) = resolved.event.as_ref() else { continue };
                let Some(position) = log_position(event, resolved.commit_position) else {
                    return Err(missing_position(event));
                };
                from = StreamPosition::Position(kurrentdb::Position {
                    commit: position,
                    prepare: position,
                });
                if !is_system(event) {
                    return Ok(Position(position));
                }
            }
            if read < HEAD_PAGE {
                return Ok(Position::START);
            }
        }
    }

    /// Marks the store closed (appends answer `Closed`) and ends live subscriptions. The gRPC
    /// client has no explicit close; its connections go away with the last clone of the store.
    async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.shutdown.cancel();
    }
}

/// Maps a failed append onto the contract's errors.
fn append_error(stream: &str, expected: ExpectedVersion, total: usize, error: kurrentdb::Error) -> StoreError {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => StoreError::WrongExpectedVersion {
            stream: stream.to_owned(),
            expected,
            actual: CurrentRevision(match current {
                kurrentdb::CurrentRevision::Current(r) => Some(r),
                kurrentdb::CurrentRevision::NoStream => None,
            }),
        },
        // A tombstoned (hard-deleted) stream can never be written again.
        kurrentdb::Error::ResourceDeleted => StoreError::StreamNotFound(stream.to_owned()),
        // The server's max append size applies to the whole call, so a batch of individually
        // acceptable events can still exceed it.
        kurrentdb::Error::Grpc { message, .. } if message.contains("Maximum Append Size") => StoreError::TooLarge {
            size: total,
            limit: first_number(&message).unwrap_or(MAX_EVENT_BYTES),
        },
        other => StoreError::io(format!("appending to stream {stream} in KurrentDB failed"), other),
    }
}

/// Whether an append failed because the server gave up waiting for it, rather than refusing it.
///
/// KurrentDB silently *drops* a write that duplicates one still being committed ("idempotent, not
/// yet replicated") and leaves the client to time out and retry; concurrent deliveries of the same
/// webhook hit exactly that. The server answers its own write timeout with `Aborted: Operation
/// timed out`; the client's deadline surfaces as `DeadlineExceeded`. Retrying either with the same
/// event ids is safe: a write that did land is recognised as a duplicate.
fn is_retryable_write_timeout(error: &kurrentdb::Error) -> bool {
    match error {
        kurrentdb::Error::DeadlineExceeded => true,
        kurrentdb::Error::Grpc { message, .. } => message.starts_with("Operation timed out"),
        _ => false,
    }
}

/// Filter for `$all` reads and subscriptions: the client's own "exclude system events" regex on the
/// event type (`^[^$].*`).
fn user_events_filter() -> SubscriptionFilter {
    SubscriptionFilter::on_event_type().exclude_system_events()
}

/// Where a forward `$all` read or subscription starts for a caller who has seen everything up to
/// `after`. Modern events have equal commit and prepare positions, so our single number names a
/// full KurrentDB position.
fn all_position(after: Position) -> StreamPosition<kurrentdb::Position> {
    if after == Position::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(kurrentdb::Position {
            commit: after.0,
            prepare: after.0,
        })
    }
}

fn stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream => StreamState::NoStream,
        ExpectedVersion::Exists => StreamState::StreamExists,
        ExpectedVersion::Revision(r) => StreamState::StreamRevision(r),
    }
}

/// The event's position in `$all`. `$all` reads carry the commit position; stream reads from
/// servers since 22.10 carry the event's log position in both fields. Older servers leave them at
/// "no position", and then the read-level commit position (present for `$all`) is the last resort.
fn log_position(event: &kurrentdb::RecordedEvent, read_commit: Option<u64>) -> Option<u64> {
    [Some(event.position.commit), Some(event.position.prepare), read_commit]
        .into_iter()
        .flatten()
        .find(|p| *p != NO_POSITION)
}

fn missing_position(event: &kurrentdb::RecordedEvent) -> StoreError {
    StoreError::Corrupt(format!(
        "KurrentDB returned event {} of stream {} without a log position (KurrentDB 22.10 or newer is required)",
        event.id,
        event.stream_id()
    ))
}

fn is_system(event: &kurrentdb::RecordedEvent) -> bool {
    event.event_type.starts_with('$') || event.stream_id().starts_with('$')
}

/// Like [`convert`], but drops system events first, before their metadata (which is not ours) gets
/// parsed.
fn convert_user_event(resolved: ResolvedEvent) -> StoreResult<Option<RecordedEvent>> {
    match resolved.event.as_ref() {
        Some(event) if !is_system(event) => convert(resolved),
        _ => Ok(None),
    }
}

/// Turns a KurrentDB event into ours. For a resolved link the pointed-to event is the one that
/// matters (the link record is KurrentDB bookkeeping); we never ask for link resolution, so this
/// only matters for streams whose events are links. A link whose target is gone is skipped.
fn convert(resolved: ResolvedEvent) -> StoreResult<Option<RecordedEvent>> {
    let commit = resolved.commit_position;
    let Some(event) = resolved.event.or(resolved.link) else {
        return Ok(None);
    };
    let Some(position) = log_position(&event, commit) else {
        return Err(missing_position(&event));
    };
    let stream = event.stream_id().to_owned();
    let metadata: Metadata = serde_json::from_slice(&event.custom_metadata).map_err(|e| {
        StoreError::Corrupt(format!(
            "event {} of stream {stream} at revision {} has unreadable metadata: {e}",
            event.id, event.revision
        ))
    })?;
    let recorded_at = created_at(&event);
    Ok(Some(RecordedEvent {
        id: event.id,
        stream,
        revision: event.revision,
        position: Position(position),
        event_type: event.event_type,
        data: Vec::from(event.data),
        metadata,
        recorded_at,
    }))
}

/// The commit time with its full 100 ns precision. The client's `created` field is truncated to
/// whole seconds, which would make `recorded_at` differ from the embedded backend for no reason, so
/// the raw tick count (still present in the system metadata) is preferred.
fn created_at(event: &kurrentdb::RecordedEvent) -> DateTime<Utc> {
    event
        .metadata
        .get("created")
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .and_then(|ticks| {
            let secs = ticks.div_euclid(TICKS_PER_SECOND);
            let nanos = u32::try_from(ticks.rem_euclid(TICKS_PER_SECOND) * 100).ok()?;
            DateTime::from_timestamp(secs, nanos)
        })
        .unwrap_or(event.created)
}

/// The server's limit from "Maximum Append Size of N Exceeded.".
fn first_number(message: &str) -> Option<usize> {
    message
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())
        .and_then(|digits| digits.parse().ok())
}

/// The client's parse error repeats the whole connection string (password included) when the URL
/// itself is malformed, so only the URL error kind or the client's own message is kept.
fn redact_parse_error(e: &ClientSettingsParseError) -> BackendError {
    match e.error() {
        Some(url_error) => BackendError(format!("malformed URL: {url_error}")),
        None => BackendError(e.message().to_owned()),
    }
}

/// `host:port[,host:port…]` plus the transport, for messages that must not show credentials.
fn describe_endpoints(settings: &ClientSettings) -> String {
    let hosts = settings
        .hosts()
        .iter()
        .map(|endpoint| format!("{}:{}", endpoint.host, endpoint.port))
        .collect::<Vec<_>>()
        .join(",");
    let tls = if settings.is_secure_mode_enabled() {
        "tls"
    } else {
        "plaintext"
    };
    let discovery = if settings.is_dns_discovery_enabled() {
        ", dns discovery"
    } else {
        ""
    };
    format!("{hosts} ({tls}{discovery})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_do_not_leak_credentials() {
        let Err(e) = "kurrentdb://admin:s3cret@host:notaport".parse::<ClientSettings>() else {
            panic!("expected a parse error");
        };
        let redacted = redact_parse_error(&e).to_string();
        assert!(!redacted.contains("s3cret"), "{redacted}");
    }

    #[test]
    fn endpoints_do_not_show_credentials() {
        let Ok(settings) = "esdb://admin:s3cret@localhost:2113?tls=false".parse::<ClientSettings>() else {
            panic!("expected valid settings");
        };
        let described = describe_endpoints(&settings);
        assert_eq!(described, "localhost:2113 (plaintext)");
    }

    #[test]
    fn append_size_limit_is_read_from_the_server_message() {
        assert_eq!(
            first_number("Maximum Append Size of 1048576 Exceeded."),
            Some(1_048_576)
        );
        assert_eq!(first_number("no digits"), None);
    }

    #[test]
    fn expected_versions_map_to_stream_states() {
        assert_eq!(stream_state(ExpectedVersion::Any), StreamState::Any);
        assert_eq!(stream_state(ExpectedVersion::NoStream), StreamState::NoStream);
        assert_eq!(stream_state(ExpectedVersion::Exists), StreamState::StreamExists);
        assert_eq!(
            stream_state(ExpectedVersion::Revision(4)),
            StreamState::StreamRevision(4)
        );
    }
}
