//! `append`: the embedded store alone, no HTTP. Three sub-runs on one fresh SQLite log:
//! one appender with single-event calls (the fsync-bound floor), `concurrency` appenders with
//! single-event calls (what group commit buys), and batched calls of `batch_size` events.

use std::time::Duration;

use nikara::store::sqlite::SqliteStore;
use nikara::store::{EventStore, ExpectedVersion, Metadata, NewEvent};
use tokio::time::Instant;
use uuid::Uuid;

use super::{CommitStats, small_payload};
use crate::report::{Report, Run, Samples, round};

/// Targets from the issue (events/s).
pub const TARGET_CONCURRENT: f64 = 30_000.0;
pub const TARGET_BATCHED: f64 = 150_000.0;

/// Streams each appender rotates over.
const STREAMS_PER_WORKER: u64 = 16;

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub concurrency: usize,
    pub batch_concurrency: usize,
    pub batch_size: usize,
    pub ids: IdKind,
}

/// How event ids are generated. The domain uses random (v4) ids; time-ordered (v7) ids show what
/// the unique index on `event_id` costs when inserts land at random places in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdKind {
    V4,
    V7,
}

impl IdKind {
    fn generate(self) -> Uuid {
        match self {
            IdKind::V4 => Uuid::new_v4(),
            IdKind::V7 => Uuid::now_v7(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdKind::V4 => "v4 (random)",
            IdKind::V7 => "v7 (time-ordered)",
        }
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.db");
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??;
    eprintln!("append: store at {}", store.path().display());

    let runs = [
        SubRun {
            tag: "a",
            name: "1 appender x 1 event".into(),
            workers: 1,
            batch: 1,
            target: None,
        },
        SubRun {
            tag: "b",
            name: format!("{} appenders x 1 event", opts.concurrency),
            workers: opts.concurrency,
            batch: 1,
            target: Some(TARGET_CONCURRENT),
        },
        SubRun {
            tag: "c",
            name: format!("{} appenders x {} events", opts.batch_concurrency, opts.batch_size),
            workers: opts.batch_concurrency,
            batch: opts.batch_size,
            target: Some(TARGET_BATCHED),
        },
    ];
    let mut results = Vec::with_capacity(runs.len());
    for spec in runs {
        results.push(sub_run(&store, opts, spec).await?);
    }
    store.shutdown().await;

    let fsync_floor = results[0].ops_per_s;
    Report::new("append", results, 1).map(|r| {
        r.with("single_appender_events_per_s", fsync_floor)
            .with("event_ids", opts.ids.name())
            .with("store", "sqlite (WAL, synchronous=FULL)")
    })
}

/// One sub-run: `workers` appenders, each appending `batch` events per call.
#[derive(Debug)]
struct SubRun {
    /// Keeps the streams of different sub-runs apart.
    tag: &'static str,
    name: String,
    workers: usize,
    batch: usize,
    /// Events/s the issue asks for, if any.
    target: Option<f64>,
}

/// Runs one sub-run until `opts.duration` passes.
async fn sub_run(store: &SqliteStore, opts: &Options, spec: SubRun) -> anyhow::Result<Run> {
    let SubRun {
        tag,
        name,
        workers,
        batch,
        target,
    } = spec;
    let duration = opts.duration;
    let ids = opts.ids;
    eprintln!("append: {name} for {duration:?} …");
    let head_before = store.head().await?;
    let commits_before = CommitStats::snapshot();
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..workers.max(1))
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { appender(store, tag, ids, w, batch, deadline).await })
        })
        .collect();
    let mut samples = Samples::with_capacity(1 << 20);
    let (mut events, mut calls, mut errors) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for h in handles {
        let out = h.await?;
        events += out.events;
        calls += out.calls;
        errors += out.errors;
        samples.merge(out.samples);
        if first_error.is_none() {
            first_error = out.first_error;
        }
    }
    let elapsed = started.elapsed();
    let commits = CommitStats::snapshot().since(commits_before);
    let head_after = store.head().await?;
    if let Some(e) = first_error {
        eprintln!("append: {name}: first error: {e}");
    }

    // Positions are dense on SQLite: what the log grew by is what was stored.
    let stored = head_after.0 - head_before.0;
    let mut run = Run::new(&name, elapsed, events, samples.summary())
        .errors(errors)
        .duplicates(stored.saturating_sub(events))
        .with("appenders", workers as u64)
        .with("events_per_call", batch as u64)
        .with("calls", calls)
        .with("stored", stored)
        .with("lost", events.saturating_sub(stored))
        .with("commits", commits.commits)
        .with("mean_group", round(commits.mean_group(), 1))
        .with("mean_commit_ms", round(commits.mean_commit_ms(), 3))
        .with("writer_busy", round(commits.writer_busy(elapsed), 3));
    if let Some(t) = target {
        let met = run.ops_per_s >= t;
        run = run.with("target_events_per_s", t).with("target_met", met);
    }
    Ok(run)
}

#[derive(Debug, Default)]
struct AppenderOutcome {
    events: u64,
    calls: u64,
    errors: u64,
    samples: Samples,
    first_error: Option<String>,
}

async fn appender(
    store: SqliteStore,
    tag: &str,
    ids: IdKind,
    worker: usize,
    batch: usize,
    deadline: Instant,
) -> AppenderOutcome {
    let mut out = AppenderOutcome {
        samples: Samples::with_capacity(64 * 1024),
        ..AppenderOutcome::default()
    };
    let user = format!("user-{worker}");
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let stream = format!("bench{tag}-{worker}-{}", out.calls % STREAMS_PER_WORKER);
        let events: Vec<NewEvent> = (0..batch)
            .map(|_| {
                seq += 1;
                let mut metadata = Metadata::now();
                metadata.user_id = Some(user.clone());
                NewEvent {
                    id: ids.generate(),
                    event_type: "BenchPostScheduled".into(),
                    data: small_payload(seq),
                    metadata,
                }
            })
            .collect();
        let t = Instant::now();
        let result = store.append(&stream, ExpectedVersion::Any, events).await;
        let took = t.elapsed();
        out.calls += 1;
        match result {
            Ok(_) => {
                out.events += batch as u64;
                out.samples.record(took);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    out
}
