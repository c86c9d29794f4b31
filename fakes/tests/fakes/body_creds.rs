//! TikTok (client_key, errors on HTTP 200) and LinkedIn (body credentials, legacy profile).
#![allow(clippy::unwrap_used)]

use nikara_fakes::{FakePlatform, Kind};
use reqwest::StatusCode;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn tiktok_happy_path_and_errors_on_200() {
    let fake = FakePlatform::start(Kind::Tiktok).await;
    let auth = url_with(
        &setting(&fake, "tiktok_auth_url"),
        "",
        &[
            ("client_key", fake.client_id()),
            ("scope", "user.info.basic,video.publish,video.list"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("state", "st-1"),
        ],
    );
    let code = code(&fake, &auth).await;
    let token_url = setting(&fake, "tiktok_token_url");
    let (key, secret) = (fake.client_id().to_owned(), fake.client_secret().to_owned());
    let creds = [("client_key", key.as_str()), ("client_secret", secret.as_str())];
    let mut form = creds.to_vec();
    form.extend([
        ("code", code.as_str()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", REDIRECT),
    ]);
    let (status, tok) = body(http().post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(
        (tok["expires_in"].clone(), tok["refresh_expires_in"].clone()),
        (json!(86400), json!(31536000))
    );
    assert_eq!(tok["token_type"], "Bearer");
    let at = tok["access_token"].as_str().unwrap();

    let info = format!(
        "{}/v2/user/info/?fields=open_id,union_id,avatar_url,display_name,username",
        fake.base_url()
    );
    let (status, user) = body(http().get(&info).bearer_auth(at).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(user["error"]["code"], "ok");
    assert_eq!(user["data"]["user"]["open_id"], tok["open_id"]);
    assert_eq!(user["data"]["user"]["username"], "fake.tiktoker");
    let (status, err) = body(http().get(&info).bearer_auth("bogus").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(err["error"]["code"], "access_token_invalid");

    // Reused code and revoked refresh: errors in the body of an HTTP 200.
    let (status, err) = body(http().post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!((status, err["error"].clone()), (StatusCode::OK, json!("invalid_grant")));
    assert!(err["log_id"].is_string());
    fake.control().revoke_refresh = true;
    let mut refresh = creds.to_vec();
    refresh.extend([
        ("grant_type", "refresh_token"),
        ("refresh_token", tok["refresh_token"].as_str().unwrap()),
    ]);
    let (status, err) = body(http().post(&token_url).form(&refresh).send().await.unwrap()).await;
    assert_eq!((status, err["error"].clone()), (StatusCode::OK, json!("invalid_grant")));
    fake.control().revoke_refresh = false;
    let (status, tok2) = body(http().post(&token_url).form(&refresh).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_ne!(tok2["refresh_token"], tok["refresh_token"]);
}

#[tokio::test]
async fn linkedin_happy_path_legacy_and_client_auth() {
    let fake = FakePlatform::start(Kind::Linkedin).await;
    let auth = url_with(
        &setting(&fake, "linkedin_auth_url"),
        "",
        &[
            ("response_type", "code"),
            ("client_id", fake.client_id()),
            ("redirect_uri", REDIRECT),
            ("state", "st-1"),
            ("scope", "openid profile email w_member_social"),
        ],
    );
    let code = code(&fake, &auth).await;
    let token_url = setting(&fake, "linkedin_token_url");
    let (id, secret) = (fake.client_id().to_owned(), fake.client_secret().to_owned());
    let base_form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    // Basic only: refused.
    let resp = http()
        .post(&token_url)
        .basic_auth(&id, Some(&secret))
        .form(&base_form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let mut form = base_form.clone();
    form.extend([("client_id", id.as_str()), ("client_secret", secret.as_str())]);
    let (status, tok) = body(http().post(&token_url).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(
        (tok["expires_in"].clone(), tok["refresh_token_expires_in"].clone()),
        (json!(5184000), json!(31536000))
    );
    let at = tok["access_token"].as_str().unwrap();

    let userinfo = format!("{}/v2/userinfo", setting(&fake, "linkedin_api_url"));
    let (status, me) = body(http().get(&userinfo).bearer_auth(at).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], fake.control().identity.id);
    assert_eq!(me["email_verified"], true);
    let (status, err) = body(http().get(&userinfo).bearer_auth("bogus").send().await.unwrap()).await;
    assert_eq!(
        (status, err["serviceErrorCode"].clone()),
        (StatusCode::UNAUTHORIZED, json!(65600))
    );

    fake.control().linkedin_legacy_profile = true;
    assert_eq!(
        http().get(&userinfo).bearer_auth(at).send().await.unwrap().status(),
        403
    );
    let legacy = format!(
        "{}/v2/me?projection=(id,localizedFirstName,localizedLastName,profilePicture(displayImage~:playableStreams))",
        fake.base_url()
    );
    let (status, me) = body(http().get(&legacy).bearer_auth(at).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me["localizedFirstName"], "Fake");
    let pic = &me["profilePicture"]["displayImage~"]["elements"][0]["identifiers"][0]["identifier"];
    assert!(pic.as_str().unwrap().starts_with("https://"));

    // Refresh returns the same refresh token; profile_401 breaks the profile.
    let rt = tok["refresh_token"].as_str().unwrap();
    let mut refresh = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    refresh.extend([("client_id", id.as_str()), ("client_secret", secret.as_str())]);
    let (status, tok2) = body(http().post(&token_url).form(&refresh).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(tok2["refresh_token"], rt);
    fake.control().profile_401 = true;
    assert_eq!(http().get(&legacy).bearer_auth(at).send().await.unwrap().status(), 401);
}
