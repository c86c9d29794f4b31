//! nikara load tests. See BENCHMARKS.md for the figures and how they were taken.
//!
//! `cargo run --release -p loadtest -- SCENARIO [--duration 20s] [--concurrency 64]
//! [--target URL] [--json FILE]`
//!
//! Without `--target` a scenario starts what it needs in this process (on 127.0.0.1:0, with a
//! temporary data dir; `publish` and `lag` also a fake platform); nothing else is contacted. Every
//! run is bounded by `--duration` (or, for `replay`, by `--events`; for `publish`, by `--posts` and
//! `--timeout`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod http;
mod procstat;
mod report;
mod scenarios;

use scenarios::world::{CreateVia, EngineSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Embedded store appends: 1 appender, N concurrent appenders, batched appends.
    Append,
    /// Fill a log, then read `$all` and rebuild the activity projection over it.
    Replay,
    /// A bare poem hello-world beside the hub's `GET /healthz`.
    HttpBaseline,
    /// Signed Meta webhook deliveries (not yet available).
    Webhooks,
    /// Posts due at once against a zero-latency fake platform: dispatch rate, duplicates.
    Publish,
    /// Steady rate of posts due now against a zero-latency fake platform: scheduling lag.
    Lag,
}

impl Scenario {
    /// Default `--duration` when none is given.
    fn default_duration(self) -> Duration {
        match self {
            Scenario::Append | Scenario::HttpBaseline => Duration::from_secs(10),
            _ => Duration::from_secs(20),
        }
    }

    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

#[derive(Debug, Parser)]
#[command(name = "loadtest", about = "Load tests for nikara", version)]
struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    scenario: Scenario,
    /// How long each measured (sub-)run lasts: 500ms, 10s, 1m. Default 10s for append and
    /// http-baseline, 20s otherwise.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Concurrent clients (HTTP connections, appenders for single-event appends, or post creators
    /// in `publish`).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// append: concurrent appenders for the batched sub-run.
    #[arg(long, default_value_t = 8)]
    batch_concurrency: usize,
    /// append: events per call in the batched sub-run.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// append: how event ids are made (v7: time-ordered, as the domain does; v4: random).
    #[arg(long, value_enum, default_value_t = scenarios::append::IdKind::V7)]
    event_ids: scenarios::append::IdKind,
    /// replay: events to append, then replay.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// publish: posts due at once.
    #[arg(long, default_value_t = 10_000)]
    posts: usize,
    /// lag: posts per second.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// publish, lag: engine settings to measure, one run each, as GLOBAL:FACEBOOK publish
    /// concurrency (`publish_concurrency`:`publish_concurrency_facebook`), comma-separated.
    /// Default: publish 32:32,64:50,128:128,256:256; lag 64:50 (the hub's defaults).
    #[arg(long, value_delimiter = ',', value_parser = parse_engine)]
    engine: Vec<(usize, usize)>,
    /// publish, lag: the hub's `scheduler_tick`.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    tick: Duration,
    /// publish, lag: how posts are scheduled (library: `app.execute` in-process; api: `POST
    /// /api/posts`). Default: publish library, lag api.
    #[arg(long, value_enum)]
    create: Option<CreateVia>,
    /// publish: how far in the future the posts are due (all must be created before).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    lead: Duration,
    /// publish, lag: how long to wait for every post to reach the platform.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    timeout: Duration,
    /// Drive a running hub at this URL (http://host:port) instead of starting one.
    #[arg(long)]
    target: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    nikara::config::parse_duration_str(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 10s, 1m)"))
}

