//! The shared plumbing: batching, per-post answers, what ends a fetch.

use std::cell::RefCell;

use serde_json::json;

use super::*;

fn err(platform: Platform, status: u16) -> PlatformError {
    PlatformError::Api {
        platform,
        status,
        code: None,
        message: format!("status {status}"),
    }
}

fn requests<'a>(ids: &'a [String], meta: &'a Value) -> Vec<MetricsRequest<'a>> {
    ids.iter()
        .map(|id| MetricsRequest {
            platform_post_id: id,
            external_id: "acct",
            metadata: meta,
        })
        .collect()
}

fn likes(n: i64) -> Metrics {
    Metrics {
        likes: Some(n),
        ..Metrics::default()
    }
}

#[test]
fn counts_and_ids() {
    assert_eq!(int(Some(&json!(5))), Some(5));
    assert_eq!(int(Some(&json!("17000000"))), Some(17_000_000));
    assert_eq!(int(Some(&json!(" 3 "))), Some(3));
    assert_eq!(int(Some(&json!("many"))), None);
    assert_eq!(int(Some(&json!(1.5))), None);
    assert_eq!(int(Some(&json!(null))), None);
    assert_eq!(int(None), None);
    assert_eq!(
        id_of(Some(&json!(7301000000000000001u64))).as_deref(),
        Some("7301000000000000001")
    );
    assert_eq!(id_of(Some(&json!(""))), None);
}

#[test]
fn what_ends_a_fetch() {
    let p = Platform::X;
    assert!(stops_fetch(&PlatformError::Unauthorized {
        platform: p,
        status: 401,
        code: None,
        message: "x".into()
    }));
    assert!(stops_fetch(&PlatformError::RateLimited {
        platform: p,
        retry_after_s: Some(3),
        message: "x".into()
    }));
    assert!(stops_fetch(&err(p, 503)));
    assert!(stops_fetch(&PlatformError::Transport {
        platform: p,
        message: "request timed out".into()
    }));
    assert!(!stops_fetch(&err(p, 404)));
    assert!(!stops_fetch(&err(p, 400)));
    assert!(!stops_fetch(&PlatformError::invalid(p, "shape")));
    assert!(!stops_fetch(&not_found(p, "1")));
}

#[test]
fn missing_posts_become_not_found() {
    let meta = PlatformError::Api {
        platform: Platform::Facebook,
        status: 400,
        code: Some("100".into()),
        message: "Unsupported get request. Object with ID '1_2' does not exist, cannot be loaded due to missing \
                  permissions, or does not support this operation."
            .into(),
    };
    let mapped = missing_as_not_found(meta);
    assert!(is_not_found(&mapped));
    assert!(mapped.to_string().contains("Object with ID '1_2' does not exist"));
    let bad_param = PlatformError::Api {
        platform: Platform::Instagram,
        status: 400,
        code: Some("100".into()),
        message: "(#100) metric[0] must be one of the following values".into(),
    };
    assert_eq!(missing_as_not_found(bad_param.clone()), bad_param);
    assert!(is_not_found(&missing_as_not_found(err(Platform::Linkedin, 404))));
    assert!(!is_not_found(&missing_as_not_found(err(Platform::Linkedin, 403))));
    assert!(!is_not_found(&invalid_id(Platform::Tiktok, "v_pub_1")));
    assert!(
        matches!(invalid_id(Platform::Tiktok, "v_pub_1"), PlatformError::Api { status: 422, ref code, .. }
        if code.as_deref() == Some("invalid_post_id"))
    );
}

