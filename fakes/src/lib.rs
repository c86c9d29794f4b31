//! Local fakes of the social platforms nikara talks to, for tests and the load test.
//!
//! Each fake is a poem server on `127.0.0.1:0` that serves a platform's real paths with its real
//! request checks and response/error shapes (see `/work/shared/PLATFORMS.md`). One module per
//! platform ([`Kind`]) owns its routes; `oauth` holds the consent screen and grant logic they share,
//! `state` the codes, grants and tokens, `http` parameter parsing, credentials and request recording.
//! New endpoints (publish, metrics) go into the platform's module and its `routes()`; `metrics` holds
//! what the metrics endpoints share ([`FakeMetrics`], call counts, [`Control::metrics_faults`]).
//!
//! Publishing follows the contract in `/tmp/publish-spec.md`: each platform module serves its publish
//! and reconcile-listing endpoints, `publish` holds what was published (see
//! [`FakePlatform::published`]), the multi-step state (Instagram containers, TikTok publish ids,
//! YouTube upload sessions) and the failure injection ([`PublishFault`], [`Control::publish_faults`]),
//! and `media` serves `GET /media/{name}` on every fake ([`FakePlatform::media_url`]).
//!
//! Every request runs in its own tokio task, so a handler finishes even when its client gives up
//! (a timed-out publish still publishes, as on a real platform).

// Checks return a ready `Response` as their error so handlers can `return` it; the size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

mod control;
mod google;
mod http;
mod linkedin;
mod media;
mod meta;
mod metrics;
mod oauth;
mod publish;
mod reddit;
pub mod smtp;
mod state;
mod tiktok;
mod x;

use std::sync::{Arc, Mutex, MutexGuard};

use poem::listener::{Acceptor, TcpAcceptor};
use poem::{EndpointExt, Server, get};

pub use control::{Control, Identity, InstagramAccount, MetaPage};
pub use metrics::FakeMetrics;
pub use publish::{PublishFault, PublishedPost};
pub use state::Recorded;

/// Which platform a fake plays. `Meta` serves Facebook and Instagram (Facebook Login); `Google`
/// serves YouTube.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Meta,
    Linkedin,
    X,
    Tiktok,
    Reddit,
    Google,
}

impl Kind {
    /// Short name used in token prefixes (`fake-{slug}-at-…`).
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Meta => "meta",
            Kind::Linkedin => "linkedin",
            Kind::X => "x",
            Kind::Tiktok => "tiktok",
            Kind::Reddit => "reddit",
            Kind::Google => "google",
        }
    }

    /// The nikara platforms this fake serves.
    pub fn platforms(self) -> &'static [&'static str] {
        match self {
            Kind::Meta => &["facebook", "instagram"],
            Kind::Linkedin => &["linkedin"],
            Kind::X => &["x"],
            Kind::Tiktok => &["tiktok"],
            Kind::Reddit => &["reddit"],
            Kind::Google => &["youtube"],
        }
    }
}

/// State shared by the handle and the server's handlers.
#[derive(Debug)]
pub(crate) struct Inner {
    pub kind: Kind,
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    control: Mutex<Control>,
    state: Mutex<state::State>,
    posts: Mutex<publish::Posts>,
    metrics: Mutex<metrics::Calls>,
}

impl Inner {
    /// Handlers lock `control`, `state`, `posts` and `metrics` one at a time, never two together, so
    /// they cannot deadlock.
    pub(crate) fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().expect("fake control mutex poisoned")
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().expect("fake state mutex poisoned")
    }

    pub(crate) fn posts(&self) -> MutexGuard<'_, publish::Posts> {
        self.posts.lock().expect("fake posts mutex poisoned")
    }

    pub(crate) fn metrics(&self) -> MutexGuard<'_, metrics::Calls> {
        self.metrics.lock().expect("fake metrics mutex poisoned")
    }
}

/// A running fake platform. Cheap to clone; the server lives as long as the tokio runtime that
/// started it.
#[derive(Debug, Clone)]
pub struct FakePlatform {
    inner: Arc<Inner>,
}

