//! Cross-cutting HTTP concerns: body size limit and request metrics.

use std::time::Instant;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

use super::error::error_response;
use crate::metrics::{self, HttpLabels, RouteLabels};

/// Rejects request bodies larger than the limit with 413, whether or not they declare a length.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request body exceeds the {limit}-byte limit"),
    )
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.limit as u64 => return Ok(too_large(self.limit)),
            Some(_) => {}
            None => {
                // Chunked or unknown length: buffer up to the limit, refuse past it.
                let body = req.take_body();
                match body.into_bytes_limit(self.limit).await {
                    Ok(bytes) => req.set_body(bytes),
                    Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large(self.limit)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Counts requests by route, method and status, and observes latency by route. The route label is
/// the OpenAPI operation id (bounded), never the raw path.
#[derive(Debug, Clone, Copy)]
pub struct RequestMetrics;

impl<E: Endpoint> Middleware<E> for RequestMetrics {
    type Output = RequestMetricsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestMetricsEndpoint(ep)
    }
}

#[derive(Debug)]
pub struct RequestMetricsEndpoint<E>(E);

fn fixed_route(path: &str) -> &'static str {
    match path {
        "/metrics" => "metrics",
        "/webhooks/meta" => "webhooks_meta",
        "/webhooks/x" => "webhooks_x",
        "/openapi.json" => "openapi_json",
        p if p.starts_with("/docs") => "docs",
        _ => "other",
    }
}

impl<E: Endpoint> Endpoint for RequestMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let method = req.method().to_string();
        let fallback = fixed_route(req.uri().path());
        let result = self.0.call(req).await.map(IntoResponse::into_response);
        let (status, op) = match &result {
            Ok(resp) => (resp.status(), resp.data::<OperationId>().map(|o| o.0)),
            Err(err) => (err.status(), err.data::<OperationId>().map(|o| o.0)),
        };
        let route = op.unwrap_or(fallback).to_string();
        let m = metrics::global();
        m.http_requests
            .get_or_create(&HttpLabels {
                route: route.clone(),
                method,
                status: status.as_u16(),
            })
            .inc();
        m.http_seconds
            .get_or_create(&RouteLabels { route })
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
