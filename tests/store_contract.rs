//! The event store contract (DESIGN.md, "Event store contract"), written once against
//! `dyn EventStore` and run against every backend:
//!
//! - `sqlite::*` always, each test on a fresh store in its own temporary directory;
//! - `kurrent::*` (feature `kurrentdb`) only when `NIKARA_TEST_KURRENTDB_URL` is set, otherwise each
//!   prints a skip line and passes. The server is shared across tests and runs, so every test works on
//!   streams named after a fresh uuid, and `$all` checks start at the head taken when the test began
//!   and look only at the test's own streams.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use futures::StreamExt;
use nikara::store::sqlite::SqliteStore;
use nikara::store::{
    AppendResult, CurrentRevision, Direction, EventStore, ExpectedVersion, MAX_EVENT_BYTES, Metadata, NewEvent,
    Position, RecordedEvent, StoreError, StoreResult, StreamFrom,
};
use serde_json::json;
use uuid::Uuid;

/// Environment variable naming the KurrentDB server the `kurrent::*` tests run against.
#[cfg(feature = "kurrentdb")]
const KURRENT_URL_VAR: &str = "NIKARA_TEST_KURRENTDB_URL";

/// Failure guard for a whole test (never a timing assertion).
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Larger than any stream in this suite: "read the whole stream".
const WHOLE: usize = 100_000;

/// One test's view of a backend.
struct Ctx {
    store: Arc<dyn EventStore>,
    /// Every stream of this test starts with `{prefix}-`.
    prefix: String,
    /// Head of the global log when the test began; the test's events all come after it.
    start: Position,
    /// The store is shared with other tests (KurrentDB): `head()` may move on its own, and `$all`
    /// holds foreign events.
    shared: bool,
    /// Positions are dense (SQLite): consecutive events of the log have consecutive positions.
    dense: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Ctx {
    async fn sqlite() -> Ctx {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = SqliteStore::open(dir.path().join("events.db")).expect("open a fresh SQLite store");
        let store: Arc<dyn EventStore> = Arc::new(store);
        let start = store.head().await.expect("head of a fresh store");
        assert_eq!(start, Position::START, "a fresh store has no events");
        Ctx {
            store,
            prefix: format!("t{}", Uuid::new_v4().simple()),
            start,
            shared: false,
            dense: true,
            _dir: Some(dir),
        }
    }

    #[cfg(feature = "kurrentdb")]
    async fn kurrent(test: &str) -> Option<Ctx> {
        let Ok(url) = std::env::var(KURRENT_URL_VAR) else {
            println!("skipping kurrent::{test}: {KURRENT_URL_VAR} is not set");
            return None;
        };
        let store = nikara::store::kurrent::KurrentStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to KurrentDB at {url}: {e}"));
        let store: Arc<dyn EventStore> = Arc::new(store);
        let start = store.head().await.expect("head of the KurrentDB log");
        Some(Ctx {
            store,
            prefix: format!("t{}", Uuid::new_v4().simple()),
            start,
            shared: true,
            dense: false,
            _dir: None,
        })
    }

    fn stream(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn is_own(&self, event: &RecordedEvent) -> bool {
        event.stream.starts_with(&self.prefix) && event.stream[self.prefix.len()..].starts_with('-')
    }

    /// Everything in `$all` after the test's start (including foreign events on a shared store),
    /// paging to the end; checks that positions strictly increase.
    async fn all_since_start(&self) -> Vec<RecordedEvent> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        let mut after = self.start;
        loop {
            let page = self.store.read_all(after, 1_000).await.expect("read_all");
            assert!(
                page.len() <= 1_000,
                "read_all answered {} events for max 1000",
                page.len()
            );
            let Some(last) = page.last() else { break };
            let last = last.position;
            for event in page {
                assert!(
                    event.position > after,
                    "read_all positions must strictly increase: {} after {after}",
                    event.position
                );
                after = event.position;
                out.push(event);
            }
            assert_eq!(after, last);
        }
        out
    }

    /// The test's own events in `$all` order.
    async fn own_events(&self) -> Vec<RecordedEvent> {
        self.all_since_start()
            .await
            .into_iter()
            .filter(|e| self.is_own(e))
            .collect()
    }

    async fn read(&self, stream: &str) -> Vec<RecordedEvent> {
        self.store
            .read_stream(stream, StreamFrom::Start, Direction::Forwards, WHOLE)
            .await
            .expect("read_stream")
    }

    async fn finish(self) {
        self.store.shutdown().await;
    }
}

macro_rules! contract_suite {
    ($($test:ident),+ $(,)?) => {
        /// The contract against the embedded SQLite store (always).
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let ctx = super::Ctx::sqlite().await;
                    let test = super::$test(&ctx);
                    super::guarded(test).await;
                    ctx.finish().await;
                }
            )+
        }

        /// The contract against KurrentDB (only when `NIKARA_TEST_KURRENTDB_URL` is set).
        #[cfg(feature = "kurrentdb")]
        mod kurrent {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(ctx) = super::Ctx::kurrent(stringify!($test)).await else { return };
                    let test = super::$test(&ctx);
                    super::guarded(test).await;
                    ctx.finish().await;
                }
            )+
        }
    };
}

