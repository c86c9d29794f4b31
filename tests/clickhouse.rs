//! ClickHouse analytics against a real server (Debian's 18.16 in CI): migrations, the client's
//! errors and version detection, and the sink's exactly-once totals under duplicates, restarts,
//! cut-short writes, a full replay, and ClickHouse stopped mid-stream.
//!
//! Needs `NIKARA_TEST_CLICKHOUSE_URL` (the test command starts a server with
//! `scripts/clickhouse-test-server`); without it every test prints SKIPPED and passes.
#![allow(clippy::unwrap_used)]

#[path = "common/clickhouse.rs"]
mod ch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ch::{PrivateServer, TestDatabase};
use chrono::{DateTime, TimeZone, Utc};
use nikara::analytics::migrations::MIGRATIONS;
use nikara::analytics::{
    ClickHouseError, Client, Decoder, EventRow, MigrateError, PostRow, Sink, SinkOptions, SinkRow, SnapshotRow, migrate,
};
use nikara::store::sqlite::SqliteStore;
use nikara::store::{EventStore, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// A synthetic event stream and the decoder the test gives the sink.

const FACTS: &str = "test.EngagementFacts";
const SNAPSHOT: &str = "test.SnapshotTaken";
const POST: &str = "test.PostPublished";
const NOISE: &str = "test.Noise";
const UNDECODABLE: &str = "test.Undecodable";

const KINDS: &[&str] = &[
    "like", "reaction", "comment", "reply", "share", "quote", "repost", "mention", "follow",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fact {
    post: String,
    platform: String,
    account: String,
    kind: String,
    delta: i32,
    reaction: String,
    day: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snap {
    post: String,
    platform: String,
    minute: i64,
    likes: i64,
    views: Option<i64>,
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 30, 12, 0, 0).unwrap()
}

fn decoder() -> Decoder {
    Arc::new(|ev: &RecordedEvent| match ev.event_type.as_str() {
        FACTS => {
            let facts: Vec<Fact> = serde_json::from_slice(&ev.data).map_err(|e| e.to_string())?;
            Ok(facts
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    SinkRow::Event(EventRow {
                        item_index: i as u32,
                        platform_post_id: format!("pp-{}", f.post),
                        post_id: f.post,
                        platform: f.platform,
                        account_external_id: format!("ext-{}", f.account),
                        account_id: f.account,
                        user_id: "u1".into(),
                        verb: match f.delta {
                            1 => "add",
                            -1 => "remove",
                            _ => "edited",
                        }
                        .into(),
                        kind: f.kind,
                        delta: f.delta,
                        reaction_type: f.reaction,
                        actor_id: format!("actor-{i}"),
                        occurred_at: base_time() + chrono::Duration::days(f.day),
                        received_at: ev.recorded_at,
                        ..EventRow::default()
                    })
                })
                .collect())
        }
        SNAPSHOT => {
            let s: Snap = serde_json::from_slice(&ev.data).map_err(|e| e.to_string())?;
            Ok(vec![SinkRow::Snapshot(SnapshotRow {
                platform_post_id: format!("pp-{}", s.post),
                post_id: s.post,
                platform: s.platform,
                account_id: "a1".into(),
                user_id: "u1".into(),
                taken_at: base_time() + chrono::Duration::minutes(s.minute),
                likes: Some(s.likes),
                comments: Some(s.likes / 2),
                shares: Some(1),
                views: s.views,
                impressions: None,
                reaction_types: vec!["like".into(), "love".into()],
                reaction_counts: vec![s.likes - 1, 1],
                source: "sync".into(),
                ..SnapshotRow::default()
            })])
        }
        POST => {
            let post: String = serde_json::from_slice(&ev.data).map_err(|e| e.to_string())?;
            Ok(vec![SinkRow::Post(PostRow {
                platform_post_id: format!("pp-{post}"),
                post_id: post,
                user_id: "u1".into(),
                account_id: "a1".into(),
                platform: "facebook".into(),
                published_at: base_time(),
                ..PostRow::default()
            })])
        }
        UNDECODABLE => Err("this event cannot be decoded".into()),
        _ => Ok(vec![]),
    })
}

