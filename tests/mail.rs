//! Mail transport: SMTP against a real (fake) SMTP server, and the outbox folder.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use nikara::config::Config;
use nikara::notify::mail::{self, Mail, MailError, Mailer, OutboxMailer, SmtpMailer};
use nikara_fakes::smtp::SmtpSink;
use secrecy::SecretString;

const FROM: &str = "nikara <nikara@localhost>";

fn mail(id: &str, to: &str) -> Mail {
    Mail {
        id: id.into(),
        to: to.into(),
        subject: "Your X account needs reconnecting".into(),
        text: "The platform revoked access.\nReconnect: http://localhost:3000/?reconnect=acc_1\n".into(),
    }
}

fn smtp(url: &str) -> SmtpMailer {
    SmtpMailer::new(&SecretString::from(url.to_owned()), FROM).unwrap()
}

#[tokio::test]
async fn smtp_delivers_headers_and_body() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink.url());
    assert_eq!(mailer.describe(), sink.url());
    mailer
        .send(&mail("ntf_acc_1.revoked-1", "user@example.com"))
        .await
        .unwrap();

    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.from, "nikara@localhost");
    assert_eq!(m.to, vec!["user@example.com".to_string()]);
    assert!(m.data.contains("From: nikara <nikara@localhost>\r\n"), "{}", m.data);
    assert!(m.data.contains("To: user@example.com\r\n"), "{}", m.data);
    assert!(
        m.data.contains("Subject: Your X account needs reconnecting\r\n"),
        "{}",
        m.data
    );
    assert!(
        m.data.contains("Message-ID: <ntf_acc_1.revoked-1@nikara>\r\n"),
        "{}",
        m.data
    );
    assert!(m.data.contains("Date: "), "{}", m.data);
    assert!(m.data.contains("Content-Type: text/plain; charset=utf-8"), "{}", m.data);
    assert!(
        m.data.contains("Reconnect: http://localhost:3000/?reconnect=acc_1"),
        "{}",
        m.data
    );
}

#[tokio::test]
async fn message_id_is_sanitized() {
    let sink = SmtpSink::start().await;
    smtp(&sink.url())
        .send(&mail("inc/1 <x>", "user@example.com"))
        .await
        .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert!(
        got[0].data.contains("Message-ID: <inc-1--x-@nikara>\r\n"),
        "{}",
        got[0].data
    );
}

#[tokio::test]
async fn stopped_server_is_transient_and_recovers_on_the_same_port() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink.url());
    sink.stop();
    let err = mailer.send(&mail("inc-1", "user@example.com")).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(err.to_string().contains(&sink.url()), "{err}");

    let back = SmtpSink::start_on(sink.port()).await.unwrap();
    mailer.send(&mail("inc-1", "user@example.com")).await.unwrap();
    assert_eq!(back.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}

#[tokio::test]
async fn rejections_are_classified() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink.url());

    sink.set_reject(Some(451));
    let err = mailer.send(&mail("inc-1", "user@example.com")).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(err.is_transient());

    sink.set_reject(Some(550));
    let err = mailer.send(&mail("inc-1", "user@example.com")).await.unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");

    sink.set_reject(None);
    mailer.send(&mail("inc-1", "user@example.com")).await.unwrap();
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}

#[tokio::test]
async fn bad_recipient_is_permanent_and_sends_nothing() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink.url());
    let err = mailer.send(&mail("inc-1", "not an address")).await.unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
    assert!(sink.wait_for(1, Duration::from_millis(200)).await.is_empty());
}

#[test]
fn bad_sender_is_permanent_and_named() {
    let err = SmtpMailer::new(&SecretString::from("smtp://127.0.0.1:25".to_owned()), "nope").unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent(m) if m.contains("NIKARA_MAIL_FROM")),
        "{err:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = OutboxMailer::new(dir.path(), "nope").unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent(m) if m.contains("NIKARA_MAIL_FROM")),
        "{err:?}"
    );
}

#[test]
fn bad_url_is_permanent_and_does_not_leak_the_password() {
    let err = SmtpMailer::new(&SecretString::from("ftp://u:secretpw@host".to_owned()), FROM).unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent(m) if m.contains("NIKARA_SMTP_URL")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("secretpw"));
}

#[test]
fn debug_hides_the_password() {
    let mailer = smtp("smtp://user:secretpw@127.0.0.1:1");
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("secretpw"), "{debug}");
    assert!(debug.contains("smtp://127.0.0.1:1"), "{debug}");
    assert_eq!(mailer.describe(), "smtp://127.0.0.1:1");
}

#[test]
fn tls_url_forms_are_accepted() {
    let m = smtp("smtps://user:pw@mail.example.com");
    assert_eq!(m.describe(), "smtps://mail.example.com:465");
    let m = smtp("smtp://mail.example.com:2587?tls=required");
    assert_eq!(m.describe(), "smtp://mail.example.com:2587?tls=required");
}

#[tokio::test]
async fn outbox_writes_one_file_per_id() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("data").join("outbox");
    let mailer = OutboxMailer::new(&outbox, FROM).unwrap();
    assert_eq!(mailer.describe(), format!("outbox {}", outbox.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&outbox).unwrap().permissions().mode() & 0o777, 0o700);
    }

    let mut m = mail("ntf_1", "user@example.com");
    mailer.send(&m).await.unwrap();
    m.text = "second version\n".into();
    mailer.send(&m).await.unwrap();
    mailer.send(&mail("ntf_2", "other@example.com")).await.unwrap();

    let mut names: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["ntf_1.eml", "ntf_2.eml"]);

    let eml = std::fs::read_to_string(outbox.join("ntf_1.eml")).unwrap();
    assert!(eml.contains("From: nikara <nikara@localhost>\r\n"), "{eml}");
    assert!(eml.contains("To: user@example.com\r\n"), "{eml}");
    assert!(eml.contains("Subject: Your X account needs reconnecting\r\n"), "{eml}");
    assert!(eml.contains("Message-ID: <ntf_1@nikara>\r\n"), "{eml}");
    assert!(eml.contains("Date: "), "{eml}");
    assert!(eml.contains("second version"), "{eml}");
    assert!(!eml.contains("revoked access"), "{eml}");

    let err = mailer.send(&mail("ntf_3", "bad")).await.unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)), "{err:?}");
    assert!(!outbox.join("ntf_3.eml").exists());
}

#[tokio::test]
async fn outbox_recreates_a_removed_dir() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mailer = OutboxMailer::new(&outbox, FROM).unwrap();
    std::fs::remove_dir(&outbox).unwrap();
    mailer.send(&mail("ntf_1", "user@example.com")).await.unwrap();
    assert!(outbox.join("ntf_1.eml").exists());
}

#[tokio::test]
async fn from_config_picks_outbox_or_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    let outbox = mail::from_config(&config).unwrap();
    assert_eq!(
        outbox.describe(),
        format!("outbox {}", dir.path().join("outbox").display())
    );
    outbox.send(&mail("ntf_1", "user@example.com")).await.unwrap();
    assert!(dir.path().join("outbox").join("ntf_1.eml").exists());

    let sink = SmtpSink::start().await;
    config.smtp_url = Some(SecretString::from(sink.url()));
    let smtp = mail::from_config(&config).unwrap();
    assert_eq!(smtp.describe(), sink.url());
    smtp.send(&mail("ntf_2", "user@example.com")).await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert!(got[0].data.contains("Message-ID: <ntf_2@nikara>"));

    config.mail_from = "not a mailbox".into();
    let err = mail::from_config(&config).unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent(m) if m.contains("NIKARA_MAIL_FROM")),
        "{err:?}"
    );
}
