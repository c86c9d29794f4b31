//! Each fake driven with plain reqwest, like nikara would: authorize → code → token → profile,
//! plus the rejections nikara must not trigger.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nikara_fakes::{FakePlatform, Kind};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[path = "fakes/bearer_basic.rs"]
mod bearer_basic;
#[path = "fakes/body_creds.rs"]
mod body_creds;
#[path = "fakes/meta.rs"]
mod meta;
#[path = "fakes/metrics.rs"]
mod metrics;
#[path = "fakes/publish.rs"]
mod publish;
#[path = "fakes/x.rs"]
mod x;

pub const REDIRECT: &str = "http://127.0.0.1:9/api/oauth/callback";
pub const REDDIT_UA: &str = "rust:nikara-tests:0.1.0 (by /u/nikara_dev)";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn url_with(base: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{base}{path}")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

pub fn query_param(location: &str, key: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub async fn body(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Consents and returns the code, checking the state round-trips.
pub async fn code(fake: &FakePlatform, authorize_url: &str) -> String {
    let location = fake.consent(authorize_url).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
    query_param(&location, "code").unwrap()
}

pub fn setting(fake: &FakePlatform, key: &str) -> String {
    fake.settings()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no setting {key}"))
        .1
}

#[tokio::test]
async fn settings_cover_every_platform() {
    for (kind, platforms) in [
        (Kind::Meta, vec!["facebook", "instagram"]),
        (Kind::Linkedin, vec!["linkedin"]),
        (Kind::X, vec!["x"]),
        (Kind::Tiktok, vec!["tiktok"]),
        (Kind::Reddit, vec!["reddit"]),
        (Kind::Google, vec!["youtube"]),
    ] {
        let fake = FakePlatform::start(kind).await;
        let settings = fake.settings();
        assert_eq!(settings.len(), 5 * platforms.len());
        for p in platforms {
            for key in ["client_id", "client_secret", "auth_url", "token_url", "api_url"] {
                let key = format!("{p}_{key}");
                assert!(settings.iter().any(|(k, _)| *k == key), "{kind:?} lacks {key}");
            }
            assert_eq!(setting(&fake, &format!("{p}_client_id")), fake.client_id());
        }
    }
}
