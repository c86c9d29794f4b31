//! The binary itself: zero-setup run, config errors, corrupt data, `token`, `openapi`, signals.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nikara");

/// A command with a clean environment: no NIKARA_* from the developer's shell.
fn nikara(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// Starts `nikara` (serve) and returns the child and the address it logged.
fn spawn_serving(mut cmd: Command) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(idx) = line.find("addr=Some(") {
                let rest = &line[idx + "addr=Some(".len()..];
                let addr = rest.split(')').next().unwrap().to_string();
                seen.push(line);
                let (fwd_tx, fwd_rx) = std::sync::mpsc::channel();
                for l in seen {
                    let _ = fwd_tx.send(l);
                }
                std::thread::spawn(move || {
                    while let Ok(l) = rx.recv() {
                        let _ = fwd_tx.send(l);
                    }
                });
                return (child, addr, fwd_rx);
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no listening line in:\n{}", seen.join("\n"));
}

fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn zero_setup_run_generates_dev_secrets_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = nikara(dir.path());
    // Port 0 so parallel tests do not collide; everything else is the zero-configuration default.
    cmd.env("NIKARA_LISTEN", "127.0.0.1:0");
    let (mut child, addr, logs) = spawn_serving(cmd);
    let health = reqwest::blocking::get(format!("http://{addr}/healthz")).unwrap();
    assert_eq!(health.status(), 200);

    let data = dir.path().join("data");
    for f in ["events.db", "readmodels.db", "dev-jwt-secret", "dev-encryption-keys"] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    for f in ["dev-jwt-secret", "dev-encryption-keys"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }

    // A token minted by the CLI with the same data dir is accepted by the server.
    let out = nikara(dir.path())
        .args(["token", "--user", "dev-user", "--email", "d@example.com"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "prints only the token");
    assert_eq!(token.split('.').count(), 3);
    let me = reqwest::blocking::Client::new()
        .get(format!("http://{addr}/api/me"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(me.status(), 200);

    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let log: Vec<String> = logs.try_iter().collect();
    let log = log.join("\n");
    assert!(log.contains("generated a development JWT secret"), "{log}");
    assert!(log.contains("generated a development encryption key ring"), "{log}");
    assert!(
        !log.contains(
            &std::fs::read_to_string(data.join("dev-jwt-secret"))
                .unwrap()
                .trim()
                .to_string()
        )
    );
}

#[test]
fn configured_secrets_are_never_generated() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = nikara(dir.path());
    cmd.env("NIKARA_LISTEN", "127.0.0.1:0")
        .env("NIKARA_JWT_SECRET", "a-configured-secret-of-enough-length")
        .env(
            "NIKARA_ENCRYPTION_KEYS",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
    let (mut child, _addr, _logs) = spawn_serving(cmd);
    assert!(sigterm_and_wait(&mut child).success());
    assert!(!dir.path().join("data/dev-jwt-secret").exists());
    assert!(!dir.path().join("data/dev-encryption-keys").exists());
}

#[test]
fn malformed_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("NIKARA_LISTEN", "nowhere"),
        ("NIKARA_ENCRYPTION_KEYS", "k1:c2hvcnQ="),
        ("NIKARA_PUBLIC_URL", "not a url"),
        ("NIKARA_CLICKHOUSE_URL", "clickhouse"),
    ] {
        let out = nikara(dir.path()).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("error: {var}: ")), "{stderr}");
        assert!(!stderr.contains("c2hvcnQ"), "the key value is not echoed");
    }
}

#[test]
fn a_corrupt_event_log_stops_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/events.db"), vec![0x5a; 8192]).unwrap();
    let out = nikara(dir.path()).env("NIKARA_LISTEN", "127.0.0.1:0").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("events.db"), "{stderr}");
    assert!(stderr.contains("not a database"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn openapi_needs_no_configuration_and_every_help_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let out = nikara(dir.path())
        .env("NIKARA_LISTEN", "garbage")
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["info"]["title"], "nikara");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["openapi", "--help"],
        vec!["token", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "generate", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["keys", "status", "--help"],
        vec!["projections", "--help"],
        vec!["projections", "rebuild", "--help"],
        vec!["webhooks", "replay", "--help"],
    ] {
        let out = nikara(dir.path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:") && text.lines().count() > 3, "{args:?}: {text}");
    }
    let key = nikara(dir.path())
        .args(["keys", "generate", "--kid", "k2"])
        .output()
        .unwrap();
    let line = String::from_utf8(key.stdout).unwrap();
    assert!(nikara::crypto::KeyRing::parse(line.trim()).is_ok(), "{line}");
}

#[test]
fn projections_rebuild_replays_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = nikara(dir.path());
    cmd.env("NIKARA_LISTEN", "127.0.0.1:0");
    let (mut child, addr, _logs) = spawn_serving(cmd);
    let token = String::from_utf8(
        nikara(dir.path())
            .args(["token", "--user", "r1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let client = reqwest::blocking::Client::new();
    for i in 0..3 {
        let r = client
            .put(format!("http://{addr}/api/me"))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({"email": format!("r{i}@example.com")}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(sigterm_and_wait(&mut child).success());
    let out = nikara(dir.path())
        .args(["projections", "rebuild", "activity"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("rebuilt activity from 4 events"), "{stdout}");
    let unknown = nikara(dir.path())
        .args(["projections", "rebuild", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown projection `nope`"));
}
