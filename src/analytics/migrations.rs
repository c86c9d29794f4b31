//! ClickHouse schema migrations: `migrations/clickhouse/NNNN_<verb>_<object>.sql`, embedded in
//! the binary, applied in number order, each once, recorded in `schema_migrations`.
//!
//! Forward-only: a shipped file is never edited (its checksum is recorded, and a changed file is
//! refused), a change is a new file. ClickHouse DDL is not transactional, so every statement is
//! written to be re-runnable (`IF NOT EXISTS`): a run interrupted between a statement and its
//! record simply repeats the statement next time. Two processes migrating at once are harmless
//! for the same reason; `schema_migrations` is a ReplacingMergeTree keyed by version, so a doubly
//! recorded migration collapses.

use sha2::{Digest, Sha256};

use super::client::{ClickHouseError, Client};

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// The file name without number and extension, e.g. `create_engagement_events`.
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: parse_version($version),
            name: $name,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/clickhouse/",
                $version,
                "_",
                $name,
                ".sql"
            )),
        }
    };
}

const fn parse_version(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut v = 0u32;
    let mut i = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// Every migration, in order. A new file must be added here too (a unit test compares this list
/// with the directory, so a forgotten one fails the build's tests).
pub const MIGRATIONS: &[Migration] = &[
    migration!("0001", "create_engagement_events"),
    migration!("0002", "create_engagement_snapshots"),
    migration!("0003", "create_posts"),
    migration!("0004", "create_post_engagement_daily"),
    migration!("0005", "create_post_engagement_daily_mv"),
    migration!("0006", "create_sink_checkpoints"),
    migration!("0007", "create_post_engagement_latest"),
    migration!("0008", "create_account_engagement_daily"),
    migration!("0009", "create_post_engagement_totals"),
];

/// The table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("ClickHouse migration {version:04} ({name}) failed: {source}")]
    Failed {
        version: u32,
        name: &'static str,
        #[source]
        source: ClickHouseError,
    },
    #[error(
        "ClickHouse migration {version:04} ({name}) was changed after it was applied (recorded checksum {recorded}, file {current}); migrations are forward-only: revert the file and add a new one"
    )]
    Modified {
        version: u32,
        name: &'static str,
        recorded: String,
        current: String,
    },
}

impl MigrateError {
    /// Whether running again later may succeed (ClickHouse down or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            MigrateError::ClickHouse(e) | MigrateError::Failed { source: e, .. } => e.is_transient(),
            MigrateError::Modified { .. } => false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// `SELECT version()` of the server.
    pub server_version: String,
    pub database: String,
    /// Applied by this run, as `(version, name)`.
    pub applied: Vec<(u32, String)>,
    /// Already recorded before this run.
    pub already_applied: usize,
    /// Recorded versions this binary does not know (the database was migrated by a newer nikara).
    pub unknown: Vec<u32>,
}

#[derive(Debug, serde::Deserialize)]
struct Applied {
    version: u32,
    checksum: String,
}

/// Hex SHA-256 of a migration's text.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates the database when missing, then applies pending migrations in order.
pub async fn migrate(client: &Client) -> Result<MigrationReport, MigrateError> {
    let version = client.server_version().await?;
    client
        .query_server(&format!("CREATE DATABASE IF NOT EXISTS {}", client.database()))
        .await?;
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                 version    UInt32,
                 name       String,
                 checksum   String,
                 applied_at DateTime('UTC')
             ) ENGINE = ReplacingMergeTree() ORDER BY version"
        ))
        .await?;
    let recorded: Vec<Applied> = client
        .select_json(&format!(
            "SELECT version, any(checksum) AS checksum FROM {MIGRATIONS_TABLE} GROUP BY version ORDER BY version"
        ))
        .await?;
    let mut report = MigrationReport {
        server_version: version.raw.clone(),
        database: client.database().to_string(),
        applied: Vec::new(),
        already_applied: 0,
        unknown: recorded
            .iter()
            .map(|r| r.version)
            .filter(|v| !MIGRATIONS.iter().any(|m| m.version == *v))
            .collect(),
    };
    if !report.unknown.is_empty() {
        tracing::warn!(
            versions = ?report.unknown,
            "the ClickHouse database has migrations this nikara does not know (applied by a newer version)"
        );
    }
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some(r) = recorded.iter().find(|r| r.version == m.version) {
            if r.checksum != sum {
                return Err(MigrateError::Modified {
                    version: m.version,
                    name: m.name,
                    recorded: r.checksum.clone(),
                    current: sum,
                });
            }
            report.already_applied += 1;
            continue;
        }
        for statement in split_statements(m.sql) {
            client.query(&statement).await.map_err(|source| MigrateError::Failed {
                version: m.version,
                name: m.name,
                source,
            })?;
        }
        #[derive(serde::Serialize)]
        struct Record<'a> {
            version: u32,
            name: &'a str,
            checksum: &'a str,
            #[serde(with = "super::client::unix_seconds")]
            applied_at: chrono::DateTime<chrono::Utc>,
        }
        client
            .insert_json_each_row(
                MIGRATIONS_TABLE,
                [Record {
                    version: m.version,
                    name: m.name,
                    checksum: &sum,
                    applied_at: chrono::Utc::now(),
                }],
            )
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            database = client.database(),
            "applied ClickHouse migration"
        );
        report.applied.push((m.version, m.name.to_string()));
    }
    Ok(report)
}

/// Splits a file into statements at `;` outside quotes and comments; drops comments-only parts.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut has_code = false;
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                // Line comment: kept out of the statement.
                for n in chars.by_ref() {
                    if n == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                cur.push(' ');
            }
            '\'' | '"' | '`' => {
                cur.push(c);
                has_code = true;
                while let Some(n) = chars.next() {
                    cur.push(n);
                    if n == '\\' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if n == c {
                        break;
                    }
                }
            }
            ';' => {
                if has_code {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                has_code = false;
            }
            _ => {
                if !c.is_whitespace() {
                    has_code = true;
                }
                cur.push(c);
            }
        }
    }
    if has_code {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_list_matches_the_directory() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/clickhouse");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(
            files, listed,
            "every file in migrations/clickhouse must be listed in MIGRATIONS"
        );
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "versions are dense and ordered");
        }
    }

    #[test]
    fn files_keep_to_the_common_dialect() {
        for m in MIGRATIONS {
            let upper = m.sql.to_uppercase();
            for banned in [
                "DATETIME64",
                "LOWCARDINALITY",
                "MAP(",
                " JSON",
                " BOOL",
                " TTL ",
                "CODEC(",
                "OBJECT(",
            ] {
                let code: String = split_statements(&upper).join("\n");
                assert!(
                    !code.contains(banned),
                    "{:04}: `{banned}` does not run on ClickHouse 18.16",
                    m.version
                );
            }
            assert!(!split_statements(m.sql).is_empty());
        }
    }

    #[test]
    fn splits_statements() {
        let s = "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory;\n/* b; */ SELECT 'it''s', \"q;\";\n-- trailing\n";
        assert_eq!(
            split_statements(s),
            vec![
                "CREATE TABLE a (x String DEFAULT ';') ENGINE = Memory".to_string(),
                "SELECT 'it''s', \"q;\"".to_string()
            ]
        );
        assert!(split_statements("-- only a comment\n").is_empty());
    }
}