/// Net totals per (UTC day, post), as post_engagement_daily should hold them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
struct Totals {
    likes: i64,
    reactions: i64,
    comments: i64,
    shares: i64,
    mentions: i64,
    follows: i64,
    facts: u64,
}

/// What the test appended, folded the way the analytics tables must fold it.
#[derive(Debug, Default, Clone)]
struct Model {
    daily: BTreeMap<(String, String), Totals>,
    facts: u64,
    /// post → (minute, likes, views) of the latest snapshot.
    latest: BTreeMap<String, (i64, i64, Option<i64>)>,
    posts: BTreeMap<String, ()>,
}

impl Model {
    fn add_facts(&mut self, facts: &[Fact]) {
        for f in facts {
            let day = (base_time() + chrono::Duration::days(f.day))
                .format("%Y-%m-%d")
                .to_string();
            let t = self.daily.entry((day, f.post.clone())).or_default();
            let d = f.delta as i64;
            match f.kind.as_str() {
                "like" => t.likes += d,
                "reaction" => {
                    t.likes += d;
                    t.reactions += d
                }
                "comment" | "reply" => t.comments += d,
                "share" | "repost" | "quote" => t.shares += d,
                "mention" => t.mentions += d,
                "follow" => t.follows += d,
                _ => unreachable!(),
            }
            t.facts += 1;
            self.facts += 1;
        }
    }

    fn add_snapshot(&mut self, s: &Snap) {
        let e = self.latest.entry(s.post.clone()).or_insert((i64::MIN, 0, None));
        if s.minute >= e.0 {
            *e = (s.minute, s.likes, s.views);
        }
    }
}

/// Deterministic pseudo-random numbers (no dependency, same stream every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Appends synthetic events (engagement, snapshots, posts, noise, one undecodable) and folds
/// them into the model.
struct Producer {
    store: Arc<dyn EventStore>,
    rng: Lcg,
    model: Model,
    minute: i64,
    appended: u64,
}

impl Producer {
    fn new(store: Arc<dyn EventStore>, seed: u64) -> Producer {
        Producer {
            store,
            rng: Lcg(seed),
            model: Model::default(),
            minute: 0,
            appended: 0,
        }
    }

    async fn append(&mut self, event_type: &str, data: Vec<u8>) -> Position {
        self.appended += 1;
        let ev = NewEvent {
            id: uuid::Uuid::new_v4(),
            event_type: event_type.to_string(),
            data,
            metadata: Metadata::now(),
        };
        let stream = format!("test-{}", self.rng.below(8));
        self.store
            .append(&stream, ExpectedVersion::Any, vec![ev])
            .await
            .unwrap()
            .position
    }

    fn random_facts(&mut self) -> Vec<Fact> {
        let n = 1 + self.rng.below(4);
        (0..n)
            .map(|_| {
                let kind = KINDS[self.rng.below(KINDS.len() as u64) as usize];
                let delta = match self.rng.below(10) {
                    0 | 1 => -1,
                    2 => 0,
                    _ => 1,
                };
                let platform = ["facebook", "instagram", "x"][self.rng.below(3) as usize];
                Fact {
                    post: format!("p{}", self.rng.below(5)),
                    platform: platform.into(),
                    account: format!("a{}", self.rng.below(2)),
                    kind: kind.into(),
                    delta,
                    reaction: if kind == "reaction" {
                        ["like", "love", "haha"][self.rng.below(3) as usize].into()
                    } else {
                        String::new()
                    },
                    day: self.rng.below(3) as i64,
                }
            })
            .collect()
    }

    /// Appends one random event; returns its position.
    async fn step(&mut self) -> Position {
        match self.rng.below(10) {
            0 => {
                self.minute += 1;
                let post = format!("p{}", self.rng.below(5));
                let platform = if post == "p0" { "facebook" } else { "x" };
                let s = Snap {
                    views: (platform == "x").then_some(self.minute * 10),
                    post,
                    platform: platform.into(),
                    minute: self.minute,
                    likes: 1 + self.minute,
                };
                self.model.add_snapshot(&s);
                self.append(SNAPSHOT, serde_json::to_vec(&s).unwrap()).await
            }
            1 => {
                let post = format!("p{}", self.rng.below(5));
                self.model.posts.insert(post.clone(), ());
                self.append(POST, serde_json::to_vec(&post).unwrap()).await
            }
            2 => self.append(NOISE, b"{}".to_vec()).await,
            _ => {
                let facts = self.random_facts();
                self.model.add_facts(&facts);
                self.append(FACTS, serde_json::to_vec(&facts).unwrap()).await
            }
        }
    }

