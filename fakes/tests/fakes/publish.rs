//! Publishing on every fake with plain reqwest and tokens from each fake's OAuth flow: happy paths,
//! multi-step flows (Instagram containers, TikTok status, YouTube resumable uploads), validation,
//! reconcile listings, media hosting and failure injection.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use nikara_fakes::{FakePlatform, Kind, PublishFault};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::x::x_authorize;
use crate::*;

/// A user access token from the fake's own OAuth flow (Meta: the long-lived user token).
pub async fn user_token(fake: &FakePlatform) -> String {
    let (id, secret) = (fake.client_id().to_owned(), fake.client_secret().to_owned());
    let tok = match fake.kind() {
        Kind::X => {
            let verifier = "publish-verifier-0123456789-0123456789-0123456789";
            let code = code(fake, &x_authorize(fake, verifier)).await;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ];
            let resp = http()
                .post(setting(fake, "x_token_url"))
                .basic_auth(&id, Some(&secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            body(resp).await.1
        }
        Kind::Linkedin => {
            let auth = url_with(
                &setting(fake, "linkedin_auth_url"),
                "",
                &[
                    ("response_type", "code"),
                    ("client_id", &id),
                    ("redirect_uri", REDIRECT),
                    ("state", "st-1"),
                    ("scope", "openid profile email w_member_social"),
                ],
            );
            let code = code(fake, &auth).await;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", &id),
                ("client_secret", &secret),
            ];
            let resp = http()
                .post(setting(fake, "linkedin_token_url"))
                .form(&form)
                .send()
                .await
                .unwrap();
            body(resp).await.1
        }
        Kind::Tiktok => {
            let auth = url_with(
                &setting(fake, "tiktok_auth_url"),
                "",
                &[
                    ("client_key", &id),
                    ("scope", "user.info.basic,video.publish,video.list"),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT),
                    ("state", "st-1"),
                ],
            );
            let code = code(fake, &auth).await;
            let form = [
                ("client_key", id.as_str()),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
            ];
            let resp = http()
                .post(setting(fake, "tiktok_token_url"))
                .form(&form)
                .send()
                .await
                .unwrap();
            body(resp).await.1
        }
        Kind::Reddit => {
            let auth = url_with(
                &setting(fake, "reddit_auth_url"),
                "",
                &[
                    ("client_id", &id),
                    ("response_type", "code"),
                    ("state", "st-1"),
                    ("redirect_uri", REDIRECT),
                    ("duration", "permanent"),
                    ("scope", "identity,submit,read"),
                ],
            );
            let code = code(fake, &auth).await;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
            ];
            let resp = http()
                .post(setting(fake, "reddit_token_url"))
                .header("user-agent", REDDIT_UA)
                .basic_auth(&id, Some(&secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            body(resp).await.1
        }
        Kind::Google => {
            let auth = url_with(
                &setting(fake, "youtube_auth_url"),
                "",
                &[
                    ("client_id", &id),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT),
                    ("scope", "https://www.googleapis.com/auth/youtube.upload"),
                    ("state", "st-1"),
                    ("access_type", "offline"),
                ],
            );
            let code = code(fake, &auth).await;
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", &id),
                ("client_secret", &secret),
            ];
            let resp = http()
                .post(setting(fake, "youtube_token_url"))
                .form(&form)
                .send()
                .await
                .unwrap();
            body(resp).await.1
        }
        Kind::Meta => {
            let auth = url_with(
                &setting(fake, "facebook_auth_url"),
                "",
                &[
                    ("client_id", &id),
                    ("redirect_uri", REDIRECT),
                    ("state", "st-1"),
                    (
                        "scope",
                        "pages_show_list,pages_manage_posts,pages_read_engagement,pages_manage_engagement,\
                         pages_read_user_engagement,pages_manage_metadata,pages_read_insights",
                    ),
                ],
            );
            let code = code(fake, &auth).await;
            let token_url = setting(fake, "facebook_token_url");
            let exchange = url_with(
                &token_url,
                "",
                &[
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("redirect_uri", REDIRECT),
                    ("code", &code),
                ],
            );
            let short = body(http().get(&exchange).send().await.unwrap()).await.1;
            let long = url_with(
                &token_url,
                "",
                &[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("fb_exchange_token", short["access_token"].as_str().unwrap()),
                ],
            );
            body(http().get(&long).send().await.unwrap()).await.1
        }
    };
    tok["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tok}"))
        .to_owned()
}

