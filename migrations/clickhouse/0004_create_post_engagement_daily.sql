-- post_engagement_daily: net engagement per post and UTC day, filled from engagement_events by the
-- materialized view post_engagement_daily_mv. SummingMergeTree adds rows up at merge time, so
-- always aggregate: sum(likes) … GROUP BY …
-- likes = like + reaction facts (every reaction type), reactions = reaction facts only,
-- comments = comment + reply, shares = share + repost + quote, mentions, follows (account-level,
-- post_id ''), facts = number of facts (edits included).
CREATE TABLE IF NOT EXISTS post_engagement_daily
(
    day                 Date,
    platform            String,
    account_id          String,
    account_external_id String,
    post_id             String,
    platform_post_id    String,
    likes               Int64,
    reactions           Int64,
    comments            Int64,
    shares              Int64,
    mentions            Int64,
    follows             Int64,
    facts               UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, platform, account_id, account_external_id, post_id, platform_post_id)
