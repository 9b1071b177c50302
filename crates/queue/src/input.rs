//! Streamed input: host names from a file or stdin, line by line (SPEC §3.3).

use std::fmt;
use std::io;
use std::sync::Arc;

use spyder_model::{HostError, HostName, ListLine, MAX_LINE_BYTES, list_line};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// What the line buffer may hold: a longest line plus the `\r` of a CRLF ending.
const LINE_BUFFER_LIMIT: usize = MAX_LINE_BYTES + 1;
/// Size of the read buffer in front of the source.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// One meaningful input line: a host, or a line that is not one.
///
/// Blank lines and `#` comments never come out of the reader; lines are not
/// de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputLine {
    /// A valid, normalised host name found on line `line` (1-based).
    Host {
        /// 1-based line number.
        line: u64,
        /// The normalised host.
        host: HostName,
    },
    /// A line that is not a valid host. Its `Display` is the log message of SPEC §3.3:
    /// `<file>:<line>: invalid host "<value>": <reason>`.
    Invalid {
        /// The input's name as given (`stdin` for `-`).
        file: Arc<str>,
        /// 1-based line number.
        line: u64,
        /// The offending line, trimmed; for an over-long line, its first bytes and `...`.
        value: String,
        /// Why it was rejected: one of the reasons of SPEC §3.3.
        error: HostError,
    },
}

impl fmt::Display for InputLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { host, .. } => fmt::Display::fmt(host, f),
            Self::Invalid {
                file,
                line,
                value,
                error,
            } => write!(f, "{file}:{line}: invalid host {value:?}: {error}"),
        }
    }
}

/// How far a reader has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputProgress {
    /// Bytes consumed from the source so far.
    pub bytes_read: u64,
    /// The file's size when known (a regular file); `None` for stdin and pipes.
    pub total_bytes: Option<u64>,
    /// Lines consumed so far, blank and comment lines included.
    pub lines_read: u64,
}

/// Streams host names from a file or stdin, line by line, never holding the file in
/// memory.
///
/// Memory is one read buffer (32 KiB) and one line buffer of at most 4,097 bytes: a
/// longer line is reported as `line too long` and skipped without being buffered
/// whole. A UTF-8 byte-order mark at the start and CRLF line ends are accepted;
/// invalid UTF-8 makes an invalid line, never a panic.
pub struct InputReader {
    file: Arc<str>,
    source: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    line: Vec<u8>,
    progress: InputProgress,
    peak_line_buffer: usize,
    finished: bool,
    read_error: Option<io::Error>,
}

impl fmt::Debug for InputReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputReader")
            .field("file", &self.file)
            .field("progress", &self.progress)
            .field("finished", &self.finished)
            .field("read_error", &self.read_error)
            .finish_non_exhaustive()
    }
}

impl InputReader {
    /// Opens `path` for reading; `-` is stdin (named `stdin` in messages).
    pub async fn open(path: &str) -> io::Result<Self> {
        if path == "-" {
            return Ok(Self::from_reader("stdin", tokio::io::stdin()));
        }
        let file = tokio::fs::File::open(path).await?;
        let metadata = file.metadata().await?;
        if metadata.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        let mut reader = Self::from_reader(path, file);
        reader.progress.total_bytes = metadata.is_file().then_some(metadata.len());
        Ok(reader)
    }

    /// Reads from any byte stream; `name` stands for it in messages.
    pub fn from_reader(name: &str, source: impl AsyncRead + Send + Unpin + 'static) -> Self {
        let source: Box<dyn AsyncRead + Send + Unpin> = Box::new(source);
        Self {
            file: Arc::from(name),
            source: BufReader::with_capacity(READ_BUFFER_BYTES, source),
            line: Vec::with_capacity(LINE_BUFFER_LIMIT),
            progress: InputProgress::default(),
            peak_line_buffer: 0,
            finished: false,
            read_error: None,
        }
    }

    /// The next host or invalid line; `None` at the end of the input.
    ///
    /// A read error ends the input early; it is logged with the input's name and kept
    /// for [`InputReader::read_error`].
    pub async fn next(&mut self) -> Option<InputLine> {
        loop {
            let too_long = match self.read_raw_line().await {
                Ok(Some(too_long)) => too_long,
                Ok(None) => return None,
                Err(error) => {
                    self.finished = true;
                    tracing::error!(file = %self.file, %error, "reading the domains input failed; input ends here");
                    self.read_error = Some(error);
                    return None;
                }
            };
            if let Some(line) = self.classify(too_long) {
                return Some(line);
            }
        }
    }

    /// The read error that ended the input early, if one did: after [`InputReader::next`]
    /// returned `None`, `None` here means the whole input was read.
    pub fn read_error(&self) -> Option<&io::Error> {
        self.read_error.as_ref()
    }

    /// Bytes and lines read so far, and the total size when known.
    pub fn progress(&self) -> InputProgress {
        self.progress
    }

