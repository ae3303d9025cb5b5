//! Reading the files a plugin or a timer trusts (check.toml, site keys, blocklists, caches,
//! high-water marks, the document a pull holds) without ever waiting. HTCondor gives a plugin
//! no timeout, so a FIFO, a device or a socket planted (or symlinked) where a file should be
//! must be refused, not read: opening a FIFO waits for a writer, and reading `/dev/zero` never
//! ends. A path is stat'ed first, so a device is never even opened (opening some has effects),
//! then opened with `O_NONBLOCK` and `O_NOCTTY`, and what was opened must be a regular file
//! too (the path may have changed in between): every decision is about the descriptor read,
//! never about the path.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// Opens the regular file at `path` for reading; anything else is an error of kind
/// `InvalidInput` saying what it is.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    require_regular(&std::fs::metadata(path)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags(OFlags::NONBLOCK | OFlags::NOCTTY))
        .open(path)?;
    let meta = file.metadata()?;
    require_regular(&meta)?;
    Ok((file, meta))
}

/// The regular file at `path`, whole, if it holds at most `limit` bytes; and its metadata
/// (of the file read).
pub fn read_regular(path: &Path, limit: u64) -> io::Result<(Vec<u8>, Metadata)> {
    let (file, meta) = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok((bytes, meta))
}

/// Opens the lock file at `path`, creating it (mode 0600: no other user may open it, so no
/// other user may hold its lock), without following a symlink or waiting; it must be a
/// regular file.
pub fn open_lock(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(flags(OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY))
        .open(path)?;
    require_regular(&file.metadata()?)?;
    Ok(file)
}

/// An error unless `meta` is a regular file's.
pub fn require_regular(meta: &Metadata) -> io::Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}, not a regular file", describe(meta.file_type())),
    ))
}

fn describe(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

/// `open(2)` flags as `OpenOptionsExt::custom_flags` takes them (they all fit in 31 bits).
fn flags(flags: OFlags) -> i32 {
    i32::try_from(flags.bits()).expect("open flags fit in an i32")
}

/// Makes a FIFO at `path`, as whoever can write its directory could.
#[cfg(test)]
pub fn mkfifo(path: &Path) {
    use rustix::fs::{CWD, FileType as NodeType, Mode, mknodat};
    mknodat(CWD, path, NodeType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixListener;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_are_read_whole_within_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"twelve bytes").unwrap();
        let (bytes, meta) = read_regular(&path, 12).unwrap();
        assert_eq!((bytes.as_slice(), meta.len()), (&b"twelve bytes"[..], 12));
        let e = read_regular(&path, 11).unwrap_err();
        assert_eq!(e.to_string(), "larger than 11 bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            read_regular(&link, 12).is_ok(),
            "a symlink to a file is a file"
        );
        assert_eq!(
            read_regular(&dir.path().join("none"), 1)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn fifos_devices_sockets_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let socket = dir.path().join("socket");
        let _listener = UnixListener::bind(&socket).unwrap();
        for (path, says) in [
            (fifo.as_path(), "a FIFO, not a regular file"),
            (&zero, "a character device, not a regular file"),
            (&socket, "a socket, not a regular file"),
            (dir.path(), "a directory, not a regular file"),
        ] {
            let started = Instant::now();
            let e = read_regular(path, 1 << 20).unwrap_err();
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "{says}: took {:?}",
                started.elapsed()
            );
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{says}");
            assert_eq!(e.to_string(), says);
        }
        let started = Instant::now();
        let e = open_lock(&fifo).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(e.to_string(), "a FIFO, not a regular file");
        assert!(open_lock(&zero).is_err(), "a symlink is not followed");
        let lock = dir.path().join("lock");
        open_lock(&lock).unwrap();
        assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);
    }
}
