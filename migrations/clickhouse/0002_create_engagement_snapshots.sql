-- engagement_snapshots: one row per metrics poll of a published post (the engagement sync).
-- Grain: (post_id, taken_at). Counters the platform does not report are NULL (e.g. views on a
-- Facebook post). Reactions by type are two parallel arrays: reaction_types[i] has
-- reaction_counts[i]. position is the snapshot event's position in nikara's event log; of two rows
-- with the same key the later position wins at merge time.
CREATE TABLE IF NOT EXISTS engagement_snapshots
(
    post_id          String,
    platform         String,
    platform_post_id String,
    account_id       String,
    user_id          String,
    taken_at         DateTime('UTC'),
    likes            Nullable(Int64),
    comments         Nullable(Int64),
    shares           Nullable(Int64),
    views            Nullable(Int64),
    impressions      Nullable(Int64),
    reaction_types   Array(String),
    reaction_counts  Array(Int64),
    source           String,
    position         UInt64
)
ENGINE = ReplacingMergeTree(position)
PARTITION BY toYYYYMM(taken_at)
ORDER BY (post_id, taken_at)
