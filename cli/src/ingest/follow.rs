//! `ingest --follow`: tail one file, ship its new lines in batches, follow rotation, and keep
//! the position the server last acknowledged in a state file, so a restart resumes there.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::lines::{Line, LineReader};
use super::progress::Progress;
use super::session::Session;

/// How often the file is checked for new lines, rotation and truncation.
const POLL: Duration = Duration::from_millis(200);
/// A batch is shipped at most this long after its first line was read.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
const READ_BUFFER: usize = 64 * 1024;

/// Where following stopped: the file (by path and inode) and the byte offset (and line
/// number) just after the last line the server acknowledged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FollowState {
    pub path: PathBuf,
    pub inode: u64,
    pub offset: u64,
    /// Lines before `offset`, so rejects keep their line numbers across restarts.
    #[serde(default)]
    pub line: u64,
}

impl FollowState {
    /// Reads the state file; None if it does not exist yet.
    pub fn load(file: &Path) -> anyhow::Result<Option<FollowState>> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a follow state file", file.display()))
    }

    /// Replaces the state file atomically: a temporary file beside it, fsync, rename, fsync
    /// of the directory.
    pub fn save(&self, file: &Path) -> anyhow::Result<()> {
        let context = || format!("writing {}", file.display());
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write;
            let mut out = File::create(&tmp).with_context(context)?;
            serde_json::to_writer(&mut out, self).with_context(context)?;
            out.write_all(b"\n").with_context(context)?;
            out.sync_all().with_context(context)?;
        }
        std::fs::rename(&tmp, file).with_context(context)?;
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(context)
    }
}

/// What happened to the followed path since the file was opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Still the same file, not shorter than what was read.
    None,
    /// The path now names another file (rotation by rename and create).
    Rotated,
    /// The same file got shorter than what was read (rotation by copy and truncate).
    Truncated,
}

/// An open followed file.
pub struct Tail {
    path: PathBuf,
    inode: u64,
    reader: LineReader<BufReader<File>>,
}

impl Tail {
    /// Opens `path` (None if it does not exist), resuming at `resume` when that names the same
    /// inode and the file still reaches its offset; otherwise from the start.
    pub fn open(path: &Path, resume: Option<&FollowState>) -> io::Result<Option<Tail>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let (offset, line) = match resume {
            Some(state) if state.inode == meta.ino() && state.offset <= meta.len() => {
                (state.offset, state.line)
            }
            _ => (0, 0),
        };
        file.seek(SeekFrom::Start(offset))?;
        Ok(Some(Tail {
            path: path.to_path_buf(),
            inode: meta.ino(),
            reader: LineReader::new(BufReader::with_capacity(READ_BUFFER, file), offset, line),
        }))
    }

    /// The next complete line of the open file, if one has been written.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.reader.next_line()
    }

    /// The unterminated last line of a file that will not grow any more (rotated away).
    pub fn finish(&mut self) -> Option<Line> {
        self.reader.finish()
    }

    /// Bytes read from the open file so far.
    pub fn read_position(&self) -> u64 {
        self.reader.read_position()
    }

    /// The position after the last line handed out.
    pub fn state(&self) -> FollowState {
        FollowState {
            path: self.path.clone(),
            inode: self.inode,
            offset: self.reader.offset(),
            line: self.reader.line(),
        }
    }

    /// Compares the path with the open file. A path that is missing for now (between a
    /// rename and the creation of the new file) is no change: the open file is read on.
    pub fn change(&self) -> io::Result<Change> {
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Change::None),
            Err(e) => Err(e),
            Ok(meta) if meta.ino() != self.inode => Ok(Change::Rotated),
            Ok(meta) if meta.len() < self.reader.read_position() => Ok(Change::Truncated),
            Ok(_) => Ok(Change::None),
        }
    }

    /// Reads the same file again from its start (after truncation).
    fn rewind(&mut self) -> io::Result<()> {
        self.reader.rewind()
    }
}

