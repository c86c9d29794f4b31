//! Process-wide Prometheus metrics, served as text at `GET /metrics`.
//!
//! One registry per process (a `LazyLock`) so that the store, the projection runner and the HTTP
//! layer can record without threading a handle through every constructor. Several hubs in one test
//! process share it, which only matters to tests that read absolute values (none do).

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The OpenAPI operation id, or a fixed name for non-API routes; never the raw path, so ids in
    /// URLs cannot explode the label set.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    pub projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub platform: String,
    /// `accepted` or `bad_signature`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabels {
    pub platform: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram>,
    pub store_appends: Counter,
    pub store_appended_events: Counter,
    pub store_append_seconds: Histogram,
    pub store_commit_seconds: Histogram,
    pub store_group_size: Histogram,
    pub projection_lag_seconds: Family<ProjectionLabels, Gauge<f64, AtomicU64>>,
    pub projection_position: Family<ProjectionLabels, Gauge>,
    pub projection_events: Family<ProjectionLabels, Counter>,
    pub projection_errors: Family<ProjectionLabels, Counter>,
    pub webhook_deliveries: Family<WebhookLabels, Counter>,
    pub engagement_facts: Family<PlatformLabels, Counter>,
    pub engagement_unknown: Family<PlatformLabels, Counter>,
    pub clickhouse_lag_seconds: Gauge<f64, AtomicU64>,
    pub clickhouse_position: Gauge,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 50 µs .. ~13 s
    exponential_buckets(0.000_05, 2.0, 19)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("nikara");
    let http_requests = Family::<HttpLabels, Counter>::default();
    let http_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
    let store_appends = Counter::default();
    let store_appended_events = Counter::default();
    let store_append_seconds = Histogram::new(latency_buckets());
    let store_commit_seconds = Histogram::new(latency_buckets());
    let store_group_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
    let projection_lag_seconds = Family::<ProjectionLabels, Gauge<f64, AtomicU64>>::default();
    let projection_position = Family::<ProjectionLabels, Gauge>::default();
    let projection_events = Family::<ProjectionLabels, Counter>::default();
    let projection_errors = Family::<ProjectionLabels, Counter>::default();
    let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
    let engagement_facts = Family::<PlatformLabels, Counter>::default();
    let engagement_unknown = Family::<PlatformLabels, Counter>::default();
    let clickhouse_lag_seconds = Gauge::<f64, AtomicU64>::default();
    let clickhouse_position = Gauge::default();
    registry.register(
        "webhook_deliveries",
        "Webhook deliveries by platform and outcome",
        webhook_deliveries.clone(),
    );
    registry.register(
        "engagement_facts",
        "Engagement facts normalised from webhook deliveries",
        engagement_facts.clone(),
    );
    registry.register(
        "engagement_unknown_items",
        "Webhook items nikara does not understand (kept raw in the log)",
        engagement_unknown.clone(),
    );
    registry.register(
        "clickhouse_lag_seconds",
        "How long the ClickHouse sink has been behind the log (0 when caught up)",
        clickhouse_lag_seconds.clone(),
    );
    registry.register(
        "clickhouse_position",
        "Last log position written to ClickHouse",
        clickhouse_position.clone(),
    );
    registry.register(
        "http_requests",
        "HTTP requests by route, method and status",
        http_requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "HTTP request latency by route",
        http_seconds.clone(),
    );
    registry.register("store_appends", "Successful append calls", store_appends.clone());
    registry.register(
        "store_appended_events",
        "Events appended",
        store_appended_events.clone(),
    );
    registry.register(
        "store_append_duration_seconds",
        "Append latency until durable, as seen by the caller",
        store_append_seconds.clone(),
    );
    registry.register(
        "store_commit_duration_seconds",
        "Embedded store group-commit transaction time (including fsync)",
        store_commit_seconds.clone(),
    );
    registry.register(
        "store_commit_group_size",
        "Append requests folded into one embedded commit",
        store_group_size.clone(),
    );
    registry.register(
        "projection_lag_seconds",
        "How long a projection has been behind the head of the log (0 when caught up)",
        projection_lag_seconds.clone(),
    );
    registry.register(
        "projection_position",
        "Last global position a projection has applied",
        projection_position.clone(),
    );
    registry.register(
        "projection_events",
        "Events applied by a projection",
        projection_events.clone(),
    );
    registry.register(
        "projection_errors",
        "Projection batches that failed and were retried",
        projection_errors.clone(),
    );
    Metrics {
        registry,
        http_requests,
        http_seconds,
        store_appends,
        store_appended_events,
        store_append_seconds,
        store_commit_seconds,
        store_group_size,
        projection_lag_seconds,
        projection_position,
        projection_events,
        projection_errors,
        webhook_deliveries,
        engagement_facts,
        engagement_unknown,
        clickhouse_lag_seconds,
        clickhouse_position,
    }
});

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
