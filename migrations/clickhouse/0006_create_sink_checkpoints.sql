-- sink_checkpoints: internal. The ClickHouse sink's position in nikara's event log, written after
-- the data of each batch (the data tables' own highest positions guard against writing twice).
CREATE TABLE IF NOT EXISTS sink_checkpoints
(
    sink       String,
    position   UInt64,
    updated_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(position)
ORDER BY sink
