//! Reddit (Basic + User-Agent) and Google (body or Basic, optional PKCE, revoke).
#![allow(clippy::unwrap_used)]

use nikara_fakes::{FakePlatform, Kind};
use reqwest::StatusCode;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn reddit_happy_path_and_user_agent() {
    let fake = FakePlatform::start(Kind::Reddit).await;
    let auth = url_with(
        &setting(&fake, "reddit_auth_url"),
        "",
        &[
            ("client_id", fake.client_id()),
            ("response_type", "code"),
            ("state", "st-1"),
            ("redirect_uri", REDIRECT),
            ("duration", "permanent"),
            ("scope", "identity,submit,read"),
        ],
    );
    let without_duration = auth.replace("&duration=permanent", "");
    assert_eq!(http().get(&without_duration).send().await.unwrap().status(), 400);
    let code = code(&fake, &auth).await;
    let token_url = setting(&fake, "reddit_token_url");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    // No User-Agent: 403; no Basic: 401.
    let resp = http()
        .post(&token_url)
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, err) = body(resp).await;
    assert_eq!(
        (status, err),
        (StatusCode::FORBIDDEN, json!({ "message": "Forbidden", "error": 403 }))
    );
    let resp = http()
        .post(&token_url)
        .header("user-agent", REDDIT_UA)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .post(&token_url)
        .header("user-agent", REDDIT_UA)
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, tok) = body(resp).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["expires_in"], 3600);
    let at = tok["access_token"].as_str().unwrap();

    let me = format!("{}/api/v1/me", setting(&fake, "reddit_api_url"));
    let resp = http().get(&me).bearer_auth(at).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let (status, profile) = body(
        http()
            .get(&me)
            .header("user-agent", REDDIT_UA)
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(profile["name"], "some_user");
    assert!(profile["icon_img"].as_str().unwrap().contains("&amp;"));

    // Refresh keeps the refresh token; revocation kills the grant.
    let rt = tok["refresh_token"].as_str().unwrap();
    let post = |url: &str| {
        http()
            .post(url)
            .header("user-agent", REDDIT_UA)
            .basic_auth(fake.client_id(), Some(fake.client_secret()))
    };
    let (status, tok2) = body(
        post(&token_url)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tok2["refresh_token"], rt);
    let revoke = format!("{}/api/v1/revoke_token", fake.base_url());
    let resp = post(&revoke)
        .form(&[("token", rt), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, err) = body(
        post(&token_url)
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err),
        (StatusCode::BAD_REQUEST, json!({ "error": "invalid_grant" }))
    );
    let resp = http()
        .get(&me)
        .header("user-agent", REDDIT_UA)
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn google_happy_path_refresh_and_revoke() {
    let fake = FakePlatform::start(Kind::Google).await;
    let verifier = "google-verifier-0123456789-0123456789-0123456789";
    let auth = url_with(
        &setting(&fake, "youtube_auth_url"),
        "",
        &[
            ("client_id", fake.client_id()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            (
                "scope",
                "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly",
            ),
            ("state", "st-1"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("include_granted_scopes", "true"),
            ("code_challenge", &challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    );
    let online = auth.replace("access_type=offline", "access_type=online");
    assert_eq!(http().get(&online).send().await.unwrap().status(), 400);
    let code = code(&fake, &auth).await;
    let token_url = setting(&fake, "youtube_token_url");
    let secret = fake.client_secret().to_owned();
    let id = fake.client_id().to_owned();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("code_verifier", "wrong"),
    ];
    let (status, err) = body(http().post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    let mut form = form.to_vec();
    form[5].1 = verifier;
    let (status, tok) = body(http().post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["expires_in"], 3599);
    let at = tok["access_token"].as_str().unwrap().to_owned();
    let rt = tok["refresh_token"].as_str().unwrap().to_owned();

    let channels = format!(
        "{}/youtube/v3/channels?part=snippet,statistics&mine=true",
        setting(&fake, "youtube_api_url")
    );
    let (status, list) = body(http().get(&channels).bearer_auth(&at).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["snippet"]["customUrl"], "@fakechannel");
    assert!(list["items"][0]["snippet"]["thumbnails"]["default"]["url"].is_string());
    assert_eq!(list["items"][0]["statistics"]["videoCount"], "7");

    // Refresh with Basic: no refresh_token in the answer by default.
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let (status, tok2) = body(
        http()
            .post(&token_url)
            .basic_auth(&id, Some(&secret))
            .form(&refresh)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{tok2}");
    assert!(tok2.get("refresh_token").is_none());
    fake.control().revoke_refresh = true;
    let (status, err) = body(
        http()
            .post(&token_url)
            .basic_auth(&id, Some(&secret))
            .form(&refresh)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err,
        json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." })
    );
    fake.control().revoke_refresh = false;

    let revoke = format!("{}/revoke?token={rt}", fake.base_url());
    assert_eq!(http().post(&revoke).send().await.unwrap().status(), 200);
    let (status, err) = body(http().get(&channels).bearer_auth(&at).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["status"], "UNAUTHENTICATED");
}