/// Runs a test under the failure guard.
async fn guarded(test: impl Future<Output = ()>) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?}");
    }
}

contract_suite!(
    expected_version_any,
    expected_version_no_stream,
    expected_version_exists,
    expected_version_revision,
    idempotent_reappend,
    concurrent_duplicate_append,
    read_stream_directions_and_limits,
    read_all_global_order_and_paging,
    subscription_handover_under_concurrent_appends,
    subscription_from_a_position,
    large_event_roundtrip_and_too_large,
    ten_thousand_streams,
    metadata_roundtrip,
    atomic_multi_event_append,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn event(body: serde_json::Value) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "TestEvent".into(),
        data: serde_json::to_vec(&body).expect("serialize test event"),
        metadata: Metadata::now(),
    }
}

fn events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n).map(|i| event(json!({ "tag": tag, "i": i }))).collect()
}

fn ids(events: &[NewEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

fn recorded_ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

fn revisions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision).collect()
}

fn assert_strictly_increasing(events: &[RecordedEvent], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{what}: positions must strictly increase, got {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

/// A whole stream as read: revisions 0..n, in order, positions increasing, named `stream`.
fn assert_contiguous_stream(events: &[RecordedEvent], stream: &str) {
    let expected: Vec<u64> = (0..events.len() as u64).collect();
    assert_eq!(revisions(events), expected, "revisions of {stream} must be 0..n");
    assert!(
        events.iter().all(|e| e.stream == stream),
        "every event read from {stream} names it"
    );
    assert_strictly_increasing(events, stream);
}

#[track_caller]
fn assert_conflict(result: StoreResult<AppendResult>, stream: &str, expected: ExpectedVersion, actual: Option<u64>) {
    match result {
        Err(StoreError::WrongExpectedVersion {
            stream: s,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(s, stream, "conflict names the stream");
            assert_eq!(e, expected, "conflict names the expectation");
            assert_eq!(a, CurrentRevision(actual), "conflict names the actual revision");
        }
        other => panic!("append to {stream} expecting {expected} must be WrongExpectedVersion, got {other:?}"),
    }
}

async fn append_ok(ctx: &Ctx, stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendResult {
    ctx.store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append to {stream} expecting {expected}: {e}"))
}

/// A JSON string document of exactly `total` bytes (quotes included), with varied content.
fn json_string_of_len(total: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.:;!?";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(total);
    out.push(b'"');
    for _ in 0..total - 2 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push(ALPHABET[(state >> 33) as usize % ALPHABET.len()]);
    }
    out.push(b'"');
    assert_eq!(out.len(), total);
    out
}

// ---------------------------------------------------------------------------------------------
// Expected-version semantics
// ---------------------------------------------------------------------------------------------

async fn expected_version_any(ctx: &Ctx) {
    let s = ctx.stream("any");

    let first = events(1, "first");
    let r0 = append_ok(ctx, &s, ExpectedVersion::Any, first.clone()).await;
    assert_eq!(r0.next_expected, 0, "Any on a new stream creates it at revision 0");

    let more = events(2, "more");
    let r1 = append_ok(ctx, &s, ExpectedVersion::Any, more.clone()).await;
    assert_eq!(
        r1.next_expected, 2,
        "Any on an existing stream appends after its last revision"
    );
    assert!(r1.position > r0.position);

    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    let expected: Vec<Uuid> = ids(&first).into_iter().chain(ids(&more)).collect();
    assert_eq!(recorded_ids(&read), expected);
    assert_eq!(read[0].position, r0.position);
    assert_eq!(
        read[2].position, r1.position,
        "the result names the position of the call's last event"
    );
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), Some(2));
}

async fn expected_version_no_stream(ctx: &Ctx) {
    let s = ctx.stream("no-stream");

    let first = events(1, "first");
    let r0 = append_ok(ctx, &s, ExpectedVersion::NoStream, first.clone()).await;
    assert_eq!(r0.next_expected, 0);

    let rejected = events(2, "rejected");
    let result = ctx.store.append(&s, ExpectedVersion::NoStream, rejected.clone()).await;
    assert_conflict(result, &s, ExpectedVersion::NoStream, Some(0));

    // The failed append wrote nothing.
    let read = ctx.read(&s).await;
    assert_eq!(recorded_ids(&read), ids(&first));
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), Some(0));
    assert_eq!(recorded_ids(&ctx.own_events().await), ids(&first));
    if !ctx.shared {
        assert_eq!(
            ctx.store.head().await.unwrap(),
            r0.position,
            "a failed append leaves the head alone"
        );
    }

    // ... not even the ids: the same events append for real later.
    let r1 = append_ok(ctx, &s, ExpectedVersion::Revision(0), rejected.clone()).await;
    assert_eq!(r1.next_expected, 2);
    assert!(r1.position > r0.position);
    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    let expected: Vec<Uuid> = ids(&first).into_iter().chain(ids(&rejected)).collect();
    assert_eq!(recorded_ids(&read), expected);
}

