//! What every fake shares for engagement metrics: the numbers a post has ([`FakeMetrics`]), the
//! per-endpoint call counter and the fault queue. Each platform module serves its own metrics
//! endpoint in the platform's shape:
//!
//! | platform | endpoint | batch | unknown id |
//! |---|---|---|---|
//! | Facebook | `GET /{v}/{post-id}?fields=reactions…,comments…,shares` | 1 | 400 code 100 "Unsupported get request" |
//! | Instagram | `GET /{v}/{media-id}/insights?metric=…` | 1 | 400 code 100 |
//! | LinkedIn | `GET /rest/memberCreatorPostAnalytics?q=entity&entity=…&queryType=…` | 1 metric | 404 |
//! | X | `GET /2/tweets?ids=…&tweet.fields=public_metrics` | 100 | entry in `errors` |
//! | TikTok | `POST /v2/video/query/?fields=…` `{"filters":{"video_ids":[…]}}` | 20 | absent |
//! | Reddit | `GET /api/info?id=t3_…,…` | 100 | absent |
//! | YouTube | `GET /youtube/v3/videos?part=statistics&id=…` (counts as strings) | 50 | absent |
//!
//! A post is known when it was published through the fake ([`crate::FakePlatform::published`]) or
//! when its id is in [`crate::Control::metrics_overrides`]; ids in
//! [`crate::Control::metrics_missing`] are unknown whatever else holds (a deleted post).

use std::collections::{BTreeMap, HashMap};

use crate::Inner;
use crate::publish::{PublishFault, PublishedPost};

/// The engagement of one post, which each endpoint reports in its own shape. The defaults of the
/// post at index `i` of [`crate::FakePlatform::published`] are [`FakeMetrics::for_index`].
///
/// Per platform:
/// - Facebook: `likes` is the reactions total, `reactions` the breakdown (empty: all `LIKE`),
///   `comments`, and `shares` (left out when 0, as Graph does).
/// - Instagram: `likes`, `comments`, `shares`, `saved`, `reach`, `views`, and `total_interactions`
///   = likes + comments + shares + saved.
/// - LinkedIn: REACTION = `likes`, COMMENT = `comments`, RESHARE = `shares`, IMPRESSION =
///   `impressions`, MEMBERS_REACHED = `reach`.
/// - X: `like_count` = `likes`, `reply_count` = `comments`, `retweet_count` = `shares`,
///   `quote_count` = `quotes`, `bookmark_count` = `bookmarks`, `impression_count` = `impressions`.
/// - TikTok: `like_count`, `comment_count`, `share_count`, `view_count`.
/// - Reddit: `ups` = `score` = `likes`, `num_comments` = `comments`.
/// - YouTube: `viewCount`, `likeCount`, `commentCount`, as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeMetrics {
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub views: i64,
    pub impressions: i64,
    pub reach: i64,
    pub saved: i64,
    pub quotes: i64,
    pub bookmarks: i64,
    /// Facebook reactions by type (`LIKE`, `LOVE`, `WOW`, `HAHA`, `SAD`, `ANGRY`, `CARE`).
    pub reactions: BTreeMap<String, i64>,
}

impl FakeMetrics {
    /// The numbers of the `index`-th post published through a fake: likes 3 + i, comments 1 + i,
    /// shares i, views 100 + 10·i, impressions 200 + 20·i, reach 80 + 8·i, saved i, quotes 0,
    /// bookmarks 0, no reaction breakdown.
    pub fn for_index(index: usize) -> FakeMetrics {
        let i = i64::try_from(index).unwrap_or(i64::MAX / 100);
        FakeMetrics {
            likes: 3 + i,
            comments: 1 + i,
            shares: i,
            views: 100 + 10 * i,
            impressions: 200 + 20 * i,
            reach: 80 + 8 * i,
            saved: i,
            quotes: 0,
            bookmarks: 0,
            reactions: BTreeMap::new(),
        }
    }

    /// Facebook's count of one reaction type: from `reactions`, or all `likes` as `LIKE` when empty.
    pub(crate) fn reaction(&self, kind: &str) -> i64 {
        if self.reactions.is_empty() {
            if kind == "LIKE" { self.likes } else { 0 }
        } else {
            self.reactions.get(kind).copied().unwrap_or(0)
        }
    }
}

/// Calls to each metrics endpoint (keyed by platform name). Lock it through [`Inner::metrics`],
/// never together with `control`, `state` or `posts`.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub by_endpoint: HashMap<&'static str, usize>,
}

/// Starts a metrics call on `endpoint` (a platform name): counts it and pops the next
/// [`crate::Control::metrics_faults`] entry, which the handler answers after its token check
/// (through [`crate::publish::gate`]).
pub(crate) fn begin(shared: &Inner, endpoint: &'static str) -> Option<PublishFault> {
    *shared.metrics().by_endpoint.entry(endpoint).or_insert(0) += 1;
    shared.control().metrics_faults.pop_front()
}

/// The metrics of post `id` of `platform`, or `None` when the fake does not know it.
pub(crate) fn lookup(shared: &Inner, platform: &str, id: &str) -> Option<FakeMetrics> {
    let (over, missing) = {
        let c = shared.control();
        (c.metrics_overrides.get(id).cloned(), c.metrics_missing.contains(id))
    };
    if missing {
        return None;
    }
    if over.is_some() {
        return over;
    }
    let posts = shared.posts();
    posts
        .list
        .iter()
        .position(|p| p.platform == platform && p.id == id)
        .map(FakeMetrics::for_index)
}

/// The post `id` of `platform` as published through the fake, for the fields an endpoint shows
/// beside the numbers (text, title, time).
pub(crate) fn published(shared: &Inner, platform: &str, id: &str) -> Option<PublishedPost> {
    shared
        .posts()
        .list
        .iter()
        .find(|p| p.platform == platform && p.id == id)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_reactions() {
        let m = FakeMetrics::for_index(2);
        assert_eq!((m.likes, m.comments, m.shares, m.views), (5, 3, 2, 120));
        assert_eq!(m.reaction("LIKE"), 5);
        assert_eq!(m.reaction("LOVE"), 0);
        let mixed = FakeMetrics {
            likes: 4,
            reactions: [("LOVE".to_string(), 3), ("LIKE".to_string(), 1)].into_iter().collect(),
            ..FakeMetrics::default()
        };
        assert_eq!(
            (mixed.reaction("LIKE"), mixed.reaction("LOVE"), mixed.reaction("WOW")),
            (1, 3, 0)
        );
    }
}
