//! Streamed input: line rules of SPEC §3.3 and bounded memory (SPEC §5 P-2).

use std::io::Write;
use std::path::PathBuf;

use spyder_model::HostError;
use spyder_queue::{InputLine, InputReader};

/// A scratch directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "spyder-queue-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write scratch file");
        path.to_str().expect("utf-8 temp path").to_owned()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn collect(mut reader: InputReader) -> Vec<InputLine> {
    let mut lines = Vec::new();
    while let Some(line) = reader.next().await {
        lines.push(line);
    }
    lines
}

fn hosts(lines: &[InputLine]) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(|l| match l {
            InputLine::Host { line, host } => Some((*line, host.to_string())),
            InputLine::Invalid { .. } => None,
        })
        .collect()
}

fn messages(lines: &[InputLine]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| matches!(l, InputLine::Invalid { .. }))
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn file_with_bom_crlf_blank_and_comment_lines() {
    let dir = ScratchDir::new("bom");
    let content = b"\xEF\xBB\xBFexample.com\r\n\r\n# a comment\r\n   \t\r\n  # indented comment\nexample.org\r\nexample.com\n";
    let path = dir.file("domains.txt", content);
    let reader = InputReader::open(&path).await.expect("open");
    assert_eq!(reader.progress().total_bytes, Some(content.len() as u64));
    let lines = collect(reader).await;
    // Lines are not de-duplicated; line numbers count every line.
    assert_eq!(
        hosts(&lines),
        [
            (1, "example.com".to_owned()),
            (6, "example.org".to_owned()),
            (7, "example.com".to_owned())
        ]
    );
    assert!(messages(&lines).is_empty());
}

#[tokio::test]
async fn idn_case_trailing_dot_and_urls_are_normalised() {
    let input =
        "bücher.de\nWWW.Example.COM.\nhttps://Sub.Example.NET:8443/path?q\n  spaced.example  \n";
    let lines = collect(InputReader::from_reader("in", input.as_bytes())).await;
    assert_eq!(
        hosts(&lines),
        [
            (1, "xn--bcher-kva.de".to_owned()),
            (2, "www.example.com".to_owned()),
            (3, "sub.example.net".to_owned()),
            (4, "spaced.example".to_owned()),
        ]
    );
}

#[tokio::test]
async fn invalid_lines_are_reported_with_file_line_value_and_reason() {
    let dir = ScratchDir::new("invalid");
    let path = dir.file("list.txt", b"ok.example\nexa mple.com\n1.2.3.4\n-bad.com\n");
    let lines = collect(InputReader::open(&path).await.expect("open")).await;
    assert_eq!(hosts(&lines), [(1, "ok.example".to_owned())]);
    assert_eq!(
        messages(&lines),
        [
            format!("{path}:2: invalid host \"exa mple.com\": invalid character ' '"),
            format!("{path}:3: invalid host \"1.2.3.4\": IP address literal is not a domain"),
            format!("{path}:4: invalid host \"-bad.com\": label starts or ends with '-'"),
        ]
    );
}

#[tokio::test]
async fn a_5_kb_line_is_too_long_and_skipped_without_buffering_it() {
    let mut input = b"first.example\n".to_vec();
    input.extend(std::iter::repeat_n(b'a', 5 * 1024));
    input.extend(b"\r\nthird.example\n");
    input.extend(std::iter::repeat_n(b'b', 5 * 1024)); // last line, no newline
    let mut reader = InputReader::from_reader("big.txt", std::io::Cursor::new(input));
    let mut lines = Vec::new();
    while let Some(line) = reader.next().await {
        lines.push(line);
    }
    assert_eq!(
        hosts(&lines),
        [
            (1, "first.example".to_owned()),
            (3, "third.example".to_owned())
        ]
    );
    let too_long: Vec<(u64, &HostError)> = lines
        .iter()
        .filter_map(|l| match l {
            InputLine::Invalid { line, error, .. } => Some((*line, error)),
            InputLine::Host { .. } => None,
        })
        .collect();
    assert_eq!(
        too_long,
        [(2, &HostError::LineTooLong), (4, &HostError::LineTooLong)]
    );
    let message = lines[1].to_string();
    assert!(
        message.starts_with(&format!(
            "big.txt:2: invalid host \"{}...\"",
            "a".repeat(64)
        )),
        "{message}"
    );
    assert!(message.ends_with(": line too long"), "{message}");
    assert!(reader.peak_line_buffer() <= 4097);
    assert_eq!(reader.progress().lines_read, 4);
}

