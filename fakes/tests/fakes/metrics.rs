//! The metrics endpoints of every fake, driven with plain reqwest and tokens minted by the fake:
//! shapes, defaults and overrides, unknown ids, batch limits, token checks, call counts and faults.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use nikara_fakes::{FakeMetrics, FakePlatform, Kind, PublishFault};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::*;

const PAGE_A: &str = "112233445566778";
const IG_ID: &str = "17841400000000001";

fn numbers(likes: i64, comments: i64, shares: i64) -> FakeMetrics {
    FakeMetrics {
        likes,
        comments,
        shares,
        views: 1000 + likes,
        impressions: 2000 + likes,
        reach: 500 + likes,
        saved: 4,
        quotes: 2,
        bookmarks: 6,
        reactions: BTreeMap::new(),
    }
}

async fn get(url: &str, token: &str) -> (StatusCode, Value) {
    body(http().get(url).bearer_auth(token).send().await.unwrap()).await
}

#[tokio::test]
async fn x_lookup_batches_reports_missing_ids_in_errors_and_counts_calls() {
    let fake = FakePlatform::start(Kind::X).await;
    let api = setting(&fake, "x_api_url");
    let token = fake.test_token();
    let mut ids = Vec::new();
    for text in ["first", "second"] {
        let resp = http()
            .post(format!("{api}/2/tweets"))
            .bearer_auth(&token)
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        let (status, created) = body(resp).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    let lookup = |ids: &str, fields: &str| format!("{api}/2/tweets?ids={ids}&tweet.fields={fields}");
    let (status, found) = get(&lookup(&format!("{},{},42", ids[0], ids[1]), "public_metrics"), &token).await;
    assert_eq!(status, 200, "{found}");
    let data = found["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], ids[0].as_str());
    assert_eq!(data[0]["text"], "first");
    assert_eq!(
        data[1]["public_metrics"],
        json!({"retweet_count": 1, "reply_count": 2, "like_count": 4, "quote_count": 0, "bookmark_count": 0, "impression_count": 220})
    );
    assert_eq!(found["errors"][0]["resource_id"], "42");
    assert_eq!(
        found["errors"][0]["type"],
        "https://api.twitter.com/2/problems/resource-not-found"
    );
    assert_eq!(
        fake.metrics_of("x", &ids[0]),
        Some(FakeMetrics::for_index(0)),
        "the first published post has the index-0 defaults"
    );

    // Overrides win; missing ids vanish; no public_metrics unless asked.
    fake.control()
        .metrics_overrides
        .insert(ids[0].clone(), numbers(50, 5, 7));
    fake.control().metrics_missing.insert(ids[1].clone());
    let (_, found) = get(&lookup(&format!("{},{}", ids[0], ids[1]), "public_metrics"), &token).await;
    assert_eq!(found["data"][0]["public_metrics"]["like_count"], 50);
    assert_eq!(found["data"][0]["public_metrics"]["quote_count"], 2);
    assert_eq!(found["errors"][0]["resource_id"], ids[1].as_str());
    let (_, bare) = get(&lookup(&ids[0], "created_at"), &token).await;
    assert!(bare["data"][0].get("public_metrics").is_none());
    assert!(bare["data"][0]["created_at"].as_str().unwrap().ends_with('Z'));
    let (_, none) = get(&lookup("7,8", "public_metrics"), &token).await;
    assert!(none.get("data").is_none() && none["errors"].as_array().unwrap().len() == 2);

    // Limits and token.
    let hundred: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let (status, _) = get(&lookup(&hundred.join(","), "public_metrics"), &token).await;
    assert_eq!(status, 200);
    let (status, err) = get(&lookup(&format!("{},101", hundred.join(",")), "public_metrics"), &token).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("[101]"), "{err}");
    let (status, _) = get(&lookup("12a", "public_metrics"), &token).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{api}/2/tweets?tweet.fields=public_metrics"), &token).await;
    assert_eq!(status, 400);
    let (status, err) = get(&lookup("1", "public_metrics"), "not-a-token").await;
    assert_eq!(
        (status, err["title"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Unauthorized"))
    );
    assert_eq!(fake.metrics_calls(), 9);
    assert_eq!(fake.metrics_calls_to("x"), 9);
    assert_eq!(fake.metrics_calls_to("tiktok"), 0);
}

#[tokio::test]
async fn metrics_faults_are_answered_in_the_platform_shape_after_the_token_check() {
    let fake = FakePlatform::start(Kind::X).await;
    let api = setting(&fake, "x_api_url");
    let token = fake.test_token();
    fake.control().metrics_overrides.insert("5".into(), numbers(1, 1, 1));
    fake.control().metrics_faults.extend([
        PublishFault::RateLimited { retry_after_s: 30 },
        PublishFault::ServerError,
    ]);
    let url = format!("{api}/2/tweets?ids=5&tweet.fields=public_metrics");
    let resp = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "30");
    assert!(resp.headers().contains_key("x-rate-limit-reset"));
    assert_eq!(get(&url, &token).await.0, 503);
    assert_eq!(get(&url, &token).await.0, 200);
    // A fault is popped even when the token is refused.
    fake.control().metrics_faults.push_back(PublishFault::Unauthorized);
    fake.control()
        .metrics_faults
        .push_back(PublishFault::Rejected { message: "nope".into() });
    assert_eq!(get(&url, "bad").await.0, 401);
    let (status, rejected) = get(&url, &token).await;
    assert_eq!(
        (status, rejected["detail"].as_str()),
        (StatusCode::BAD_REQUEST, Some("nope"))
    );
    assert_eq!(fake.metrics_calls(), 5);
}

#[tokio::test]
async fn tiktok_video_query_takes_twenty_ids_and_leaves_unknown_ones_out() {
    let fake = FakePlatform::start(Kind::Tiktok).await;
    let api = setting(&fake, "tiktok_api_url");
    let token = fake.test_token();
    for i in 0..20 {
        fake.control()
            .metrics_overrides
            .insert(format!("73010000000000000{i:02}"), numbers(i, 1, 2));
    }
    let query = |fields: &str, ids: Vec<String>, token: &str| {
        http()
            .post(format!("{api}/v2/video/query/?fields={fields}"))
            .bearer_auth(token)
            .json(&json!({ "filters": { "video_ids": ids } }))
            .send()
    };
    let ids: Vec<String> = (0..19)
        .map(|i| format!("73010000000000000{i:02}"))
        .chain(["1".into()])
        .collect();
    let fields = "id,like_count,comment_count,share_count,view_count";
    let (status, out) = body(query(fields, ids.clone(), &token).await.unwrap()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["error"]["code"], "ok");
    let videos = out["data"]["videos"].as_array().unwrap();
    assert_eq!(videos.len(), 19, "the unknown id is just absent");
    assert_eq!(
        videos[3],
        json!({"id": "7301000000000000003", "like_count": 3, "comment_count": 1, "share_count": 2, "view_count": 1003})
    );
    let (_, some) = body(query("id,like_count", ids[..1].to_vec(), &token).await.unwrap()).await;
    assert_eq!(
        some["data"]["videos"][0],
        json!({"id": "7301000000000000000", "like_count": 0})
    );

    let mut too_many = ids.clone();
    too_many.push("2".into());
    let (status, err) = body(query(fields, too_many, &token).await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::OK, Some("invalid_params"))
    );
    let (_, err) = body(query(fields, Vec::new(), &token).await.unwrap()).await;
    assert_eq!(err["error"]["code"], "invalid_params");
    let (_, err) = body(query("id,secret_count", ids.clone(), &token).await.unwrap()).await;
    assert_eq!(err["error"]["code"], "invalid_params");
    let (status, err) = body(query(fields, ids, "bad").await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("access_token_invalid"))
    );
    assert_eq!(fake.metrics_calls_to("tiktok"), 6);
}

