//! Crash safety of the embedded store: an append acknowledged to the caller survives SIGKILL.
//!
//! `crash_recovery_after_sigkill` re-executes this test binary as a child process running
//! `crash_child` (selected with `--exact`, switched on by `NIKARA_CRASH_CHILD=<db path>`). The child
//! appends from several tasks, single events and small batches, to several streams, and prints
//! `TRY <stream> <ids>` before and `ACK <stream> <position> <last revision> <ids>` after each append.
//! The parent kills it with SIGKILL mid-stream, reopens the file and checks that every
//! acknowledged event is there where it was acknowledged, that every attempted batch is there
//! whole or not at all, and that the log reads cleanly; then it appends again and repeats the
//! cycle on the same file.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nikara::store::sqlite::SqliteStore;
use nikara::store::{Direction, EventStore, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StreamFrom};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Set (to the database path) only in the child process.
const CHILD_VAR: &str = "NIKARA_CRASH_CHILD";
/// Name of the child test, as libtest and nextest know it.
const CHILD_TEST: &str = "crash_child";
/// Concurrent appending tasks in the child.
const CHILD_TASKS: usize = 8;
/// Kill cycles on the same file.
const CYCLES: usize = 3;
/// Acknowledgements to wait for before killing, per cycle (or `KILL_AFTER`, whichever comes first).
const ACKS_BEFORE_KILL: [usize; CYCLES] = [2_000, 1_234, 3_000];
const KILL_AFTER: Duration = Duration::from_secs(3);
/// Failure guards, never timing assertions.
const FIRST_ACK_GUARD: Duration = Duration::from_secs(60);
const DRAIN_GUARD: Duration = Duration::from_secs(30);
/// The child stops by itself after this long, should the parent vanish without killing it.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Child
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "child process of crash_recovery_after_sigkill; does nothing on its own"]
async fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_VAR) else {
        return;
    };
    let store = match SqliteStore::open(&path) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("crash child: cannot open {}: {e}", path.to_string_lossy());
            std::process::exit(2);
        }
    };
    let tasks: Vec<_> = (0..CHILD_TASKS)
        .map(|task| tokio::spawn(child_writer(store.clone(), task)))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    eprintln!("crash child: lived {CHILD_LIFETIME:?} without being killed; stopping");
    std::process::exit(5);
}

/// One line to the parent, flushed. A closed pipe means the parent is gone: stop.
fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(3);
    }
}

fn crash_event(task: usize, call: u64, k: usize) -> NewEvent {
    let id = Uuid::new_v4();
    // Now and then a bigger event, so commits span several pages.
    let pad = if (call + k as u64).is_multiple_of(50) {
        "p".repeat(16 * 1024)
    } else {
        String::new()
    };
    NewEvent {
        id,
        event_type: "CrashTestEvent".into(),
        data: serde_json::to_vec(&json!({ "id": id, "task": task, "call": call, "k": k, "pad": pad })).unwrap(),
        metadata: Metadata::now(),
    }
}

fn join_ids(events: &[NewEvent]) -> String {
    events.iter().map(|e| e.id.to_string()).collect::<Vec<_>>().join(",")
}