    /// The most bytes of one line this reader has held at once. It never exceeds
    /// 4,097 (a longest line plus the `\r` of CRLF), whatever the input.
    pub fn peak_line_buffer(&self) -> usize {
        self.peak_line_buffer
    }

    /// Reads one raw line into `self.line`, without its line end. Returns whether the
    /// line was too long (then `self.line` holds only its start), or `None` at the end.
    async fn read_raw_line(&mut self) -> io::Result<Option<bool>> {
        if self.finished {
            return Ok(None);
        }
        self.line.clear();
        let mut too_long = false;
        let mut consumed_any = false;
        loop {
            let chunk = self.source.fill_buf().await?;
            if chunk.is_empty() {
                self.finished = true;
                if !consumed_any {
                    return Ok(None);
                }
                break;
            }
            consumed_any = true;
            let newline = chunk.iter().position(|&b| b == b'\n');
            let (content, used) = match newline {
                Some(at) => (&chunk[..at], at + 1),
                None => (chunk, chunk.len()),
            };
            if !too_long {
                let room = LINE_BUFFER_LIMIT - self.line.len();
                if content.len() > room {
                    too_long = true;
                    self.line.extend_from_slice(&content[..room]);
                } else {
                    self.line.extend_from_slice(content);
                }
                self.peak_line_buffer = self.peak_line_buffer.max(self.line.len());
            }
            self.source.consume(used);
            self.progress.bytes_read += used as u64;
            if newline.is_some() {
                break;
            }
        }
        self.progress.lines_read += 1;
        if !too_long && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some(too_long || self.line.len() > MAX_LINE_BYTES))
    }

    /// Turns the raw line in `self.line` into an [`InputLine`], or `None` for a blank or
    /// comment line (the rule is [`spyder_model::list_line`], shared with the bulk API).
    fn classify(&self, too_long: bool) -> Option<InputLine> {
        let line = self.progress.lines_read;
        match list_line(&self.line, line == 1, too_long) {
            ListLine::Skip => None,
            ListLine::Host { host, .. } => Some(InputLine::Host { line, host }),
            ListLine::Invalid { value, error } => Some(InputLine::Invalid {
                file: Arc::clone(&self.file),
                line,
                value,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &'static [u8]) -> Vec<String> {
        let mut reader = InputReader::from_reader("t.txt", bytes);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await {
            out.push(match line {
                InputLine::Host { line, host } => format!("{line}:{host}"),
                invalid => invalid.to_string(),
            });
        }
        out
    }

    #[tokio::test]
    async fn bom_crlf_blank_and_comments() {
        let lines = read_all(
            b"\xEF\xBB\xBFexample.com\r\n\r\n   \n# comment\n  #x\nWWW.Example.ORG.\r\nlast.net",
        )
        .await;
        assert_eq!(lines, ["1:example.com", "6:www.example.org", "7:last.net"]);
    }

    #[tokio::test]
    async fn a_bom_after_the_first_line_is_not_stripped_by_the_reader() {
        // HostName::from_input tolerates it anyway; the line is still a host.
        let lines = read_all(b"a.com\n\xEF\xBB\xBFb.com\n").await;
        assert_eq!(lines, ["1:a.com", "2:b.com"]);
    }

    #[tokio::test]
    async fn longest_line_with_crlf_is_accepted() {
        // 4,096 bytes of content plus CRLF: not too long.
        let name = "a.".repeat(MAX_LINE_BYTES / 2);
        let input = format!("{name}\r\n");
        let mut reader = InputReader::from_reader("t", std::io::Cursor::new(input.into_bytes()));
        let line = reader.next().await.expect("one line");
        let InputLine::Invalid { error, .. } = line else {
            panic!("a 4,096-byte name is too long for DNS, but not a too-long line")
        };
        assert_eq!(error, HostError::NameTooLong);
        assert_eq!(reader.peak_line_buffer(), LINE_BUFFER_LIMIT);
    }

    /// Gives `data`, then fails every read.
    struct FailsAfter(&'static [u8]);

    impl AsyncRead for FailsAfter {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if self.0.is_empty() {
                return std::task::Poll::Ready(Err(io::Error::other("disk on fire")));
            }
            let n = self.0.len().min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_read_error_ends_the_input_and_is_kept() {
        let mut reader = InputReader::from_reader("t", FailsAfter(b"a.com\nb.com\npart"));
        let mut hosts = Vec::new();
        while let Some(line) = reader.next().await {
            hosts.push(line.to_string());
        }
        assert_eq!(hosts, ["a.com", "b.com"]);
        let error = reader.read_error().expect("the error is kept");
        assert_eq!(error.to_string(), "disk on fire");
        assert!(reader.next().await.is_none(), "the input stays ended");

        let mut whole = InputReader::from_reader("t", &b"a.com\n"[..]);
        while whole.next().await.is_some() {}
        assert!(whole.read_error().is_none());
    }
}
