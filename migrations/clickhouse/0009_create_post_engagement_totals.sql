-- post_engagement_totals: net webhook engagement per post over all time (one row per post and
-- platform post id; post_id '' gathers account-level facts and posts nikara did not publish).
CREATE VIEW IF NOT EXISTS post_engagement_totals AS
SELECT
    d_post_id AS post_id,
    d_platform AS platform,
    d_platform_post_id AS platform_post_id,
    d_account_id AS account_id,
    min(d_day) AS first_day,
    max(d_day) AS last_day,
    sum(d_likes) AS likes,
    sum(d_reactions) AS reactions,
    sum(d_comments) AS comments,
    sum(d_shares) AS shares,
    sum(d_mentions) AS mentions,
    sum(d_follows) AS follows,
    sum(d_facts) AS facts
FROM
(
    SELECT
        post_id AS d_post_id,
        platform AS d_platform,
        platform_post_id AS d_platform_post_id,
        account_id AS d_account_id,
        day AS d_day,
        likes AS d_likes,
        reactions AS d_reactions,
        comments AS d_comments,
        shares AS d_shares,
        mentions AS d_mentions,
        follows AS d_follows,
        facts AS d_facts
    FROM post_engagement_daily
)
GROUP BY d_post_id, d_platform, d_platform_post_id, d_account_id
