//! The `seed` binary against a real `redis-server` per test (SPEC §2.5, B-25).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use spyder_testkit::redis::{RedisOptions, RedisServer};

const SEED: &str = env!("CARGO_BIN_EXE_seed");

fn seed(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(SEED)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("seed starts");
    let mut input = child.stdin.take().expect("piped stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("seed finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The elements of a list as RESP bulk strings, left to right.
fn list(server: &RedisServer, key: &str) -> Vec<String> {
    let reply = server
        .command(&["LRANGE", key, "0", "-1"])
        .expect("server answers");
    let mut lines = reply.split("\r\n");
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('$') && line != "$-1" {
            out.push(lines.next().unwrap_or_default().to_owned());
        }
    }
    out
}

fn list_index(server: &RedisServer, key: &str, index: &str) -> String {
    let reply = server.command(&["LINDEX", key, index]).expect("LINDEX");
    reply.split("\r\n").nth(1).unwrap_or_default().to_owned()
}

fn domains_file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(content.as_bytes()).expect("write domains");
    file
}

/// Checks the exact item format and returns the host.
fn host_of(raw: &str, ts_around: i64) -> String {
    let rest = raw.strip_prefix(r#"{"host":""#).expect("starts with host");
    let (host, rest) = rest.split_once('"').expect("host ends");
    let rest = rest.strip_prefix(r#","ts":"#).expect("ts follows");
    let (ts, rest) = rest.split_once(',').expect("ts ends");
    let ts: i64 = ts.parse().expect("ts is a number");
    assert!((ts - ts_around).abs() < 120, "ts {ts} is not now");
    let id = rest
        .strip_prefix(r#""attempt":0,"id":""#)
        .and_then(|r| r.strip_suffix(r#""}"#))
        .expect("attempt 0 then id");
    assert_eq!(id.len(), 16, "{raw}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{raw}");
    host.to_owned()
}

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("fits")
}

#[test]
fn seeds_each_valid_line_in_order_and_reports_invalid_ones() {
    let server = RedisServer::start().expect("redis-server starts");
    let file =
        domains_file("# comment\nA.example.com\n\nb.example.com\nbad_host!\nc.example.com.\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = seed(
        &["-domains", path, "-redis", &server.addr(), "-key", "q"],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "seeded q\n");
    assert!(
        stderr.contains(&format!("{path}:5: invalid host \"bad_host!\": ")),
        "{stderr}"
    );
    assert!(stderr.ends_with("pushed 3, skipped 1\n"), "{stderr}");

    // LPUSH order: the first line ends up rightmost, where consumers take from.
    let hosts: Vec<String> = list(&server, "q")
        .iter()
        .rev()
        .map(|raw| host_of(raw, now()))
        .collect();
    assert_eq!(hosts, ["a.example.com", "b.example.com", "c.example.com"]);
}

#[test]
fn reads_stdin_and_pushes_large_inputs_in_chunks() {
    let server = RedisServer::start().expect("redis-server starts");
    let input: String = (0..2500).map(|i| format!("h{i}.example\n")).collect();
    let out = seed(&["-domains=-", "-redis", &server.addr()], Some(&input));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(text(&out.stdout), "seeded spyder:queue\n");
    assert!(stderr.ends_with("pushed 2500, skipped 0\n"), "{stderr}");
    // Checked by index: the test client reads one reply of bounded size.
    let len = server.command(&["LLEN", "spyder:queue"]).expect("LLEN");
    assert_eq!(len, ":2500\r\n");
    for (index, host) in [
        ("-1", "h0.example"),
        ("-1001", "h1000.example"),
        ("0", "h2499.example"),
    ] {
        let item = list_index(&server, "spyder:queue", index);
        assert_eq!(host_of(&item, now()), host);
    }
}

#[test]
fn out_of_memory_fails_without_seeded() {
    let server = RedisServer::start_with(RedisOptions {
        appendonly: false,
        maxmemory: Some(1),
    })
    .expect("redis-server starts");
    let file = domains_file("a.example.com\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = seed(&["-domains", path, "-redis", &server.addr()], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(text(&out.stdout), "");
    assert!(
        stderr.starts_with(&format!(
            "redis: {} (-redis): LPUSH spyder:queue: ",
            server.addr()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("OOM"), "{stderr}");
    assert!(stderr.ends_with("pushed 0, skipped 0\n"), "{stderr}");
}

#[test]
fn ping_failure_is_reported() {
    let mut server = RedisServer::start().expect("redis-server starts");
    let addr = server.addr();
    server.kill().expect("kill");
    let file = domains_file("a.example.com\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = seed(&["-domains", path, "-redis", &addr], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("redis: cannot reach Redis at {addr} (-redis): ")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Os {"),
        "an I/O error reads as text: {stderr}"
    );
}

#[test]
fn version_prints_the_version_and_exits_0() {
    for args in [
        &["-version"][..],
        &["-domains=x.txt", "-version"],
        &["--version"],
    ] {
        let out = seed(args, None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let (first, rest) = stdout.split_once('\n').expect("two lines");
        assert_eq!(first, format!("seed v{}", env!("CARGO_PKG_VERSION")));
        assert!(rest.starts_with("built for "), "{stdout}");
        assert!(rest.ends_with(" profile)\n"), "{stdout}");
        assert_eq!(text(&out.stderr), "");
    }
    let out = seed(&["-h"], None);
    assert!(
        text(&out.stderr).contains("  -version\n"),
        "listed in the usage"
    );
}

/// A listener that stands where Redis would be, to tell whether seed connected.
struct NotRedis(std::net::TcpListener);

impl NotRedis {
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Self(listener)
    }

    fn addr(&self) -> String {
        self.0.local_addr().expect("local addr").to_string()
    }

    /// Whether anyone connected (the kernel completes the handshake for the backlog).
    fn connected(&self) -> bool {
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn a_file_that_cannot_be_read_fails_before_redis_is_touched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.txt");
    let missing = missing.to_str().expect("utf-8 path");
    let folder = dir.path().to_str().expect("utf-8 path");
    let mut cases = vec![
        (missing.to_owned(), "No such file or directory"),
        (folder.to_owned(), "is a directory"),
    ];
    // Opens, then fails its first read (EIO at address 0): a file that breaks while
    // read is found before Redis too.
    if std::path::Path::new("/proc/self/mem").exists() {
        cases.push(("/proc/self/mem".to_owned(), "cannot read: "));
    }
    let not_redis = NotRedis::new();
    for (path, reason) in &cases {
        let out = seed(&["-domains", path, "-redis", &not_redis.addr()], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{path}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{path}");
        assert!(stderr.starts_with(&format!("{path}: ")), "{stderr}");
        assert!(stderr.contains(reason), "{path}: {stderr}");
        assert!(!stderr.contains("redis"), "about the file: {stderr}");
        assert!(!not_redis.connected(), "{path}: seed connected to Redis");
    }

    // -recover with a bad file recovers nothing either: the run fails as a whole.
    let server = RedisServer::start().expect("redis-server starts");
    let leased = r#"{"host":"old.example","ts":1,"attempt":0}"#;
    server
        .command(&["LPUSH", "q:processing", leased])
        .expect("LPUSH");
    let out = seed(
        &[
            "-recover",
            "-domains",
            missing,
            "-redis",
            &server.addr(),
            "-key",
            "q",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(list(&server, "q:processing"), [leased]);
    assert_eq!(list(&server, "q"), Vec::<String>::new());
}

#[test]
fn invalid_lines_are_reported_before_redis_is_reached() {
    let file = domains_file("ok.example\nbad_host!\n");
    let path = file.path().to_str().expect("utf-8 path");
    let not_redis = NotRedis::new();
    let addr = not_redis.addr();
    drop(not_redis);
    let out = seed(&["-domains", path, "-redis", &addr], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{path}:2: invalid host \"bad_host!\": ")),
        "{stderr}"
    );
    assert!(lines[1].starts_with("redis: "), "{stderr}");
}

#[test]
fn redis_errors_name_the_address_without_its_password() {
    let file = domains_file("a.example.com\n");
    let path = file.path().to_str().expect("utf-8 path");
    let closed = NotRedis::new();
    let port = closed.0.local_addr().expect("local addr").port();
    drop(closed);
    // Nothing listens: the connection is refused.
    for (given, shown) in [
        (
            format!("redis://probe:s3cret@127.0.0.1:{port}/0"),
            format!("redis://probe:***@127.0.0.1:{port}/0"),
        ),
        (
            format!(":s3cret@127.0.0.1:{port}"),
            format!(":***@127.0.0.1:{port}"),
        ),
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
    ] {
        let out = seed(&["-domains", path, "-redis", &given], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(text(&out.stdout), "");
        assert!(
            stderr.starts_with(&format!("redis: cannot reach Redis at {shown} (-redis): ")),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }

    // A real server that wants no password: AUTH fails, the password stays hidden.
    let server = RedisServer::start().expect("redis-server starts");
    let given = format!("redis://probe:s3cret@{}", server.addr());
    let out = seed(&["-domains", path, "-redis", &given], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("redis://probe:***@{}", server.addr())),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_eq!(
        server.command(&["EXISTS", "spyder:queue"]).expect("EXISTS"),
        ":0\r\n"
    );
}

#[test]
fn missing_domains_and_unknown_flags() {
    let out = seed(&["-redis", "127.0.0.1:1"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "missing -domains\n");

    let out = seed(&["-x"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("flag provided but not defined: -x\nUsage of seed:\n"),
        "{stderr}"
    );
    assert!(stderr.contains("  -domains string"), "{stderr}");

    let out = seed(&["-h"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).starts_with("Usage of seed:\n"));
}

#[test]
fn recover_moves_processing_back_unchanged() {
    let server = RedisServer::start().expect("redis-server starts");
    let older = r#"{"host":"old.example","ts":1,"attempt":0}"#;
    let newer = r#"{"host":"new.example","ts":2,"attempt":1,"id":"00000000000000ff"}"#;
    let pending = r#"{"host":"pending.example","ts":3,"attempt":0}"#;
    for (key, raw) in [
        ("q:processing", older),
        ("q:processing", newer),
        ("q", pending),
    ] {
        server.command(&["LPUSH", key, raw]).expect("LPUSH");
    }
    server
        .command(&["ZADD", "q:leases", "1", newer])
        .expect("ZADD");

    let out = seed(&["-recover", "-redis", &server.addr(), "-key", "q"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "recovered 2 items from q:processing\n");
    // Recovered items are next in line (right end), the oldest lease first.
    assert_eq!(list(&server, "q"), [pending, newer, older]);
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
    assert_eq!(
        server.command(&["EXISTS", "q:leases"]).expect("EXISTS"),
        ":0\r\n"
    );
}

#[test]
fn a_traceparent_rides_in_every_item_and_a_malformed_one_is_refused() {
    // SPEC §3.14: a seeded chain is one trace when the submitter gives one.
    let server = RedisServer::start().expect("redis-server starts");
    let file = domains_file("a.example\nb.example\n");
    let path = file.path().to_str().expect("utf-8 path");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let out = seed(
        &[
            "-domains",
            path,
            "-redis",
            &server.addr(),
            "-traceparent",
            tp,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let items = list(&server, "spyder:queue");
    assert_eq!(items.len(), 2);
    for raw in &items {
        let item = spyder_queue::QueueItem::decode(raw).expect("an item");
        assert_eq!(item.traceparent.as_deref(), Some(tp), "{raw}");
    }
    // Checked before anything is pushed.
    let out = seed(
        &[
            "-domains",
            path,
            "-redis",
            &server.addr(),
            "-key",
            "other",
            "-traceparent",
            "00-xyz",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("-traceparent \"00-xyz\": not a W3C traceparent"));
    assert!(list(&server, "other").is_empty());
}