async fn expected_version_exists(ctx: &Ctx) {
    let s = ctx.stream("exists");

    let first = events(2, "first");
    let result = ctx.store.append(&s, ExpectedVersion::Exists, first.clone()).await;
    assert_conflict(result, &s, ExpectedVersion::Exists, None);

    // The failed append wrote nothing: the stream still does not exist.
    assert!(ctx.read(&s).await.is_empty());
    assert!(
        ctx.store
            .read_stream(&s, StreamFrom::Start, Direction::Backwards, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), None);
    assert!(ctx.own_events().await.is_empty());
    if !ctx.shared {
        assert_eq!(ctx.store.head().await.unwrap(), ctx.start);
    }

    let r0 = append_ok(ctx, &s, ExpectedVersion::Any, first.clone()).await;
    assert_eq!(r0.next_expected, 1);

    let second = events(1, "second");
    let r1 = append_ok(ctx, &s, ExpectedVersion::Exists, second.clone()).await;
    assert_eq!(r1.next_expected, 2, "Exists on an existing stream appends");
    assert!(r1.position > r0.position);

    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    let expected: Vec<Uuid> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(recorded_ids(&read), expected);
}

async fn expected_version_revision(ctx: &Ctx) {
    let s = ctx.stream("revision");

    let a = events(2, "a");
    let result = ctx.store.append(&s, ExpectedVersion::Revision(0), a.clone()).await;
    assert_conflict(result, &s, ExpectedVersion::Revision(0), None);
    assert!(
        ctx.read(&s).await.is_empty(),
        "a failed append on a missing stream creates nothing"
    );
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), None);

    let ra = append_ok(ctx, &s, ExpectedVersion::NoStream, a.clone()).await;
    assert_eq!(ra.next_expected, 1);

    let b = events(1, "b");
    let rb = append_ok(ctx, &s, ExpectedVersion::Revision(1), b.clone()).await;
    assert_eq!(rb.next_expected, 2, "an exact revision appends");

    let c = events(2, "c");
    for stale_or_ahead in [1, 0, 3, 100] {
        let expected = ExpectedVersion::Revision(stale_or_ahead);
        let result = ctx.store.append(&s, expected, c.clone()).await;
        assert_conflict(result, &s, expected, Some(2));
    }

    // None of the rejected appends wrote anything.
    let read = ctx.read(&s).await;
    let so_far: Vec<Uuid> = ids(&a).into_iter().chain(ids(&b)).collect();
    assert_eq!(recorded_ids(&read), so_far);
    assert_eq!(recorded_ids(&ctx.own_events().await), so_far);
    if !ctx.shared {
        assert_eq!(ctx.store.head().await.unwrap(), rb.position);
    }

    let rc = append_ok(ctx, &s, ExpectedVersion::Revision(2), c.clone()).await;
    assert_eq!(rc.next_expected, 4);
    assert!(rc.position > rb.position && rb.position > ra.position);

    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    let all: Vec<Uuid> = so_far.into_iter().chain(ids(&c)).collect();
    assert_eq!(recorded_ids(&read), all);
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), Some(4));
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

async fn idempotent_reappend(ctx: &Ctx) {
    let s = ctx.stream("idem");
    let other = ctx.stream("idem-other");

    let a = events(2, "a");
    let ra = append_ok(ctx, &s, ExpectedVersion::NoStream, a.clone()).await;
    let b = events(1, "b");
    let rb = append_ok(ctx, &s, ExpectedVersion::Revision(1), b.clone()).await;
    // Move the head past the stream so "the original position" differs from "the head".
    let o = events(1, "other");
    let ro = append_ok(ctx, &other, ExpectedVersion::NoStream, o.clone()).await;
    assert!(ra.position < rb.position && rb.position < ro.position);

    let stored = ctx.read(&s).await;
    let a0_position = stored[0].position;
    let head_before = ctx.store.head().await.unwrap();

    // Same ids again: with the original (now stale) expectations, with Any, and a prefix alone.
    let retries: Vec<(&str, ExpectedVersion, Vec<NewEvent>, Position)> = vec![
        (
            "batch a, NoStream (stale)",
            ExpectedVersion::NoStream,
            a.clone(),
            ra.position,
        ),
        (
            "batch b, Revision(1) (stale)",
            ExpectedVersion::Revision(1),
            b.clone(),
            rb.position,
        ),
        ("batch a, Any", ExpectedVersion::Any, a.clone(), ra.position),
        ("batch b, Any", ExpectedVersion::Any, b.clone(), rb.position),
        (
            "batch b, Revision(2)",
            ExpectedVersion::Revision(2),
            b.clone(),
            rb.position,
        ),
        ("a[0] alone, Any", ExpectedVersion::Any, vec![a[0].clone()], a0_position),
    ];
    for (what, expected, batch, original) in retries {
        let result = ctx
            .store
            .append(&s, expected, batch)
            .await
            .unwrap_or_else(|e| panic!("re-appending {what} must succeed as a no-op, got {e}"));
        assert_eq!(
            result.position, original,
            "re-appending {what} answers the original position"
        );
    }

    // Nothing new was written.
    let read = ctx.read(&s).await;
    assert_eq!(read, stored, "re-appends leave the stream as it was");
    assert_eq!(read.len(), 3);
    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), Some(2));
    if !ctx.shared {
        assert_eq!(
            ctx.store.head().await.unwrap(),
            head_before,
            "re-appends leave the head alone"
        );
    }
    let own = ctx.own_events().await;
    let expected: Vec<Uuid> = ids(&a).into_iter().chain(ids(&b)).chain(ids(&o)).collect();
    assert_eq!(recorded_ids(&own), expected, "$all holds each event once");

    // The stream still takes new events at the right revision.
    let c = events(1, "c");
    let rc = append_ok(ctx, &s, ExpectedVersion::Revision(2), c).await;
    assert_eq!(rc.next_expected, 3);
    assert!(rc.position > head_before);
}