#[tokio::test]
async fn reddit_info_lists_known_submissions() {
    let fake = FakePlatform::start(Kind::Reddit).await;
    let api = setting(&fake, "reddit_api_url");
    let token = fake.test_token();
    let form = [
        ("api_type", "json"),
        ("kind", "self"),
        ("sr", "rust"),
        ("title", "Hello"),
        ("text", "body"),
    ];
    let resp = http()
        .post(format!("{api}/api/submit"))
        .header("user-agent", REDDIT_UA)
        .bearer_auth(&token)
        .form(&form)
        .send()
        .await
        .unwrap();
    let name = body(resp).await.1["json"]["data"]["name"].as_str().unwrap().to_owned();
    fake.control()
        .metrics_overrides
        .insert("t3_zz9".into(), numbers(15, 4, 0));
    let info = |ids: &str, ua: &str| {
        http()
            .get(format!("{api}/api/info?id={ids}"))
            .header("user-agent", ua)
            .bearer_auth(&token)
            .send()
    };
    let (status, listing) = body(info(&format!("{name},t3_zz9,t3_nope"), REDDIT_UA).await.unwrap()).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["kind"], "Listing");
    let children = listing["data"]["children"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0]["data"]["name"], name.as_str());
    assert_eq!(children[0]["data"]["title"], "Hello");
    assert_eq!(children[0]["data"]["subreddit"], "rust");
    assert_eq!(
        (
            children[0]["data"]["ups"].as_i64(),
            children[0]["data"]["num_comments"].as_i64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        (
            children[1]["data"]["score"].as_i64(),
            children[1]["data"]["num_comments"].as_i64()
        ),
        (Some(15), Some(4))
    );

    let many: Vec<String> = (0..101).map(|i| format!("t3_a{i}")).collect();
    assert_eq!(info(&many.join(","), REDDIT_UA).await.unwrap().status(), 400);
    assert_eq!(info(&many[..100].join(","), REDDIT_UA).await.unwrap().status(), 200);
    assert_eq!(info(&name, "python-requests/2.31").await.unwrap().status(), 403);
    let resp = http()
        .get(format!("{api}/api/info?id={name}"))
        .header("user-agent", REDDIT_UA)
        .bearer_auth("bad")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(fake.metrics_calls(), 5);
}