/// Meta: the user token and `(page id, page token)` of pages A (with Instagram) and B.
async fn meta_tokens(fake: &FakePlatform) -> (String, Vec<(String, String)>) {
    let user = user_token(fake).await;
    let api = setting(fake, "facebook_api_url");
    let url = url_with(&api, "/me/accounts", &[("access_token", &user)]);
    let (status, pages) = body(http().get(&url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{pages}");
    let pages = pages["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["access_token"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (user, pages)
}

const IG_ID: &str = "17841400000000001";

async fn graph_post(api: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    body(http().post(format!("{api}{path}")).form(form).send().await.unwrap()).await
}

async fn graph_get(api: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = format!("{api}{path}{sep}access_token={token}");
    body(http().get(url).send().await.unwrap()).await
}

#[tokio::test]
async fn facebook_feed_photos_tokens_and_reconcile() {
    let fake = FakePlatform::start(Kind::Meta).await;
    let api = setting(&fake, "facebook_api_url");
    let (user, pages) = meta_tokens(&fake).await;
    let (page_a, token_a) = (&pages[0].0, pages[0].1.as_str());
    let token_b = pages[1].1.as_str();

    let (status, created) = graph_post(
        &api,
        &format!("/{page_a}/feed"),
        &[("message", "hello page"), ("access_token", token_a)],
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let post_id = created["id"].as_str().unwrap().to_owned();
    assert!(post_id.starts_with(&format!("{page_a}_")), "{post_id}");

    // Bearer works too; /photos answers the photo id and the page post id.
    let image = fake.media_url("pic.jpg");
    let resp = http()
        .post(format!("{api}/{page_a}/photos"))
        .bearer_auth(token_a)
        .form(&[("url", image.as_str()), ("caption", "a photo")])
        .send()
        .await
        .unwrap();
    let (status, photo) = body(resp).await;
    assert_eq!(status, 200, "{photo}");
    assert!(photo["id"].is_string());
    let photo_post = photo["post_id"].as_str().unwrap().to_owned();
    assert!(photo_post.starts_with(&format!("{page_a}_")));
    assert_ne!(photo_post, post_id);

    // A user token, another page's token or an unknown one is refused.
    for (token, code) in [(user.as_str(), 200), (token_b, 200), ("bogus", 190)] {
        let (status, err) = graph_post(
            &api,
            &format!("/{page_a}/feed"),
            &[("message", "nope"), ("access_token", token)],
        )
        .await;
        assert_eq!(
            (status, err["error"]["code"].clone()),
            (StatusCode::BAD_REQUEST, json!(code))
        );
    }
    let (status, err) = graph_post(&api, &format!("/{page_a}/feed"), &[("access_token", token_a)]).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(100))
    );
    let (_, err) = graph_post(&api, &format!("/{page_a}/photos"), &[("access_token", token_a)]).await;
    assert_eq!(err["error"]["code"], 324);

    let published = fake.published();
    assert_eq!(published.len(), 2);
    assert_eq!(fake.publish_count(), 2);
    assert_eq!(
        (published[0].platform.as_str(), published[0].account.as_str()),
        ("facebook", page_a.as_str())
    );
    assert_eq!(
        (published[0].id.as_str(), published[0].text.as_str()),
        (post_id.as_str(), "hello page")
    );
    assert_eq!(published[1].id, photo_post);
    assert_eq!(published[1].media, vec![image]);

    // Reconcile: newest first, Graph's time format; the page's user token may read too.
    let (status, feed) = graph_get(
        &api,
        &format!("/{page_a}/feed?fields=id,message,created_time&limit=25"),
        token_a,
    )
    .await;
    assert_eq!(status, 200, "{feed}");
    let data = feed["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], json!(photo_post));
    assert_eq!(data[1]["id"], json!(post_id));
    assert_eq!(data[1]["message"], "hello page");
    let created_time = data[1]["created_time"].as_str().unwrap();
    assert!(
        created_time.ends_with("+0000") && created_time.len() == 24,
        "{created_time}"
    );
    let (status, feed) = graph_get(&api, &format!("/{page_a}/feed"), &user).await;
    assert_eq!((status, feed["data"].as_array().unwrap().len()), (StatusCode::OK, 2));
    let (_, feed_b) = graph_get(&api, &format!("/{}/feed", pages[1].0), token_b).await;
    assert_eq!(feed_b, json!({ "data": [] }));
    let (status, node) = graph_get(&api, &format!("/{post_id}?fields=message,permalink_url"), token_a).await;
    assert_eq!(status, 200);
    assert_eq!(node["message"], "hello page");
    assert_eq!(node["permalink_url"], format!("https://www.facebook.com/{post_id}"));
}

#[tokio::test]
async fn instagram_containers_poll_publish_and_reconcile() {
    let fake = FakePlatform::start(Kind::Meta).await;
    let api = setting(&fake, "instagram_api_url");
    let (user, pages) = meta_tokens(&fake).await;
    let token = pages[0].1.as_str();
    let media = format!("/{IG_ID}/media");
    let publish = format!("/{IG_ID}/media_publish");

    // Image: FINISHED at once, publishable right away.
    let image = fake.media_url("photo.jpg");
    let (status, container) = graph_post(
        &api,
        &media,
        &[("image_url", &image), ("caption", "ig image"), ("access_token", token)],
    )
    .await;
    assert_eq!(status, 200, "{container}");
    let image_container = container["id"].as_str().unwrap().to_owned();
    let (status, published) = graph_post(
        &api,
        &publish,
        &[("creation_id", &image_container), ("access_token", token)],
    )
    .await;
    assert_eq!(status, 200, "{published}");
    let image_media = published["id"].as_str().unwrap().to_owned();
    let (status, link) = graph_get(&api, &format!("/{image_media}?fields=permalink"), token).await;
    assert_eq!(status, 200);
    assert_eq!(link["id"], json!(image_media));
    let permalink = link["permalink"].as_str().unwrap();
    assert!(permalink.starts_with("https://www.instagram.com/p/") && permalink.ends_with('/'));
    // A published container cannot be published again.
    let (status, err) = graph_post(
        &api,
        &publish,
        &[("creation_id", &image_container), ("access_token", token)],
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(9007))
    );

    // Video: IN_PROGRESS on the first poll, FINISHED after; publishing before that is 9007.
    let video = fake.media_url("clip.mp4");
    let (status, container) = graph_post(
        &api,
        &media,
        &[
            ("media_type", "REELS"),
            ("video_url", &video),
            ("caption", "ig reel"),
            ("access_token", token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{container}");
    let reel = container["id"].as_str().unwrap().to_owned();
    let publish_form = [("creation_id", reel.as_str()), ("access_token", token)];
    let try_publish = || graph_post(&api, &publish, &publish_form);
    let (status, err) = try_publish().await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(9007))
    );
    assert_eq!(err["error"]["message"], "Media ID is not available");
    let poll = format!("/{reel}?fields=status_code");
    let (status, first) = graph_get(&api, &poll, token).await;
    assert_eq!(status, 200);
    assert_eq!(first, json!({ "id": reel, "status_code": "IN_PROGRESS" }));
    assert_eq!(try_publish().await.1["error"]["code"], 9007);
    let (_, second) = graph_get(&api, &poll, token).await;
    assert_eq!(second["status_code"], "FINISHED");
    let (status, published) = try_publish().await;
    assert_eq!(status, 200, "{published}");
    let reel_media = published["id"].as_str().unwrap().to_owned();
    let (status, err) = graph_post(&api, &publish, &[("creation_id", "404404"), ("access_token", token)]).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(9007))
    );

    // Validation: caption too long, missing media, wrong token.
    let long = "c".repeat(2201);
    let (status, err) = graph_post(
        &api,
        &media,
        &[("image_url", &image), ("caption", &long), ("access_token", token)],
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(100))
    );
    let (_, err) = graph_post(&api, &media, &[("caption", "no media"), ("access_token", token)]).await;
    assert_eq!(err["error"]["code"], 100);
    let (_, err) = graph_post(&api, &media, &[("image_url", &image), ("access_token", &user)]).await;
    assert_eq!(err["error"]["code"], 200);
    let (_, err) = graph_post(&api, &media, &[("image_url", &image), ("access_token", &pages[1].1)]).await;
    assert_eq!(err["error"]["code"], 200);

    let posts = fake.published();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        (posts[0].platform.as_str(), posts[0].account.as_str()),
        ("instagram", IG_ID)
    );
    assert_eq!(
        (posts[1].id.as_str(), posts[1].text.as_str()),
        (reel_media.as_str(), "ig reel")
    );
    assert_eq!(posts[1].media, vec![video]);

    let (status, list) = graph_get(
        &api,
        &format!("/{IG_ID}/media?fields=id,caption,timestamp&limit=25"),
        token,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], json!(reel_media));
    assert_eq!(data[0]["caption"], "ig reel");
    assert_eq!(data[1]["id"], json!(image_media));
    assert!(data[1]["timestamp"].as_str().unwrap().ends_with("+0000"));
}

