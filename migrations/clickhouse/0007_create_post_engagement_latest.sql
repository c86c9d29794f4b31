-- post_engagement_latest: the most recent engagement snapshot of each post (one row per post_id).
-- The inner renaming keeps taken_at unambiguous on every ClickHouse version.
CREATE VIEW IF NOT EXISTS post_engagement_latest AS
SELECT
    s_post_id AS post_id,
    argMax(s_platform, s_taken_at) AS platform,
    argMax(s_platform_post_id, s_taken_at) AS platform_post_id,
    argMax(s_account_id, s_taken_at) AS account_id,
    argMax(s_user_id, s_taken_at) AS user_id,
    max(s_taken_at) AS taken_at,
    argMax(s_likes, s_taken_at) AS likes,
    argMax(s_comments, s_taken_at) AS comments,
    argMax(s_shares, s_taken_at) AS shares,
    argMax(s_views, s_taken_at) AS views,
    argMax(s_impressions, s_taken_at) AS impressions,
    argMax(s_reaction_types, s_taken_at) AS reaction_types,
    argMax(s_reaction_counts, s_taken_at) AS reaction_counts,
    argMax(s_source, s_taken_at) AS source
FROM
(
    SELECT
        post_id AS s_post_id,
        platform AS s_platform,
        platform_post_id AS s_platform_post_id,
        account_id AS s_account_id,
        user_id AS s_user_id,
        taken_at AS s_taken_at,
        likes AS s_likes,
        comments AS s_comments,
        shares AS s_shares,
        views AS s_views,
        impressions AS s_impressions,
        reaction_types AS s_reaction_types,
        reaction_counts AS s_reaction_counts,
        source AS s_source
    FROM engagement_snapshots
)
GROUP BY s_post_id