/// Retries racing each other (e.g. a webhook delivered twice at once) store the event once.
async fn concurrent_duplicate_append(ctx: &Ctx) {
    let s = ctx.stream("dup");
    let e = event(json!({ "delivery": "same" }));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = ctx.store.clone();
            let s = s.clone();
            let e = e.clone();
            tokio::spawn(async move { store.append(&s, ExpectedVersion::Any, vec![e]).await })
        })
        .collect();
    let mut positions = HashSet::new();
    for task in tasks {
        let result = task.await.expect("append task").expect("a duplicate append succeeds");
        assert_eq!(result.next_expected, 0);
        positions.insert(result.position);
    }
    assert_eq!(
        positions.len(),
        1,
        "every duplicate answers the same position: {positions:?}"
    );
    let read = ctx.read(&s).await;
    assert_eq!(recorded_ids(&read), vec![e.id]);
    assert_eq!(Some(&read[0].position), positions.iter().next());
    assert_eq!(ctx.own_events().await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

async fn read_stream_directions_and_limits(ctx: &Ctx) {
    let s = ctx.stream("read");
    let mut appended = Vec::new();
    for (n, expected) in [
        (3, ExpectedVersion::NoStream),
        (1, ExpectedVersion::Revision(2)),
        (6, ExpectedVersion::Revision(3)),
    ] {
        let batch = events(n, "read");
        append_ok(ctx, &s, expected, batch.clone()).await;
        appended.extend(batch);
    }
    let all_ids = ids(&appended);

    let read_ids = |from: StreamFrom, direction: Direction, max: usize| {
        let store = ctx.store.clone();
        let s = s.clone();
        async move {
            let read = store.read_stream(&s, from, direction, max).await.expect("read_stream");
            assert!(read.iter().all(|e| e.stream == s));
            read.iter().map(|e| e.revision).collect::<Vec<u64>>()
        }
    };

    // Forwards.
    let whole = ctx.read(&s).await;
    assert_contiguous_stream(&whole, &s);
    assert_eq!(recorded_ids(&whole), all_ids);
    for (recorded, new) in whole.iter().zip(&appended) {
        assert_eq!(recorded.event_type, new.event_type);
        assert_eq!(recorded.data, new.data);
    }
    use Direction::{Backwards, Forwards};
    use StreamFrom::{Revision, Start};
    assert_eq!(read_ids(Start, Forwards, 4).await, vec![0, 1, 2, 3]);
    assert_eq!(read_ids(Start, Forwards, 10).await, (0..10).collect::<Vec<_>>());
    assert_eq!(read_ids(Revision(0), Forwards, 2).await, vec![0, 1]);
    assert_eq!(read_ids(Revision(3), Forwards, 4).await, vec![3, 4, 5, 6]);
    assert_eq!(read_ids(Revision(8), Forwards, 100).await, vec![8, 9]);
    assert_eq!(read_ids(Revision(9), Forwards, 1).await, vec![9]);
    assert!(read_ids(Revision(10), Forwards, 100).await.is_empty());
    assert!(read_ids(Revision(50), Forwards, 100).await.is_empty());

    // Backwards.
    let backwards = ctx.store.read_stream(&s, Start, Backwards, WHOLE).await.unwrap();
    let mut reversed = whole.clone();
    reversed.reverse();
    assert_eq!(backwards, reversed, "backwards reads the same events, last first");
    assert_eq!(read_ids(Start, Backwards, 3).await, vec![9, 8, 7]);
    assert_eq!(read_ids(Start, Backwards, 1).await, vec![9]);
    assert_eq!(read_ids(Revision(5), Backwards, 3).await, vec![5, 4, 3]);
    assert_eq!(read_ids(Revision(1), Backwards, 10).await, vec![1, 0]);
    assert_eq!(read_ids(Revision(0), Backwards, 10).await, vec![0]);
    assert_eq!(
        read_ids(Revision(9), Backwards, 100).await,
        (0..10).rev().collect::<Vec<_>>()
    );

    assert_eq!(ctx.store.stream_revision(&s).await.unwrap(), Some(9));

    // A missing stream reads as empty, whichever way.
    let missing = ctx.stream("never-written");
    for (from, direction) in [
        (Start, Forwards),
        (Start, Backwards),
        (Revision(0), Forwards),
        (Revision(0), Backwards),
        (Revision(5), Backwards),
    ] {
        let read = ctx.store.read_stream(&missing, from, direction, 10).await;
        assert!(
            matches!(&read, Ok(events) if events.is_empty()),
            "a missing stream reads as empty ({from:?}, {direction:?}), got {read:?}"
        );
    }
    assert_eq!(ctx.store.stream_revision(&missing).await.unwrap(), None);
}

async fn read_all_global_order_and_paging(ctx: &Ctx) {
    let streams: Vec<String> = (0..4).map(|i| ctx.stream(&format!("all-{i}"))).collect();
    let mut appended: Vec<(Uuid, String)> = Vec::new();
    let mut last_of_call: Vec<(Uuid, Position)> = Vec::new();
    let mut previous = ctx.start;
    for i in 0..60 {
        let stream = &streams[(i * 3 + i / 4) % streams.len()];
        let batch = events(if i % 5 == 0 { 3 } else { 1 }, "all");
        let result = append_ok(ctx, stream, ExpectedVersion::Any, batch.clone()).await;
        assert!(result.position > previous, "each append lands after the previous one");
        previous = result.position;
        last_of_call.push((batch.last().unwrap().id, result.position));
        appended.extend(batch.iter().map(|e| (e.id, stream.clone())));
    }
    let target = previous;

    // One pass: global order is append order, positions strictly increase.
    let own = ctx.own_events().await;
    let own_pairs: Vec<(Uuid, String)> = own.iter().map(|e| (e.id, e.stream.clone())).collect();
    assert_eq!(
        own_pairs, appended,
        "read_all answers events in the order they were appended"
    );
    assert_strictly_increasing(&own, "read_all");
    let by_id: HashMap<Uuid, &RecordedEvent> = own.iter().map(|e| (e.id, e)).collect();
    for (id, position) in &last_of_call {
        assert_eq!(
            by_id[id].position, *position,
            "read_all positions match the append results"
        );
    }
    for stream in &streams {
        let in_all: Vec<RecordedEvent> = own.iter().filter(|e| &e.stream == stream).cloned().collect();
        assert_contiguous_stream(&in_all, stream);
        assert_eq!(
            ctx.read(stream).await,
            in_all,
            "read_stream and read_all agree on {stream}"
        );
    }

    // Paging from the last position of the previous page yields each event exactly once.
    let page_sizes: &[usize] = if ctx.shared { &[7, 64] } else { &[1, 7, 64, 1_000] };
    for &max in page_sizes {
        let mut after = ctx.start;
        let mut got: Vec<Uuid> = Vec::new();
        let mut pages = 0;
        while after < target {
            let page = ctx.store.read_all(after, max).await.unwrap();
            assert!(
                !page.is_empty(),
                "read_all after {after} is empty before reaching {target}"
            );
            assert!(page.len() <= max, "page of {} events for max {max}", page.len());
            if !ctx.shared && after.0 + (max as u64) <= target.0 {
                assert_eq!(page.len(), max, "a page short of the end is full");
            }
            assert!(page[0].position > after, "read_all reads strictly after its position");
            assert_strictly_increasing(&page, "read_all page");
            after = page.last().unwrap().position;
            got.extend(page.iter().filter(|e| ctx.is_own(e)).map(|e| e.id));
            pages += 1;
        }
        let expected: Vec<Uuid> = appended.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, expected, "paging by {max} reads each event exactly once, in order");
        if !ctx.shared {
            assert_eq!(pages, expected.len().div_ceil(max));
        }
    }

    if !ctx.shared {
        assert_eq!(
            ctx.store.head().await.unwrap(),
            target,
            "head is the last event's position"
        );
        assert!(
            ctx.store.read_all(target, 10).await.unwrap().is_empty(),
            "nothing after the head"
        );
        assert_eq!(own.len() as u64, target.0, "SQLite positions are dense from 1");
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

async fn subscription_handover_under_concurrent_appends(ctx: &Ctx) {
    const BEFORE: usize = 500;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 500;
    const GUARD: Duration = Duration::from_secs(60);

    let streams: Vec<String> = (0..5).map(|i| ctx.stream(&format!("sub-{i}"))).collect();

    // Events that exist before the subscription: the catch-up part.
    let mut before: Vec<Uuid> = Vec::new();
    let mut call = 0;
    while before.len() < BEFORE {
        let n = (call % 4 + 1).min(BEFORE - before.len());
        let batch = events(n, "before");
        before.extend(ids(&batch));
        append_ok(ctx, &streams[call % streams.len()], ExpectedVersion::Any, batch).await;
        call += 1;
    }

    let mut subscription = ctx.store.subscribe_all(ctx.start);

    // Live part: writers race the subscription's catch-up and handover.
    let writers: Vec<tokio::task::JoinHandle<Vec<Uuid>>> = (0..WRITERS)
        .map(|w| {
            let store = ctx.store.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                let mut call = 0;
                while written.len() < PER_WRITER {
                    let n = ((call + w) % 3 + 1).min(PER_WRITER - written.len());
                    let batch = events(n, &format!("writer-{w}"));
                    let batch_ids = ids(&batch);
                    let stream = &streams[(call * (w + 1)) % streams.len()];
                    store
                        .append(stream, ExpectedVersion::Any, batch)
                        .await
                        .unwrap_or_else(|e| panic!("writer {w} append: {e}"));
                    written.extend(batch_ids);
                    call += 1;
                }
                written
            })
        })
        .collect();

    let total = BEFORE + WRITERS * PER_WRITER;
    let mut seen: Vec<Uuid> = Vec::with_capacity(total);
    let mut seen_set: HashSet<Uuid> = HashSet::with_capacity(total);
    let mut last = ctx.start;
    let mut next_checked = |event: RecordedEvent, seen: &mut Vec<Uuid>, seen_set: &mut HashSet<Uuid>| {
        assert!(
            event.position > last,
            "subscription positions must strictly increase: {} after {last}",
            event.position
        );
        last = event.position;
        if ctx.is_own(&event) {
            assert!(seen_set.insert(event.id), "event {} delivered twice", event.id);
            seen.push(event.id);
        }
        event
    };

    let collect = async {
        while seen.len() < total {
            let item = subscription.next().await.expect("the subscription ended early");
            let event = item.unwrap_or_else(|e| panic!("subscription error: {e}"));
            next_checked(event, &mut seen, &mut seen_set);
        }
    };
    if tokio::time::timeout(GUARD, collect).await.is_err() {
        panic!(
            "subscription delivered {} of {total} events within {GUARD:?}",
            seen.len()
        );
    }

    let mut appended: HashSet<Uuid> = before.iter().copied().collect();
    for writer in writers {
        appended.extend(writer.await.expect("writer task"));
    }
    assert_eq!(appended.len(), total);
    assert_eq!(
        seen_set, appended,
        "the subscription delivers exactly the appended events"
    );
    assert_eq!(
        &seen[..BEFORE],
        &before[..],
        "catch-up delivers the earlier events first, in order"
    );

    // Nothing extra trails behind: a sentinel appended now is the next own event delivered.
    let sentinel = event(json!({ "sentinel": true }));
    let sentinel_id = sentinel.id;
    append_ok(ctx, &streams[0], ExpectedVersion::Any, vec![sentinel]).await;
    let drain = async {
        loop {
            let item = subscription.next().await.expect("the subscription ended early");
            let event = next_checked(item.expect("subscription error"), &mut seen, &mut seen_set);
            if ctx.is_own(&event) {
                assert_eq!(
                    event.id, sentinel_id,
                    "an own event after all {total}: duplicate or stray"
                );
                break;
            }
        }
    };
    if tokio::time::timeout(GUARD, drain).await.is_err() {
        panic!("the sentinel event was not delivered within {GUARD:?}");
    }

    // The subscription agrees with read_all.
    let own = ctx.own_events().await;
    let mut from_read_all = recorded_ids(&own);
    from_read_all.retain(|id| *id != sentinel_id);
    assert_eq!(
        from_read_all,
        seen[..total].to_vec(),
        "subscription order is read_all order"
    );
}