#[tokio::test]
async fn linkedin_posts_and_validation() {
    let fake = FakePlatform::start(Kind::Linkedin).await;
    let token = user_token(&fake).await;
    let member = fake.control().identity.id.clone();
    let url = format!("{}/rest/posts", setting(&fake, "linkedin_api_url"));
    let post = |author: &str, text: &str| {
        json!({
            "author": author,
            "commentary": text,
            "visibility": "PUBLIC",
            "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        })
    };
    let author = format!("urn:li:person:{member}");
    let send = |body: Value, token: &str, version: Option<&str>| {
        let mut rb = http()
            .post(&url)
            .bearer_auth(token)
            .header("X-Restli-Protocol-Version", "2.0.0")
            .json(&body);
        if let Some(v) = version {
            rb = rb.header("LinkedIn-Version", v);
        }
        rb.send()
    };
    let resp = send(post(&author, "hello linkedin"), &token, Some("202411"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let urn = resp.headers()["x-restli-id"].to_str().unwrap().to_owned();
    assert!(urn.starts_with("urn:li:share:"), "{urn}");
    assert!(resp.text().await.unwrap().is_empty());

    let (status, err) = body(send(post(&author, "v"), &token, None).await.unwrap()).await;
    assert_eq!((status.as_u16(), err["status"].clone()), (426, json!(426)));
    assert!(err["message"].is_string());
    let (status, _) = body(
        send(post("urn:li:person:someoneElse", "x"), &token, Some("202411"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, err) = body(
        send(post(&author, &"l".repeat(3001)), &token, Some("202411"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status.as_u16(), err["status"].clone()), (422, json!(422)));
    let (status, _) = body(send(post(&author, "x"), "bogus", Some("202411")).await.unwrap()).await;
    assert_eq!(status, 401);

    let posts = fake.published();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        (
            posts[0].platform.as_str(),
            posts[0].account.as_str(),
            posts[0].id.as_str()
        ),
        ("linkedin", member.as_str(), urn.as_str())
    );
    assert_eq!(posts[0].text, "hello linkedin");
}

#[tokio::test]
async fn x_tweets_duplicates_limits_and_reconcile() {
    let fake = FakePlatform::start(Kind::X).await;
    let token = user_token(&fake).await;
    let api = setting(&fake, "x_api_url");
    let user_id = fake.control().identity.id.clone();
    let before = "2020-01-01T00:00:00Z";
    let tweet = |text: &str, token: &str| {
        http()
            .post(format!("{api}/2/tweets"))
            .bearer_auth(token)
            .json(&json!({ "text": text }))
            .send()
    };
    let (status, created) = body(tweet("hello x", &token).await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["text"], "hello x");
    let id = created["data"]["id"].as_str().unwrap().to_owned();

    let (status, dup) = body(tweet("hello x", &token).await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(
        dup,
        json!({
            "detail": "You are not allowed to create a Tweet with duplicate content.",
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
        })
    );
    let (status, err) = body(tweet(&"x".repeat(281), &token).await.unwrap()).await;
    assert_eq!((status, err["status"].clone()), (StatusCode::BAD_REQUEST, json!(400)));
    assert!(err["detail"].as_str().unwrap().contains("280"));
    let (status, _) = body(tweet(&"é".repeat(280), &token).await.unwrap()).await;
    assert_eq!(status, 201);
    let (status, err) = body(tweet("who am i", "bogus").await.unwrap()).await;
    assert_eq!(
        (status, err["title"].clone()),
        (StatusCode::UNAUTHORIZED, json!("Unauthorized"))
    );
    assert_eq!(fake.publish_count(), 2);
    let first = &fake.published()[0];
    assert_eq!(
        (
            first.platform.as_str(),
            first.account.as_str(),
            first.id.as_str(),
            first.text.as_str()
        ),
        ("x", user_id.as_str(), id.as_str(), "hello x")
    );

    let list = |start: &str| {
        let url = url_with(
            &api,
            &format!("/2/users/{user_id}/tweets"),
            &[
                ("max_results", "10"),
                ("start_time", start),
                ("tweet.fields", "created_at"),
            ],
        );
        http().get(url).bearer_auth(&token).send()
    };
    let (status, page) = body(list(before).await.unwrap()).await;
    assert_eq!(status, 200, "{page}");
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["id"], json!(id));
    assert_eq!(data[1]["text"], "hello x");
    assert!(data[1]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page["meta"]["result_count"], 2);
    assert_eq!(page["meta"]["newest_id"], data[0]["id"]);
    let (status, empty) = body(list("2999-01-01T00:00:00Z").await.unwrap()).await;
    assert_eq!(
        (status, empty),
        (StatusCode::OK, json!({ "meta": { "result_count": 0 } }))
    );
    let (status, _) = body(list("yesterday").await.unwrap()).await;
    assert_eq!(status, 400);

    // Expired tokens are refused on publish endpoints whatever enforce_access_expiry says.
    fake.control().access_ttl_s = 0;
    let expired = user_token(&fake).await;
    assert_eq!(tweet("late", &expired).await.unwrap().status(), 401);
}

#[tokio::test]
async fn tiktok_creator_info_init_and_status_polling() {
    let fake = FakePlatform::start(Kind::Tiktok).await;
    let token = user_token(&fake).await;
    let api = setting(&fake, "tiktok_api_url");
    let call = |path: &str, payload: Value, token: &str| {
        http()
            .post(format!("{api}/v2/post/publish/{path}/"))
            .bearer_auth(token)
            .json(&payload)
            .send()
    };
    let (status, info) = body(call("creator_info/query", json!({}), &token).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(info["error"]["code"], "ok");
    assert_eq!(info["data"]["creator_username"], "fake.tiktoker");
    assert_eq!(
        info["data"]["privacy_level_options"],
        json!(["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"])
    );

    let video = fake.media_url("clip.mp4");
    let video_init = |privacy: &str, url: &str| {
        json!({
            "post_info": { "title": "tiktok video", "privacy_level": privacy },
            "source_info": { "source": "PULL_FROM_URL", "video_url": url },
        })
    };
    let (status, init) = body(
        call("video/init", video_init("SELF_ONLY", &video), &token)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["error"]["code"], "ok");
    let publish_id = init["data"]["publish_id"].as_str().unwrap().to_owned();
    let poll = || call("status/fetch", json!({ "publish_id": publish_id }), &token);
    let (_, first) = body(poll().await.unwrap()).await;
    assert_eq!(first["data"]["status"], "PROCESSING_DOWNLOAD");
    assert_eq!(first["error"]["code"], "ok");
    let (_, second) = body(poll().await.unwrap()).await;
    assert_eq!(second["data"]["status"], "PUBLISH_COMPLETE");
    let public_id = second["data"]["publicaly_available_post_id"][0].as_u64().unwrap();
    let (_, again) = body(poll().await.unwrap()).await;
    assert_eq!(again["data"]["publicaly_available_post_id"][0], json!(public_id));

    let image = fake.media_url("photo.jpg");
    let photo = json!({
        "post_info": { "title": "photo title", "description": "tiktok photo", "privacy_level": "PUBLIC_TO_EVERYONE" },
        "source_info": { "source": "PULL_FROM_URL", "photo_images": [image], "photo_cover_index": 0 },
        "post_mode": "DIRECT_POST",
        "media_type": "PHOTO",
    });
    let (status, init) = body(call("content/init", photo, &token).await.unwrap()).await;
    assert_eq!(
        (status, init["error"]["code"].clone()),
        (StatusCode::OK, json!("ok")),
        "{init}"
    );
    assert!(init["data"]["publish_id"].as_str().unwrap().starts_with("p_pub_url~"));

    // Invalid privacy level and missing media: invalid_params on HTTP 200; bad token: 401.
    let (status, err) = body(call("video/init", video_init("FRIENDS", &video), &token).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::OK, json!("invalid_params"))
    );
    let (_, err) = body(call("video/init", video_init("SELF_ONLY", ""), &token).await.unwrap()).await;
    assert_eq!(err["error"]["code"], "invalid_params");
    let (status, err) = body(
        call("video/init", video_init("SELF_ONLY", &video), "bogus")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("access_token_invalid"))
    );
    let (_, err) = body(
        call("status/fetch", json!({ "publish_id": "v_pub_url~nope" }), &token)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(err["error"]["code"], "invalid_params");

    let posts = fake.published();
    assert_eq!(posts.len(), 2);
    let open_id = fake.control().identity.id.clone();
    assert_eq!(
        (
            posts[0].platform.as_str(),
            posts[0].account.as_str(),
            posts[0].text.as_str()
        ),
        ("tiktok", open_id.as_str(), "tiktok video")
    );
    assert_eq!(posts[0].id, public_id.to_string());
    assert_eq!(posts[0].options["privacy_level"], "SELF_ONLY");
    assert_eq!(posts[1].text, "tiktok photo");
    assert_eq!(posts[1].media, vec![image]);
}

#[tokio::test]
async fn reddit_submit_errors_and_reconcile() {
    let fake = FakePlatform::start(Kind::Reddit).await;
    let token = user_token(&fake).await;
    let api = setting(&fake, "reddit_api_url");
    let submit = |form: Vec<(&'static str, String)>| {
        http()
            .post(format!("{api}/api/submit"))
            .header("user-agent", REDDIT_UA)
            .bearer_auth(&token)
            .form(&form)
            .send()
    };
    let form = |kind: &str, sr: &str, title: &str| {
        vec![
            ("api_type", "json".to_owned()),
            ("kind", kind.to_owned()),
            ("sr", sr.to_owned()),
            ("title", title.to_owned()),
            ("text", "reddit body".to_owned()),
        ]
    };
    let (status, ok) = body(submit(form("self", "rust", "Hello Reddit")).await.unwrap()).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["json"]["errors"], json!([]));
    let name = ok["json"]["data"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("t3_"));
    let url = ok["json"]["data"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://www.reddit.com/r/rust/comments/"), "{url}");

    let (status, err) = body(submit(form("self", "doesnotexist", "t")).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        err,
        json!({ "json": { "errors": [["SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"]] } })
    );
    let (_, err) = body(submit(form("self", "", "t")).await.unwrap()).await;
    assert_eq!(err["json"]["errors"][0][0], "SUBREDDIT_REQUIRED");
    let (_, err) = body(submit(form("self", "rust", &"t".repeat(301))).await.unwrap()).await;
    assert_eq!(err["json"]["errors"][0][0], "TOO_LONG");
    let mut link = form("link", "pics", "A link");
    link.push(("url", fake.media_url("pic.jpg")));
    let (_, linked) = body(submit(link).await.unwrap()).await;
    assert_eq!(linked["json"]["errors"], json!([]), "{linked}");
    let (_, err) = body(submit(form("link", "pics", "No url")).await.unwrap()).await;
    assert_eq!(err["json"]["errors"][0][0], "NO_URL");
    let no_ua = http()
        .post(format!("{api}/api/submit"))
        .bearer_auth(&token)
        .form(&form("self", "rust", "t"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_ua.status(), 403);

    let posts = fake.published();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        (
            posts[0].platform.as_str(),
            posts[0].account.as_str(),
            posts[0].id.as_str()
        ),
        ("reddit", "some_user", name.as_str())
    );
    assert_eq!(posts[0].title.as_deref(), Some("Hello Reddit"));
    assert_eq!(posts[0].text, "reddit body");

    let listing = url_with(&api, "/user/some_user/submitted", &[("limit", "25"), ("sort", "new")]);
    let (status, list) = body(
        http()
            .get(listing)
            .header("user-agent", REDDIT_UA)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["kind"], "Listing");
    let children = list["data"]["children"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0]["data"]["title"], "A link");
    assert_eq!(children[0]["data"]["url"], json!(fake.media_url("pic.jpg")));
    let own = &children[1]["data"];
    assert_eq!(children[1]["kind"], "t3");
    assert_eq!(own["name"], json!(name));
    assert_eq!(own["subreddit"], "rust");
    assert!(own["created_utc"].is_f64());
    assert!(own["permalink"].as_str().unwrap().starts_with("/r/rust/comments/"));
    assert_eq!(own["url"], json!(url));
}

#[tokio::test]
async fn youtube_resumable_upload_checks_the_byte_count() {
    let fake = FakePlatform::start(Kind::Google).await;
    let token = user_token(&fake).await;
    let api = setting(&fake, "youtube_api_url");
    let media = http().get(fake.media_url("clip.mp4")).send().await.unwrap();
    assert_eq!(media.headers()["content-type"], "video/mp4");
    let bytes = media.bytes().await.unwrap().to_vec();
    let start = |meta: Value, len: usize| {
        http()
            .post(format!(
                "{api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
            ))
            .bearer_auth(&token)
            .header("X-Upload-Content-Length", len.to_string())
            .header("X-Upload-Content-Type", "video/mp4")
            .json(&meta)
            .send()
    };
    let meta = json!({
        "snippet": { "title": "yt title", "description": "yt description" },
        "status": { "privacyStatus": "private" },
    });
    let resp = start(meta.clone(), bytes.len()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/upload/youtube/v3/videos?", fake.base_url())),
        "{location}"
    );
    assert!(location.contains("upload_id="));
    assert!(resp.text().await.unwrap().is_empty());

    let short = bytes.get(..100).unwrap().to_vec();
    let (status, err) = body(http().put(&location).body(short).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(400))
    );
    assert_eq!(fake.publish_count(), 0);
    let (status, video) = body(http().put(&location).body(bytes.clone()).send().await.unwrap()).await;
    assert_eq!(status, 200, "{video}");
    assert_eq!(video["kind"], "youtube#video");
    assert_eq!(video["snippet"]["title"], "yt title");
    assert_eq!(video["status"]["privacyStatus"], "private");
    let id = video["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 11);
    // A repeated PUT answers the same video and publishes nothing new.
    let (_, again) = body(http().put(&location).body(bytes.clone()).send().await.unwrap()).await;
    assert_eq!(again["id"], json!(id));

    let posts = fake.published();
    assert_eq!(posts.len(), 1);
    let channel = fake.control().identity.id.clone();
    assert_eq!(
        (
            posts[0].platform.as_str(),
            posts[0].account.as_str(),
            posts[0].id.as_str()
        ),
        ("youtube", channel.as_str(), id.as_str())
    );
    assert_eq!(
        (posts[0].title.as_deref(), posts[0].text.as_str()),
        (Some("yt title"), "yt description")
    );
    assert_eq!(posts[0].options["media_name"], "clip.mp4");
    assert_eq!(posts[0].options["bytes"], bytes.len());

    // No title, no bytes, no length header, bad token, unknown session.
    let (status, err) = body(start(meta.clone(), 0).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["errors"][0]["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("mediaBodyRequired"))
    );
    let (status, err) = body(start(json!({ "snippet": {} }), 10).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["errors"][0]["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidTitle"))
    );
    let resp = http()
        .post(format!(
            "{api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
        ))
        .bearer_auth(&token)
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http()
        .post(format!(
            "{api}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
        ))
        .bearer_auth("bogus")
        .header("X-Upload-Content-Length", "10")
        .json(&meta)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let unknown = format!("{api}/upload/youtube/v3/videos?uploadType=resumable&upload_id=nope");
    assert_eq!(http().put(unknown).body(bytes).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn media_is_served_on_every_fake() {
    for kind in [
        Kind::Meta,
        Kind::Linkedin,
        Kind::X,
        Kind::Tiktok,
        Kind::Reddit,
        Kind::Google,
    ] {
        let fake = FakePlatform::start(kind).await;
        for (name, ctype) in [
            ("a.mp4", "video/mp4"),
            ("b.mov", "video/mp4"),
            ("c.jpg", "image/jpeg"),
            ("d.png", "image/jpeg"),
        ] {
            let url = fake.media_url(name);
            assert_eq!(url, format!("{}/media/{name}", fake.base_url()));
            let resp = http().get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{kind:?} {name}");
            assert_eq!(resp.headers()["content-type"], ctype, "{kind:?} {name}");
            let first = resp.bytes().await.unwrap();
            assert_eq!(first.len(), 4096);
            let second = http().get(&url).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(first, second);
        }
    }
}

/// A tweet request on the X fake.
async fn tweet(fake: &FakePlatform, token: &str, text: &str) -> reqwest::Response {
    http()
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn faults_of_every_kind_on_x() {
    let fake = FakePlatform::start(Kind::X).await;
    let token = user_token(&fake).await;
    fake.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 7 },
        PublishFault::Rejected {
            message: "not today".into(),
        },
        PublishFault::Unauthorized,
        PublishFault::SlowMs(300),
    ]);
    let resp = tweet(&fake, &token, "one").await;
    assert_eq!(resp.status(), 503);
    let resp = tweet(&fake, &token, "one").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let reset: i64 = resp.headers()["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!((now + 5..=now + 9).contains(&reset), "{reset} vs {now}");
    let (status, err) = body(tweet(&fake, &token, "one").await).await;
    assert_eq!(
        (status, err["detail"].clone()),
        (StatusCode::BAD_REQUEST, json!("not today"))
    );
    let (status, err) = body(tweet(&fake, &token, "one").await).await;
    assert_eq!(
        (status, err["title"].clone()),
        (StatusCode::UNAUTHORIZED, json!("Unauthorized"))
    );
    assert_eq!(fake.publish_count(), 0);

    // Listings never take a fault.
    fake.control().publish_faults.push_front(PublishFault::ServerError);
    let user_id = fake.control().identity.id.clone();
    let list = format!("{}/2/users/{user_id}/tweets", fake.base_url());
    assert_eq!(
        http().get(&list).bearer_auth(&token).send().await.unwrap().status(),
        200
    );
    assert_eq!(fake.control().publish_faults.len(), 2);
    assert_eq!(tweet(&fake, &token, "one").await.status(), 503);

    let started = Instant::now();
    let resp = tweet(&fake, &token, "one").await;
    assert_eq!(resp.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(fake.control().publish_faults.is_empty());
    assert_eq!(fake.publish_count(), 1);

    // A client that gives up during SlowMs: the tweet is still created (the handler is not cancelled).
    fake.control().publish_faults.push_back(PublishFault::SlowMs(400));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let timed_out = impatient
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(&token)
        .json(&json!({ "text": "two" }))
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.publish_count(), 2);
    assert_eq!(fake.published()[1].text, "two");

    // publish_latency_ms delays every publish-creating call.
    fake.control().publish_latency_ms = 200;
    let started = Instant::now();
    assert_eq!(tweet(&fake, &token, "three").await.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn fault_shapes_of_every_platform() {
    // Meta: 500 transient, 400 code 4 + usage header, 400 code 100, 400 code 190.
    let meta = FakePlatform::start(Kind::Meta).await;
    let api = setting(&meta, "facebook_api_url");
    let (_, pages) = meta_tokens(&meta).await;
    let (page, token) = (&pages[0].0, pages[0].1.as_str());
    meta.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 30 },
        PublishFault::Rejected {
            message: "(#100) no".into(),
        },
        PublishFault::Unauthorized,
    ]);
    let feed = format!("{api}/{page}/feed");
    let send = || {
        http()
            .post(&feed)
            .form(&[("message", "m"), ("access_token", token)])
            .send()
    };
    let (status, err) = body(send().await.unwrap()).await;
    assert_eq!(
        (status.as_u16(), err["error"]["is_transient"].clone()),
        (500, json!(true))
    );
    let resp = send().await.unwrap();
    let usage: Value = serde_json::from_str(resp.headers()["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage[page][0]["estimated_time_to_regain_access"], 1);
    let (status, err) = body(resp).await;
    assert_eq!((status.as_u16(), err["error"]["code"].clone()), (400, json!(4)));
    let (_, err) = body(send().await.unwrap()).await;
    assert_eq!(
        (err["error"]["code"].clone(), err["error"]["message"].clone()),
        (json!(100), json!("(#100) no"))
    );
    let (_, err) = body(send().await.unwrap()).await;
    assert_eq!(err["error"]["code"], 190);
    assert_eq!(meta.publish_count(), 0);
    // Container polls never take a fault.
    let (_, container) = graph_post(
        &api,
        &format!("/{IG_ID}/media"),
        &[("image_url", &meta.media_url("a.jpg")), ("access_token", token)],
    )
    .await;
    meta.control().publish_faults.push_back(PublishFault::ServerError);
    let (status, _) = graph_get(
        &api,
        &format!("/{}?fields=status_code", container["id"].as_str().unwrap()),
        token,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = graph_post(
        &api,
        &format!("/{IG_ID}/media_publish"),
        &[
            ("creation_id", container["id"].as_str().unwrap()),
            ("access_token", token),
        ],
    )
    .await;
    assert_eq!(status, 500);

    // LinkedIn: 500, 429 + Retry-After, 422, 401.
    let li = FakePlatform::start(Kind::Linkedin).await;
    let token = user_token(&li).await;
    let author = format!("urn:li:person:{}", li.control().identity.id);
    li.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 3 },
        PublishFault::Rejected { message: "no".into() },
        PublishFault::Unauthorized,
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let resp = http()
            .post(format!("{}/rest/posts", li.base_url()))
            .bearer_auth(&token)
            .header("LinkedIn-Version", "202411")
            .json(&json!({ "author": author, "commentary": "c", "visibility": "PUBLIC",
                "distribution": { "feedDistribution": "MAIN_FEED" }, "lifecycleState": "PUBLISHED" }))
            .send()
            .await
            .unwrap();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.push((resp.status().as_u16(), retry));
    }
    assert_eq!(
        seen,
        vec![(500, None), (429, Some("3".to_owned())), (422, None), (401, None)]
    );

    // TikTok: 500, 429, 200 invalid_params, 401 access_token_invalid.
    let tt = FakePlatform::start(Kind::Tiktok).await;
    let token = user_token(&tt).await;
    tt.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 3 },
        PublishFault::Rejected { message: "no".into() },
        PublishFault::Unauthorized,
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, b) = body(
            http()
                .post(format!("{}/v2/post/publish/video/init/", tt.base_url()))
                .bearer_auth(&token)
                .json(&json!({ "post_info": { "title": "t", "privacy_level": "SELF_ONLY" },
                    "source_info": { "source": "PULL_FROM_URL", "video_url": tt.media_url("v.mp4") } }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen.push((status.as_u16(), b["error"]["code"].as_str().unwrap().to_owned()));
    }
    let codes: Vec<(u16, &str)> = seen.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(
        codes,
        vec![
            (500, "internal_error"),
            (429, "rate_limit_exceeded"),
            (200, "invalid_params"),
            (401, "access_token_invalid")
        ]
    );

    // Reddit: 500, 429, 200 json.errors, 401.
    let rd = FakePlatform::start(Kind::Reddit).await;
    let token = user_token(&rd).await;
    rd.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 3 },
        PublishFault::Rejected { message: "no".into() },
        PublishFault::Unauthorized,
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, b) = body(
            http()
                .post(format!("{}/api/submit", rd.base_url()))
                .header("user-agent", REDDIT_UA)
                .bearer_auth(&token)
                .form(&[("api_type", "json"), ("kind", "self"), ("sr", "rust"), ("title", "t")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen.push((status.as_u16(), b["json"]["errors"][0][1].clone()));
    }
    assert_eq!(
        seen,
        vec![
            (500, Value::Null),
            (429, Value::Null),
            (200, json!("no")),
            (401, Value::Null)
        ]
    );

    // Google: 503, 429, 400 with the message, 401.
    let yt = FakePlatform::start(Kind::Google).await;
    let token = user_token(&yt).await;
    yt.control().publish_faults.extend([
        PublishFault::ServerError,
        PublishFault::RateLimited { retry_after_s: 3 },
        PublishFault::Rejected { message: "no".into() },
        PublishFault::Unauthorized,
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (status, b) = body(
            http()
                .post(format!(
                    "{}/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status",
                    yt.base_url()
                ))
                .bearer_auth(&token)
                .header("X-Upload-Content-Length", "4096")
                .json(&json!({ "snippet": { "title": "t" } }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen.push((
            status.as_u16(),
            b["error"]["code"].clone(),
            b["error"]["message"].clone(),
        ));
    }
    assert_eq!(seen[0].0, 503);
    assert_eq!(seen[1].0, 429);
    assert_eq!((seen[2].0, seen[2].2.clone()), (400, json!("no")));
    assert_eq!(seen[3].0, 401);
}