async fn child_writer(store: Arc<SqliteStore>, task: usize) {
    let deadline = tokio::time::Instant::now() + CHILD_LIFETIME;
    let own = format!("crash-task-{task}");
    let mut own_revision = match store.stream_revision(&own).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crash child: stream_revision({own}): {e}");
            std::process::exit(4);
        }
    };
    let mut call: u64 = 0;
    while tokio::time::Instant::now() < deadline {
        let shared = format!("crash-shared-{}", (call / 4 + task as u64) % 5);
        // Own stream with exact expectations, shared streams with Any; singles and batches.
        let (stream, expected, n) = match call % 4 {
            0 => (own.clone(), ExpectedVersion::from_current(own_revision), 1),
            1 => (shared, ExpectedVersion::Any, 1 + (call % 3) as usize),
            2 => (shared, ExpectedVersion::Any, 1),
            _ => (own.clone(), ExpectedVersion::from_current(own_revision), 3),
        };
        let batch: Vec<NewEvent> = (0..n).map(|k| crash_event(task, call, k)).collect();
        let ids = join_ids(&batch);
        emit(&format!("TRY {stream} {ids}"));
        match store.append(&stream, expected, batch).await {
            Ok(result) => {
                emit(&format!(
                    "ACK {stream} {} {} {ids}",
                    result.position, result.next_expected
                ));
                if stream == own {
                    own_revision = Some(result.next_expected);
                }
            }
            Err(e) => {
                eprintln!("crash child: append to {stream} expecting {expected}: {e}");
                std::process::exit(4);
            }
        }
        call += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------------------------

/// An attempted append: the batch is in the log whole or not at all.
#[derive(Debug, Clone)]
struct Tried {
    stream: String,
    ids: Vec<Uuid>,
}

/// An acknowledged append: the batch must be in the log, exactly as acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    stream: String,
    position: Position,
    last_revision: u64,
    ids: Vec<Uuid>,
}

fn parse_ids(field: &str) -> Vec<Uuid> {
    field
        .split(',')
        .map(|id| Uuid::parse_str(id).unwrap_or_else(|e| panic!("bad id {id:?} from the child: {e}")))
        .collect()
}

/// What one kill cycle observed.
#[derive(Debug, Default)]
struct Observed {
    tried: Vec<Tried>,
    acked: Vec<Acked>,
}

impl Observed {
    fn line(&mut self, line: &str) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["TRY", stream, ids] => self.tried.push(Tried {
                stream: (*stream).to_owned(),
                ids: parse_ids(ids),
            }),
            ["ACK", stream, position, last_revision, ids] => self.acked.push(Acked {
                stream: (*stream).to_owned(),
                position: Position(position.parse().unwrap()),
                last_revision: last_revision.parse().unwrap(),
                ids: parse_ids(ids),
            }),
            // libtest's own chatter ("running 1 test", ...).
            _ => {}
        }
    }
}

/// Runs the child until it has acknowledged `acks` appends (or `KILL_AFTER` passed), SIGKILLs it,
/// and returns everything it printed.
async fn run_and_kill(path: &std::path::Path, acks: usize) -> Observed {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = tokio::process::Command::new(exe)
        .args(["--exact", CHILD_TEST, "--nocapture", "--include-ignored"])
        .env(CHILD_VAR, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the crash child");

    // A reader task forwards complete lines; a line cut short by the kill is dropped.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut stdout = tokio::io::BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdout.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) if buf.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });

    let mut observed = Observed::default();
    let spawned = tokio::time::Instant::now();
    loop {
        let acked = observed.acked.len();
        if acked >= acks || (acked > 0 && spawned.elapsed() >= KILL_AFTER) {
            break;
        }
        let wait = if acked == 0 {
            FIRST_ACK_GUARD.saturating_sub(spawned.elapsed())
        } else {
            KILL_AFTER.saturating_sub(spawned.elapsed())
        };
        match tokio::time::timeout(wait, lines.recv()).await {
            Ok(Some(line)) => observed.line(&line),
            Ok(None) => {
                let status = child.wait().await;
                panic!("the crash child stopped before being killed ({status:?}); see its stderr above");
            }
            Err(_) if acked == 0 => panic!("the crash child acknowledged nothing within {FIRST_ACK_GUARD:?}"),
            Err(_) => {}
        }
    }

    child.start_kill().expect("SIGKILL the crash child");
    // Whatever the child printed before dying is still in the pipe.
    let drain = async {
        while let Some(line) = lines.recv().await {
            observed.line(&line);
        }
    };
    tokio::time::timeout(DRAIN_GUARD, drain)
        .await
        .expect("the child's stdout closes once it is dead");
    reader.await.expect("stdout reader task");
    let status = tokio::time::timeout(DRAIN_GUARD, child.wait())
        .await
        .expect("the killed child is reaped")
        .expect("wait for the crash child");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child died of SIGKILL, not on its own: {status:?}"
    );
    observed
}