#[tokio::test]
async fn batches_distinct_ids_and_answers_in_order() {
    let meta = Value::Null;
    let ids: Vec<String> = (0..45)
        .map(|i| (i % 41).to_string())
        .chain(["bad!".to_string()])
        .collect();
    let posts = requests(&ids, &meta);
    let calls = RefCell::new(Vec::new());
    let out = batched(
        Platform::Tiktok,
        &posts,
        20,
        |id| id.bytes().all(|b| b.is_ascii_digit()).then(|| id.to_string()),
        |chunk: Vec<String>| {
            calls.borrow_mut().push(chunk.len());
            // Knows every id but "7"; answers one id it was not asked about (ignored).
            let mut found: HashMap<String, PostMetrics> = chunk
                .iter()
                .filter(|id| *id != "7")
                .map(|id| (id.clone(), Ok(likes(id.parse().unwrap_or(0)))))
                .collect();
            found.insert("999".into(), Ok(likes(999)));
            async move { Ok(found) }
        },
    )
    .await
    .unwrap();
    assert_eq!(*calls.borrow(), vec![20, 20, 1], "41 distinct valid ids");
    assert_eq!(out.len(), 46);
    assert_eq!(out[3], Ok(likes(3)));
    assert_eq!(out[42], Ok(likes(1)), "a repeated id gets the same answer");
    assert!(is_not_found(out[7].as_ref().unwrap_err()));
    assert!(matches!(out[45], Err(PlatformError::Api { status: 422, .. })));
}

#[tokio::test]
async fn a_refused_batch_answers_its_posts_and_a_dead_token_ends_the_fetch() {
    let meta = Value::Null;
    let ids: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    let posts = requests(&ids, &meta);
    let n = RefCell::new(0);
    let out = batched(
        Platform::X,
        &posts,
        2,
        |id| Some(id.to_string()),
        |chunk: Vec<String>| {
            *n.borrow_mut() += 1;
            let answer = if chunk.contains(&"2".to_string()) {
                Err(err(Platform::X, 400))
            } else {
                Ok(chunk.iter().map(|id| (id.clone(), Ok(likes(1)))).collect())
            };
            async move { answer }
        },
    )
    .await
    .unwrap();
    assert_eq!(*n.borrow(), 3);
    assert!(out[0].is_ok() && out[1].is_ok() && out[4].is_ok());
    assert_eq!(out[2], Err(err(Platform::X, 400)));
    assert_eq!(out[3], Err(err(Platform::X, 400)));

    let limited = batched(
        Platform::X,
        &posts,
        2,
        |id| Some(id.to_string()),
        |_: Vec<String>| async {
            Err::<HashMap<String, PostMetrics>, _>(PlatformError::RateLimited {
                platform: Platform::X,
                retry_after_s: Some(60),
                message: "Too Many Requests".into(),
            })
        },
    )
    .await;
    assert!(matches!(
        limited,
        Err(PlatformError::RateLimited {
            retry_after_s: Some(60),
            ..
        })
    ));
}

#[tokio::test]
async fn one_by_one_keeps_post_errors_and_stops_on_a_dead_token() {
    let meta = Value::Null;
    let ids: Vec<String> = ["a", "gone", "b", "dead", "c"].iter().map(|s| s.to_string()).collect();
    let posts = requests(&ids, &meta);
    let asked = RefCell::new(Vec::new());
    let out = one_by_one(&posts[..3], |post: MetricsRequest<'_>| {
        asked.borrow_mut().push(post.platform_post_id.to_string());
        let answer = match post.platform_post_id {
            "gone" => Err(not_found(Platform::Linkedin, "gone")),
            _ => Ok(likes(1)),
        };
        async move { answer }
    })
    .await
    .unwrap();
    assert_eq!(out.len(), 3);
    assert!(is_not_found(out[1].as_ref().unwrap_err()));
    asked.borrow_mut().clear();
    let dead = one_by_one(&posts, |post: MetricsRequest<'_>| {
        asked.borrow_mut().push(post.platform_post_id.to_string());
        let answer = match post.platform_post_id {
            "dead" => Err(PlatformError::Unauthorized {
                platform: Platform::Linkedin,
                status: 401,
                code: Some("65601".into()),
                message: "revoked".into(),
            }),
            _ => Ok(likes(1)),
        };
        async move { answer }
    })
    .await;
    assert!(matches!(dead, Err(PlatformError::Unauthorized { .. })));
    assert_eq!(asked.borrow().len(), 4, "nothing is asked after the dead token");
}

