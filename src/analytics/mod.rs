//! ClickHouse analytics: the tables analysts query, their migrations, and the sink that fills
//! them from the event log.
//!
//! - [`client`]: ClickHouse over its HTTP interface (works on 18.16 and current releases).
//! - [`migrations`]: `migrations/clickhouse/*.sql`, embedded, forward-only, recorded in
//!   `schema_migrations`; applied by `nikara migrate` and by the sink at start.
//! - [`sink`]: the asynchronous projection into ClickHouse, exactly-once totals under
//!   at-least-once delivery, with its status for `/readyz` and `/metrics`.
//!
//! The tables are described for analysts in `migrations/README.md`.

pub mod client;
pub mod migrations;
pub mod sink;

pub use client::{ClickHouseError, Client, ServerVersion};
pub use migrations::{MigrateError, MigrationReport, migrate};
pub use sink::{
    Decoder, EventRow, PostRow, SINK_TABLES, Sink, SinkError, SinkHandle, SinkOptions, SinkRow, SinkStatus, SnapshotRow,
};

use crate::config::ClickHouseConfig;

/// Connects, logs the server version and applies pending migrations: what `nikara migrate` does.
pub async fn connect_and_migrate(config: &ClickHouseConfig) -> Result<(Client, MigrationReport), MigrateError> {
    let client = Client::new(config)?;
    let report = migrate(&client).await?;
    Ok((client, report))
}
