//! `replay`: fills a fresh embedded log with `events` events (large concurrent batches), then
//! measures (a) reading `$all` into a consumer that only counts, (b) rebuilding the activity
//! projection with `nikara::projections::rebuild`, and (c) the same rebuild done page by page
//! on one thread with the read and the apply timed apart, to show which one dominates.
//!
//! One event in three is of a type the activity projection handles (`UserFirstSeen`, then
//! `UserProfileUpdated`, with `metadata.user_id` set and valid data); the rest are other types
//! that only move its checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nikara::projections::{self, ReadModels};
use nikara::store::sqlite::SqliteStore;
use nikara::store::{EventStore, ExpectedVersion, Metadata, NewEvent, Position};
use tokio::time::Instant;
use uuid::Uuid;

use super::small_payload;
use crate::report::{Report, Run, Samples, round};

/// Targets from the issue.
pub const TARGET_READ_EVENTS_PER_S: f64 = 1_000_000.0;
/// Seconds allowed to rebuild the activity projection over one million events.
pub const TARGET_REBUILD_S_PER_MILLION: f64 = 10.0;

/// Page size of the `$all` reads (the same as `projections::rebuild`).
const PAGE: usize = 10_000;
const FILL_WORKERS: u64 = 4;
const FILL_BATCH: u64 = 2_000;
/// Distinct users in the activity events.
const USERS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub events: u64,
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.db");
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??;
    eprintln!("replay: store at {}", store.path().display());

    let fill = fill(&store, opts.events).await?;
    let read = read_all(&store).await?;
    let models = ReadModels::open(dir.path().join("readmodels.db"))?;
    let rebuild = rebuild(&store, &models, opts.events).await?;
    let parts = rebuild_timed_parts(&store, &models).await?;
    store.shutdown().await;

    let read_rate = read.ops_per_s;
    let rebuild_s = rebuild.duration_s;
    Report::new("replay", vec![fill, read, rebuild, parts], 1).map(|r| {
        r.with("events", opts.events)
            .with("read_events_per_s", read_rate)
            .with("rebuild_s", rebuild_s)
    })
}

/// The `i`-th event of the log: every third one is an activity event.
fn event(i: u64) -> NewEvent {
    let mut metadata = Metadata::now();
    let user = (i / 3) % USERS;
    metadata.user_id = Some(format!("user-{user}"));
    let (event_type, data) = match i % 3 {
        0 if i / 3 < USERS => (
            "UserFirstSeen",
            format!(r#"{{"email_claim":"u{user}@example.com"}}"#).into_bytes(),
        ),
        0 => (
            "UserProfileUpdated",
            format!(
                r#"{{"email":"u{user}@example.com","notifications":{}}}"#,
                i.is_multiple_of(2)
            )
            .into_bytes(),
        ),
        1 => ("BenchPostScheduled", small_payload(i)),
        _ => ("BenchEngagementRecorded", small_payload(i)),
    };
    NewEvent {
        id: Uuid::new_v4(),
        event_type: event_type.into(),
        data,
        metadata,
    }
}

/// Activity rows a log of `n` events should produce.
fn expected_activity_rows(n: u64) -> u64 {
    n.div_ceil(3)
}

async fn fill(store: &SqliteStore, total: u64) -> anyhow::Result<Run> {
    eprintln!("replay: appending {total} events ({FILL_WORKERS} appenders x {FILL_BATCH}-event batches) …");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..FILL_WORKERS)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut samples = Samples::default();
                loop {
                    let first = next.fetch_add(FILL_BATCH, Ordering::Relaxed);
                    if first >= total {
                        return Ok::<Samples, anyhow::Error>(samples);
                    }
                    let last = (first + FILL_BATCH).min(total);
                    let events: Vec<NewEvent> = (first..last).map(event).collect();
                    let stream = format!("fill-{}", (first / FILL_BATCH) % 1000);
                    let t = Instant::now();
                    store.append(&stream, ExpectedVersion::Any, events).await?;
                    samples.record(t.elapsed());
                }
            })
        })
        .collect();
    let mut samples = Samples::default();
    for h in handles {
        samples.merge(h.await??);
    }
    let elapsed = started.elapsed();
    let head = store.head().await?;
    anyhow::ensure!(
        head.0 == total,
        "the log holds {} events after the fill, expected {total}",
        head.0
    );
    eprintln!("replay: filled in {:.1} s", elapsed.as_secs_f64());
    Ok(
        Run::new("fill (4 x 2000-event appends)", elapsed, total, samples.summary())
            .with("latency_unit", "per 2000-event append"),
    )
}