#[test]
fn metrics_serialise_with_every_field() {
    let m = Metrics {
        likes: Some(3),
        reactions: [("LOVE".to_string(), 1)].into_iter().collect(),
        ..Metrics::default()
    };
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(
        v,
        json!({"likes": 3, "comments": null, "shares": null, "views": null, "impressions": null, "reactions": {"LOVE": 1}})
    );
    assert_eq!(
        serde_json::from_value::<Metrics>(json!({"likes": 3})).unwrap(),
        likes(3)
    );
}

#[test]
fn the_fetch_future_can_be_spawned() {
    // Futures of closures over borrowed arguments lose `Send` for every lifetime; a spawned worker
    // needs it. Building the future (never polled) is the check.
    fn is_send<T: Send>(_: &T) {}
    let fut = async {
        let http = reqwest::Client::new();
        let ctx = ApiCtx {
            http: &http,
            platform: Platform::X,
            api_url: "http://127.0.0.1:9",
            user_agent: "nikara-test",
        };
        let token = SecretString::from("token");
        let meta = Value::Null;
        let posts = [MetricsRequest {
            platform_post_id: "1",
            external_id: "2",
            metadata: &meta,
        }];
        fetch(&ctx, &token, &posts).await
    };
    is_send(&fut);
}

// ---- Against the fakes: nikara's calls, the fakes' shapes. ----

mod against_fakes {
    use nikara_fakes::{FakeMetrics, FakePlatform, Kind, PublishFault};

    use super::*;

    const UA: &str = "rust:nikara-tests:0.1.0 (by /u/nikara_dev)";
    const PAGE_A: &str = "112233445566778";

    fn kind(platform: Platform) -> Kind {
        match platform {
            Platform::Facebook | Platform::Instagram => Kind::Meta,
            Platform::Linkedin => Kind::Linkedin,
            Platform::X => Kind::X,
            Platform::Tiktok => Kind::Tiktok,
            Platform::Reddit => Kind::Reddit,
            Platform::Youtube => Kind::Google,
        }
    }

    /// A fake of `platform`, its API URL and a token nikara would hold (Meta: the Page token).
    async fn fake(platform: Platform) -> (FakePlatform, String, String) {
        let fake = FakePlatform::start(kind(platform)).await;
        let key = format!("{platform}_api_url");
        let api = fake.settings().into_iter().find(|(k, _)| *k == key).unwrap().1;
        let token = if platform.is_meta() {
            fake.test_page_token(PAGE_A)
        } else {
            fake.test_token()
        };
        (fake, api, token)
    }

    async fn run(platform: Platform, api: &str, token: &str, ids: &[&str]) -> Result<Vec<PostMetrics>, PlatformError> {
        let http = reqwest::Client::new();
        let ctx = ApiCtx {
            http: &http,
            platform,
            api_url: api,
            user_agent: UA,
        };
        let meta = json!({});
        let posts: Vec<MetricsRequest<'_>> = ids
            .iter()
            .map(|id| MetricsRequest {
                platform_post_id: id,
                external_id: "acct",
                metadata: &meta,
            })
            .collect();
        fetch(&ctx, &SecretString::from(token.to_string()), &posts).await
    }

    fn numbers() -> FakeMetrics {
        FakeMetrics {
            likes: 9,
            comments: 2,
            shares: 3,
            views: 1009,
            impressions: 2009,
            reach: 509,
            saved: 4,
            quotes: 2,
            bookmarks: 6,
            reactions: [("LIKE".to_string(), 7), ("LOVE".to_string(), 2)].into_iter().collect(),
        }
    }

