-- account_engagement_daily: net webhook engagement per UTC day, platform and account.
CREATE VIEW IF NOT EXISTS account_engagement_daily AS
SELECT
    d_day AS day,
    d_platform AS platform,
    d_account_id AS account_id,
    d_account_external_id AS account_external_id,
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
        day AS d_day,
        platform AS d_platform,
        account_id AS d_account_id,
        account_external_id AS d_account_external_id,
        likes AS d_likes,
        reactions AS d_reactions,
        comments AS d_comments,
        shares AS d_shares,
        mentions AS d_mentions,
        follows AS d_follows,
        facts AS d_facts
    FROM post_engagement_daily
)
GROUP BY d_day, d_platform, d_account_id, d_account_external_id
