//! HTTP: poem + poem-openapi. Every API struct is merged into one `OpenApiService`; the spec it
//! generates is committed at `openapi/openapi.json` and a test fails when the two drift.

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Route, get};
use poem_openapi::OpenApiService;

use crate::app::App;

pub mod accounts;
pub mod activity;
pub mod engagement;
pub mod error;
pub mod me;
pub mod middleware;
pub mod oauth;
pub mod posts;
pub mod security;
pub mod system;
pub mod webhooks;

type Apis = (
    system::SystemApi,
    me::MeApi,
    activity::ActivityApi,
    oauth::OauthApi,
    accounts::AccountsApi,
    posts::PostsApi,
    engagement::EngagementApi,
);

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            system::SystemApi,
            me::MeApi,
            activity::ActivityApi,
            oauth::OauthApi,
            accounts::AccountsApi,
            posts::PostsApi,
            engagement::EngagementApi,
        ),
        "nikara",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Connect social accounts, keep their tokens alive, publish scheduled posts exactly once, and \
         turn engagement into analytics. Every `/api` route needs `Authorization: Bearer <JWT>`; \
         errors answer `{\"error\": {\"code\", \"message\"}}`.",
    )
}

/// The OpenAPI document, exactly as served at `/openapi.json` (what `nikara openapi` prints).
pub fn openapi_json() -> String {
    service().spec()
}

/// The whole HTTP application.
pub fn routes(app: Arc<App>) -> impl Endpoint {
    let api = service();
    let spec = api.spec();
    let docs = api.swagger_ui();
    let body_limit = app.config.body_limit;
    // Webhooks carry their own 4 MiB limit (Meta batches up to 1,000 changes) and must see the raw
    // bytes, so they sit outside the API's body limit.
    let hooks = Route::new()
        .at("/meta", get(webhooks::meta_verify).post(webhooks::meta_delivery))
        .at("/x", get(webhooks::x_crc).post(webhooks::x_delivery));
    let main = Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at(
            "/openapi.json",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .at(
            "/metrics",
            get(make_sync(|_| {
                poem::Response::builder()
                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                    .body(crate::metrics::global().render())
            })),
        )
        .at("/favicon.ico", make_sync(|_| Html("")))
        .with(middleware::BodyLimit(body_limit));
    Route::new()
        .nest("/webhooks", hooks)
        .nest("/ui", crate::ui::assets())
        .nest("/", main)
        .with(crate::ui::Shell)
        .with(error::JsonErrors)
        .with(middleware::RequestMetrics)
        .data(app)
        .into_endpoint()
}