/// Follows `path` until `stop` is set (SIGTERM / SIGINT), then ships what was read and returns.
pub fn run(
    session: &mut Session<'_>,
    path: &Path,
    state_file: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let name: Arc<str> = path.display().to_string().into();
    let path = std::path::absolute(path).with_context(|| format!("resolving {name}"))?;
    let saved = FollowState::load(state_file)?;
    if let Some(saved) = &saved
        && saved.path != path
    {
        bail!(
            "{} holds the position in {}, not in {}: use one state file per followed file",
            state_file.display(),
            saved.path.display(),
            path.display()
        );
    }
    let Some(tail) = wait_for(&path, saved.as_ref(), stop, session.progress())? else {
        return Ok(());
    };
    if saved.as_ref() != Some(&tail.state()) {
        tail.state().save(state_file)?;
    }
    let mut follower = Follower {
        session,
        tail,
        name,
        state_file,
        stop,
        unsaved_since: None,
    };
    follower.follow(&path)
}

/// The loop of one `--follow` run.
struct Follower<'s, 'a> {
    session: &'s mut Session<'a>,
    tail: Tail,
    /// The file as named on the command line, for rejects.
    name: Arc<str>,
    state_file: &'s Path,
    stop: &'s AtomicBool,
    /// When the first line not yet covered by the state file was read.
    unsaved_since: Option<Instant>,
}

