//! A small ClickHouse client over the HTTP interface.
//!
//! Why not the `clickhouse` crate: it speaks `RowBinaryWithNamesAndTypes` and validates rows
//! against schemas that ClickHouse 18.16 (Debian's package, which the tests use) cannot
//! describe, so it needs version-dependent switches; the plain HTTP interface with
//! `JSONEachRow` behaves the same on 18.16 and on current releases, and `reqwest` is already a
//! dependency. What this client relies on, all present in 18.16:
//!
//! - `POST /?database=…` with the statement as the body; `INSERT … FORMAT JSONEachRow` with the
//!   statement in the `query` parameter and the rows as the body;
//! - `X-ClickHouse-User` / `X-ClickHouse-Key` headers for authentication (never the URL, so
//!   a password cannot end up in a proxy's access log);
//! - `wait_end_of_query=1`, so an error that happens while a result is produced is reported
//!   with an error status instead of being appended to a `200 OK` body;
//! - `output_format_json_quote_64bit_integers=0`, so 64-bit integers come back as numbers;
//! - `DateTime` values sent as Unix seconds (a JSON number), which both old and new servers
//!   parse independently of the server's time zone (see [`unix_seconds`]).
//!
//! Errors carry the server's message and its `Code: N`; [`ClickHouseError::is_transient`]
//! separates "try again later" (connection refused, timeouts, overload, 5xx without a
//! ClickHouse code) from mistakes that a retry cannot fix (syntax, unknown table, bad
//! password). Secrets never appear in `Debug`, in errors or in logs.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::ClickHouseConfig;

/// Longest a single request may take (a large insert included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the TCP connect may take; ClickHouse down must be noticed quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Server messages are cut to this many bytes in errors.
const MAX_MESSAGE: usize = 2000;

/// ClickHouse error codes after which the same request may succeed later.
const TRANSIENT_CODES: &[u32] = &[
    3,    // UNEXPECTED_END_OF_FILE (the request body was cut)
    32,   // ATTEMPT_TO_READ_AFTER_EOF
    159,  // TIMEOUT_EXCEEDED
    160,  // TOO_SLOW
    201,  // QUOTA_EXPIRED
    202,  // TOO_MANY_SIMULTANEOUS_QUERIES
    203,  // NO_FREE_CONNECTION
    209,  // SOCKET_TIMEOUT
    210,  // NETWORK_ERROR
    236,  // ABORTED
    241,  // MEMORY_LIMIT_EXCEEDED
    242,  // TABLE_IS_READ_ONLY
    243,  // NOT_ENOUGH_SPACE
    252,  // TOO_MANY_PARTS
    285,  // TOO_FEW_LIVE_REPLICAS
    319,  // UNKNOWN_STATUS_OF_INSERT
    394,  // QUERY_WAS_CANCELLED
    425,  // SYSTEM_ERROR
    439,  // CANNOT_SCHEDULE_TASK
    473,  // DEADLOCK_AVOIDED
    999,  // KEEPER_EXCEPTION
    1000, // POCO_EXCEPTION (I/O)
];

/// A failed ClickHouse request.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// No answer: connection refused or reset, DNS, timeout. Always transient.
    #[error("cannot reach ClickHouse at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The server answered with an error status.
    #[error("ClickHouse answered HTTP {status}{}: {message}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Server {
        status: u16,
        /// The ClickHouse error code (`Code: N` in the body), when there is one.
        code: Option<u32>,
        message: String,
    },
    /// The answer was not what the query promised (e.g. a row that does not fit the type).
    #[error("cannot decode ClickHouse's answer: {0}")]
    Decode(String),
    /// A row could not be serialised.
    #[error("cannot encode a row for ClickHouse: {0}")]
    Encode(String),
    /// The configuration cannot work (e.g. an invalid table name or header value).
    #[error("invalid ClickHouse request: {0}")]
    Invalid(String),
}

impl ClickHouseError {
    /// Whether the same request may succeed later (the server is down, restarting or
    /// overloaded), as opposed to a mistake a retry cannot fix.
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Unreachable { .. } => true,
            ClickHouseError::Server { status, code, .. } => match code {
                Some(c) => TRANSIENT_CODES.contains(c),
                // A 5xx without a ClickHouse code comes from a proxy or a server shutting down.
                None => *status >= 500 || *status == 429 || *status == 408,
            },
            ClickHouseError::Decode(_) | ClickHouseError::Encode(_) | ClickHouseError::Invalid(_) => false,
        }
    }

    /// The ClickHouse error code, when the server sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            ClickHouseError::Server { code, .. } => *code,
            _ => None,
        }
    }
}