    /// A known id, an unknown one and one that cannot be an id, per platform.
    fn ids(platform: Platform) -> [&'static str; 3] {
        match platform {
            Platform::Facebook => ["112233445566778_122000000000000555", "112233445566778_1", "1/../me"],
            Platform::Instagram => ["17890000000000555", "17890000000000001", "1?x=1"],
            Platform::Linkedin => [
                "urn:li:share:7260000000000000555",
                "urn:li:ugcPost:1",
                "urn:li:person:abc",
            ],
            Platform::X => ["1860000000000000555", "1860000000000000001", "18x"],
            Platform::Tiktok => ["7301000000000000555", "7301000000000000001", "v_pub_url~v2-1.744"],
            Platform::Reddit => ["t3_abc555", "t3_abc001", "t1_abc"],
            Platform::Youtube => ["vid_555-abc", "vid_001-abc", "a,b"],
        }
    }

    fn expected(platform: Platform) -> Metrics {
        let some = Some;
        match platform {
            Platform::Facebook => Metrics {
                likes: some(9),
                comments: some(2),
                shares: some(3),
                reactions: facebook::REACTION_TYPES
                    .iter()
                    .map(|t| {
                        (
                            t.to_string(),
                            [("LIKE", 7), ("LOVE", 2)]
                                .iter()
                                .find(|(k, _)| k == t)
                                .map_or(0, |(_, n)| *n),
                        )
                    })
                    .collect(),
                ..Metrics::default()
            },
            Platform::Instagram | Platform::Tiktok => Metrics {
                likes: some(9),
                comments: some(2),
                shares: some(3),
                views: some(1009),
                ..Metrics::default()
            },
            Platform::Linkedin => Metrics {
                likes: some(9),
                comments: some(2),
                shares: some(3),
                impressions: some(2009),
                ..Metrics::default()
            },
            Platform::X => Metrics {
                likes: some(9),
                comments: some(2),
                shares: some(5),
                impressions: some(2009),
                ..Metrics::default()
            },
            Platform::Reddit => Metrics {
                likes: some(9),
                comments: some(2),
                ..Metrics::default()
            },
            Platform::Youtube => Metrics {
                likes: some(9),
                comments: some(2),
                views: some(1009),
                ..Metrics::default()
            },
        }
    }

    #[tokio::test]
    async fn every_platform_maps_the_fakes_numbers_and_answers_per_post() {
        for platform in Platform::ALL {
            let (fake, api, token) = fake(platform).await;
            let [known, unknown, invalid] = ids(platform);
            fake.control().metrics_overrides.insert(known.to_string(), numbers());
            let out = run(platform, &api, &token, &[known, unknown, invalid, known])
                .await
                .unwrap();
            assert_eq!(out.len(), 4, "{platform}");
            assert_eq!(out[0], Ok(expected(platform)), "{platform}");
            assert_eq!(out[3], out[0], "{platform}: the same post twice");
            let missing = out[1].as_ref().unwrap_err();
            assert!(is_not_found(missing), "{platform}: {missing:?}");
            assert!(
                matches!(out[2], Err(PlatformError::Api { status: 422, ref code, .. }) if code.as_deref() == Some("invalid_post_id")),
                "{platform}: {:?}",
                out[2]
            );
            let calls = match platform {
                Platform::Facebook | Platform::Instagram => 3,
                Platform::Linkedin => 3 * linkedin::QUERY_TYPES.len() - 3,
                _ => 1,
            };
            assert_eq!(fake.metrics_calls(), calls, "{platform}");
        }
    }

