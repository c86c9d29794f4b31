//! X: PKCE, Basic client auth, rotation, and the consent screen's rejections.
#![allow(clippy::unwrap_used)]

use nikara_fakes::{FakePlatform, Kind};
use reqwest::StatusCode;
use serde_json::json;

use crate::*;

pub fn x_authorize(fake: &FakePlatform, verifier: &str) -> String {
    url_with(
        &fake.base_url(),
        "/i/oauth2/authorize",
        &[
            ("response_type", "code"),
            ("client_id", fake.client_id()),
            ("redirect_uri", REDIRECT),
            ("scope", "tweet.read tweet.write users.read offline.access"),
            ("state", "st-1"),
            ("code_challenge", &challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
}

#[tokio::test]
async fn x_happy_path_and_rotation() {
    let fake = FakePlatform::start(Kind::X).await;
    assert_eq!(
        setting(&fake, "x_token_url"),
        format!("{}/2/oauth2/token", fake.base_url())
    );
    let verifier = "v".repeat(50);
    let code = code(&fake, &x_authorize(&fake, &verifier)).await;
    let token_url = format!("{}/2/oauth2/token", fake.base_url());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ];
    let resp = http()
        .post(&token_url)
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, tok) = body(resp).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["expires_in"], 7200);
    assert_eq!(tok["token_type"], "bearer");
    let at = tok["access_token"].as_str().unwrap().to_owned();
    let rt = tok["refresh_token"].as_str().unwrap().to_owned();
    assert!(at.starts_with("fake-x-at-") && rt.starts_with("fake-x-rt-"));
    assert_eq!(fake.issued_tokens(), vec![at.clone(), rt.clone()]);

    let me = format!("{}/2/users/me?user.fields=profile_image_url", fake.base_url());
    let (status, profile) = body(http().get(&me).bearer_auth(&at).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(profile["data"]["username"], "fake_x_user");
    assert!(profile["data"]["profile_image_url"].is_string());
    let (status, err) = body(http().get(&me).bearer_auth("nope").send().await.unwrap()).await;
    assert_eq!(
        (status, err["title"].clone()),
        (StatusCode::UNAUTHORIZED, json!("Unauthorized"))
    );

    // Refresh rotates; the old refresh token is dead afterwards.
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let send_refresh = || {
        http()
            .post(&token_url)
            .basic_auth(fake.client_id(), Some(fake.client_secret()))
            .form(&refresh)
            .send()
    };
    let (status, tok2) = body(send_refresh().await.unwrap()).await;
    assert_eq!(status, 200, "{tok2}");
    assert_ne!(tok2["refresh_token"].as_str().unwrap(), rt);
    let (status, err) = body(send_refresh().await.unwrap()).await;
    assert_eq!(
        (status, err["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    assert_eq!(fake.token_requests(), 3);

    fake.control().refresh_error_500 = true;
    let rt2 = tok2["refresh_token"].as_str().unwrap();
    let resp = http()
        .post(&token_url)
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt2)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let recorded = fake.requests();
    assert!(
        recorded
            .iter()
            .any(|r| r.path == "/2/oauth2/token" && r.body.contains("grant_type=refresh_token"))
    );
}

#[tokio::test]
async fn x_rejections() {
    let fake = FakePlatform::start(Kind::X).await;
    let token_url = format!("{}/2/oauth2/token", fake.base_url());
    let verifier = "a-verifier-that-is-long-enough-0123456789abcdef";
    let code = code(&fake, &x_authorize(&fake, verifier)).await;
    let form = |v: &'static str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", v.to_owned()),
            ("client_id", fake.client_id().to_owned()),
        ]
    };

    // Without Basic: 401 unauthorized_client.
    let (status, err) = body(http().post(&token_url).form(&form(verifier)).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"], "unauthorized_client");
    // Wrong PKCE verifier: 400.
    let basic = |rb: reqwest::RequestBuilder| rb.basic_auth(fake.client_id(), Some(fake.client_secret()));
    let (status, err) = body(
        basic(http().post(&token_url))
            .form(&form("wrong-verifier"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    // The right one works once; the reused code is refused.
    let (status, _) = body(
        basic(http().post(&token_url))
            .form(&form(verifier))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = body(
        basic(http().post(&token_url))
            .form(&form(verifier))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error_description"],
        "Value passed for the authorization code was invalid."
    );

    // Authorize without PKCE, with comma scopes, or an unknown client: 400 on the consent screen.
    let no_pkce = url_with(
        &fake.base_url(),
        "/i/oauth2/authorize",
        &[
            ("response_type", "code"),
            ("client_id", fake.client_id()),
            ("redirect_uri", REDIRECT),
            ("scope", "tweet.read tweet.write users.read offline.access"),
            ("state", "st-1"),
        ],
    );
    assert_eq!(http().get(&no_pkce).send().await.unwrap().status(), 400);
    let comma = x_authorize(&fake, verifier).replace("tweet.read+tweet.write", "tweet.read%2Ctweet.write");
    assert_eq!(http().get(&comma).send().await.unwrap().status(), 400);
    let other_client = x_authorize(&fake, verifier).replace(fake.client_id(), "someone-else");
    assert_eq!(http().get(&other_client).send().await.unwrap().status(), 400);

    // Denied consent and token 500s.
    fake.control().deny_consent = true;
    let location = fake.consent(&x_authorize(&fake, verifier)).await;
    assert_eq!(query_param(&location, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
    assert!(query_param(&location, "code").is_none());
    fake.control().token_error_500 = true;
    let resp = basic(http().post(&token_url))
        .form(&form(verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
}

#[tokio::test]
#[should_panic(expected = "authorize request rejected")]
async fn consent_panics_on_a_rejected_authorize() {
    let fake = FakePlatform::start(Kind::X).await;
    let url = url_with(
        &fake.base_url(),
        "/i/oauth2/authorize",
        &[("client_id", fake.client_id())],
    );
    fake.consent(&url).await;
}
