//! Mail transport: SMTP through lettre when `NIKARA_SMTP_URL` is set, otherwise `.eml` files in an
//! outbox folder (`{data_dir}/outbox`), both behind [`Mailer`].
//!
//! A [`Mail`] carries a stable per-incident `id`: it becomes the `Message-ID` (`<{id}@nikara>`) and
//! the outbox file name (`{id}.eml`), so sending one incident twice overwrites the outbox file or
//! produces a recognisable duplicate on SMTP rather than a new, unrelated mail.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How long one SMTP conversation step may take before the send counts as a transient failure.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One notification mail. `id` is stable per incident: it names the outbox file and the Message-ID,
/// so sending the same incident twice overwrites (outbox) / is recognisable (SMTP) rather than duplicating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Why a mail was not sent. `Transient` is worth retrying (server down, timeout, 4xx); `Permanent`
/// is not (5xx rejection, invalid address or configuration).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail transport unavailable: {0}")]
    Transient(String),
    #[error("mail rejected: {0}")]
    Permanent(String),
}

impl MailError {
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

/// Something that delivers [`Mail`].
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
    /// For logs: "smtp://host:port" without credentials, or "outbox /path".
    fn describe(&self) -> String;
}

/// SMTP when `NIKARA_SMTP_URL` is set, else the outbox folder `{data_dir}/outbox`.
pub fn from_config(config: &crate::config::Config) -> Result<Arc<dyn Mailer>, MailError> {
    match &config.smtp_url {
        Some(url) => Ok(Arc::new(SmtpMailer::new(url, &config.mail_from)?)),
        None => Ok(Arc::new(OutboxMailer::new(
            config.data_dir.join("outbox"),
            &config.mail_from,
        )?)),
    }
}

/// `id` reduced to `[A-Za-z0-9._-]` (anything else becomes `-`), usable in a file name and a
/// Message-ID. Callers should use ids that are already in that alphabet (prefixed ids, UUIDs) so that
/// distinct incidents cannot collide.
fn sanitize_id(id: &str) -> Result<String, MailError> {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        return Err(MailError::Permanent(format!("invalid mail id {id:?}")));
    }
    Ok(clean)
}

fn parse_from(from: &str) -> Result<Mailbox, MailError> {
    from.parse::<Mailbox>()
        .map_err(|e| MailError::Permanent(format!("NIKARA_MAIL_FROM: invalid address {from:?}: {e}")))
}

/// The RFC 5322 message for `mail`.
fn build_message(from: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let id = sanitize_id(&mail.id)?;
    let to = mail
        .to
        .parse::<Mailbox>()
        .map_err(|e| MailError::Permanent(format!("invalid recipient address {:?}: {e}", mail.to)))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.as_str())
        .message_id(Some(format!("<{id}@nikara>")))
        .date_now()
        .header(ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| MailError::Permanent(format!("cannot build mail {id}: {e}")))
}

/// Sends through an SMTP server (lettre, tokio, rustls). One connection per mail: notifications are
/// rare, and a fresh connection never trips over one the server closed while idle.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl SmtpMailer {
    /// `url` in lettre's form: `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS),
    /// `smtps://host:port` (TLS); `user:password@` for AUTH. `from` is `NIKARA_MAIL_FROM`.
    pub fn new(url: &SecretString, from: &str) -> Result<SmtpMailer, MailError> {
        let from = parse_from(from)?;
        let raw = url.expose_secret();
        // Neither error below repeats the URL, which may hold a password.
        let parsed =
            url::Url::parse(raw).map_err(|e| MailError::Permanent(format!("NIKARA_SMTP_URL: invalid URL: {e}")))?;
        let server = describe_url(&parsed);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(raw)
            .map_err(|e| MailError::Permanent(format!("NIKARA_SMTP_URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(SmtpMailer {
            transport,
            from,
            server,
        })
    }
}

/// `scheme://host:port[?tls=…]`, with lettre's default ports, never the credentials.
fn describe_url(url: &url::Url) -> String {
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let default_port = match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => 465,
        ("smtp", Some(_)) => 587,
        _ => 25,
    };
    let host = url.host_str().unwrap_or("");
    let port = url.port().unwrap_or(default_port);
    match tls {
        Some(tls) => format!("{}://{host}:{port}?tls={tls}", url.scheme()),
        None => format!("{}://{host}:{port}", url.scheme()),
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // lettre's transport Debug includes the credentials.
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Permanent(format!("{}: {e}", self.server))),
            // 4xx, connection refused, timeouts, TLS and protocol trouble: the server may recover.
            Err(e) => Err(MailError::Transient(format!("{}: {e}", self.server))),
        }
    }

    fn describe(&self) -> String {
        self.server.clone()
    }
}

/// Writes each mail to `{dir}/{id}.eml` (atomically: temporary file, fsync, rename), for setups
/// without SMTP. The same id overwrites its file.
#[derive(Debug)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl OutboxMailer {
    /// Creates `dir` (mode 0700 on unix) when missing. `from` is `NIKARA_MAIL_FROM`.
    pub fn new(dir: impl Into<PathBuf>, from: &str) -> Result<OutboxMailer, MailError> {
        let from = parse_from(from)?;
        let dir = dir.into();
        create_dir(&dir)?;
        Ok(OutboxMailer { dir, from })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn create_dir(dir: &Path) -> Result<(), MailError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| MailError::Transient(format!("cannot create outbox {}: {e}", dir.display())))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so readers see either
/// the old file or the whole new one.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))?;
        // Make the rename itself durable.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait::async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build_message(&self.from, mail)?;
        let name = format!("{}.eml", sanitize_id(&mail.id)?);
        let bytes = message.formatted();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            create_dir(&dir)?;
            write_atomically(&dir, &name, &bytes)
                .map_err(|e| MailError::Transient(format!("cannot write {}: {e}", dir.join(&name).display())))
        })
        .await
        .map_err(|e| MailError::Transient(format!("outbox writer failed: {e}")))?
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitized() {
        assert_eq!(sanitize_id("inc_1.a-b").unwrap(), "inc_1.a-b");
        assert_eq!(sanitize_id("../x/y z").unwrap(), "..-x-y-z");
        assert!(sanitize_id("").is_err());
        assert!(sanitize_id("..").is_err());
    }

    #[test]
    fn describe_hides_credentials_and_fills_ports() {
        let d = |s: &str| describe_url(&url::Url::parse(s).unwrap());
        assert_eq!(d("smtp://u:p@mail.example:2525"), "smtp://mail.example:2525");
        assert_eq!(d("smtps://u:p@mail.example"), "smtps://mail.example:465");
        assert_eq!(
            d("smtp://mail.example?tls=required"),
            "smtp://mail.example:587?tls=required"
        );
        assert_eq!(d("smtp://mail.example"), "smtp://mail.example:25");
    }
}
