#![allow(clippy::unwrap_used)]
use std::time::Instant;
use nikara_fakes::{FakePlatform, Kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn load() {
    let fake = FakePlatform::start(Kind::X).await;
    // fake token: go through control? use issued tokens after a quick OAuth is heavy; reuse test helper-free path
    let verifier = "v".repeat(50);
    let challenge = {
        use base64::Engine as _; use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let mut url = url::Url::parse(&format!("{}/i/oauth2/authorize", fake.base_url())).unwrap();
    url.query_pairs_mut().extend_pairs([("response_type","code"),("client_id",fake.client_id()),("redirect_uri","http://127.0.0.1:9/cb"),("scope","tweet.read tweet.write users.read offline.access"),("state","s"),("code_challenge",&challenge),("code_challenge_method","S256")]);
    let loc = fake.consent(url.as_str()).await;
    let code = url::Url::parse(&loc).unwrap().query_pairs().find(|(k,_)| k=="code").unwrap().1.into_owned();
    let c = reqwest::Client::new();
    let tok: serde_json::Value = c.post(format!("{}/2/oauth2/token", fake.base_url())).basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&[("grant_type","authorization_code"),("code",&code),("redirect_uri","http://127.0.0.1:9/cb"),("code_verifier",&verifier)]).send().await.unwrap().json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap().to_owned();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let c = c.clone(); let at = at.clone(); let base = fake.base_url();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let r = c.post(format!("{base}/2/tweets")).bearer_auth(&at).json(&serde_json::json!({"text": format!("t {w} {i}")})).send().await.unwrap();
                assert_eq!(r.status(), 201);
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks { t.await.unwrap(); }
    let el = start.elapsed();
    println!("32000 tweets in {el:?}: {:.0}/s", 32000.0 / el.as_secs_f64());
    assert_eq!(fake.publish_count(), 32000);
}