pub type Result<T, E = ClickHouseError> = std::result::Result<T, E>;

/// `SELECT version()`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// As the server printed it, e.g. `18.16.1` or `24.8.4.13`.
    pub raw: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServerVersion {
    /// Parses `major.minor[.patch[.build]]`.
    pub fn parse(s: &str) -> Option<ServerVersion> {
        let raw = s.trim().to_string();
        let mut parts = raw.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = parts.next().and_then(|p| p.ok()).unwrap_or(0);
        Some(ServerVersion {
            raw,
            major,
            minor,
            patch,
        })
    }

    /// Whether this server is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Servers before 19.x (Debian's 18.16 among them) lack much of today's dialect: no
    /// `LowCardinality` by default, no `DateTime64`, `Map`, `TTL`, `CODEC`, no server-side query
    /// parameters. nikara uses none of it, so this is informational (logged at start).
    pub fn is_legacy(&self) -> bool {
        self.major < 19
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A ClickHouse HTTP endpoint and database. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The endpoint without credentials.
    base: Url,
    database: String,
    user: Option<String>,
    password: Option<SecretString>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.base.as_str())
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client for `config`. Credentials come from `config.user`/`config.password`, else from
    /// the URL's user info (`http://user:pass@host:8123`), which is then removed from the URL.
    pub fn new(config: &ClickHouseConfig) -> Result<Client> {
        let mut base = config.url.clone();
        let mut user = config.user.clone();
        let mut password = config.password.clone();
        if !base.username().is_empty() {
            if user.is_none() {
                user = Some(percent_decode(base.username()));
            }
            if password.is_none() {
                password = base.password().map(|p| SecretString::from(percent_decode(p)));
            }
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_fragment(None);
        if !valid_identifier(&config.database) {
            return Err(ClickHouseError::Invalid(format!(
                "database name `{}` must be letters, digits and underscores",
                config.database
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ClickHouseError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            database: config.database.clone(),
            user,
            password,
        })
    }

    /// The same endpoint and credentials on another database.
    pub fn with_database(&self, database: &str) -> Result<Client> {
        if !valid_identifier(database) {
            return Err(ClickHouseError::Invalid(format!(
                "database name `{database}` must be letters, digits and underscores"
            )));
        }
        let mut c = self.clone();
        c.database = database.to_string();
        Ok(c)
    }

    /// The database every query runs in (`?database=`).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The endpoint, without credentials (safe to log).
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `GET /ping`: whether the server answers at all (needs no credentials or database).
    pub async fn ping(&self) -> Result<()> {
        let url = self
            .base
            .join("ping")
            .map_err(|e| ClickHouseError::Invalid(format!("ping URL: {e}")))?;
        let resp = self.http.get(url).send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(server_error(status.as_u16(), &body))
        }
    }

    /// Runs one statement in the client's database and returns the body (e.g. `TabSeparated`
    /// rows; empty for DDL). One statement per call: the HTTP interface has no multi-statements.
    pub async fn query(&self, sql: &str) -> Result<String> {
        self.post(
            Some(&self.database),
            &[("wait_end_of_query", "1")],
            None,
            sql.as_bytes().to_vec(),
        )
        .await
    }

    /// Runs one statement without selecting a database (for `CREATE DATABASE`, `DROP DATABASE`).
    pub async fn query_server(&self, sql: &str) -> Result<String> {
        self.post(None, &[("wait_end_of_query", "1")], None, sql.as_bytes().to_vec())
            .await
    }

    /// `SELECT version()`.
    pub async fn server_version(&self) -> Result<ServerVersion> {
        let out = self.query_server("SELECT version()").await?;
        ServerVersion::parse(&out).ok_or_else(|| ClickHouseError::Decode(format!("`{}` is not a version", out.trim())))
    }

    /// Runs a `SELECT` (without a `FORMAT` clause: `FORMAT JSONEachRow` is appended) and
    /// decodes each row. 64-bit integers arrive as numbers; `DateTime` as
    /// `"YYYY-MM-DD hh:mm:ss"` in the column's time zone (read it with [`unix_seconds`], or
    /// select `toUnixTimestamp(col)`).
    pub async fn select_json<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        let sql = format!("{} FORMAT JSONEachRow", sql.trim().trim_end_matches(';'));
        let body = self
            .post(
                Some(&self.database),
                &[
                    ("wait_end_of_query", "1"),
                    ("output_format_json_quote_64bit_integers", "0"),
                ],
                None,
                sql.into_bytes(),
            )
            .await?;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    if let Some(code) = error_code(line) {
                        server_error_with(200, Some(code), line)
                    } else {
                        ClickHouseError::Decode(format!("{e} in row `{}`", cut(line, 300)))
                    }
                })
            })
            .collect()
    }

    /// `INSERT INTO {table} FORMAT JSONEachRow` with `rows` as the body (one JSON object per
    /// line, field names = column names; missing columns take their defaults). Nothing is sent
    /// for no rows. Returns the number of rows sent. A single insert below ~1 M rows is one
    /// block, which ClickHouse writes entirely or not at all.
    pub async fn insert_json_each_row<T: Serialize>(
        &self,
        table: &str,
        rows: impl IntoIterator<Item = T>,
    ) -> Result<usize> {
        self.insert_json_each_row_as(table, rows, None).await
    }

    /// [`Client::insert_json_each_row`] under a chosen `query_id`, so that after a failure the
    /// caller can wait until the server is no longer running it ([`Client::is_running`]).
    pub async fn insert_json_each_row_as<T: Serialize>(
        &self,
        table: &str,
        rows: impl IntoIterator<Item = T>,
        query_id: Option<&str>,
    ) -> Result<usize> {
        if !table.split('.').all(valid_identifier) || table.split('.').count() > 2 {
            return Err(ClickHouseError::Invalid(format!("table name `{table}`")));
        }
        let mut body = Vec::with_capacity(4096);
        let mut n = 0usize;
        for row in rows {
            serde_json::to_writer(&mut body, &row).map_err(|e| ClickHouseError::Encode(e.to_string()))?;
            body.push(b'\n');
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        let params: Vec<(&str, &str)> = query_id.map(|id| ("query_id", id)).into_iter().collect();
        self.post(Some(&self.database), &params, Some(&query), body).await?;
        Ok(n)
    }

    /// Whether the server is still executing the query with this id (`system.processes`).
    pub async fn is_running(&self, query_id: &str) -> Result<bool> {
        if !query_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ClickHouseError::Invalid(format!("query id `{query_id}`")));
        }
        #[derive(serde::Deserialize)]
        struct N {
            n: u64,
        }
        let rows: Vec<N> = self
            .select_json(&format!(
                "SELECT count() AS n FROM system.processes WHERE query_id = '{query_id}'"
            ))
            .await?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    fn endpoint(&self, database: Option<&str>, params: &[(&str, &str)]) -> Result<Url> {
        let mut url = self.base.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(db) = database {
                q.append_pair("database", db);
            }
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    fn auth_headers(&self) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        if self.user.is_none() && self.password.is_none() {
            return Ok(headers);
        }
        let user = self.user.as_deref().unwrap_or("default");
        headers.insert(
            HeaderName::from_static("x-clickhouse-user"),
            HeaderValue::from_str(user)
                .map_err(|_| ClickHouseError::Invalid("user name is not a header value".into()))?,
        );
        if let Some(p) = &self.password {
            let mut v = HeaderValue::from_str(p.expose_secret())
                .map_err(|_| ClickHouseError::Invalid("password is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-clickhouse-key"), v);
        }
        Ok(headers)
    }

    async fn post(
        &self,
        database: Option<&str>,
        params: &[(&str, &str)],
        query: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String> {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if let Some(q) = query {
            all.push(("query", q));
        }
        let url = self.endpoint(database, &all)?;
        let resp = self
            .http
            .post(url)
            .headers(self.auth_headers()?)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(server_error(status.as_u16(), &text))
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> ClickHouseError {
        // reqwest's message names the URL, which carries no credentials (they are headers);
        // print the chain without it anyway to keep messages short.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ClickHouseError::Unreachable {
            url: self.base.to_string(),
            message,
        }
    }
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// `Code: 62, e.displayText() = …` (18.16) or `Code: 62. DB::Exception: …` (current).
fn error_code(body: &str) -> Option<u32> {
    let at = body.find("Code: ")?;
    let digits: String = body[at + 6..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn server_error(status: u16, body: &str) -> ClickHouseError {
    server_error_with(status, error_code(body), body)
}

fn server_error_with(status: u16, code: Option<u32>, body: &str) -> ClickHouseError {
    // 18.16 appends ", e.what() = DB::Exception" and a newline; keep the human part.
    let mut message = body.trim();
    if let Some(i) = message.find(", e.what() = ") {
        message = message[..i].trim_end();
    }
    // The code is a field already; keep what follows "DB::Exception: ".
    if code.is_some()
        && message.starts_with("Code: ")
        && let Some(i) = message.find("DB::Exception: ")
    {
        message = &message[i + "DB::Exception: ".len()..];
    }
    ClickHouseError::Server {
        status,
        code,
        message: cut(message, MAX_MESSAGE).to_string(),
    }
}

/// Serde helpers for `DateTime` columns: written as Unix seconds (clamped to `DateTime`'s
/// range, 1970 to 2106), read from seconds or from ClickHouse's `"YYYY-MM-DD hh:mm:ss"` text,
/// which the analytics tables print in UTC (their columns are `DateTime('UTC')`).
pub mod unix_seconds {
    use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Seconds in `DateTime`'s range.
    pub fn clamp(t: &DateTime<Utc>) -> u32 {
        t.timestamp().clamp(0, u32::MAX as i64) as u32
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(clamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::N(n) => Utc.timestamp_opt(n, 0).single(),
            Raw::S(s) => match s.parse::<i64>() {
                Ok(n) => Utc.timestamp_opt(n, 0).single(),
                Err(_) => NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|n| n.and_utc()),
            },
        };
        parsed.ok_or_else(|| serde::de::Error::custom("not a ClickHouse DateTime"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_of_old_and_new_servers() {
        let old =
            "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1, e.what() = DB::Exception\n";
        let e = server_error(400, old);
        assert_eq!(e.code(), Some(62));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("Syntax error"));
        assert!(!e.to_string().contains("e.what()"));
        let new =
            "Code: 241. DB::Exception: Memory limit (for query) exceeded. (MEMORY_LIMIT_EXCEEDED) (version 24.8.1.1)";
        let e = server_error(500, new);
        assert_eq!(e.code(), Some(241));
        assert!(e.is_transient());
        assert!(server_error(502, "Bad Gateway").is_transient());
        assert!(!server_error(500, "Code: 27, e.displayText() = DB::Exception: Cannot parse input").is_transient());
    }

    #[test]
    fn versions() {
        let v = ServerVersion::parse("18.16.1\n").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (18, 16, 1));
        assert!(v.is_legacy());
        let v = ServerVersion::parse("24.8.4.13").unwrap();
        assert!(v.at_least(24, 8) && !v.at_least(24, 9) && !v.is_legacy());
        assert!(ServerVersion::parse("dev").is_none());
    }

    #[test]
    fn credentials_leave_the_url() {
        let config = ClickHouseConfig {
            url: Url::parse("http://ana%40x:p%2Fw@127.0.0.1:8123/").unwrap(),
            database: "nikara".into(),
            user: None,
            password: None,
        };
        let c = Client::new(&config).unwrap();
        assert_eq!(c.url().as_str(), "http://127.0.0.1:8123/");
        assert_eq!(c.user.as_deref(), Some("ana@x"));
        assert_eq!(
            c.password.as_ref().map(|p| p.expose_secret().to_string()),
            Some("p/w".into())
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p/w") && dbg.contains("redacted"));
        assert!(
            Client::new(&ClickHouseConfig {
                database: "x; DROP".into(),
                ..config
            })
            .is_err()
        );
    }

    #[test]
    fn datetimes() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct R {
            #[serde(with = "unix_seconds")]
            t: chrono::DateTime<chrono::Utc>,
        }
        let t = chrono::DateTime::parse_from_rfc3339("2024-03-01T10:20:30Z")
            .unwrap()
            .to_utc();
        assert_eq!(serde_json::to_string(&R { t }).unwrap(), r#"{"t":1709288430}"#);
        let r: R = serde_json::from_str(r#"{"t":"2024-03-01 10:20:30"}"#).unwrap();
        assert_eq!(r.t, t);
        let r: R = serde_json::from_str(r#"{"t":1709288430}"#).unwrap();
        assert_eq!(r.t, t);
    }
}