/// (a) `$all` from the start through a consumer that only counts.
async fn read_all(store: &SqliteStore) -> anyhow::Result<Run> {
    eprintln!("replay: reading $all …");
    let store = store.clone();
    let (count, elapsed, samples, positions_ok) = tokio::task::spawn_blocking(move || {
        let mut after = Position::START;
        let mut count = 0u64;
        let mut samples = Samples::default();
        let mut positions_ok = true;
        let started = std::time::Instant::now();
        loop {
            let t = std::time::Instant::now();
            let page = store.read_all_blocking(after, PAGE)?;
            samples.record(t.elapsed());
            let Some(last) = page.last() else { break };
            positions_ok &= page.first().is_some_and(|e| e.position > after);
            after = last.position;
            count += page.len() as u64;
        }
        Ok::<_, anyhow::Error>((count, started.elapsed(), samples, positions_ok))
    })
    .await??;
    let rate = count as f64 / elapsed.as_secs_f64();
    eprintln!("replay: read {count} events in {:.2} s", elapsed.as_secs_f64());
    Ok(Run::new("$all read, no-op consumer", elapsed, count, samples.summary())
        .errors(u64::from(!positions_ok))
        .with("latency_unit", "per 10000-event page")
        .with("target_events_per_s", TARGET_READ_EVENTS_PER_S)
        .with("target_met", rate >= TARGET_READ_EVENTS_PER_S))
}

/// (b) `nikara::projections::rebuild` of the activity projection.
async fn rebuild(store: &SqliteStore, models: &ReadModels, total: u64) -> anyhow::Result<Run> {
    eprintln!("replay: rebuilding the activity projection …");
    let selected = projections::select(Some("activity"))?;
    let dyn_store: Arc<dyn EventStore> = Arc::new(store.clone());
    let mut samples = Samples::default();
    let started = Instant::now();
    let mut last_page = started;
    let seen = projections::rebuild(dyn_store, models, &selected, |_, _| {
        let now = Instant::now();
        samples.record(now - last_page);
        last_page = now;
    })
    .await?;
    let elapsed = started.elapsed();
    let rows = activity_rows(models).await?;
    let expected = expected_activity_rows(total);
    let target_s = TARGET_REBUILD_S_PER_MILLION * total as f64 / 1_000_000.0;
    eprintln!(
        "replay: rebuilt in {:.2} s ({rows} activity rows)",
        elapsed.as_secs_f64()
    );
    Ok(Run::new(
        "activity rebuild (projections::rebuild)",
        elapsed,
        seen,
        samples.summary(),
    )
    .errors(u64::from(rows != expected))
    .with("latency_unit", "per 10000-event page")
    .with("activity_rows", rows)
    .with("expected_rows", expected)
    .with("target_s", round(target_s, 2))
    .with("target_met", elapsed.as_secs_f64() <= target_s))
}

/// (c) The rebuild again, one page at a time on one thread, timing the `$all` read and the
/// read-model apply separately.
async fn rebuild_timed_parts(store: &SqliteStore, models: &ReadModels) -> anyhow::Result<Run> {
    eprintln!("replay: rebuilding again with the read and the apply timed apart …");
    let selected = projections::select(Some("activity"))?;
    let store = store.clone();
    let models_bg = models.clone();
    let (count, elapsed, read_time, apply_time, samples) = tokio::task::spawn_blocking(move || {
        for p in &selected {
            models_bg.reset(p.as_ref())?;
        }
        let mut after = Position::START;
        let mut count = 0u64;
        let (mut read_time, mut apply_time) = (Duration::ZERO, Duration::ZERO);
        let mut samples = Samples::default();
        let started = std::time::Instant::now();
        loop {
            let t = std::time::Instant::now();
            let page = store.read_all_blocking(after, PAGE)?;
            let read = t.elapsed();
            read_time += read;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let t = std::time::Instant::now();
            for p in &selected {
                models_bg.apply_batch(p.as_ref(), &page, last)?;
            }
            let apply = t.elapsed();
            apply_time += apply;
            samples.record(read + apply);
            after = last;
            count += page.len() as u64;
        }
        Ok::<_, anyhow::Error>((count, started.elapsed(), read_time, apply_time, samples))
    })
    .await??;
    let rows = activity_rows(models).await?;
    let applied = rows as f64;
    eprintln!(
        "replay: read {:.2} s + apply {:.2} s",
        read_time.as_secs_f64(),
        apply_time.as_secs_f64()
    );
    Ok(
        Run::new("rebuild, sequential, parts timed", elapsed, count, samples.summary())
            .with("latency_unit", "per 10000-event page")
            .with("read_s", round(read_time.as_secs_f64(), 3))
            .with("apply_s", round(apply_time.as_secs_f64(), 3))
            .with(
                "apply_us_per_activity_event",
                round(
                    if applied > 0.0 {
                        apply_time.as_secs_f64() * 1e6 / applied
                    } else {
                        0.0
                    },
                    2,
                ),
            ),
    )
}

async fn activity_rows(models: &ReadModels) -> anyhow::Result<u64> {
    let n: i64 = models
        .read(|c| c.query_row("SELECT COUNT(*) FROM activity", [], |r| r.get(0)))
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_three_is_activity() {
        let types: Vec<String> = (0..6).map(|i| event(i).event_type).collect();
        assert_eq!(types[0], "UserFirstSeen");
        assert_eq!(types[3], "UserFirstSeen");
        assert_eq!(types[1], "BenchPostScheduled");
        assert_eq!(event(3 * USERS).event_type, "UserProfileUpdated");
        assert_eq!(expected_activity_rows(6), 2);
        assert_eq!(expected_activity_rows(7), 3);
        for i in [0, 3 * USERS] {
            let v: serde_json::Value = serde_json::from_slice(&event(i).data).expect("JSON");
            assert!(v.is_object());
        }
    }
}
