//! A small real SMTP server on `127.0.0.1` that keeps what it receives, for tests of mail delivery.
//!
//! It speaks enough RFC 5321 for lettre over plain TCP: greeting, `EHLO`/`HELO`, `MAIL FROM`,
//! `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP`, `QUIT`. No TLS, no AUTH. Failure
//! injection: [`SmtpSink::stop`] closes the port (connections are refused), [`SmtpSink::set_reject`]
//! answers `RCPT TO` with a chosen 4xx/5xx code.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// One accepted message: the envelope and the raw message as sent after `DATA` (CRLF line endings,
/// dot-unstuffed, without the terminating `.` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Debug)]
struct Shared {
    port: u16,
    /// `None` once stopped; taken out and dropped by [`SmtpSink::stop`] so the port closes at once.
    listener: Mutex<Option<TcpListener>>,
    reject: Mutex<Option<u16>>,
    messages: watch::Sender<Vec<Received>>,
    stopped: watch::Sender<bool>,
}

impl Shared {
    fn listener(&self) -> MutexGuard<'_, Option<TcpListener>> {
        self.listener.lock().expect("smtp sink listener mutex poisoned")
    }

    fn reject(&self) -> Option<u16> {
        *self.reject.lock().expect("smtp sink reject mutex poisoned")
    }
}