impl FakePlatform {
    /// Binds `127.0.0.1:0` and serves the platform in a tokio task.
    pub async fn start(kind: Kind) -> FakePlatform {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a fake platform");
        std_listener
            .set_nonblocking(true)
            .expect("set fake listener non-blocking");
        let acceptor = TcpAcceptor::from_std(std_listener).expect("tokio listener for a fake platform");
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .expect("fake platform listens on a socket address");
        let slug = kind.slug();
        let inner = Arc::new(Inner {
            kind,
            base_url: format!("http://{addr}"),
            client_id: format!("fake-{slug}-client-{}", state::random_hex(8)),
            client_secret: format!("fake-{slug}-secret-{}", state::random_token()),
            control: Mutex::new(Control::for_kind(kind)),
            state: Mutex::new(state::State::new(slug)),
            posts: Mutex::new(publish::Posts::new()),
            metrics: Mutex::new(metrics::Calls::default()),
        });
        let routes = match kind {
            Kind::Meta => meta::routes(),
            Kind::Linkedin => linkedin::routes(),
            Kind::X => x::routes(),
            Kind::Tiktok => tiktok::routes(),
            Kind::Reddit => reddit::routes(),
            Kind::Google => google::routes(),
        }
        .at("/media/:name", get(media::serve));
        let app = http::recorded(routes.data(inner.clone()), inner.clone());
        tokio::spawn(async move {
            // The server only stops with its runtime; an accept error ends this fake.
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        FakePlatform { inner }
    }

    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.inner.client_secret
    }

    /// nikara settings (lower-case keys without `NIKARA_`) pointing nikara at this fake:
    /// `{platform}_client_id`, `_client_secret`, `_auth_url`, `_token_url`, `_api_url` for each
    /// platform in [`Kind::platforms`].
    pub fn settings(&self) -> Vec<(String, String)> {
        let i = &self.inner;
        match i.kind {
            Kind::Meta => meta::settings(i),
            Kind::Linkedin => linkedin::settings(i),
            Kind::X => x::settings(i),
            Kind::Tiktok => tiktok::settings(i),
            Kind::Reddit => reddit::settings(i),
            Kind::Google => google::settings(i),
        }
    }

    /// Failure injection and data knobs; changes apply to the next request.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.inner.control()
    }

    /// Every access and refresh token ever issued (Meta: user and page tokens), in plaintext.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.state().issued.clone()
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.state().requests.clone()
    }

    /// Calls to the token endpoint (all grant types, including rejected ones).
    pub fn token_requests(&self) -> usize {
        self.inner.state().token_requests
    }

    /// Every successful publish, oldest first (Instagram: at `media_publish`; TikTok: at init;
    /// YouTube: when the upload's bytes arrive).
    pub fn published(&self) -> Vec<PublishedPost> {
        self.inner.posts().list.clone()
    }

    /// `published().len()` without the copy.
    pub fn publish_count(&self) -> usize {
        self.inner.posts().list.len()
    }

    /// Calls to this fake's metrics endpoints so far (all of them, including refused ones; Meta:
    /// Facebook post reads asking for engagement fields and Instagram insights together). Tests check
    /// batching with it.
    pub fn metrics_calls(&self) -> usize {
        self.inner.metrics().by_endpoint.values().sum()
    }

    /// Calls to one metrics endpoint, named by its platform (`facebook`, `instagram`, `linkedin`, `x`,
    /// `tiktok`, `reddit`, `youtube`).
    pub fn metrics_calls_to(&self, platform: &str) -> usize {
        self.inner.metrics().by_endpoint.get(platform).copied().unwrap_or(0)
    }

    /// The metrics the endpoints of `platform` serve for post `id` now (override, else the defaults
    /// of its index in [`FakePlatform::published`]); `None` when unknown.
    pub fn metrics_of(&self, platform: &str, id: &str) -> Option<FakeMetrics> {
        metrics::lookup(&self.inner, platform, id)
    }

    /// A fresh access token of the fake's user, without the OAuth dance (its own grant, lifetime
    /// `control.access_ttl_s`; Meta: a long-lived user token). For tests of API calls.
    pub fn test_token(&self) -> String {
        let ttl = self.inner.control().access_ttl_s;
        let mut st = self.inner.state();
        let grant = st.new_grant("test");
        st.issue_access(grant, state::AccessKind::User, Some(ttl))
    }

    /// Meta: a fresh Page token of `page_id` (never expires), as `/me/accounts` hands out.
    pub fn test_page_token(&self, page_id: &str) -> String {
        let mut st = self.inner.state();
        let grant = st.new_grant("test");
        st.issue_access(grant, state::AccessKind::Page(page_id.to_owned()), None)
    }

    /// `{base_url}/media/{name}`: a URL this fake serves with a few KiB of deterministic bytes
    /// (`video/mp4` for `.mp4`/`.mov`, `image/jpeg` for `.jpg`/`.png`).
    pub fn media_url(&self, name: &str) -> String {
        format!("{}/media/{name}", self.inner.base_url)
    }

    /// Follows a nikara `authorize_url` like a browser whose user clicks "Allow": GETs it and returns
    /// the redirect `Location` (nikara's callback with `code` and `state`, or with
    /// `error=access_denied` when `control.deny_consent`).
    ///
    /// # Panics
    /// With the fake's error body when the authorize request is rejected (or cannot be sent).
    pub async fn consent(&self, authorize_url: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client for consent");
        let resp = client
            .get(authorize_url)
            .send()
            .await
            .expect("GET authorize_url on the fake");
        let status = resp.status();
        if status.is_redirection()
            && let Some(location) = resp.headers().get(reqwest::header::LOCATION)
        {
            return location.to_str().expect("ASCII Location header").to_owned();
        }
        let body = resp.text().await.unwrap_or_default();
        panic!("authorize request rejected by the fake ({status}): {body}\nURL: {authorize_url}");
    }
}
