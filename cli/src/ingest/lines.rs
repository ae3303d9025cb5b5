//! A line reader for ingest inputs that tracks byte offsets and line numbers, keeps memory
//! bounded (an over-long line is consumed and reported, never buffered whole) and leaves an
//! unterminated last line pending, so a followed file can be read again once it grows.

use std::io::{self, BufRead, Seek, SeekFrom};

use super::formats::LineError;

/// Longest input line kept, in bytes; a longer one is skipped up to its newline and rejected.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One line of input: where it ends, and its text (or why it cannot be read).
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset just after the line's newline (or after its last byte, for a final
    /// unterminated line).
    pub end_offset: u64,
    /// The line without its `\n` / `\r\n`.
    pub text: Result<String, LineError>,
}

/// Reads complete lines from `inner`, starting at byte `offset` and line `line + 1`.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    /// Offset just after the last line handed out.
    offset: u64,
    /// Number of the last line handed out.
    line: u64,
    /// Bytes of a line not yet terminated.
    partial: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE_BYTES`], which are dropped.
    dropped: u64,
}

impl<R: BufRead> LineReader<R> {
    /// A reader positioned at byte `offset`, after `line` lines.
    pub fn new(inner: R, offset: u64, line: u64) -> LineReader<R> {
        LineReader {
            inner,
            offset,
            line,
            partial: Vec::new(),
            dropped: 0,
        }
    }

    /// Offset just after the last complete line handed out.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of the last line handed out.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Offset of the next byte to read from the input (includes a pending partial line).
    pub fn read_position(&self) -> u64 {
        self.offset + self.partial.len() as u64 + self.dropped
    }

    /// The next complete line, or None when the input has no further newline yet.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let newline = buf.iter().position(|b| *b == b'\n');
            let take = newline.map_or(buf.len(), |i| i + 1);
            let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
            let kept = take.min(room);
            self.partial.extend_from_slice(&buf[..kept]);
            self.dropped += (take - kept) as u64;
            self.inner.consume(take);
            if newline.is_some() {
                return Ok(Some(self.emit()));
            }
        }
    }

    /// Hands out an unterminated last line, if any (end of a file that is complete).
    pub fn finish(&mut self) -> Option<Line> {
        (!self.partial.is_empty() || self.dropped > 0).then(|| self.emit())
    }

    /// Starts again from the first byte and line of the input (a truncated file).
    pub fn rewind(&mut self) -> io::Result<()>
    where
        R: Seek,
    {
        self.inner.seek(SeekFrom::Start(0))?;
        self.offset = 0;
        self.line = 0;
        self.partial.clear();
        self.dropped = 0;
        Ok(())
    }

    /// Gives back the input, for reading what follows in another way.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn emit(&mut self) -> Line {
        let length = self.partial.len() as u64 + self.dropped;
        let bytes = std::mem::take(&mut self.partial);
        let dropped = std::mem::replace(&mut self.dropped, 0);
        self.offset += length;
        self.line += 1;
        let text = if dropped > 0 {
            Err(LineError::new(
                "line_too_long",
                format!("line is {length} bytes, more than the {MAX_LINE_BYTES} accepted"),
            ))
        } else {
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            String::from_utf8(body.to_vec())
                .map_err(|_| LineError::new("not_utf8", "line is not valid UTF-8"))
        };
        Line {
            number: self.line,
            end_offset: self.offset,
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn all_lines(input: &[u8]) -> Vec<Line> {
        let mut reader = LineReader::new(Cursor::new(input.to_vec()), 0, 0);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(line);
        }
        out.extend(reader.finish());
        out
    }

    #[test]
    fn numbers_lines_and_tracks_offsets() {
        let lines = all_lines(b"a\r\nbb\n\nccc");
        let got: Vec<(u64, u64, String)> = lines
            .into_iter()
            .map(|l| (l.number, l.end_offset, l.text.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (1, 3, "a".to_string()),
                (2, 6, "bb".to_string()),
                (3, 7, String::new()),
                (4, 10, "ccc".to_string()),
            ]
        );
    }

    #[test]
    fn an_unterminated_line_waits_for_its_newline() {
        let mut reader = LineReader::new(Cursor::new(b"one\ntw".to_vec()), 0, 0);
        assert_eq!(reader.next_line().unwrap().unwrap().text.unwrap(), "one");
        assert_eq!(reader.next_line().unwrap(), None);
        assert_eq!(reader.offset(), 4);
        assert_eq!(reader.read_position(), 6);
    }

    #[test]
    fn starts_from_a_given_offset_and_line() {
        let mut reader = LineReader::new(Cursor::new(b"x\n".to_vec()), 100, 7);
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.number, line.end_offset), (8, 102));
    }

    #[test]
    fn an_over_long_line_is_rejected_without_being_kept() {
        let mut input = vec![b'a'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nok\n");
        let mut reader = LineReader::new(BufReader::with_capacity(4096, Cursor::new(input)), 0, 0);
        let long = reader.next_line().unwrap().unwrap();
        assert_eq!(long.text.unwrap_err().code, "line_too_long");
        assert_eq!(long.end_offset, MAX_LINE_BYTES as u64 + 11);
        assert!(reader.partial.capacity() <= 2 * MAX_LINE_BYTES);
        let ok = reader.next_line().unwrap().unwrap();
        assert_eq!((ok.number, ok.text.unwrap()), (2, "ok".to_string()));
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let lines = all_lines(b"\xff\xfe\nfine\n");
        assert_eq!(lines[0].text.as_ref().unwrap_err().code, "not_utf8");
        assert_eq!(lines[1].text.as_deref().unwrap(), "fine");
    }
}
