-- engagement_events: one row per engagement fact (a like, reaction, comment, reply, share,
-- quote, repost, mention or follow) normalised from a verified webhook delivery.
-- Grain and key: (position, item_index) = the delivery's position in nikara's event log and the
-- fact's index within the delivery. The sink never writes a key twice; ReplacingMergeTree would
-- collapse a stray duplicate at merge time (`FINAL` is not needed in normal operation).
-- delta is +1 (add, unhide, follow), -1 (remove, hide, unfollow) or 0 (edited): sum(delta) is the
-- net count. post_id is nikara's post id when the platform post is one nikara published, else ''.
CREATE TABLE IF NOT EXISTS engagement_events
(
    position            UInt64,
    item_index          UInt32,
    platform            String,
    account_external_id String,
    account_id          String,
    user_id             String,
    post_id             String,
    platform_post_id    String,
    kind                String,
    delta               Int32,
    verb                String,
    reaction_type       String,
    actor_id            String,
    comment_id          String,
    text                String,
    occurred_at         DateTime('UTC'),
    received_at         DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (position, item_index)