    #[tokio::test]
    async fn batch_platforms_ask_in_batches_of_their_limit() {
        for (platform, n, calls) in [
            (Platform::X, 150, 2),
            (Platform::Tiktok, 45, 3),
            (Platform::Reddit, 101, 2),
            (Platform::Youtube, 120, 3),
        ] {
            let (fake, api, token) = fake(platform).await;
            let owned: Vec<String> = (0..n)
                .map(|i| match platform {
                    Platform::Reddit => format!("t3_a{i}"),
                    Platform::Youtube => format!("v{i}"),
                    _ => format!("{}", 1_000 + i),
                })
                .collect();
            fake.control().metrics_overrides.insert(owned[n - 1].clone(), numbers());
            let mut ids: Vec<&str> = owned.iter().map(String::as_str).collect();
            ids.push(owned[0].as_str());
            let out = run(platform, &api, &token, &ids).await.unwrap();
            assert_eq!(out.len(), n + 1);
            assert_eq!(fake.metrics_calls(), calls, "{platform}: {n} distinct ids");
            assert_eq!(out[n - 1], Ok(expected(platform)), "{platform}");
            assert!(
                out[..n - 1].iter().all(|r| r.as_ref().is_err_and(is_not_found)),
                "{platform}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_token_fails_the_whole_fetch() {
        for platform in Platform::ALL {
            let (_fake, api, _) = fake(platform).await;
            let [known, ..] = ids(platform);
            let out = run(platform, &api, "not-a-token", &[known, known]).await;
            assert!(
                matches!(out, Err(PlatformError::Unauthorized { .. })),
                "{platform}: {out:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_rate_limit_stops_the_fetch_and_a_rejected_batch_answers_its_posts() {
        let (fb, api, token) = fake(Platform::Facebook).await;
        let [known, unknown, _] = ids(Platform::Facebook);
        fb.control()
            .metrics_faults
            .push_back(PublishFault::RateLimited { retry_after_s: 120 });
        let out = run(Platform::Facebook, &api, &token, &[known, unknown, known]).await;
        assert!(
            matches!(
                out,
                Err(PlatformError::RateLimited {
                    retry_after_s: Some(120),
                    ..
                })
            ),
            "{out:?}"
        );
        assert_eq!(fb.metrics_calls(), 1, "nothing asked after the rate limit");

        let (tt, api, token) = fake(Platform::Tiktok).await;
        let owned: Vec<String> = (0..25).map(|i| format!("{}", 7_000 + i)).collect();
        tt.control().metrics_overrides.insert(owned[24].clone(), numbers());
        tt.control().metrics_faults.push_back(PublishFault::Rejected {
            message: "video_ids is invalid".into(),
        });
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        let out = run(Platform::Tiktok, &api, &token, &ids).await.unwrap();
        assert!(
            out[..20].iter().all(
                |r| matches!(r, Err(PlatformError::Api { status: 400, code: Some(c), .. }) if c == "invalid_params")
            )
        );
        assert_eq!(out[24], Ok(expected(Platform::Tiktok)));
        assert!(is_not_found(out[21].as_ref().unwrap_err()));

        let (yt, api, token) = fake(Platform::Youtube).await;
        yt.control().metrics_faults.push_back(PublishFault::ServerError);
        let out = run(Platform::Youtube, &api, &token, &["abc"]).await;
        assert!(matches!(out, Err(ref e) if e.is_transient()), "{out:?}");
    }

    #[tokio::test]
    async fn a_post_published_through_the_fake_has_its_defaults() {
        let (_fake, api, token) = fake(Platform::X).await;
        let http = reqwest::Client::new();
        let ctx = ApiCtx {
            http: &http,
            platform: Platform::X,
            api_url: &api,
            user_agent: UA,
        };
        let options = serde_json::Map::new();
        let meta = json!({});
        let req = crate::platforms::publish::PublishRequest {
            text: "engagement please",
            title: None,
            media_urls: &[],
            options: &options,
            external_id: "1",
            username: None,
            metadata: &meta,
        };
        let token = SecretString::from(token);
        let published = crate::platforms::publish::publish(&ctx, &token, &req).await.unwrap();
        let posts = [MetricsRequest {
            platform_post_id: &published.platform_post_id,
            external_id: "1",
            metadata: &meta,
        }];
        let out = fetch(&ctx, &token, &posts).await.unwrap();
        let d = FakeMetrics::for_index(0);
        assert_eq!(
            out[0],
            Ok(Metrics {
                likes: Some(d.likes),
                comments: Some(d.comments),
                shares: Some(d.shares + d.quotes),
                impressions: Some(d.impressions),
                ..Metrics::default()
            })
        );
    }
}
