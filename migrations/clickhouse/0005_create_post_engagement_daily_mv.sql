-- Feeds post_engagement_daily from every insert into engagement_events.
CREATE MATERIALIZED VIEW IF NOT EXISTS post_engagement_daily_mv TO post_engagement_daily AS
SELECT
    toDate(occurred_at) AS day,
    platform,
    account_id,
    account_external_id,
    post_id,
    platform_post_id,
    sumIf(toInt64(delta), kind IN ('like', 'reaction')) AS likes,
    sumIf(toInt64(delta), kind = 'reaction') AS reactions,
    sumIf(toInt64(delta), kind IN ('comment', 'reply')) AS comments,
    sumIf(toInt64(delta), kind IN ('share', 'repost', 'quote')) AS shares,
    sumIf(toInt64(delta), kind = 'mention') AS mentions,
    sumIf(toInt64(delta), kind = 'follow') AS follows,
    count() AS facts
FROM engagement_events
GROUP BY day, platform, account_id, account_external_id, post_id, platform_post_id
