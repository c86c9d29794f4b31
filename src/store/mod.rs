//! The event store: the single source of truth. Everything nikara knows is an event appended here;
//! read models are folds of this log and can be rebuilt from it at any time.
//!
//! Two backends implement [`EventStore`] and pass the same contract suite (`tests/store_contract.rs`):
//! [`sqlite::SqliteStore`] (embedded default) and `kurrent::KurrentStore` (feature `kurrentdb`).

use std::fmt;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod sqlite;

#[cfg(feature = "kurrentdb")]
pub mod kurrent;

/// Largest event (data + metadata) either backend accepts. Webhook deliveries may carry 4 MiB bodies,
/// so the bound leaves room for that plus JSON escaping. KurrentDB must be configured with a max
/// append size at least this large (see docker-compose.yml).
pub const MAX_EVENT_BYTES: usize = 12 * 1024 * 1024;

/// Global position of an event in the log (`$all` order). Positions only grow; they are dense on
/// SQLite and sparse on KurrentDB (commit positions), so never do arithmetic on them beyond ordering.
/// `Position::START` sits before the first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event: `read_all(Position::START, ..)` reads from the beginning.
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the caller believes about the stream before appending. A mismatch is
/// [`StoreError::WrongExpectedVersion`], which surfaces as HTTP 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's last event must have exactly this revision (revisions start at 0).
    Revision(u64),
}

impl ExpectedVersion {
    /// The expectation matching a stream whose last revision is `current` (`None`: no stream).
    pub fn from_current(current: Option<u64>) -> Self {
        match current {
            None => ExpectedVersion::NoStream,
            Some(r) => ExpectedVersion::Revision(r),
        }
    }

    /// Whether a stream whose last revision is `current` satisfies this expectation.
    pub fn is_satisfied_by(self, current: Option<u64>) -> bool {
        match (self, current) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream, None) => true,
            (ExpectedVersion::NoStream, Some(_)) => false,
            (ExpectedVersion::Exists, c) => c.is_some(),
            (ExpectedVersion::Revision(want), Some(have)) => want == have,
            (ExpectedVersion::Revision(_), None) => false,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exists => f.write_str("stream exists"),
            ExpectedVersion::Revision(r) => write!(f, "revision {r}"),
        }
    }
}

/// Metadata carried by every event: who caused it and why. Stored as JSON beside the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// The user on whose behalf the event happened, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Ties together every event caused by one request or job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event (or request) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// When the fact happened in the world (may precede `recorded_at`).
    pub occurred_at: DateTime<Utc>,
    /// Schema version of the event's data; readers upcast older versions.
    #[serde(default = "default_version")]
    pub version: u16,
}

fn default_version() -> u16 {
    1
}

impl Metadata {
    /// Metadata for an event that happened now, at schema version 1.
    pub fn now() -> Self {
        Metadata {
            user_id: None,
            correlation_id: None,
            causation_id: None,
            occurred_at: Utc::now(),
            version: 1,
        }
    }
}

/// An event to append. The id is chosen by the caller: appending an id that is already stored is
/// a no-op that answers the original position, which makes retries safe.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    /// JSON document.
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream: String,
    /// Position within its stream, from 0.
    pub revision: u64,
    /// Position in the global log.
    pub position: Position,
    pub event_type: String,
    /// JSON document.
    pub data: Vec<u8>,
    pub metadata: Metadata,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
}

/// Outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Global position of the last event of the call.
    pub position: Position,
    /// Revision of the stream's last event after the call.
    pub next_expected: u64,
}

/// Reading direction within a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrom {
    /// The first event (forwards) or the last (backwards).
    Start,
    /// This revision, inclusive.
    Revision(u64),
}

/// Typed store failures; each maps to one HTTP answer in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wrong expected version on stream {stream}: expected {expected}, stream is at {actual}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        /// Last revision, or `None` when the stream does not exist.
        actual: CurrentRevision,
    },
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("event of {size} bytes is larger than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("event store is shutting down")]
    Closed,
    #[error("event store I/O failed: {message}")]
    Io {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("stored event is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a backend error with a human sentence saying what was being done.
    pub fn io(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Io {
            message: message.into(),
            source: Box::new(source),
        }
    }
}

/// The revision a stream was at when an expectation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRevision(pub Option<u64>);

impl fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("no stream"),
            Some(r) => write!(f, "revision {r}"),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A live subscription to `$all`: first everything after the starting position, then new events as
/// they commit, in global order, with no gap and no duplicate at the handover.
pub type EventStream = Pin<Box<dyn Stream<Item = StoreResult<RecordedEvent>> + Send>>;

/// The contract both backends implement (see DESIGN.md, "Event store contract").
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// Appends `events` atomically to `stream` if `expected` holds. Re-appending event ids that are
    /// already stored answers the original position without writing anything.
    async fn append(&self, stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>)
    -> StoreResult<AppendResult>;

    /// Reads up to `max` events of one stream. A missing stream reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> StoreResult<Vec<RecordedEvent>>;

    /// Reads up to `max` events of the global log with a position strictly after `after`.
    async fn read_all(&self, after: Position, max: usize) -> StoreResult<Vec<RecordedEvent>>;

    /// Catch-up subscription to the global log, starting strictly after `after`.
    fn subscribe_all(&self, after: Position) -> EventStream;

    /// Position of the last committed event (`Position::START` when empty).
    async fn head(&self) -> StoreResult<Position>;

    /// Last revision of a stream, `None` when it does not exist.
    async fn stream_revision(&self, stream: &str) -> StoreResult<Option<u64>> {
        let last = self
            .read_stream(stream, StreamFrom::Start, Direction::Backwards, 1)
            .await?;
        Ok(last.first().map(|e| e.revision))
    }

    /// Flushes and stops background work; appends after this answer [`StoreError::Closed`].
    async fn shutdown(&self) {}
}
