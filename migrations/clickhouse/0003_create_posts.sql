-- posts: dimension of the posts nikara published, one current row per post_id (the row with the
-- highest log position wins; query with FINAL, or argMax(…, position), for exactly one row).
CREATE TABLE IF NOT EXISTS posts
(
    post_id          String,
    user_id          String,
    account_id       String,
    platform         String,
    platform_post_id String,
    published_at     DateTime('UTC'),
    position         UInt64
)
ENGINE = ReplacingMergeTree(position)
ORDER BY post_id
