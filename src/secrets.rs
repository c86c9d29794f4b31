//! Development secrets generated into the data directory when none are configured.
//!
//! Only the zero-configuration run uses these: a configured `NIKARA_JWT_SECRET` or
//! `NIKARA_ENCRYPTION_KEYS` always wins and nothing is written.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use rand::RngCore;

/// File name of the generated development JWT secret inside the data dir.
pub const DEV_JWT_SECRET_FILE: &str = "dev-jwt-secret";
/// File name of the generated development key ring inside the data dir.
pub const DEV_KEYS_FILE: &str = "dev-encryption-keys";

/// Reads the secret at `path`, or creates it (mode 0600, never overwriting) from `generate`.
/// Returns the text and whether it was generated now.
pub fn read_or_create(path: &Path, generate: impl FnOnce() -> String) -> std::io::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok((text, true))
        }
        // Another process won the race: use its secret.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((std::fs::read_to_string(path)?.trim().to_string(), false))
        }
        Err(e) => Err(e),
    }
}

/// A random 48-byte secret, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("secret");
        let (a, generated) = read_or_create(&path, random_secret).expect("create");
        assert!(generated);
        let (b, generated) = read_or_create(&path, || "other".into()).expect("read");
        assert!(!generated);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
