//! HTTP load driver shared by the HTTP scenarios.
//!
//! `concurrency` workers, each owning one keep-alive HTTP/1.1 connection (hyper's low-level
//! client: no pool, no TLS, nothing between the worker and the socket but the HTTP codec), send
//! requests back to back until the deadline. A worker that loses its connection reconnects and
//! counts an error. Only the address of the given target is ever contacted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::report::Samples;

/// Longest a single request may take; bounds the run even if the server stalls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where requests go: a resolved socket address plus the `Host` header and base path.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as given, for the `Host` header.
    pub authority: String,
    /// Path prefix from the URL (no trailing slash), e.g. `` or `/nikara`.
    pub base_path: String,
}

impl Target {
    /// A server on this machine (`127.0.0.1:port`).
    pub fn local(addr: SocketAddr) -> Self {
        Target {
            addr,
            authority: addr.to_string(),
            base_path: String::new(),
        }
    }

    /// Parses and resolves an `http://host[:port][/base]` URL (plain HTTP only).
    pub async fn from_url(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("`{url}`: only http:// targets are supported (got {other}://)"),
            None => bail!("`{url}`: the target needs a scheme, e.g. http://127.0.0.1:3000"),
        }
        let authority = uri.authority().with_context(|| format!("`{url}` has no host"))?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to no address"))?;
        Ok(Target {
            addr,
            authority: authority.as_str().to_string(),
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// A `GET {base}{path}` request.
    pub fn get(&self, path: &str) -> Request<Full<Bytes>> {
        self.request(hyper::Method::GET, path, Bytes::new())
    }

    /// A request with a body; callers add their own headers (content type, signatures).
    pub fn request(&self, method: hyper::Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        // Origin-form URI plus Host, as HTTP/1.1 clients send it. The path is ours, so it parses.
        *req.uri_mut() = format!("{}{}", self.base_path, path)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"));
        if let Ok(host) = self.authority.parse() {
            req.headers_mut().insert(hyper::header::HOST, host);
        }
        req
    }
}

/// Builds the `seq`-th request of worker `worker`.
pub type RequestFactory = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

/// What the workers measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Non-2xx answers, timeouts, connection failures.
    pub errors: u64,
    /// Latency of the successful requests (send until the whole body is read).
    pub samples: Samples,
    /// From the first request until the last worker stopped.
    pub elapsed: Duration,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
}

/// Drives `target` with `concurrency` keep-alive connections for `duration`.
pub async fn drive(target: &Target, concurrency: usize, duration: Duration, factory: RequestFactory) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let factory = factory.clone();
            let addr = target.addr;
            tokio::spawn(worker(w, addr, deadline, factory))
        })
        .collect();
    let mut total = Outcome::default();
    for w in workers {
        match w.await {
            Ok(out) => {
                total.ok += out.ok;
                total.errors += out.errors;
                total.samples.merge(out.samples);
                if total.first_error.is_none() {
                    total.first_error = out.first_error;
                }
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

fn fail(out: &mut Outcome, msg: String) {
    out.errors += 1;
    out.first_error.get_or_insert(msg);
}

async fn worker(id: usize, addr: SocketAddr, deadline: Instant, factory: RequestFactory) -> Outcome {
    let mut out = Outcome {
        samples: Samples::with_capacity(64 * 1024),
        ..Outcome::default()
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut seq = 0u64;
    while Instant::now() < deadline {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match tokio::time::timeout_at(deadline, connect(addr)).await {
                Ok(Ok(s)) => sender.insert(s),
                Ok(Err(e)) => {
                    fail(&mut out, format!("{e:#}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(_) => break,
            },
        };
        if s.ready().await.is_err() {
            sender = None;
            fail(&mut out, "connection closed by the server".into());
            continue;
        }
        let req = factory(id, seq);
        seq += 1;
        let t = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = s.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<StatusCode, hyper::Error>(status)
        })
        .await;
        let took = t.elapsed();
        match answer {
            Ok(Ok(status)) if status.is_success() => {
                out.ok += 1;
                out.samples.record(took);
            }
            Ok(Ok(status)) => fail(&mut out, format!("HTTP {status}")),
            Ok(Err(e)) => {
                sender = None;
                fail(&mut out, format!("request failed: {e}"));
            }
            Err(_) => {
                sender = None;
                fail(&mut out, format!("no answer within {REQUEST_TIMEOUT:?}"));
            }
        }
    }
    out
}