/// A running SMTP sink. Cheap to clone; it serves until [`SmtpSink::stop`] or the end of the tokio
/// runtime that started it.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Listens on a random port of `127.0.0.1`.
    pub async fn start() -> SmtpSink {
        SmtpSink::start_on(0).await.expect("bind 127.0.0.1:0 for the SMTP sink")
    }

    /// Listens on `127.0.0.1:{port}`, e.g. to bring a stopped sink back on the same port. Waits up to
    /// 2 s for the port to become free.
    pub async fn start_on(port: u16) -> std::io::Result<SmtpSink> {
        let mut attempts = 0;
        let listener = loop {
            match bind(port) {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 40 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            port,
            listener: Mutex::new(Some(listener)),
            reject: Mutex::new(None),
            messages: watch::Sender::new(Vec::new()),
            stopped: watch::Sender::new(false),
        });
        tokio::spawn(accept_loop(shared.clone()));
        Ok(SmtpSink { shared })
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `smtp://127.0.0.1:{port}`, usable as `NIKARA_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.shared.port)
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.borrow().clone()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed, and returns all messages.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut rx = self.shared.messages.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|m| m.len() >= n)).await;
        self.messages()
    }

    /// Closes the listener (new connections are refused from now on) and drops open connections.
    pub fn stop(&self) {
        drop(self.shared.listener().take());
        self.shared.stopped.send_replace(true);
    }

    /// `Some(451)`: answer `RCPT TO` with 451 (transient); `Some(550)`: with 550 (permanent);
    /// `None`: accept again.
    pub fn set_reject(&self, code: Option<u16>) {
        *self.shared.reject.lock().expect("smtp sink reject mutex poisoned") = code;
    }
}

fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Lets a restarted sink bind while connections of the previous one sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(128)
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut stopped = shared.stopped.subscribe();
    loop {
        let accept = poll_fn(|cx| match shared.listener().as_ref() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        });
        tokio::select! {
            () = wait_stopped(&mut stopped) => return,
            accepted = accept => match accepted {
                Some(Ok((stream, _))) => {
                    tokio::spawn(serve(shared.clone(), stream));
                }
                // Transient accept errors (e.g. too many open files): keep serving.
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                None => return,
            },
        }
    }
}

/// Returns once [`SmtpSink::stop`] was called (or the sink is gone).
async fn wait_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let mut stopped = shared.stopped.subscribe();
    if *stopped.borrow_and_update() {
        return;
    }
    tokio::select! {
        () = wait_stopped(&mut stopped) => {}
        _ = converse(&shared, stream) => {}
    }
}

/// Envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

/// The address between `<` and `>` after `MAIL FROM:` / `RCPT TO:` (parameters such as `SIZE=` are
/// ignored).
fn path_arg(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let start = rest.find('<')?;
    let end = rest[start..].find('>')? + start;
    Some(rest[start + 1..end].to_owned())
}

/// Strips `prefix` case-insensitively.
fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    if line.len() >= prefix.len()
        && line.is_char_boundary(prefix.len())
        && line[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&line[prefix.len()..])
    } else {
        None
    }
}

async fn converse(shared: &Shared, stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 localhost ESMTP nikara-fakes\r\n").await?;
    let mut tx = Transaction::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).await? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']);
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => {
                tx = Transaction::default();
                "250-localhost\r\n250 8BITMIME\r\n".into()
            }
            "HELO" => {
                tx = Transaction::default();
                "250 localhost\r\n".into()
            }
            "MAIL" => match strip_prefix_ci(line, "MAIL FROM:").and_then(path_arg) {
                Some(from) => {
                    tx = Transaction {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    "250 2.1.0 OK\r\n".into()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".into(),
            },
            "RCPT" => match (tx.from.is_some(), strip_prefix_ci(line, "RCPT TO:").and_then(path_arg)) {
                (false, _) => "503 5.5.1 MAIL first\r\n".into(),
                (true, None) => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".into(),
                (true, Some(to)) => match shared.reject() {
                    Some(code) => format!("{code} {}.0.0 rejected by the fake SMTP sink\r\n", code / 100),
                    None => {
                        tx.to.push(to);
                        "250 2.1.5 OK\r\n".into()
                    }
                },
            },
            "DATA" => {
                if tx.from.is_none() || tx.to.is_empty() {
                    "503 5.5.1 RCPT first\r\n".into()
                } else {
                    write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                    let Some(data) = read_data(&mut reader).await? else {
                        return Ok(());
                    };
                    let received = Received {
                        from: tx.from.take().unwrap_or_default(),
                        to: std::mem::take(&mut tx.to),
                        data,
                    };
                    shared.messages.send_modify(|m| m.push(received));
                    "250 2.0.0 OK queued\r\n".into()
                }
            }
            "RSET" => {
                tx = Transaction::default();
                "250 2.0.0 OK\r\n".into()
            }
            "NOOP" => "250 2.0.0 OK\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return write.shutdown().await;
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Reads message lines up to the lone `.`; `None` when the client hung up first.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content == b"." {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        // Dot-unstuffing: a leading `.` was doubled by the client.
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn expect(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, code: &str) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
        reply
    }

    #[tokio::test]
    async fn raw_conversation_is_recorded_and_unstuffed() {
        let sink = SmtpSink::start().await;
        let (read, mut write) = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap()
            .into_split();
        let mut reader = BufReader::new(read);
        expect(&mut reader, "220").await;
        write.write_all(b"EHLO test\r\n").await.unwrap();
        let ehlo = expect(&mut reader, "250").await;
        assert!(ehlo.contains("8BITMIME") && !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"));
        write.write_all(b"DATA\r\n").await.unwrap();
        expect(&mut reader, "503").await;
        write.write_all(b"mail from:<a@x.test> SIZE=10\r\n").await.unwrap();
        expect(&mut reader, "250").await;
        write.write_all(b"RCPT TO:<b@y.test>\r\n").await.unwrap();
        expect(&mut reader, "250").await;
        write.write_all(b"DATA\r\n").await.unwrap();
        expect(&mut reader, "354").await;
        write
            .write_all(b"Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n")
            .await
            .unwrap();
        expect(&mut reader, "250").await;
        write.write_all(b"NOOP\r\n").await.unwrap();
        expect(&mut reader, "250").await;
        write.write_all(b"QUIT\r\n").await.unwrap();
        expect(&mut reader, "221").await;
        let got = sink.wait_for(1, Duration::from_secs(1)).await;
        assert_eq!(
            got,
            vec![Received {
                from: "a@x.test".into(),
                to: vec!["b@y.test".into()],
                data: "Subject: hi\r\n\r\n.dot\r\nline\r\n".into(),
            }]
        );
    }

    #[tokio::test]
    async fn reject_stop_and_restart() {
        let sink = SmtpSink::start().await;
        sink.set_reject(Some(451));
        let (read, mut write) = TcpStream::connect(("127.0.0.1", sink.port()))
            .await
            .unwrap()
            .into_split();
        let mut reader = BufReader::new(read);
        expect(&mut reader, "220").await;
        write
            .write_all(b"HELO t\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n")
            .await
            .unwrap();
        expect(&mut reader, "250").await;
        expect(&mut reader, "250").await;
        expect(&mut reader, "451").await;

        let port = sink.port();
        sink.stop();
        assert!(
            TcpStream::connect(("127.0.0.1", port)).await.is_err(),
            "stopped sink still accepts"
        );
        // The open connection is dropped too.
        let mut rest = String::new();
        assert_eq!(reader.read_line(&mut rest).await.unwrap_or(0), 0);

        let again = SmtpSink::start_on(port).await.unwrap();
        assert_eq!(again.url(), format!("smtp://127.0.0.1:{port}"));
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut reader = BufReader::new(stream.into_split().0);
        expect(&mut reader, "220").await;
        assert!(again.wait_for(1, Duration::from_millis(50)).await.is_empty());
    }
}
