//! The `nikara` command line. Parsing and process concerns only; everything else is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nikara::config::{Config, parse_duration_str};
use nikara::crypto::KeyRing;
use nikara::domain::ids::UserId;
use tokio_util::sync::CancellationToken;

/// nikara: connect social accounts, keep their tokens alive, publish scheduled posts exactly once,
/// and turn engagement into analytics.
///
/// With no command, `serve` runs. With no configuration at all, it uses the embedded store under
/// ./data and generates development secrets there. Every setting is a NIKARA_* environment
/// variable or a key in nikara.toml (see README.md, "Configuration").
#[derive(Debug, Parser)]
#[command(name = "nikara", version, about, long_about)]
struct Cli {
    /// Configuration file (TOML). Default: ./nikara.toml when it exists.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub: HTTP API, webhooks, dashboard, projections and workers (the default).
    Serve,
    /// Apply ClickHouse migrations (creating the database when missing), then exit.
    Migrate,
    /// Print the OpenAPI document to stdout. Needs no configuration.
    Openapi,
    /// Mint a development bearer token signed with the configured (or generated) JWT secret.
    /// Prints only the token.
    Token {
        /// User id (the JWT `sub`).
        #[arg(long)]
        user: String,
        /// Email claim (becomes the notification address unless the user set one).
        #[arg(long)]
        email: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Manage the token encryption key ring.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Webhook tools.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random key as `kid:base64key`, ready to prepend to NIKARA_ENCRYPTION_KEYS.
    Generate {
        /// Key id (default: k + today's date).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Re-encrypt every live token under the primary key (by appending events).
    Rotate,
    /// Count live tokens per key id; remove a key only when it counts zero.
    Status,
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Drop and replay read models from the event log (all, or the one named), with progress.
    /// Stop the hub first: the replay writes the same read-model tables.
    Rebuild {
        /// Projection name (e.g. `activity`); all when omitted.
        name: Option<String>,
    },
    /// List projections with their checkpoints.
    List,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Re-send the signed sample deliveries in DIR to a running hub.
    Replay {
        dir: PathBuf,
        /// Base URL of the hub.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        to: String,
    },
}

fn init_tracing(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `openapi` must work without (and regardless of) configuration.
    if let Some(Command::Openapi) = cli.command {
        println!("{}", nikara::api::openapi_json());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Keys {
        command: KeysCommand::Generate { kid },
    }) = &cli.command
    {
        let kid = kid
            .clone()
            .unwrap_or_else(|| format!("k{}", chrono::Utc::now().format("%Y%m%d")));
        let entry = KeyRing::generate_entry(&kid);
        if let Err(e) = KeyRing::parse(&entry) {
            eprintln!("error: --kid: {e}");
            return ExitCode::from(2);
        }
        println!("{entry}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Platform settings are validated at boot too (a bad override URL, an id without a secret).
    if let Err(e) = nikara::oauth::Registry::from_config(&config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    init_tracing(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Openapi => Ok(()),
        Command::Migrate => {
            match &config.clickhouse {
                None => println!(
                    "ClickHouse is not configured (NIKARA_CLICKHOUSE_URL); the embedded read models need no migration."
                ),
                Some(ch) => {
                    let (client, report) = nikara::analytics::connect_and_migrate(ch)
                        .await
                        .with_context(|| format!("ClickHouse migrations on database `{}`", ch.database))?;
                    println!(
                        "ClickHouse {} at {}, database `{}`: applied {} migration(s), {} already applied",
                        report.server_version,
                        client.url(),
                        report.database,
                        report.applied.len(),
                        report.already_applied
                    );
                    for (version, name) in &report.applied {
                        println!("  applied {version:04}_{name}");
                    }
                    if !report.unknown.is_empty() {
                        println!(
                            "  warning: the database also records migrations {:?}, unknown to this nikara (a newer version applied them)",
                            report.unknown
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Token { user, email, ttl } => {
            let user = UserId::parse(&user).context("--user")?;
            let ttl =
                parse_duration_str(&ttl).with_context(|| format!("--ttl: `{ttl}` is not a duration (e.g. 30m, 1h)"))?;
            nikara::startup::resolve_dev_secrets(&mut config)?;
            let secret = config.jwt_secret.clone().context("no JWT secret")?;
            let keys = nikara::auth::JwtKeys::new(secret, config.jwt_audience.clone());
            println!("{}", keys.mint(&user, email.as_deref(), ttl)?);
            Ok(())
        }
        Command::Keys { command } => match command {
            KeysCommand::Generate { .. } => Ok(()),
            KeysCommand::Status => keys_status(config).await,
            KeysCommand::Rotate => keys_rotate(config).await,
        },
        Command::Projections { command } => projections(command, config).await,
        Command::Webhooks {
            command: WebhooksCommand::Replay { dir, to },
        } => replay_webhooks(&dir, &to).await,
    }
}

/// Re-sends signed sample deliveries (`NAME.json` + `NAME.headers.json`) exactly as stored: the
/// signatures are over the file bytes, so the hub must run with the samples' secret.
async fn replay_webhooks(dir: &std::path::Path, to: &str) -> anyhow::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.to_string_lossy().ends_with(".headers.json"))
        .collect();
    names.sort();
    let client = reqwest::Client::new();
    let (mut sent, mut failed) = (0, 0);
    for body_path in names {
        let headers_path = body_path.with_extension("headers.json");
        let Ok(headers_text) = std::fs::read_to_string(&headers_path) else {
            continue; // not a delivery (e.g. a CRC test vector)
        };
        let headers: std::collections::BTreeMap<String, String> = serde_json::from_str(&headers_text)
            .with_context(|| format!("{} is not a JSON object of strings", headers_path.display()))?;
        let platform = if headers.contains_key("x-twitter-webhooks-signature") {
            "x"
        } else {
            "meta"
        };
        let body = std::fs::read(&body_path)?;
        let mut req = client
            .post(format!("{}/webhooks/{platform}", to.trim_end_matches('/')))
            .body(body);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let name = body_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                sent += 1;
                println!("{:<40} {}", name, r.status());
            }
            Ok(r) => {
                failed += 1;
                let status = r.status();
                println!("{:<40} {} {}", name, status, r.text().await.unwrap_or_default());
            }
            Err(e) => {
                failed += 1;
                println!("{name:<40} error: {e}");
            }
        }
    }
    println!("{sent} delivered, {failed} refused");
    if failed > 0 {
        anyhow::bail!("{failed} deliveries were refused");
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("NIKARA_LISTEN: cannot listen on {}", config.listen))?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        signal.cancel();
    });
    nikara::run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens store and read models and brings the accounts read model up to date.
async fn open_accounts(
    config: &mut Config,
) -> anyhow::Result<(
    std::sync::Arc<dyn nikara::store::EventStore>,
    nikara::projections::ReadModels,
    KeyRing,
)> {
    nikara::startup::resolve_dev_secrets(config)?;
    let ring = config.encryption_keys.clone().context("no key ring")?;
    let store = nikara::startup::open_store(config).await?;
    let models = nikara::startup::open_read_models(config)?;
    let accounts: std::sync::Arc<dyn nikara::projections::Projection> =
        std::sync::Arc::new(nikara::projections::accounts::Accounts);
    nikara::projections::catch_up(&store, &models, &[accounts]).await?;
    Ok((store, models, ring))
}

async fn print_status(models: &nikara::projections::ReadModels, ring: &KeyRing) -> anyhow::Result<()> {
    let live = models.read(nikara::projections::accounts::live_tokens_per_kid).await?;
    println!("{:<24} {:>12}  note", "key id", "live tokens");
    for kid in ring.kids() {
        let n = live.iter().find(|(k, _)| k == kid).map_or(0, |(_, n)| *n);
        let note = if kid == ring.primary_kid() {
            "primary"
        } else if n == 0 {
            "safe to remove"
        } else {
            "run `nikara keys rotate`"
        };
        println!("{kid:<24} {n:>12}  {note}");
    }
    for (kid, n) in live.iter().filter(|(k, _)| !ring.kids().contains(&k.as_str())) {
        println!("{kid:<24} {n:>12}  MISSING from NIKARA_ENCRYPTION_KEYS: add it back");
    }
    Ok(())
}

async fn keys_status(mut config: Config) -> anyhow::Result<()> {
    let (store, models, ring) = open_accounts(&mut config).await?;
    print_status(&models, &ring).await?;
    store.shutdown().await;
    Ok(())
}

async fn keys_rotate(mut config: Config) -> anyhow::Result<()> {
    let (store, models, ring) = open_accounts(&mut config).await?;
    let primary = ring.primary_kid().to_string();
    let todo = {
        let primary = primary.clone();
        models
            .read(move |c| nikara::projections::accounts::needing_rotation(c, &primary))
            .await?
    };
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} re-encrypting [{bar:40}] {pos}/{len} accounts  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cipher = nikara::crypto::TokenCipher::new(ring.clone());
    let mut rotated = 0;
    for id in &todo {
        if nikara::keys::rotate_account(store.as_ref(), &cipher, id).await? {
            rotated += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let accounts: std::sync::Arc<dyn nikara::projections::Projection> =
        std::sync::Arc::new(nikara::projections::accounts::Accounts);
    nikara::projections::catch_up(&store, &models, &[accounts]).await?;
    println!("re-encrypted the tokens of {rotated} account(s) under key `{primary}`");
    print_status(&models, &ring).await?;
    store.shutdown().await;
    Ok(())
}

async fn projections(command: ProjectionsCommand, config: Config) -> anyhow::Result<()> {
    let store = nikara::startup::open_store(&config).await?;
    let models = nikara::startup::open_read_models(&config)?;
    match command {
        ProjectionsCommand::List => {
            for p in nikara::projections::all_with(config.capture_text()) {
                let cp = models.checkpoint(p.name())?;
                println!(
                    "{:<16} v{:<3} checkpoint {}",
                    p.name(),
                    p.version(),
                    cp.map_or("none".to_string(), |c| c.to_string())
                );
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let selected = nikara::projections::select_with(name.as_deref(), config.capture_text())?;
            let head = store.head().await?;
            let bar = indicatif::ProgressBar::new(head.0.max(1));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} rebuilding [{bar:40}] {pos}/{len} events  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            let applied = nikara::projections::rebuild(store.clone(), &models, &selected, |seen, _| {
                bar.set_position(seen);
            })
            .await?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let names: Vec<_> = selected.iter().map(|p| p.name()).collect();
            println!(
                "rebuilt {} from {applied} events in {secs:.2}s ({:.0} events/s)",
                names.join(", "),
                applied as f64 / secs
            );
        }
    }
    store.shutdown().await;
    Ok(())
}