#[tokio::test]
async fn a_long_comment_line_is_still_a_comment() {
    let mut input = b"# ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10_000));
    input.extend(b"\nafter.example\n");
    let lines = collect(InputReader::from_reader("c", std::io::Cursor::new(input))).await;
    assert_eq!(hosts(&lines), [(2, "after.example".to_owned())]);
    assert!(messages(&lines).is_empty());
}

#[tokio::test]
async fn binary_garbage_gives_invalid_lines_never_a_panic() {
    let mut garbage = Vec::new();
    // A deterministic byte soup covering every byte value, NULs and lone continuation bytes.
    let mut x: u32 = 0x1234_5678;
    for _ in 0..64 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x >> 24) as u8);
    }
    garbage.extend(b"\nvalid.example\n\xff\xfe\x00bad\n");
    let mut reader = InputReader::from_reader("bin", std::io::Cursor::new(garbage.clone()));
    let mut lines = Vec::new();
    while let Some(line) = reader.next().await {
        lines.push(line);
    }
    assert!(
        hosts(&lines).iter().any(|(_, h)| h == "valid.example"),
        "the valid line after the garbage is read"
    );
    let last = lines.last().expect("the last line is reported");
    let InputLine::Invalid { error, value, .. } = last else {
        panic!("invalid UTF-8 is an invalid line: {last:?}")
    };
    assert_eq!(*error, HostError::InvalidCharacter('\u{FFFD}'));
    assert_eq!(value, "\u{FFFD}\u{FFFD}\0bad");
    assert_eq!(reader.progress().bytes_read, garbage.len() as u64);
    assert!(reader.peak_line_buffer() <= 4097);
}

#[tokio::test]
async fn a_missing_file_is_an_open_error() {
    let dir = ScratchDir::new("missing");
    let path = dir.0.join("nope.txt");
    let err = InputReader::open(path.to_str().expect("utf-8"))
        .await
        .expect_err("missing file");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_million_lines_stream_with_a_bounded_line_buffer() {
    const LINES: u64 = 1_000_000;
    let dir = ScratchDir::new("million");
    let path = dir.0.join("million.txt");
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut out = std::io::BufWriter::new(file);
        for i in 0..LINES {
            if i % 100_000 == 50_000 {
                // An over-long line now and then.
                out.write_all(&[b'z'; 6000]).expect("write");
                out.write_all(b"\n").expect("write");
            } else {
                writeln!(out, "host{i}.example.com").expect("write");
            }
        }
        out.flush().expect("flush");
    }
    let size = std::fs::metadata(&path).expect("metadata").len();
    let mut reader = InputReader::open(path.to_str().expect("utf-8"))
        .await
        .expect("open");
    let (mut hosts, mut too_long) = (0u64, 0u64);
    let mut last_host = String::new();
    while let Some(line) = reader.next().await {
        match line {
            InputLine::Host { line, host } => {
                hosts += 1;
                if line == LINES {
                    last_host = host.into_string();
                }
            }
            InputLine::Invalid { error, line, .. } => {
                assert_eq!(error, HostError::LineTooLong);
                assert_eq!(line % 100_000, 50_001);
                too_long += 1;
            }
        }
        assert!(reader.peak_line_buffer() <= 4097);
    }
    assert_eq!(too_long, 10);
    assert_eq!(hosts, LINES - 10);
    assert_eq!(last_host, format!("host{}.example.com", LINES - 1));
    let progress = reader.progress();
    assert_eq!(progress.lines_read, LINES);
    assert_eq!(progress.bytes_read, size);
    assert_eq!(progress.total_bytes, Some(size));
}
