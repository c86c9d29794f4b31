//! `http-baseline`: what the hub's HTTP stack (routing, middleware, metrics, OpenAPI layer) costs
//! over a bare poem server. Both run in this process on 127.0.0.1:0; the bare one answers `GET /`
//! with `ok`, the hub answers `GET /healthz`. They are driven one after the other (bare first),
//! with the same number of keep-alive connections for the same time. With `--target`, only
//! `{target}/healthz` is driven.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nikara::config::Config;
use poem::listener::TcpAcceptor;
use poem::{Route, Server, get, handler};
use tokio::sync::oneshot;

use crate::http::{self, Target};
use crate::report::{Report, Run, round};

/// Not measured: lets connections open and caches warm before each measured run.
const WARMUP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub concurrency: usize,
    pub target: Option<String>,
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    if let Some(url) = &opts.target {
        let target = Target::from_url(url).await?;
        let hub = measure("target GET /healthz", &target, "/healthz", opts).await;
        return Report::new("http-baseline", vec![hub], 0).map(|r| r.with("target", url.as_str()));
    }

    let dir = tempfile::tempdir()?;
    let hub = nikara::start(Config::for_tests(dir.path()))
        .await
        .context("cannot start the hub")?;
    let bare = BareServer::start().await?;
    eprintln!("http-baseline: bare poem on {}, hub on {}", bare.addr, hub.addr);

    let bare_run = measure("bare poem GET /", &Target::local(bare.addr), "/", opts).await;
    let hub_run = measure("hub GET /healthz", &Target::local(hub.addr), "/healthz", opts).await;

    bare.stop().await;
    hub.stop().await.context("the hub did not stop cleanly")?;

    let overhead = ratio(bare_run.ops_per_s, hub_run.ops_per_s);
    let p99 = ratio(hub_run.p99_ms, bare_run.p99_ms);
    Report::new("http-baseline", vec![bare_run, hub_run], 1).map(|r| {
        r.with("overhead_ratio", round(overhead, 3))
            .with("p99_ratio", round(p99, 3))
            .with("concurrency", opts.concurrency as u64)
            .with("note", "client and servers share the same cores")
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Warms up, then drives `GET {path}` and turns the outcome into a row.
pub(crate) async fn measure(name: &str, target: &Target, path: &str, opts: &Options) -> Run {
    let factory: http::RequestFactory = {
        let target = target.clone();
        let path = path.to_string();
        Arc::new(move |_, _| target.get(&path))
    };
    eprintln!(
        "http-baseline: {name}: warm-up {WARMUP:?}, then {:?} x {} connections …",
        opts.duration, opts.concurrency
    );
    let _ = http::drive(target, opts.concurrency, WARMUP, factory.clone()).await;
    let out = http::drive(target, opts.concurrency, opts.duration, factory).await;
    if let Some(e) = &out.first_error {
        eprintln!("http-baseline: {name}: {} errors, first: {e}", out.errors);
    }
    Run::new(name, out.elapsed, out.ok, out.samples.summary())
        .errors(out.errors)
        .with("connections", opts.concurrency as u64)
}

#[handler]
fn hello() -> &'static str {
    "ok"
}

/// A hello-world poem server: the floor any poem app can reach on this machine.
pub(crate) struct BareServer {
    pub(crate) addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BareServer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Route::new().at("/", get(hello));
        let handle = tokio::spawn(Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app,
            async move {
                let _ = stopped.await;
            },
            Some(Duration::from_secs(2)),
        ));
        Ok(BareServer { addr, stop, handle })
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
    }
}
