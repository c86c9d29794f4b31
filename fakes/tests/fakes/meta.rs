//! Meta: code exchange, fb_exchange_token, pages, Instagram business accounts.
#![allow(clippy::unwrap_used)]

use nikara_fakes::{FakePlatform, Kind};
use reqwest::StatusCode;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn meta_pages_instagram_and_exchange() {
    let fake = FakePlatform::start(Kind::Meta).await;
    let api = setting(&fake, "facebook_api_url");
    assert_eq!(api, setting(&fake, "instagram_api_url"));
    assert_eq!(api, format!("{}/v21.0", fake.base_url()));
    let auth = url_with(
        &setting(&fake, "instagram_auth_url"),
        "",
        &[
            ("client_id", fake.client_id()),
            ("redirect_uri", REDIRECT),
            ("state", "st-1"),
            (
                "scope",
                "instagram_basic,pages_show_list,instagram_content_publish,pages_read_engagement,\
                 instagram_manage_comments,instagram_manage_insights",
            ),
        ],
    );
    let code = code(&fake, &auth).await;
    let token_url = setting(&fake, "facebook_token_url");
    let (id, secret) = (fake.client_id().to_owned(), fake.client_secret().to_owned());
    let exchange_url = url_with(
        &token_url,
        "",
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("redirect_uri", REDIRECT),
            ("code", &code),
        ],
    );
    let (status, short) = body(http().get(&exchange_url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["expires_in"], 3600);
    let (status, err) = body(http().get(&exchange_url).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(100))
    );

    let long_url = |t: &str| {
        url_with(
            &token_url,
            "",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("fb_exchange_token", t),
            ],
        )
    };
    let (status, long) = body(
        http()
            .get(long_url(short["access_token"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{long}");
    assert_eq!(long["expires_in"], 5183944);
    let user_token = long["access_token"].as_str().unwrap().to_owned();

    let get = |path: &str, token: &str| http().get(url_with(&api, path, &[("access_token", token)])).send();
    let (status, me) = body(get("/me?fields=id,name,picture", &user_token).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(me["picture"]["data"]["url"].is_string());
    let (status, pages) = body(get("/me/accounts", &user_token).await.unwrap()).await;
    assert_eq!(status, 200);
    let pages = pages["data"].as_array().unwrap().clone();
    assert_eq!(pages.len(), 2);
    let page_token = pages[0]["access_token"].as_str().unwrap();
    assert!(fake.issued_tokens().iter().any(|t| t == page_token));
    let page_a = pages[0]["id"].as_str().unwrap();
    let page_b = pages[1]["id"].as_str().unwrap();
    let (_, a) = body(
        get(&format!("/{page_a}?fields=instagram_business_account"), &user_token)
            .await
            .unwrap(),
    )
    .await;
    let ig = a["instagram_business_account"]["id"].as_str().unwrap().to_owned();
    assert!(ig.starts_with("1784"));
    let (_, b) = body(
        get(&format!("/{page_b}?fields=instagram_business_account"), page_token)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b, json!({ "id": page_b }));
    let (status, igu) = body(
        get(
            &format!("/{ig}?fields=id,username,name,profile_picture_url"),
            &user_token,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(igu["username"], "fake_ig_business");

    // Bearer works too; an unknown token is 400 + 190.
    let (status, _) = body(
        http()
            .get(format!("{api}/me"))
            .bearer_auth(&user_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = body(get("/me", "bogus").await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(
        (err["error"]["code"].clone(), err["error"]["error_subcode"].clone()),
        (json!(190), json!(460))
    );

    // An expired long-lived token cannot be exchanged.
    fake.control().access_ttl_s = 0;
    let (status, expiring) = body(http().get(long_url(&user_token)).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, err) = body(
        http()
            .get(long_url(expiring["access_token"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(190))
    );

    fake.control().profile_401 = true;
    let (status, err) = body(get("/me", &user_token).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(190))
    );
}