    async fn steps(&mut self, n: usize) -> Position {
        let mut last = Position::START;
        for _ in 0..n {
            last = self.step().await;
        }
        last
    }
}

fn open_store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    Arc::new(SqliteStore::open(dir.path().join("events.db")).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Reading the tables back.

#[derive(Debug, Deserialize)]
struct DailyRow {
    day: String,
    post_id: String,
    #[serde(flatten)]
    totals: Totals,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Count {
    n: u64,
}

async fn daily(client: &Client) -> BTreeMap<(String, String), Totals> {
    let rows: Vec<DailyRow> = client
        .select_json(
            "SELECT toString(d) AS day, p AS post_id, sum(l) AS likes, sum(r) AS reactions, sum(c) AS comments,
                    sum(s) AS shares, sum(m) AS mentions, sum(f) AS follows, sum(n) AS facts
             FROM (SELECT day AS d, post_id AS p, likes AS l, reactions AS r, comments AS c, shares AS s,
                          mentions AS m, follows AS f, facts AS n FROM post_engagement_daily)
             GROUP BY d, p ORDER BY d, p",
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| ((r.day, r.post_id), r.totals))
        .filter(|(_, t)| *t != Totals::default())
        .collect()
}

async fn count(client: &Client, sql: &str) -> u64 {
    client.select_json::<Count>(sql).await.unwrap()[0].n
}

#[derive(Debug, Deserialize, PartialEq, Clone)]
struct Latest {
    post_id: String,
    #[serde(with = "nikara::analytics::client::unix_seconds")]
    taken_at: DateTime<Utc>,
    likes: Option<i64>,
    views: Option<i64>,
    reaction_types: Vec<String>,
    reaction_counts: Vec<i64>,
}

/// Everything an analyst would read, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Everything {
    daily: BTreeMap<(String, String), Totals>,
    events: u64,
    distinct_events: u64,
    snapshots: u64,
    latest: Vec<Latest>,
    posts: u64,
    account_daily_likes: Vec<(String, String, i64)>,
}

async fn everything(client: &Client) -> Everything {
    #[derive(Deserialize)]
    struct AccountDay {
        day: String,
        account_id: String,
        likes: i64,
    }
    let account_days: Vec<AccountDay> = client
        .select_json(
            "SELECT toString(day) AS day, account_id, likes FROM account_engagement_daily
             WHERE platform = 'facebook' ORDER BY day, account_id",
        )
        .await
        .unwrap();
    Everything {
        daily: daily(client).await,
        events: count(client, "SELECT count() AS n FROM engagement_events").await,
        distinct_events: count(
            client,
            "SELECT uniqExact(position, item_index) AS n FROM engagement_events",
        )
        .await,
        snapshots: count(client, "SELECT count() AS n FROM engagement_snapshots").await,
        latest: client
            .select_json(
                "SELECT post_id, taken_at, likes, views, reaction_types, reaction_counts
                 FROM post_engagement_latest ORDER BY post_id",
            )
            .await
            .unwrap(),
        posts: count(client, "SELECT uniqExact(post_id) AS n FROM posts").await,
        account_daily_likes: account_days
            .into_iter()
            .map(|r| (r.day, r.account_id, r.likes))
            .collect(),
    }
}

/// Asserts the tables hold exactly what the model says: no fact lost, none counted twice.
async fn assert_exact(client: &Client, model: &Model) {
    let got = everything(client).await;
    let want: BTreeMap<_, _> = model
        .daily
        .iter()
        .filter(|(_, t)| **t != Totals::default())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(got.daily, want, "daily totals");
    assert_eq!(got.events, model.facts, "one engagement_events row per fact");
    assert_eq!(got.distinct_events, model.facts, "no (position, item_index) twice");
    let latest: BTreeMap<String, (i64, Option<i64>, Option<i64>)> = got
        .latest
        .iter()
        .map(|l| {
            let minute = (l.taken_at - base_time()).num_minutes();
            (l.post_id.clone(), (minute, l.likes, l.views))
        })
        .collect();
    let want_latest: BTreeMap<String, (i64, Option<i64>, Option<i64>)> = model
        .latest
        .iter()
        .map(|(p, (m, likes, views))| (p.clone(), (*m, Some(*likes), *views)))
        .collect();
    assert_eq!(latest, want_latest, "latest snapshot per post");
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast_options() -> SinkOptions {
    SinkOptions {
        max_batch_rows: 64,
        max_batch_delay: Duration::from_millis(100),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        migrate: true,
        monitor_interval: Duration::from_millis(100),
    }
}

// ---------------------------------------------------------------------------------------------
// Migrations.

#[tokio::test]
async fn migrations_run_and_are_idempotent() {
    let Some(db) = TestDatabase::create("migrations_run_and_are_idempotent").await else {
        return;
    };
    let first = migrate(&db.client).await.unwrap();
    assert_eq!(first.applied.len(), MIGRATIONS.len());
    assert_eq!(first.already_applied, 0);
    assert_eq!(first.database, db.name());
    let second = migrate(&db.client).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, MIGRATIONS.len());
    assert!(second.unknown.is_empty());

    #[derive(Deserialize, PartialEq, Debug)]
    struct Rec {
        version: u32,
        name: String,
    }
    let recorded: Vec<Rec> = db
        .client
        .select_json("SELECT version, name FROM schema_migrations FINAL ORDER BY version")
        .await
        .unwrap();
    let want: Vec<Rec> = MIGRATIONS
        .iter()
        .map(|m| Rec {
            version: m.version,
            name: m.name.to_string(),
        })
        .collect();
    assert_eq!(recorded, want);

    #[derive(Deserialize)]
    struct Table {
        name: String,
    }
    let tables: Vec<String> = db
        .client
        .select_json::<Table>(&format!(
            "SELECT name FROM system.tables WHERE database = '{}' ORDER BY name",
            db.name()
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    for t in [
        "account_engagement_daily",
        "engagement_events",
        "engagement_snapshots",
        "post_engagement_daily",
        "post_engagement_daily_mv",
        "post_engagement_latest",
        "post_engagement_totals",
        "posts",
        "schema_migrations",
        "sink_checkpoints",
    ] {
        assert!(tables.contains(&t.to_string()), "{t} missing from {tables:?}");
    }
}

#[tokio::test]
async fn edited_migrations_are_refused_and_newer_ones_reported() {
    let Some(db) = TestDatabase::create("edited_migrations_are_refused_and_newer_ones_reported").await else {
        return;
    };
    migrate(&db.client).await.unwrap();
    db.client
        .query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (999, 'from_the_future', 'x', now())")
        .await
        .unwrap();
    let report = migrate(&db.client).await.unwrap();
    assert_eq!(report.unknown, vec![999]);

    db.client.query("TRUNCATE TABLE schema_migrations").await.unwrap();
    db.client
        .query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (1, 'create_engagement_events', 'edited', now())")
        .await
        .unwrap();
    match migrate(&db.client).await {
        Err(e @ MigrateError::Modified { version: 1, .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("forward-only"), "{e}");
        }
        other => panic!("expected Modified, got {other:?}"),
    }
}

#[tokio::test]
async fn nikara_migrate_creates_the_database_and_is_idempotent() {
    let Some(db) = TestDatabase::create("nikara_migrate_creates_the_database_and_is_idempotent").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_nikara"))
            .arg("migrate")
            .current_dir(dir.path())
            .env("NIKARA_DATA_DIR", dir.path().join("data"))
            .env("NIKARA_CLICKHOUSE_URL", db.config.url.as_str())
            .env("NIKARA_CLICKHOUSE_DATABASE", db.name())
            .output()
            .unwrap()
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.contains(&format!("applied {} migration(s), 0 already applied", MIGRATIONS.len())),
        "{out}"
    );
    assert!(out.contains("0001_create_engagement_events"), "{out}");
    let second = run();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains(&format!("applied 0 migration(s), {} already applied", MIGRATIONS.len())),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// The client.

#[tokio::test]
async fn client_detects_the_version_and_types_errors() {
    let Some(db) = TestDatabase::create("client_detects_the_version_and_types_errors").await else {
        return;
    };
    let v = db.client.server_version().await.unwrap();
    println!("ClickHouse server version {v} (legacy: {})", v.is_legacy());
    assert!(v.major >= 18, "{v}");
    db.client.ping().await.unwrap();

    // The database does not exist until migrations create it.
    let e = db.client.query("SELECT 1").await.unwrap_err();
    assert_eq!(e.code(), Some(81), "{e}");
    migrate(&db.client).await.unwrap();

    let e = db.client.query("SELEC 1").await.unwrap_err();
    assert!(matches!(e, ClickHouseError::Server { code: Some(62), .. }), "{e:?}");
    assert!(!e.is_transient());
    assert!(e.to_string().contains("Syntax error"), "{e}");

    let e = db.client.query("SELECT * FROM no_such_table").await.unwrap_err();
    assert_eq!(e.code(), Some(60), "{e}");
    assert!(!e.is_transient());

    // A row that does not fit is the server's complaint, and permanent.
    let e = db
        .client
        .insert_json_each_row("posts", [serde_json::json!({"position": "not a number"})])
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e:?}");

    // 64-bit integers come back as numbers, exactly.
    #[derive(Deserialize)]
    struct Big {
        v: u64,
        w: i64,
    }
    let big: Vec<Big> = db
        .client
        .select_json("SELECT toUInt64(18446744073709551615) AS v, toInt64(-9223372036854775807) AS w")
        .await
        .unwrap();
    assert_eq!((big[0].v, big[0].w), (u64::MAX, -9223372036854775807));

    // Inserts under a chosen query id, and whether one is still running.
    let id = format!("nikara-test-{}", uuid::Uuid::new_v4().simple());
    let n = db
        .client
        .insert_json_each_row_as(
            "sink_checkpoints",
            [serde_json::json!({"sink": "t", "position": 1})],
            Some(&id),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(!db.client.is_running(&id).await.unwrap());

    // Nobody listening: transient.
    let mut down = db.config.clone();
    down.url = url::Url::parse("http://127.0.0.1:1").unwrap();
    let e = Client::new(&down).unwrap().query("SELECT 1").await.unwrap_err();
    assert!(matches!(e, ClickHouseError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());

    // Authentication through X-ClickHouse-User / X-ClickHouse-Key (the test server has a user
    // `nikara` with password `nikara-test`).
    let wrong = Client::new(&db.config_as("nikara", "wrong-password")).unwrap();
    let e = wrong.query("SELECT 1").await.unwrap_err();
    assert!(!e.is_transient(), "{e:?}");
    assert!(!e.to_string().contains("wrong-password"), "{e}");
    if e.code() == Some(192) {
        println!(
            "(the server at {} has no user `nikara`; skipping the password check)",
            db.config.url
        );
    } else {
        assert!(matches!(e.code(), Some(193) | Some(516)), "{e:?}");
        let right = Client::new(&db.config_as("nikara", "nikara-test")).unwrap();
        assert_eq!(right.query("SELECT 1").await.unwrap().trim(), "1");
        assert!(!format!("{right:?}").contains("nikara-test"));
    }
}

// ---------------------------------------------------------------------------------------------
// The sink.

#[tokio::test]
async fn sink_totals_are_exact_across_duplicates_restarts_and_cut_short_writes() {
    let Some(db) = TestDatabase::create("sink_totals_are_exact_across_duplicates_restarts_and_cut_short_writes").await
    else {
        return;
    };
    migrate(&db.client).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut p = Producer::new(store.clone(), 7);
    p.steps(300).await;
    p.append(UNDECODABLE, b"{}".to_vec()).await;
    let head = p.steps(100).await;

    let sink = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    assert_eq!(sink.catch_up(&store).await.unwrap(), head);
    assert_exact(&db.client, &p.model).await;
    let st = sink.status();
    assert_eq!(st.position, head.0);
    assert!(st.caught_up && st.connected);
    assert!(st.rows_written > 0);

    // The same instance again: nothing new.
    sink.catch_up(&store).await.unwrap();
    assert_exact(&db.client, &p.model).await;

    // A new process (fresh instance, state from ClickHouse only): nothing written twice.
    let again = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    again.catch_up(&store).await.unwrap();
    assert_eq!(again.status().rows_written, 0);
    assert_exact(&db.client, &p.model).await;

    // A crash after the data and before the checkpoint: the whole log is delivered again.
    db.client.query("TRUNCATE TABLE sink_checkpoints").await.unwrap();
    let replayed = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    replayed.catch_up(&store).await.unwrap();
    assert_eq!(replayed.status().rows_written, 0, "replayed rows must all be skipped");
    assert_exact(&db.client, &p.model).await;

    // More events, then a fresh instance: exactly the new ones are added.
    p.steps(150).await;
    let later = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    later.catch_up(&store).await.unwrap();
    assert_exact(&db.client, &p.model).await;

    // An insert cut short: only the first two facts of a four-fact delivery reached ClickHouse
    // (and the materialized view) before the sink died.
    let facts: Vec<Fact> = (0..4)
        .map(|i| Fact {
            post: "p1".into(),
            platform: "facebook".into(),
            account: "a0".into(),
            kind: "like".into(),
            delta: 1,
            reaction: String::new(),
            day: i % 2,
        })
        .collect();
    p.model.add_facts(&facts);
    let pos = p.append(FACTS, serde_json::to_vec(&facts).unwrap()).await;
    let ev = store.read_all(Position(pos.0 - 1), 1).await.unwrap().remove(0);
    assert_eq!(ev.position, pos);
    let prefix: Vec<EventRow> = decoder()(&ev)
        .unwrap()
        .into_iter()
        .take(2)
        .map(|r| match r {
            SinkRow::Event(mut e) => {
                e.position = pos.0;
                e
            }
            other => panic!("{other:?}"),
        })
        .collect();
    db.client
        .insert_json_each_row("engagement_events", &prefix)
        .await
        .unwrap();
    let resumed = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    resumed.catch_up(&store).await.unwrap();
    assert_eq!(resumed.status().rows_written, 2, "only the missing half is written");
    assert_exact(&db.client, &p.model).await;
}

#[tokio::test]
async fn replaying_the_whole_log_gives_identical_totals() {
    let Some(db) = TestDatabase::create("replaying_the_whole_log_gives_identical_totals").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut p = Producer::new(store.clone(), 11);
    p.steps(500).await;
    let sink = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    sink.rebuild(&store).await.unwrap(); // on an empty database: migrates, then fills
    assert_exact(&db.client, &p.model).await;
    let before = everything(&db.client).await;
    assert!(before.events > 0 && before.snapshots > 0 && before.posts > 0);
    assert!(!before.account_daily_likes.is_empty());

    // Rebuild: truncate everything and replay the log from the start.
    let head = store.head().await.unwrap();
    assert_eq!(sink.rebuild(&store).await.unwrap(), head);
    assert_eq!(everything(&db.client).await, before);

    // Replay over the existing rows, without truncating (a lost checkpoint): still identical.
    db.client.query("TRUNCATE TABLE sink_checkpoints").await.unwrap();
    Sink::new(db.client.clone(), decoder())
        .with_options(fast_options())
        .catch_up(&store)
        .await
        .unwrap();
    assert_eq!(everything(&db.client).await, before);
}

#[tokio::test]
async fn live_sink_follows_the_log_within_the_batch_delay() {
    let Some(db) = TestDatabase::create("live_sink_follows_the_log_within_the_batch_delay").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut p = Producer::new(store.clone(), 3);
    p.steps(200).await;

    let sink = Sink::new(db.client.clone(), decoder()).with_options(SinkOptions {
        max_batch_delay: Duration::from_millis(200),
        ..fast_options()
    });
    let handle = sink.handle();
    let shutdown = CancellationToken::new();
    let task = sink.spawn(store.clone(), shutdown.clone());

    // Catch-up of the backlog, then live events.
    let head = store.head().await.unwrap();
    wait_until("catch-up", Duration::from_secs(20), || {
        let h = handle.clone();
        async move { h.status().position >= head.0 }
    })
    .await;
    for _ in 0..20 {
        p.steps(10).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One more fact, timed from append to visible.
    let facts = vec![Fact {
        post: "p9".into(),
        platform: "x".into(),
        account: "a1".into(),
        kind: "repost".into(),
        delta: 1,
        reaction: String::new(),
        day: 0,
    }];
    p.model.add_facts(&facts);
    let appended = Instant::now();
    p.append(FACTS, serde_json::to_vec(&facts).unwrap()).await;
    let client = db.client.clone();
    wait_until("the last fact to be visible", Duration::from_secs(10), || {
        let c = client.clone();
        async move { count(&c, "SELECT count() AS n FROM engagement_events WHERE post_id = 'p9'").await == 1 }
    })
    .await;
    let visible_after = appended.elapsed();
    assert!(
        visible_after < Duration::from_secs(2),
        "visible after {visible_after:?}"
    );

    let head = store.head().await.unwrap();
    wait_until("the sink to reach the head", Duration::from_secs(10), || {
        let h = handle.clone();
        async move { h.status().position >= head.0 }
    })
    .await;
    assert_exact(&db.client, &p.model).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = handle.status();
    assert!(st.connected && st.caught_up, "{st:?}");
    assert!(st.lag_seconds < 1.0, "{st:?}");
    handle.ready(Duration::from_secs(5)).unwrap();

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn clickhouse_stopped_mid_stream_and_restarted_gives_exact_totals() {
    if ch::test_url("clickhouse_stopped_mid_stream_and_restarted_gives_exact_totals").is_none() {
        return;
    }
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.2}s] {what}", t0.elapsed().as_secs_f64());
    // A server of this test's own: the shared one keeps serving the other tests.
    let server = PrivateServer::start();
    let db = TestDatabase::on(server.url());
    phase("server started");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);

    let sink = Sink::new(db.client.clone(), decoder()).with_options(fast_options());
    let handle = sink.handle();
    let shutdown = CancellationToken::new();
    let task = sink.spawn(store.clone(), shutdown.clone());

    // Events keep coming the whole time.
    let producing = CancellationToken::new();
    let producer = {
        let store = store.clone();
        let producing = producing.clone();
        tokio::spawn(async move {
            let mut p = Producer::new(store, 5);
            while !producing.is_cancelled() {
                p.step().await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            p
        })
    };

    let st = |h: &nikara::analytics::SinkHandle| h.status();
    wait_until("first rows", Duration::from_secs(20), || {
        let h = handle.clone();
        async move { st(&h).rows_written > 0 }
    })
    .await;

    // A crash (SIGKILL) mid-stream.
    phase("first rows written");
    server.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phase("killed");
    let down = handle.status();
    assert!(!down.connected, "{down:?}");
    assert!(down.last_error.is_some(), "{down:?}");
    assert!(
        down.lag_seconds > 0.5,
        "the lag shows while ClickHouse is down: {down:?}"
    );
    assert!(handle.ready(Duration::from_secs(60)).is_err());
    server.restart();
    tokio::time::sleep(Duration::from_millis(800)).await;
    phase("restarted after the kill");

    // And a graceful stop, too.
    server.stop();
    phase("stopped gracefully");
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;

    producing.cancel();
    phase("restarted after the stop");
    let p = producer.await.unwrap();
    let head = store.head().await.unwrap();
    assert!(p.appended > 300, "{} events appended", p.appended);
    wait_until(
        "the sink to catch up after the restarts",
        Duration::from_secs(30),
        || {
            let h = handle.clone();
            async move { st(&h).position >= head.0 }
        },
    )
    .await;
    assert_exact(&db.client, &p.model).await;
    phase("caught up");
    let after = handle.status();
    assert!(after.connected, "{after:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    drop(db);
    drop(server);
}