async fn subscription_from_a_position(ctx: &Ctx) {
    const GUARD: Duration = Duration::from_secs(30);
    let s = ctx.stream("sub-from");
    let first = events(20, "first");
    append_ok(ctx, &s, ExpectedVersion::NoStream, first[..10].to_vec()).await;
    append_ok(ctx, &s, ExpectedVersion::Revision(9), first[10..].to_vec()).await;
    let read = ctx.read(&s).await;
    let from = read[9].position;

    let mut subscription = ctx.store.subscribe_all(from);
    let mut take_own = async |n: usize| -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        let collect = async {
            while out.len() < n {
                let event = subscription
                    .next()
                    .await
                    .expect("subscription ended")
                    .expect("subscription error");
                if ctx.is_own(&event) {
                    out.push(event);
                }
            }
        };
        if tokio::time::timeout(GUARD, collect).await.is_err() {
            panic!("subscription did not deliver {n} events within {GUARD:?}");
        }
        out
    };

    let caught_up = take_own(10).await;
    assert_eq!(
        caught_up,
        read[10..].to_vec(),
        "the subscription starts strictly after its position"
    );

    let live = events(5, "live");
    append_ok(ctx, &s, ExpectedVersion::Revision(19), live.clone()).await;
    let delivered = take_own(5).await;
    assert_eq!(recorded_ids(&delivered), ids(&live));
    assert_eq!(revisions(&delivered), vec![20, 21, 22, 23, 24]);
    assert_eq!(
        delivered,
        ctx.read(&s).await[20..].to_vec(),
        "live events equal what read_stream answers"
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

async fn large_event_roundtrip_and_too_large(ctx: &Ctx) {
    const MIB: usize = 1_048_576;

    // 1 MiB of JSON round-trips byte for byte.
    let s = ctx.stream("large");
    let mut big = event(json!(null));
    big.data = json_string_of_len(MIB);
    assert!(serde_json::from_slice::<String>(&big.data).is_ok());
    assert_eq!(big.data.len(), MIB);
    // Exact bytes are kept, not a re-serialization: odd spacing, key order, escapes, non-ASCII.
    let mut formatted = event(json!(null));
    formatted.data = "{ \"zeta\" :1,\n\t\"alpha\": \"caf\u{e9} \\u00e9 \\\"q\\\" \u{1f600}\" , \"n\": 1.50e3 }"
        .as_bytes()
        .to_vec();
    assert!(serde_json::from_slice::<serde_json::Value>(&formatted.data).is_ok());
    let r = append_ok(ctx, &s, ExpectedVersion::NoStream, vec![big.clone(), formatted.clone()]).await;
    assert_eq!(r.next_expected, 1);

    let read = ctx.read(&s).await;
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].id, big.id);
    assert_eq!(read[0].data.len(), MIB);
    assert!(read[0].data == big.data, "the 1 MiB event comes back byte for byte");
    assert_eq!(read[1].data, formatted.data, "JSON is kept byte for byte");
    let own = ctx.own_events().await;
    assert_eq!(own.len(), 2);
    assert!(
        own[0].data == big.data,
        "read_all answers the 1 MiB event byte for byte"
    );
    assert_eq!(own[1].data, formatted.data);

    // Larger than the limit: TooLarge, alone or in a batch, and nothing stored.
    let t = ctx.stream("too-large");
    let mut huge = event(json!(null));
    huge.data = json_string_of_len(MAX_EVENT_BYTES + 1);
    let small = event(json!({ "small": true }));
    for batch in [vec![huge.clone()], vec![small.clone(), huge.clone()]] {
        let result = ctx.store.append(&t, ExpectedVersion::Any, batch).await;
        match result {
            Err(StoreError::TooLarge { size, limit }) => {
                assert_eq!(limit, MAX_EVENT_BYTES);
                assert!(size > MAX_EVENT_BYTES, "reported size {size} is over the limit");
            }
            other => panic!("an event over MAX_EVENT_BYTES must be TooLarge, got {other:?}"),
        }
    }
    assert!(ctx.read(&t).await.is_empty(), "a too-large append stores nothing");
    assert_eq!(ctx.store.stream_revision(&t).await.unwrap(), None);
    assert_eq!(
        ctx.own_events().await.len(),
        2,
        "a too-large append stores nothing in $all"
    );
    // The rejected small event was not stored either: it appends for real now.
    let rs = append_ok(ctx, &t, ExpectedVersion::NoStream, vec![small.clone()]).await;
    assert_eq!(rs.next_expected, 0);

    // Just under the limit (data plus metadata) is accepted and round-trips.
    let u = ctx.stream("near-limit");
    let mut near = event(json!(null));
    near.data = json_string_of_len(MAX_EVENT_BYTES - 64 * 1024);
    append_ok(ctx, &u, ExpectedVersion::NoStream, vec![near.clone()]).await;
    let read = ctx.read(&u).await;
    assert_eq!(read.len(), 1);
    assert!(read[0].data == near.data, "a near-limit event comes back byte for byte");
}

