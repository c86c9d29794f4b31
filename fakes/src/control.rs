//! Knobs a test turns to make a fake misbehave or serve different data.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{FakeMetrics, Kind, PublishFault};

/// Failure injection and data knobs of one fake. `Default` is "everything works" with generic data;
/// [`crate::FakePlatform::start`] uses [`Control::for_kind`], which sets the per-platform defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// The authorize endpoint redirects with `error=access_denied&error_description=…&state=…`.
    pub deny_consent: bool,
    /// The token endpoint answers 500 with a platform-shaped body (every grant type).
    pub token_error_500: bool,
    /// Profile endpoints answer the platform's invalid-token error (Meta: 400 + OAuthException 190;
    /// TikTok: HTTP 200 with `error.code = access_token_invalid`; others: 401).
    pub profile_401: bool,
    /// LinkedIn: `/v2/userinfo` answers 403 (scope not granted) and `/v2/me` serves the legacy
    /// `r_liteprofile` shape.
    pub linkedin_legacy_profile: bool,
    /// Refresh grants issue a new refresh token and kill the old one (X, TikTok by default).
    pub refresh_rotates: bool,
    /// Refresh grants (Meta: `fb_exchange_token`) answer the platform's "revoked" error.
    pub revoke_refresh: bool,
    /// Refresh grants (Meta: `fb_exchange_token`) answer 500.
    pub refresh_error_500: bool,
    /// `expires_in` of new access tokens (Meta: of long-lived user tokens; short-lived ones stay 3600).
    /// Zero or negative makes tokens born expired.
    pub access_ttl_s: i64,
    /// Refresh responses carry no `refresh_token` (the old one then stays valid, even where refresh
    /// tokens normally rotate). Google's usual behaviour.
    pub omit_refresh_on_refresh: bool,
    /// The code exchange grants no refresh token (LinkedIn apps that are not approved partners).
    pub no_refresh_token: bool,
    /// API endpoints reject expired access tokens (Meta: 190 subcode 463; others: their 401). Off by
    /// default: the fakes accept any issued, unrevoked access token. Meta's `fb_exchange_token` and
    /// the publish endpoints (publish, status polls, reconcile listings) reject expired tokens
    /// regardless of this knob.
    pub enforce_access_expiry: bool,
    /// Who the user is: X user, TikTok open_id, Reddit account, YouTube channel, LinkedIn member,
    /// Facebook user.
    pub identity: Identity,
    /// Meta only: the Pages `/me/accounts` lists (default: page A with an Instagram business
    /// account, page B without).
    pub meta_pages: Vec<MetaPage>,
    /// Faults for the next publish-creating calls, one popped per call (even one then refused for
    /// its token), answered in the platform's shape: Facebook `/{page}/feed` and `/{page}/photos`,
    /// Instagram `/{ig}/media` and `/{ig}/media_publish` POSTs, LinkedIn `/rest/posts`, X
    /// `/2/tweets`, TikTok `content/init` and `video/init`, Reddit `/api/submit`, YouTube's resumable
    /// upload POST. Status polls, listings and token endpoints never take one.
    pub publish_faults: VecDeque<PublishFault>,
    /// Every publish-creating call sleeps this long before anything else (0: no sleep).
    pub publish_latency_ms: u64,
    /// Exact metrics per platform post id, served instead of [`FakeMetrics::for_index`]. An id here
    /// is known to the metrics endpoints even if it was never published through this fake.
    pub metrics_overrides: HashMap<String /* platform post id */, FakeMetrics>,
    /// Platform post ids the metrics endpoints treat as unknown (a deleted post), even when
    /// published or overridden.
    pub metrics_missing: HashSet<String>,
    /// Faults for the next metrics calls, one popped per call (even one then refused for its token),
    /// answered after the token check in the platform's shape, as for publish calls (see
    /// [`Control::publish_faults`]); `SlowMs` sleeps, then answers normally.
    pub metrics_faults: VecDeque<PublishFault>,
}

/// The user (or channel) behind every token of a fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// X user id, TikTok `open_id`, Reddit id (`abc12`), YouTube channel id (`UC…`), LinkedIn `sub`,
    /// Facebook user id.
    pub id: String,
    /// TikTok `union_id` (unused elsewhere).
    pub union_id: String,
    /// Display name; YouTube channel title.
    pub name: String,
    /// Handle without `@` (YouTube's `customUrl` is `@` + this).
    pub username: String,
    /// LinkedIn `given_name` / `localizedFirstName`.
    pub given_name: String,
    /// LinkedIn `family_name` / `localizedLastName`.
    pub family_name: String,
    /// LinkedIn `email`.
    pub email: String,
    /// Served verbatim: Reddit's default contains the HTML-escaped `&amp;` its API really returns.
    pub avatar_url: String,
}

/// A Facebook Page the Meta fake's user manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaPage {
    pub id: String,
    pub name: String,
    pub picture_url: String,
    pub tasks: Vec<String>,
    /// The Instagram business account linked to the page, if any.
    pub instagram: Option<InstagramAccount>,
}

