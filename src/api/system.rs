//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::app::App;

#[derive(Tags)]
enum Tag {
    /// Health of the process and its dependencies.
    System,
}

#[derive(Debug, Object)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
}

#[derive(Debug, Object)]
pub struct ProjectionReadiness {
    pub name: String,
    pub position: u64,
    pub lag_s: f64,
    pub caught_up: bool,
}

#[derive(Debug, Object)]
pub struct ClickHouseReadiness {
    pub connected: bool,
    /// Last log position whose rows are all in ClickHouse.
    pub position: u64,
    pub lag_s: f64,
    pub last_error: Option<String>,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Why not, when not ready.
    pub reason: Option<String>,
    /// Last position of the event log.
    pub head: Option<u64>,
    pub projections: Vec<ProjectionReadiness>,
    /// The ClickHouse sink, when configured. Informational: a ClickHouse outage does not make the
    /// hub unready (webhooks and publishing go on; the sink catches up when ClickHouse is back).
    pub clickhouse: Option<ClickHouseReadiness>,
}

#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// Store reachable and every projection within 1 s of the head.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Not ready yet (catching up) or a dependency is down.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(Debug)]
pub struct SystemApi;

#[OpenApi]
impl SystemApi {
    /// Liveness: the process answers.
    #[oai(path = "/healthz", method = "get", tag = "Tag::System", operation_id = "healthz")]
    async fn healthz(&self, app: Data<&Arc<App>>) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: app.started.elapsed().as_secs(),
        })
    }

    /// Readiness: the event store answers and every projection is within 1 s of the head.
    #[oai(path = "/readyz", method = "get", tag = "Tag::System", operation_id = "readyz")]
    async fn readyz(&self, app: Data<&Arc<App>>) -> ReadyResponse {
        let head = tokio::time::timeout(Duration::from_secs(2), app.store.head()).await;
        let mut projections: Vec<ProjectionReadiness> = app
            .runner
            .status()
            .iter()
            .map(|(name, st)| ProjectionReadiness {
                name: (*name).to_string(),
                position: st.position.load(std::sync::atomic::Ordering::Acquire),
                lag_s: st.lag().as_secs_f64(),
                caught_up: st.caught_up.load(std::sync::atomic::Ordering::Acquire),
            })
            .collect();
        projections.sort_by(|a, b| a.name.cmp(&b.name));
        let (head, reason) = match head {
            Ok(Ok(h)) => (Some(h.0), app.runner.ready(Duration::from_secs(1)).err()),
            Ok(Err(e)) => (None, Some(format!("event store unavailable: {e}"))),
            Err(_) => (None, Some("event store did not answer within 2 s".to_string())),
        };
        let clickhouse = app.analytics.as_ref().map(|a| {
            let st = a.sink.status();
            ClickHouseReadiness {
                connected: st.connected,
                position: st.position,
                lag_s: st.lag_seconds,
                last_error: st.last_error,
            }
        });
        let body = Readiness {
            status: if reason.is_none() { "ready" } else { "not_ready" }.into(),
            reason: reason.clone(),
            head,
            projections,
            clickhouse,
        };
        if reason.is_none() {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