/// Everything in the log, read from the start in pages; positions strictly increase.
async fn read_whole_log(store: &SqliteStore) -> Vec<RecordedEvent> {
    let mut all: Vec<RecordedEvent> = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, 1_000).await.expect("read_all after recovery");
        if page.is_empty() {
            break;
        }
        for event in page {
            assert!(
                event.position > after,
                "positions must strictly increase: {} after {after}",
                event.position
            );
            after = event.position;
            all.push(event);
        }
    }
    all
}

/// Checks the recovered log against everything attempted and acknowledged so far.
async fn verify(store: &SqliteStore, tried: &[Tried], acked: &[Acked], cycle: usize) -> Vec<RecordedEvent> {
    let all = read_whole_log(store).await;
    assert!(!all.is_empty(), "cycle {cycle}: the log is empty after recovery");
    for (i, event) in all.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(i as u64 + 1),
            "cycle {cycle}: SQLite positions are dense from 1"
        );
        let data: serde_json::Value = serde_json::from_slice(&event.data)
            .unwrap_or_else(|e| panic!("cycle {cycle}: event {} holds invalid JSON: {e}", event.id));
        assert_eq!(
            data["id"],
            json!(event.id),
            "cycle {cycle}: event data belongs to its event"
        );
    }
    assert_eq!(
        store.head().await.unwrap(),
        all.last().unwrap().position,
        "cycle {cycle}: head is the last event"
    );

    let by_id: HashMap<Uuid, &RecordedEvent> = all.iter().map(|e| (e.id, e)).collect();
    assert_eq!(
        by_id.len(),
        all.len(),
        "cycle {cycle}: an event id appears twice in the log"
    );

    // Every acknowledged event is present where it was acknowledged.
    for ack in acked {
        let n = ack.ids.len() as u64;
        let mut previous: Option<Position> = None;
        for (k, id) in ack.ids.iter().enumerate() {
            let event = by_id
                .get(id)
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged event {id} in {} was lost", ack.stream));
            assert_eq!(event.stream, ack.stream, "cycle {cycle}: event {id} moved stream");
            assert_eq!(
                event.revision,
                ack.last_revision + 1 + k as u64 - n,
                "cycle {cycle}: event {id} is not at its acknowledged revision"
            );
            if let Some(p) = previous {
                assert_eq!(event.position.0, p.0 + 1, "cycle {cycle}: a batch is contiguous");
            }
            previous = Some(event.position);
        }
        assert_eq!(
            previous,
            Some(ack.position),
            "cycle {cycle}: a batch ends at its acknowledged position"
        );
    }

    // Every attempted batch is there whole, in order, or not at all; nothing else is there.
    let mut attempted: HashSet<Uuid> = HashSet::new();
    for t in tried {
        attempted.extend(t.ids.iter().copied());
        let present: Vec<&&RecordedEvent> = t.ids.iter().filter_map(|id| by_id.get(id)).collect();
        if present.is_empty() {
            continue;
        }
        assert_eq!(
            present.len(),
            t.ids.len(),
            "cycle {cycle}: a batch to {} survived in part: {} of {} events",
            t.stream,
            present.len(),
            t.ids.len()
        );
        for pair in present.windows(2) {
            assert_eq!(
                pair[1].revision,
                pair[0].revision + 1,
                "cycle {cycle}: a batch has consecutive revisions"
            );
            assert_eq!(
                pair[1].position.0,
                pair[0].position.0 + 1,
                "cycle {cycle}: a batch is contiguous"
            );
        }
        assert!(
            present.iter().all(|e| e.stream == t.stream),
            "cycle {cycle}: a batch stays in its stream"
        );
    }
    for event in &all {
        assert!(
            attempted.contains(&event.id),
            "cycle {cycle}: event {} was never appended",
            event.id
        );
    }

    // Each stream's revisions run from 0 without a gap, and read_stream agrees with read_all.
    let mut streams: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    for event in &all {
        streams.entry(event.stream.as_str()).or_default().push(event);
    }
    for (stream, events) in &streams {
        let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
        let expected: Vec<u64> = (0..events.len() as u64).collect();
        assert_eq!(
            revisions, expected,
            "cycle {cycle}: revisions of {stream} are not contiguous from 0"
        );
        let read = store
            .read_stream(stream, StreamFrom::Start, Direction::Forwards, 1_000_000)
            .await
            .expect("read_stream after recovery");
        let from_all: Vec<RecordedEvent> = events.iter().map(|e| (*e).clone()).collect();
        assert_eq!(
            read, from_all,
            "cycle {cycle}: read_stream({stream}) disagrees with read_all"
        );
        assert_eq!(
            store.stream_revision(stream).await.unwrap(),
            Some(events.len() as u64 - 1),
            "cycle {cycle}: stream_revision({stream})"
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_recovery_after_sigkill() {
    if std::env::var_os(CHILD_VAR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("events.db");
    let mut tried: Vec<Tried> = Vec::new();
    let mut acked: Vec<Acked> = Vec::new();

    for (cycle, acks_before_kill) in ACKS_BEFORE_KILL.into_iter().enumerate() {
        let observed = run_and_kill(&path, acks_before_kill).await;
        assert!(
            !observed.acked.is_empty(),
            "cycle {cycle}: the child acknowledged nothing"
        );
        println!(
            "cycle {cycle}: child attempted {} appends, {} acknowledged before SIGKILL",
            observed.tried.len(),
            observed.acked.len()
        );
        let last_ack = observed.acked.last().cloned().unwrap();
        tried.extend(observed.tried);
        acked.extend(observed.acked);

        let store = SqliteStore::open(&path).unwrap_or_else(|e| panic!("cycle {cycle}: reopen after SIGKILL: {e}"));
        let all = verify(&store, &tried, &acked, cycle).await;
        let head = all.last().unwrap().position;
        println!("cycle {cycle}: recovered {} events, head {head}", all.len());

        // The idempotency index survived: re-sending the last acknowledged batch is a no-op.
        let events: Vec<NewEvent> = last_ack
            .ids
            .iter()
            .map(|id| {
                let stored = all.iter().find(|e| e.id == *id).unwrap();
                NewEvent {
                    id: *id,
                    event_type: stored.event_type.clone(),
                    data: stored.data.clone(),
                    metadata: stored.metadata.clone(),
                }
            })
            .collect();
        let again = store
            .append(&last_ack.stream, ExpectedVersion::Any, events)
            .await
            .expect("re-append an acknowledged batch after recovery");
        assert_eq!(
            again.position, last_ack.position,
            "cycle {cycle}: a retry answers the original position"
        );
        assert_eq!(
            store.head().await.unwrap(),
            head,
            "cycle {cycle}: a retry writes nothing"
        );

        // The store takes new appends: to a fresh stream and after the child's last revision.
        for (stream, n) in [(format!("crash-parent-{cycle}"), 1), ("crash-task-0".to_owned(), 2)] {
            let current = store.stream_revision(&stream).await.unwrap();
            let batch: Vec<NewEvent> = (0..n).map(|k| crash_event(usize::MAX, cycle as u64, k)).collect();
            let ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
            let result = store
                .append(&stream, ExpectedVersion::from_current(current), batch)
                .await
                .unwrap_or_else(|e| panic!("cycle {cycle}: append to {stream} after recovery: {e}"));
            assert!(
                result.position > head,
                "cycle {cycle}: new events land after the recovered head"
            );
            assert_eq!(result.next_expected, current.map_or(0, |r| r + 1) + n as u64 - 1);
            tried.push(Tried {
                stream: stream.clone(),
                ids: ids.clone(),
            });
            acked.push(Acked {
                stream,
                position: result.position,
                last_revision: result.next_expected,
                ids,
            });
        }
        verify(&store, &tried, &acked, cycle).await;
        store.shutdown().await;
        drop(store);
    }

    // One last clean open of the thrice-crashed file.
    let store = SqliteStore::open(&path).expect("final reopen");
    let all = verify(&store, &tried, &acked, CYCLES).await;
    println!(
        "after {CYCLES} crashes: {} events, {} acknowledged appends all present",
        all.len(),
        acked.len()
    );
    store.shutdown().await;
}