/// An Instagram business account linked to a Facebook Page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstagramAccount {
    pub id: String,
    pub username: String,
    pub name: String,
    pub profile_picture_url: String,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            deny_consent: false,
            token_error_500: false,
            profile_401: false,
            linkedin_legacy_profile: false,
            refresh_rotates: false,
            revoke_refresh: false,
            refresh_error_500: false,
            access_ttl_s: 3600,
            omit_refresh_on_refresh: false,
            no_refresh_token: false,
            enforce_access_expiry: false,
            identity: Identity::for_kind(Kind::X),
            meta_pages: Vec::new(),
            publish_faults: VecDeque::new(),
            publish_latency_ms: 0,
            metrics_overrides: HashMap::new(),
            metrics_missing: HashSet::new(),
            metrics_faults: VecDeque::new(),
        }
    }
}

impl Control {
    /// The defaults of a platform: lifetimes, rotation, Google's missing refresh token, its data.
    pub fn for_kind(kind: Kind) -> Control {
        let (access_ttl_s, refresh_rotates, omit_refresh_on_refresh) = match kind {
            Kind::Meta => (5_183_944, false, false),
            Kind::Linkedin => (5_184_000, false, false),
            Kind::X => (7200, true, false),
            Kind::Tiktok => (86_400, true, false),
            Kind::Reddit => (3600, false, false),
            Kind::Google => (3599, false, true),
        };
        Control {
            access_ttl_s,
            refresh_rotates,
            omit_refresh_on_refresh,
            identity: Identity::for_kind(kind),
            meta_pages: if kind == Kind::Meta {
                MetaPage::defaults()
            } else {
                Vec::new()
            },
            ..Control::default()
        }
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

impl Identity {
    /// The default user of a platform's fake.
    pub fn for_kind(kind: Kind) -> Identity {
        let (id, name, username, avatar_url) = match kind {
            Kind::Meta => (
                "10229876543210987",
                "Fake Meta User",
                "fake.meta.user",
                "https://platform-lookaside.fbsbx.com/platform/profilepic/?asid=10229876543210987&height=50&width=50",
            ),
            Kind::Linkedin => (
                "fAkEmEmBeR1",
                "Fake Linked User",
                "fake-linked-user",
                "https://media.licdn.com/dms/image/v2/FAKE/profile-displayphoto-shrink_100_100/0/1?e=1&v=beta&t=x",
            ),
            Kind::X => (
                "1512345678901234567",
                "Fake X User",
                "fake_x_user",
                "https://pbs.twimg.com/profile_images/1512345678901234567/fake_normal.jpg",
            ),
            Kind::Tiktok => (
                "-000FakeOpenIdTikTok0000000000000001",
                "Fake TikToker",
                "fake.tiktoker",
                "https://p16-sign.tiktokcdn.com/fake~c5_168x168.jpeg?x-expires=1700000000&x-signature=abc",
            ),
            Kind::Reddit => (
                "abc12",
                "some_user",
                "some_user",
                "https://styles.redditmedia.com/t5_x/styles/profileIcon_y.png?width=256&amp;height=256&amp;s=zzz",
            ),
            Kind::Google => (
                "UCfakeChannel0000000000a",
                "Fake Channel",
                "fakechannel",
                "https://yt3.ggpht.com/fake-avatar=s88-c-k-c0x00ffffff-no-rj",
            ),
        };
        let (given_name, family_name) = name.split_once(' ').unwrap_or((name, ""));
        Identity {
            id: s(id),
            union_id: s("fake-union-id-0001"),
            name: s(name),
            username: s(username),
            given_name: s(given_name),
            family_name: s(family_name),
            email: format!("{username}@example.com"),
            avatar_url: s(avatar_url),
        }
    }
}

impl MetaPage {
    /// Page A (with an Instagram business account) and page B (without).
    pub fn defaults() -> Vec<MetaPage> {
        let tasks = [
            "ADVERTISE",
            "ANALYZE",
            "CREATE_CONTENT",
            "MESSAGING",
            "MODERATE",
            "MANAGE",
        ];
        let tasks: Vec<String> = tasks.iter().map(|t| s(t)).collect();
        vec![
            MetaPage {
                id: s("112233445566778"),
                name: s("Fake Page A"),
                picture_url: s("https://scontent.xx.fbcdn.net/v/fake-page-a.jpg"),
                tasks: tasks.clone(),
                instagram: Some(InstagramAccount {
                    id: s("17841400000000001"),
                    username: s("fake_ig_business"),
                    name: s("Fake IG Business"),
                    profile_picture_url: s("https://scontent.cdninstagram.com/v/fake-ig.jpg"),
                }),
            },
            MetaPage {
                id: s("223344556677889"),
                name: s("Fake Page B"),
                picture_url: s("https://scontent.xx.fbcdn.net/v/fake-page-b.jpg"),
                tasks,
                instagram: None,
            },
        ]
    }
}
