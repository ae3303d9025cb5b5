//! Atomic file replacement for files that daemons read while they are being updated: the
//! new content goes to a temporary file in the same directory, is fsync'd, gets its mode,
//! and is renamed over the old name; then the directory is fsync'd, so after a crash the name
//! holds either the old or the new file, whole. The new file has a fresh mtime (dCache
//! re-reads its banfile only when the mtime moved).

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`, mode `mode` (set on the open file, so the umask does not
/// narrow it).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = directory(path);
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The directory holding `path` (`.` for a bare file name).
fn directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.<name>.tmp-<pid>-<nanos>` beside `path`: hidden, unique per writer.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    directory(path).join(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
}

/// `path` with `suffix` appended to its file name (`blocklist.json` → `blocklist.json.etag`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_whole_files_with_the_mode_asked_and_a_fresh_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ban.conf");
        write(&path, b"one\n", 0o644).unwrap();
        let first = std::fs::metadata(&path).unwrap();
        assert_eq!(first.mode() & 0o777, 0o644);
        write(&path, b"two\n", 0o640).unwrap();
        let second = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(second.mode() & 0o777, 0o640);
        assert_ne!(
            first.ino(),
            second.ino(),
            "renamed over, not rewritten in place"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, b"old", 0o644).unwrap();
        // A directory in the way of the rename: the old file is untouched, no temp file stays.
        let blocked = dir.path().join("d");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"").unwrap();
        assert!(write(&blocked, b"new", 0o644).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn siblings_append_to_the_name() {
        assert_eq!(
            sibling(Path::new("/a/b.json"), ".etag"),
            PathBuf::from("/a/b.json.etag")
        );
        assert_eq!(directory(Path::new("b.json")), PathBuf::from("."));
    }
}