impl Follower<'_, '_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn follow(&mut self, path: &Path) -> anyhow::Result<()> {
        let mut last_position = self.tail.read_position();
        while !self.stopped() {
            self.read_available()?;
            if self.stopped() {
                break;
            }
            let grew = self.tail.read_position() != last_position;
            last_position = self.tail.read_position();
            let change = self
                .tail
                .change()
                .with_context(|| format!("checking {}", self.name))?;
            match change {
                // The old file is finished once a poll found nothing more in it.
                Change::Rotated if !grew => {
                    self.read_available()?;
                    if let Some(line) = self.tail.finish() {
                        self.session.handle_line(&self.name, line)?;
                    }
                    self.checkpoint()?;
                    if let Some(new) = Tail::open(path, None)? {
                        self.tail = new;
                        self.tail.state().save(self.state_file)?;
                        last_position = 0;
                        continue;
                    }
                }
                Change::Truncated => {
                    self.checkpoint()?;
                    self.tail.rewind()?;
                    self.tail.state().save(self.state_file)?;
                    last_position = 0;
                    continue;
                }
                Change::Rotated | Change::None => {}
            }
            let mut nap = POLL;
            if let Some(since) = self.unsaved_since {
                let due = FLUSH_AFTER.saturating_sub(since.elapsed());
                if due.is_zero() {
                    self.checkpoint()?;
                } else {
                    nap = nap.min(due);
                }
            }
            std::thread::sleep(nap);
        }
        self.checkpoint()
    }

    /// Handles every complete line written so far, shipping each batch as it fills up;
    /// returns early once stopped.
    fn read_available(&mut self) -> anyhow::Result<()> {
        while let Some(line) = self
            .tail
            .next_line()
            .with_context(|| format!("reading {}", self.name))?
        {
            self.session.handle_line(&self.name, line)?;
            self.unsaved_since.get_or_insert_with(Instant::now);
            if self.session.is_full() {
                self.checkpoint()?;
                if self.stopped() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Ships what was read, then records the position reached.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.session.flush()?;
        self.tail.state().save(self.state_file)?;
        self.unsaved_since = None;
        Ok(())
    }
}

/// Opens the followed file, waiting for it to appear; None if stopped first.
fn wait_for(
    path: &Path,
    saved: Option<&FollowState>,
    stop: &AtomicBool,
    progress: &Progress,
) -> anyhow::Result<Option<Tail>> {
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        if let Some(tail) =
            Tail::open(path, saved).with_context(|| format!("opening {}", path.display()))?
        {
            return Ok(Some(tail));
        }
        if !announced {
            progress.note(&format!("waiting for {} to appear", path.display()));
            announced = true;
        }
        std::thread::sleep(POLL);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn read_all(tail: &mut Tail) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = tail.next_line().unwrap() {
            out.push(line.text.unwrap());
        }
        out
    }

    #[test]
    fn the_state_file_round_trips_and_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("follow.state");
        assert_eq!(FollowState::load(&file).unwrap(), None);
        let state = FollowState {
            path: "/var/log/iam/audit.log".into(),
            inode: 1234,
            offset: 5678,
            line: 9,
        };
        state.save(&file).unwrap();
        assert_eq!(FollowState::load(&file).unwrap(), Some(state.clone()));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"path": "/var/log/iam/audit.log", "inode": 1234, "offset": 5678, "line": 9})
        );
        let moved = FollowState {
            offset: 6000,
            ..state
        };
        moved.save(&file).unwrap();
        assert_eq!(FollowState::load(&file).unwrap(), Some(moved));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        std::fs::write(&file, "{\"path\": 1}").unwrap();
        assert!(FollowState::load(&file).is_err());
    }

    #[test]
    fn a_state_without_line_numbers_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, r#"{"path":"/x","inode":1,"offset":2}"#).unwrap();
        assert_eq!(FollowState::load(&file).unwrap().unwrap().line, 0);
    }

    #[test]
    fn resumes_at_the_saved_offset_of_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "one\ntwo\n");
        let mut tail = Tail::open(&path, None).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["one", "two"]);
        let state = tail.state();
        assert_eq!((state.offset, state.line), (8, 2));
        append(&path, "three\n");
        let mut resumed = Tail::open(&path, Some(&state)).unwrap().unwrap();
        let line = resumed.next_line().unwrap().unwrap();
        assert_eq!((line.number, line.text.unwrap()), (3, "three".to_string()));
    }

    #[test]
    fn another_inode_or_a_shorter_file_starts_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "first\n");
        let inode = std::fs::metadata(&path).unwrap().ino();
        let other = FollowState {
            path: path.clone(),
            inode: inode + 1,
            offset: 3,
            line: 1,
        };
        let mut tail = Tail::open(&path, Some(&other)).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["first"]);
        let beyond = FollowState {
            inode,
            offset: 100,
            ..other
        };
        let mut tail = Tail::open(&path, Some(&beyond)).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["first"]);
        assert_eq!(
            Tail::open(&dir.path().join("missing"), None)
                .unwrap()
                .map(|t| t.inode),
            None
        );
    }

    #[test]
    fn new_lines_are_picked_up_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "a\n");
        let mut tail = Tail::open(&path, None).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["a"]);
        append(&path, "b\nc");
        assert_eq!(read_all(&mut tail), ["b"]);
        assert_eq!(tail.state().offset, 4);
        assert_eq!(tail.read_position(), 5);
        append(&path, "c\n");
        assert_eq!(read_all(&mut tail), ["cc"]);
        assert_eq!(tail.change().unwrap(), Change::None);
    }

    #[test]
    fn rotation_by_rename_is_detected_and_the_old_file_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "old-1\n");
        let mut tail = Tail::open(&path, None).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["old-1"]);
        append(&path, "old-2\nold-3");
        std::fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        assert_eq!(tail.change().unwrap(), Change::None, "no new file yet");
        append(&path, "new-1\n");
        assert_eq!(tail.change().unwrap(), Change::Rotated);
        assert_eq!(read_all(&mut tail), ["old-2"]);
        assert_eq!(tail.finish().unwrap().text.unwrap(), "old-3");
        let mut new = Tail::open(&path, None).unwrap().unwrap();
        assert_eq!(read_all(&mut new), ["new-1"]);
        assert_eq!(new.change().unwrap(), Change::None);
    }

    #[test]
    fn truncation_is_detected_and_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        append(&path, "one\ntwo\n");
        let mut tail = Tail::open(&path, None).unwrap().unwrap();
        assert_eq!(read_all(&mut tail), ["one", "two"]);
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "x\n");
        assert_eq!(tail.change().unwrap(), Change::Truncated);
        tail.rewind().unwrap();
        assert_eq!(read_all(&mut tail), ["x"]);
        assert_eq!(tail.state().line, 1);
    }
}