fn parse_engine(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not GLOBAL:FACEBOOK (e.g. 64:50)");
    let (g, p) = s.trim().split_once(':').ok_or_else(bad)?;
    let g: usize = g.trim().parse().map_err(|_| bad())?;
    let p: usize = p.trim().parse().map_err(|_| bad())?;
    if g == 0 || p == 0 {
        return Err(format!("`{s}`: concurrencies must be at least 1"));
    }
    Ok((g, p))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.target.is_some() && matches!(cli.scenario, Scenario::Append | Scenario::Replay) {
        eprintln!(
            "scenario {} measures the embedded store in-process; --target does not apply",
            cli.scenario.name()
        );
        return ExitCode::from(2);
    }
    if cli.target.is_some() && matches!(cli.scenario, Scenario::Publish | Scenario::Lag) {
        eprintln!(
            "scenario {} needs the fake platform and runs the hub in-process; --target is not supported",
            cli.scenario.name()
        );
        return ExitCode::from(2);
    }
    if cli.posts == 0 || !(cli.rate.is_finite() && cli.rate > 0.0) {
        eprintln!("--posts must be at least 1 and --rate above 0");
        return ExitCode::from(2);
    }
    if cli.concurrency == 0 || cli.batch_concurrency == 0 || cli.batch_size == 0 || cli.events == 0 {
        eprintln!("--concurrency, --batch-concurrency, --batch-size and --events must be at least 1");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest {}: {e:#}", cli.scenario.name());
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let duration = cli.duration.unwrap_or(cli.scenario.default_duration());
    let report = match cli.scenario {
        Scenario::Append => {
            scenarios::append::run(&scenarios::append::Options {
                duration,
                concurrency: cli.concurrency,
                batch_concurrency: cli.batch_concurrency,
                batch_size: cli.batch_size,
                ids: cli.event_ids,
            })
            .await?
        }
        Scenario::Replay => scenarios::replay::run(&scenarios::replay::Options { events: cli.events }).await?,
        Scenario::HttpBaseline => {
            scenarios::http_baseline::run(&scenarios::http_baseline::Options {
                duration,
                concurrency: cli.concurrency,
                target: cli.target.clone(),
            })
            .await?
        }
        Scenario::Publish => {
            scenarios::publish::run(&scenarios::publish::Options {
                posts: cli.posts,
                settings: engine_settings(cli, &[(32, 32), (64, 50), (128, 128), (256, 256)]),
                lead: cli.lead,
                create: cli.create.unwrap_or(CreateVia::Library),
                concurrency: cli.concurrency,
                timeout: cli.timeout,
            })
            .await?
        }
        Scenario::Lag => {
            scenarios::lag::run(&scenarios::lag::Options {
                rate: cli.rate,
                duration,
                settings: engine_settings(cli, &[(64, 50)]),
                create: cli.create.unwrap_or(CreateVia::Api),
                timeout: cli.timeout,
            })
            .await?
        }
        Scenario::Webhooks => {
            scenarios::webhooks::run(&scenarios::webhooks::Options {
                duration,
                concurrency: cli.concurrency,
                probes: 50,
            })
            .await?
        }
    };
    report.print();
    if let Some(path) = &cli.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `--engine` pairs with `--tick`, or the scenario's defaults.
fn engine_settings(cli: &Cli, defaults: &[(usize, usize)]) -> Vec<EngineSettings> {
    let pairs = if cli.engine.is_empty() {
        defaults
    } else {
        &cli.engine[..]
    };
    pairs
        .iter()
        .map(|&(global, platform)| EngineSettings {
            global,
            platform,
            tick: cli.tick,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_pairs() {
        assert_eq!(parse_engine("64:50"), Ok((64, 50)));
        assert_eq!(parse_engine(" 256 : 256 "), Ok((256, 256)));
        assert!(parse_engine("0:50").is_err());
        assert!(parse_engine("64").is_err());
        assert!(parse_engine("a:b").is_err());
    }

    #[test]
    fn publish_and_lag_defaults() {
        let cli = Cli::parse_from(["loadtest", "publish"]);
        assert_eq!(cli.posts, 10_000);
        assert_eq!(cli.tick, Duration::from_millis(100));
        let settings = engine_settings(&cli, &[(64, 50)]);
        assert_eq!(settings.len(), 1);
        assert_eq!((settings[0].global, settings[0].platform), (64, 50));
        let cli = Cli::parse_from(["loadtest", "lag", "--engine", "32:32,128:64", "--tick", "1s"]);
        let settings = engine_settings(&cli, &[(64, 50)]);
        assert_eq!(
            settings
                .iter()
                .map(|s| (s.global, s.platform, s.tick))
                .collect::<Vec<_>>(),
            vec![(32, 32, Duration::from_secs(1)), (128, 64, Duration::from_secs(1))]
        );
        assert_eq!(cli.rate, 200.0);
    }
}