async fn ten_thousand_streams(ctx: &Ctx) {
    const STREAMS: usize = 10_000;
    let results: Vec<(usize, String, Uuid, AppendResult)> = futures::stream::iter(0..STREAMS)
        .map(|i| {
            let store = ctx.store.clone();
            let stream = ctx.stream(&format!("many-{i}"));
            async move {
                let e = event(json!({ "stream": i }));
                let id = e.id;
                let result = store
                    .append(&stream, ExpectedVersion::NoStream, vec![e])
                    .await
                    .unwrap_or_else(|e| panic!("append to {stream}: {e}"));
                (i, stream, id, result)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(results.len(), STREAMS);
    assert!(results.iter().all(|r| r.3.next_expected == 0));
    let positions: HashSet<Position> = results.iter().map(|r| r.3.position).collect();
    assert_eq!(positions.len(), STREAMS, "every append has its own position");

    // Spot checks.
    let mut by_index: Vec<&(usize, String, Uuid, AppendResult)> = results.iter().collect();
    by_index.sort_by_key(|r| r.0);
    for r in by_index
        .iter()
        .copied()
        .step_by(97)
        .chain([by_index[0], by_index[STREAMS - 1]])
    {
        let (i, stream, id, result) = r;
        let read = ctx.read(stream).await;
        assert_eq!(read.len(), 1, "stream {stream} holds one event");
        assert_eq!(read[0].id, *id);
        assert_eq!(read[0].revision, 0);
        assert_eq!(read[0].position, result.position);
        let data: serde_json::Value = serde_json::from_slice(&read[0].data).unwrap();
        assert_eq!(data, json!({ "stream": i }));
    }

    // $all sees all of them, once each, at the positions the appends answered.
    let own = ctx.own_events().await;
    assert_eq!(own.len(), STREAMS, "read_all sees one event per stream");
    assert_strictly_increasing(&own, "read_all");
    let expected: HashMap<Uuid, (&String, Position)> = results.iter().map(|r| (r.2, (&r.1, r.3.position))).collect();
    let mut streams_seen = HashSet::new();
    for e in &own {
        let (stream, position) = expected
            .get(&e.id)
            .unwrap_or_else(|| panic!("unexpected event {}", e.id));
        assert_eq!(&e.stream, *stream);
        assert_eq!(e.position, *position);
        assert_eq!(e.revision, 0);
        assert!(streams_seen.insert(e.stream.clone()), "two events in {}", e.stream);
    }
    if !ctx.shared {
        assert_eq!(ctx.store.head().await.unwrap(), own.last().unwrap().position);
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata and batches
// ---------------------------------------------------------------------------------------------

async fn metadata_roundtrip(ctx: &Ctx) {
    const GUARD: Duration = Duration::from_secs(30);
    let s = ctx.stream("meta");
    let occurred_at = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap() + TimeDelta::nanoseconds(123_456_789);
    let full = NewEvent {
        id: Uuid::new_v4(),
        event_type: "MetadataTested".into(),
        data: serde_json::to_vec(&json!({ "full": true })).unwrap(),
        metadata: Metadata {
            user_id: Some("user-42".into()),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: Some(Uuid::new_v4()),
            occurred_at,
            version: 7,
        },
    };
    let bare = NewEvent {
        id: Uuid::new_v4(),
        event_type: "MetadataTestedV1".into(),
        data: serde_json::to_vec(&json!({ "full": false })).unwrap(),
        metadata: Metadata::now(),
    };
    assert!(bare.metadata.user_id.is_none() && bare.metadata.version == 1);

    let before = Utc::now();
    append_ok(ctx, &s, ExpectedVersion::NoStream, vec![full.clone(), bare.clone()]).await;
    let after = Utc::now();

    let check = |read: &[RecordedEvent], how: &str| {
        assert_eq!(read.len(), 2, "{how}");
        for (recorded, new) in read.iter().zip([&full, &bare]) {
            assert_eq!(recorded.id, new.id, "{how}");
            assert_eq!(recorded.event_type, new.event_type, "{how}");
            assert_eq!(recorded.data, new.data, "{how}");
            assert_eq!(recorded.metadata, new.metadata, "{how}: metadata round-trips");
            // recorded_at is the store's clock (possibly another machine's): a loose sanity bound.
            let slack = TimeDelta::seconds(60);
            assert!(
                recorded.recorded_at >= before - slack && recorded.recorded_at <= after + slack,
                "{how}: recorded_at {} is not near the append ({before}..{after})",
                recorded.recorded_at
            );
        }
        assert_eq!(read[0].metadata.occurred_at, occurred_at, "{how}: nanoseconds survive");
    };
    check(&ctx.read(&s).await, "read_stream");
    check(&ctx.own_events().await, "read_all");

    let mut subscription = ctx.store.subscribe_all(ctx.start);
    let mut delivered = Vec::new();
    let collect = async {
        while delivered.len() < 2 {
            let event = subscription
                .next()
                .await
                .expect("subscription ended")
                .expect("subscription error");
            if ctx.is_own(&event) {
                delivered.push(event);
            }
        }
    };
    if tokio::time::timeout(GUARD, collect).await.is_err() {
        panic!("subscription did not deliver the events within {GUARD:?}");
    }
    check(&delivered, "subscribe_all");
}

async fn atomic_multi_event_append(ctx: &Ctx) {
    let s = ctx.stream("batch");
    let noise = ctx.stream("noise");

    let first = events(1, "first");
    append_ok(ctx, &s, ExpectedVersion::NoStream, first.clone()).await;

    let batch = events(3, "batch");
    let r = append_ok(ctx, &s, ExpectedVersion::Revision(0), batch.clone()).await;
    assert_eq!(r.next_expected, 3, "three events take revisions 1, 2, 3");
    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    assert_eq!(recorded_ids(&read[1..]), ids(&batch), "the batch keeps its order");
    assert_eq!(
        read[3].position, r.position,
        "the result names the last event's position"
    );
    if ctx.dense {
        assert_eq!(read[2].position.0, read[1].position.0 + 1, "positions are consecutive");
        assert_eq!(read[3].position.0, read[2].position.0 + 1, "positions are consecutive");
    }

    // A stale batch is refused whole.
    let stale = events(3, "stale");
    let result = ctx.store.append(&s, ExpectedVersion::Revision(0), stale.clone()).await;
    assert_conflict(result, &s, ExpectedVersion::Revision(0), Some(3));
    assert_eq!(ctx.read(&s).await, read);

    // Batches stay contiguous in the global log while another writer appends concurrently.
    let noise_writer = {
        let store = ctx.store.clone();
        let noise = noise.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                store
                    .append(&noise, ExpectedVersion::Any, vec![event(json!({ "noise": i }))])
                    .await
                    .expect("noise append");
            }
        })
    };
    let mut batches: Vec<Vec<Uuid>> = Vec::new();
    let mut expected_revision = 3;
    for _ in 0..50 {
        let batch = events(3, "concurrent");
        let r = append_ok(ctx, &s, ExpectedVersion::Revision(expected_revision), batch.clone()).await;
        expected_revision += 3;
        assert_eq!(r.next_expected, expected_revision);
        batches.push(ids(&batch));
    }
    noise_writer.await.expect("noise writer");

    let all = ctx.all_since_start().await;
    let index: HashMap<Uuid, usize> = all.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    for batch in &batches {
        let at = index[&batch[0]];
        assert_eq!(index[&batch[1]], at + 1, "a batch is contiguous in $all");
        assert_eq!(index[&batch[2]], at + 2, "a batch is contiguous in $all");
        assert!(all[at].revision + 1 == all[at + 1].revision && all[at + 1].revision + 1 == all[at + 2].revision);
    }
    let read = ctx.read(&s).await;
    assert_contiguous_stream(&read, &s);
    assert_eq!(read.len(), 4 + 150);
    assert_eq!(ctx.read(&noise).await.len(), 300);
}