#[tokio::test]
async fn youtube_statistics_are_strings_and_fifty_ids_at_most() {
    let fake = FakePlatform::start(Kind::Google).await;
    let api = setting(&fake, "youtube_api_url");
    let token = fake.test_token();
    fake.control()
        .metrics_overrides
        .insert("vid_A-1".into(), numbers(17, 3, 0));
    let videos = |ids: &str| format!("{api}/youtube/v3/videos?part=statistics&id={ids}");
    let (status, list) = get(&videos("vid_A-1,unknown"), &token).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["kind"], "youtube#videoListResponse");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["statistics"],
        json!({"viewCount": "1017", "likeCount": "17", "favoriteCount": "0", "commentCount": "3"})
    );
    let fifty: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    assert_eq!(get(&videos(&fifty.join(",")), &token).await.0, 200);
    let (status, err) = get(&videos(&format!("{},v50", fifty.join(","))), &token).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(get(&format!("{api}/youtube/v3/videos?id=x"), &token).await.0, 400);
    let (status, err) = get(&videos("vid_A-1"), "bad").await;
    assert_eq!(
        (status, err["error"]["status"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    assert_eq!(fake.metrics_calls_to("youtube"), 5);
}

#[tokio::test]
async fn linkedin_analytics_one_metric_per_call() {
    let fake = FakePlatform::start(Kind::Linkedin).await;
    let api = setting(&fake, "linkedin_api_url");
    let token = fake.test_token();
    let urn = "urn:li:share:7260000000000000123";
    fake.control().metrics_overrides.insert(urn.into(), numbers(9, 2, 1));
    let call = |entity: &str, query_type: &str, aggregation: &str, version: Option<&str>, restli: bool| {
        let url = format!(
            "{api}/rest/memberCreatorPostAnalytics?q=entity&entity={entity}&queryType={query_type}&aggregation={aggregation}"
        );
        let mut rb = http().get(url).bearer_auth(&token);
        if let Some(v) = version {
            rb = rb.header("LinkedIn-Version", v);
        }
        if restli {
            rb = rb.header("X-Restli-Protocol-Version", "2.0.0");
        }
        rb.send()
    };
    let entity = "(share:urn%3Ali%3Ashare%3A7260000000000000123)";
    for (query_type, want) in [
        ("REACTION", 9),
        ("COMMENT", 2),
        ("RESHARE", 1),
        ("IMPRESSION", 2009),
        ("MEMBERS_REACHED", 509),
    ] {
        let (status, out) = body(call(entity, query_type, "TOTAL", Some("202411"), true).await.unwrap()).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["elements"][0]["count"], want, "{query_type}");
        assert_eq!(
            out["elements"][0]["metricType"]["com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1"],
            query_type
        );
    }
    let (_, daily) = body(call(entity, "REACTION", "DAILY", Some("202411"), true).await.unwrap()).await;
    assert!(daily["elements"][0]["dateRange"]["start"]["year"].as_u64().unwrap() >= 2024);
    let unknown = "(ugc:urn%3Ali%3AugcPost%3A1)";
    let (status, err) = body(call(unknown, "REACTION", "TOTAL", Some("202411"), true).await.unwrap()).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        call(entity, "REACTION", "TOTAL", None, true).await.unwrap().status(),
        426
    );
    assert_eq!(
        call(entity, "REACTION", "TOTAL", Some("202411"), false)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        call(entity, "LIKES", "TOTAL", Some("202411"), true)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        call("urn:li:share:1", "REACTION", "TOTAL", Some("202411"), true)
            .await
            .unwrap()
            .status(),
        400
    );
    let resp = http()
        .get(format!(
            "{api}/rest/memberCreatorPostAnalytics?q=entity&entity={entity}&queryType=REACTION&aggregation=TOTAL"
        ))
        .bearer_auth("bad")
        .header("LinkedIn-Version", "202411")
        .header("X-Restli-Protocol-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    let (status, err) = body(resp).await;
    assert_eq!(
        (status, err["serviceErrorCode"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(65600))
    );
    assert_eq!(fake.metrics_calls(), 12);
}

#[tokio::test]
async fn facebook_post_engagement_and_instagram_insights() {
    let fake = FakePlatform::start(Kind::Meta).await;
    let api = setting(&fake, "facebook_api_url");
    let page_token = fake.test_page_token(PAGE_A);
    let (status, created) = body(
        http()
            .post(format!("{api}/{PAGE_A}/feed"))
            .form(&[("message", "hello"), ("access_token", &page_token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let post_id = created["id"].as_str().unwrap().to_owned();
    let fields = "reactions.limit(0).summary(total_count),comments.limit(0).summary(true),shares,\
                  reactions.type(LIKE).limit(0).summary(total_count).as(like),\
                  reactions.type(LOVE).limit(0).summary(total_count).as(love),message";
    let read = |id: &str, token: &str| format!("{api}/{id}?fields={fields}&access_token={token}");
    let (status, post) = body(http().get(read(&post_id, &page_token)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{post}");
    assert_eq!(post["id"], post_id.as_str());
    assert_eq!(post["message"], "hello");
    assert_eq!(post["reactions"]["summary"]["total_count"], 3);
    assert_eq!(post["comments"]["summary"]["total_count"], 1);
    assert_eq!(post["like"]["summary"]["total_count"], 3);
    assert_eq!(post["love"]["summary"]["total_count"], 0);
    assert!(post.get("shares").is_none(), "nobody shared the first post: {post}");

    let mut m = numbers(6, 2, 3);
    m.reactions = [("LIKE".to_string(), 4), ("LOVE".to_string(), 2)].into_iter().collect();
    fake.control().metrics_overrides.insert(post_id.clone(), m);
    let (_, post) = body(http().get(read(&post_id, &page_token)).send().await.unwrap()).await;
    assert_eq!(post["reactions"]["summary"]["total_count"], 6);
    assert_eq!(
        (
            post["like"]["summary"]["total_count"].as_i64(),
            post["love"]["summary"]["total_count"].as_i64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(post["shares"], json!({"count": 3}));

    // A plain read is not a metrics call; unknown posts and dead tokens answer Graph errors.
    let (status, plain) = body(
        http()
            .get(format!("{api}/{post_id}?fields=message&access_token={page_token}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, plain["message"].as_str()), (StatusCode::OK, Some("hello")));
    let (status, err) = body(
        http()
            .get(read(&format!("{PAGE_A}_1"), &page_token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(100))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported get request")
    );
    let (status, err) = body(http().get(read(&post_id, "bad")).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(190))
    );
    assert_eq!(fake.metrics_calls_to("facebook"), 4);

    // Instagram insights.
    let media = "17890000000000777";
    fake.control().metrics_overrides.insert(media.into(), numbers(5, 2, 1));
    let insights = |id: &str, metric: &str| format!("{api}/{id}/insights?metric={metric}&access_token={page_token}");
    let all = "likes,comments,shares,saved,reach,views,total_interactions";
    let (status, out) = body(http().get(insights(media, all)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{out}");
    let values: Vec<(String, i64)> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["values"][0]["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("likes", 5),
        ("comments", 2),
        ("shares", 1),
        ("saved", 4),
        ("reach", 505),
        ("views", 1005),
        ("total_interactions", 12),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), *v))
    .collect();
    assert_eq!(values, want);
    assert_eq!(out["data"][0]["period"], "lifetime");
    assert_eq!(out["data"][0]["id"], format!("{media}/insights/likes/lifetime"));
    let (status, err) = body(http().get(insights(media, "likes,impressions")).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(100))
    );
    let (status, err) = body(http().get(insights("17890000000000001", "likes")).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(100))
    );
    fake.control().metrics_missing.insert(media.into());
    let (status, _) = body(http().get(insights(media, "likes")).send().await.unwrap()).await;
    assert_eq!(status, 400);
    fake.control()
        .metrics_faults
        .push_back(PublishFault::RateLimited { retry_after_s: 60 });
    let resp = http().get(insights(IG_ID, "likes")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-business-use-case-usage"));
    assert_eq!(body(resp).await.1["error"]["code"], 4);
    assert_eq!(fake.metrics_calls_to("instagram"), 5);
    assert_eq!(fake.metrics_calls(), 9);
}
