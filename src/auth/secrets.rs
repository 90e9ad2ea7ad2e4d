//! Signing secrets: taken from config when set, otherwise generated once into the data
//! folder (mode 0600) and reused across restarts. Secrets never reach logs.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use rand::RngCore;

/// File names inside `storage.data_dir`.
pub const JWT_SECRET_FILE: &str = "jwt.secret";
pub const PLAYBACK_SECRET_FILE: &str = "playback.secret";

/// The configured secret, or the one stored in `data_dir/file` (created if absent).
pub fn configured_or_stored(
    configured: &str,
    data_dir: &Path,
    file: &str,
) -> std::io::Result<Vec<u8>> {
    if !configured.is_empty() {
        return Ok(configured.as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = configured_or_stored("", dir.path(), "k").unwrap();
        let second = configured_or_stored("", dir.path(), "k").unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(dir.path().join("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            configured_or_stored("set", dir.path(), "k").unwrap(),
            b"set"
        );
    }
}
