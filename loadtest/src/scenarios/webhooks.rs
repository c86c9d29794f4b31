//! `webhooks`: signed Meta deliveries (one change each, all different) over loopback, each answered
//! only after a durable append; beside them, in the same run, a bare poem hello-world for the HTTP
//! baseline ratio. When a ClickHouse URL is given (`NIKARA_TEST_CLICKHOUSE_URL`), the hub also feeds
//! ClickHouse and probes measure webhook → visible in ClickHouse.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes_like::Bytes;
use hmac::{Hmac, Mac};
use nikara::config::Config;
use secrecy::SecretString;
use sha2::Sha256;

use super::http_baseline::{self, BareServer};
use crate::http::{self, Target};
use crate::report::{Report, Run, round};

mod bytes_like {
    pub use hyper::body::Bytes;
}

const SECRET: &str = "loadtest-meta-app-secret-0123456789";
const PAGE: &str = "112233445566778";

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub concurrency: usize,
    /// Visibility probes sent one by one after the load (with ClickHouse).
    pub probes: usize,
}

fn signature(body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|_| unreachable!("any key"));
    m.update(body);
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// One single-change delivery; `actor` makes it unique (identical bodies are deduplicated).
fn delivery(actor: &str) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp();
    format!(
        r#"{{"object":"page","entry":[{{"id":"{PAGE}","time":{now},"changes":[{{"field":"feed","value":{{"item":"reaction","verb":"add","reaction_type":"like","post_id":"{PAGE}_9000000001","parent_id":"{PAGE}_9000000001","created_time":{now},"from":{{"id":"{actor}","name":"Load"}}}}}}]}}]}}"#
    )
    .into_bytes()
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let clickhouse = std::env::var("NIKARA_TEST_CLICKHOUSE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_tests(dir.path());
    config
        .extra
        .insert("meta_app_secret".into(), SecretString::from(SECRET.to_string()));
    let database = format!("nikara_bench_{}", uuid::Uuid::new_v4().simple());
    if let Some(url) = &clickhouse {
        config.clickhouse = Some(nikara::config::ClickHouseConfig {
            url: url::Url::parse(url).context("NIKARA_TEST_CLICKHOUSE_URL")?,
            database: database.clone(),
            user: None,
            password: None,
        });
    }
    let hub = nikara::start(config).await.context("cannot start the hub")?;
    let bare = BareServer::start().await?;
    eprintln!("webhooks: hub on {}, bare poem on {}", hub.addr, bare.addr);

    let base = http_baseline::Options {
        duration: opts.duration,
        concurrency: opts.concurrency,
        target: None,
    };
    let bare_run = http_baseline::measure("bare poem GET /", &Target::local(bare.addr), "/", &base).await;

    let target = Target::local(hub.addr);
    let factory: http::RequestFactory = {
        let target = target.clone();
        Arc::new(move |worker, seq| {
            let body = delivery(&format!("w{worker}-{seq}"));
            let sig = signature(&body);
            let mut req = target.request(hyper::Method::POST, "/webhooks/meta", Bytes::from(body));
            if let Ok(v) = hyper::header::HeaderValue::from_str(&sig) {
                req.headers_mut().insert("x-hub-signature-256", v);
            }
            req.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            req
        })
    };
    eprintln!(
        "webhooks: {:?} x {} connections of signed deliveries …",
        opts.duration, opts.concurrency
    );
    let out = http::drive(&target, opts.concurrency, opts.duration, factory).await;
    if let Some(e) = &out.first_error {
        eprintln!("webhooks: {} errors, first: {e}", out.errors);
    }
    let hook_run = Run::new(
        "hub POST /webhooks/meta (signed, durable)",
        out.elapsed,
        out.ok,
        out.samples.summary(),
    )
    .errors(out.errors);
    let stored = hub.app.store.head().await?.0;

    // Webhook → visible in ClickHouse.
    let mut visibility = Vec::new();
    if let Some(analytics) = hub.app.analytics.clone() {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while analytics.sink.status().position < stored && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 0..opts.probes {
            let actor = format!("probe-{i}");
            let body = delivery(&actor);
            let sig = signature(&body);
            let t0 = Instant::now();
            let resp = client
                .post(format!("{}/webhooks/meta", hub.url()))
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "probe refused: {}", resp.status());
            loop {
                let rows: Vec<serde_json::Value> = analytics
                    .client
                    .select_json(&format!(
                        "SELECT count() AS n FROM engagement_events WHERE actor_id = '{actor}'"
                    ))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if rows.first().and_then(|r| r["n"].as_u64()).unwrap_or(0) > 0 {
                    visibility.push(t0.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "probe {i} never became visible");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let _ = analytics
            .client
            .query_server(&format!("DROP DATABASE IF EXISTS {database}"))
            .await;
    }
    bare.stop().await;
    hub.stop().await.context("the hub did not stop cleanly")?;

    let ratio = if hook_run.ops_per_s > 0.0 {
        bare_run.ops_per_s / hook_run.ops_per_s
    } else {
        0.0
    };
    let mut report = Report::new("webhooks", vec![bare_run, hook_run], 1)?
        .with("overhead_ratio_vs_bare_http", round(ratio, 3))
        .with("deliveries_stored", stored)
        .with("concurrency", opts.concurrency as u64)
        .with(
            "note",
            "load generator, hub and (when used) ClickHouse share the same 2 cores",
        );
    if !visibility.is_empty() {
        visibility.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| visibility[((visibility.len() as f64 - 1.0) * q).round() as usize];
        report = report
            .with("clickhouse_visible_p50_ms", round(pick(0.5), 1))
            .with("clickhouse_visible_p99_ms", round(pick(0.99), 1))
            .with("clickhouse_visible_max_ms", round(pick(1.0), 1))
            .with("clickhouse_probes", visibility.len() as u64);
    }
    Ok(report)
}
