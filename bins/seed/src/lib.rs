//! `seed`: fills spyder's Redis work queue with host names (SPEC §2.5), compatible with
//! the original SPYDER seed tool.
//!
//! Each valid line becomes a queue item `{"host":...,"ts":...,"attempt":0,"id":...}`
//! LPUSHed onto `<key>` in chunks of at most 1,000; probes take from the right, so
//! the file is crawled in order. `-recover` moves `<key>:processing` back to `<key>`.
//!
//! The whole input is read and checked before Redis is touched: a missing or
//! unreadable file fails without a connection. A regular file is read again for the
//! push (memory stays flat however long it is); stdin and pipes, which cannot be read
//! twice, are held in memory. Errors that involve Redis name its address, password
//! hidden.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use fred::prelude::{Client, ClientLike, Error as FredError, LuaInterface};
use spyder_config::flags::{self, FlagSpec, Parsed};
use spyder_model::HostName;
use spyder_queue::connection::{
    ConnectOptions, Connection, Retry, describe, lpush_chunked, redact_addr,
};
use spyder_queue::{InputLine, InputReader, QueueItem, is_traceparent};

/// Most items in one LPUSH.
const CHUNK: usize = 1000;
/// How long connecting and each command may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// `KEYS`: pending, processing, leases. Moves every `:processing` item back to the
/// consuming (right) end of `<key>`, oldest lease last out first, unchanged; drops
/// the leases. Returns the count.
const RECOVER_SCRIPT: &str = r#"
local moved = 0
while true do
  local raw = redis.call('LPOP', KEYS[2])
  if not raw then break end
  redis.call('RPUSH', KEYS[1], raw)
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
return moved
"#;

fn flag_specs() -> Vec<FlagSpec> {
    vec![
        FlagSpec::value(
            "domains",
            "string",
            "",
            "file with one host per line; - for stdin (required unless -recover)",
        ),
        FlagSpec::value("redis", "string", "127.0.0.1:6379", "Redis address"),
        FlagSpec::value("key", "string", "spyder:queue", "Redis list key"),
        FlagSpec::boolean(
            "recover",
            "move all <key>:processing items back to <key> (use when no probe runs)",
        ),
        FlagSpec::value(
            "traceparent",
            "string",
            "",
            "W3C traceparent every item carries: their crawls join that trace (00-<trace id>-<span id>-<flags>)",
        ),
        FlagSpec::boolean("version", "print the version and exit"),
    ]
}

/// What `-version` prints: `seed v<version>` and a build line, as `spyder -version`
/// does.
pub fn version_text() -> String {
    flags::version_text("seed", env!("CARGO_PKG_VERSION"))
}

fn usage() -> String {
    format!("Usage of seed:\n{}", flags::usage(&flag_specs()))
}

/// What a `seed` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-h`, `-help` or `--help`: print the usage, exit 0.
    Help,
    /// `-version`: print [`version_text`] on stdout, exit 0 (whatever else is given).
    Version,
    /// Fill (or `-recover`) the queue with these settings.
    Seed(Args),
}

/// The settings of a `seed` run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// `-domains`: the input file (`-` = stdin), as given; `None` without the flag.
    pub domains: Option<String>,
    /// `-redis`: the Redis address.
    pub redis: String,
    /// `-key`: the queue's list key.
    pub key: String,
    /// `-recover`: move `<key>:processing` back to `<key>` first.
    pub recover: bool,
    /// `-traceparent`: the W3C trace context every pushed item carries.
    pub traceparent: Option<String>,
}

/// Parses a `seed` command line (without the program name) as [`run`] does; on an
/// error the binary prints it with the usage and exits 2.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, flags::FlagError> {
    let found = match flags::parse(&flag_specs(), args)? {
        Parsed::Flags(found) => found,
        Parsed::Help => return Ok(Command::Help),
    };
    let mut args = Args {
        domains: None,
        redis: "127.0.0.1:6379".to_owned(),
        key: "spyder:queue".to_owned(),
        recover: false,
        traceparent: None,
    };
    let mut version = false;
    for flag in found {
        match flag.name {
            "domains" => args.domains = Some(flag.value),
            "redis" => args.redis = flag.value,
            "key" => args.key = flag.value,
            "recover" => args.recover = flag.value == "true",
            "traceparent" => args.traceparent = (!flag.value.is_empty()).then_some(flag.value),
            "version" => version = flag.value == "true",
            _ => {}
        }
    }
    if version {
        return Ok(Command::Version);
    }
    Ok(Command::Seed(args))
}

/// Runs `seed` with `args` (without the program name); returns the exit code.
pub async fn run(
    args: impl IntoIterator<Item = OsString>,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> i32 {
    let args = match parse(args) {
        Ok(Command::Seed(args)) => args,
        Ok(Command::Help) => {
            let _ = write!(stderr, "{}", usage());
            return 0;
        }
        Ok(Command::Version) => {
            let _ = writeln!(stdout, "{}", version_text());
            return 0;
        }
        Err(error) => {
            let _ = write!(stderr, "{error}\n{}", usage());
            return 2;
        }
    };
    if let Some(tp) = args.traceparent.as_deref().filter(|tp| !is_traceparent(tp)) {
        let _ = writeln!(
            stderr,
            "-traceparent {tp:?}: not a W3C traceparent; want 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"
        );
        return 2;
    }
    let domains = args.domains.clone().filter(|d| !d.is_empty());
    if domains.is_none() && !args.recover {
        let _ = writeln!(stderr, "missing -domains");
        return 1;
    }
    // The whole input first: a file that cannot be read fails before Redis is touched.
    let input = match domains {
        Some(domains) => match Input::check(&domains, stderr).await {
            Ok(input) => Some(input),
            Err(error) => {
                let _ = writeln!(stderr, "{error}");
                return 1;
            }
        },
        None => None,
    };
    let redis = Redis::new(&args.redis);
    let connection = match connect(&redis).await {
        Ok(connection) => connection,
        Err(error) => {
            let _ = writeln!(stderr, "redis: {error}");
            return 1;
        }
    };
    let client = connection.client();
    let code = seed(&args, &redis, input, client, stdout, stderr).await;
    let _ = client.quit().await;
    code
}

/// The Redis server of `-redis`, as errors name it.
struct Redis<'a> {
    /// The address as given.
    addr: &'a str,
    /// The address with any password hidden, for messages.
    shown: String,
}

impl<'a> Redis<'a> {
    fn new(addr: &'a str) -> Self {
        Self {
            addr,
            shown: redact_addr(addr),
        }
    }

    /// `<address> (-redis): <what>: <error>`, printed after `redis: `.
    fn error(&self, what: &str, error: &FredError) -> String {
        format!("{} (-redis): {what}: {}", self.shown, describe(error))
    }
}

/// A domains input that was read to its end: its valid hosts are pushed next.
struct Input {
    /// The input as given (`-` is stdin).
    name: String,
    /// The hosts of a source that cannot be read twice (stdin, a pipe); `None` for a
    /// regular file, which is read again for the push.
    hosts: Option<Vec<HostName>>,
    /// Invalid lines, each already reported.
    skipped: usize,
}

impl Input {
    /// Reads all of `domains`, reporting each invalid line on `stderr` (SPEC §3.3 line
    /// rules, as spyder reads its input). Fails when it cannot be opened or read to
    /// its end.
    async fn check(domains: &str, stderr: &mut impl Write) -> Result<Self, String> {
        let mut reader = InputReader::open(domains)
            .await
            .map_err(|error| format!("{domains}: {error}"))?;
        let regular = reader.progress().total_bytes.is_some();
        let mut hosts = (!regular).then(Vec::new);
        let mut skipped = 0usize;
        while let Some(line) = reader.next().await {
            match line {
                InputLine::Host { host, .. } => {
                    if let Some(hosts) = hosts.as_mut() {
                        hosts.push(host);
                    }
                }
                invalid @ InputLine::Invalid { .. } => {
                    let _ = writeln!(stderr, "{invalid}");
                    skipped += 1;
                }
            }
        }
        if let Some(error) = reader.read_error() {
            return Err(format!("{domains}: cannot read: {error}"));
        }
        Ok(Self {
            name: domains.to_owned(),
            hosts,
            skipped,
        })
    }

    /// The valid hosts, in input order: from memory, or the file read again.
    async fn hosts(self) -> Result<Hosts, String> {
        match self.hosts {
            Some(hosts) => Ok(Hosts::Memory(hosts.into_iter())),
            None => InputReader::open(&self.name)
                .await
                .map(|reader| Hosts::File(Box::new(reader)))
                .map_err(|error| format!("{}: {error}", self.name)),
        }
    }
}

/// The hosts to push, one at a time.
enum Hosts {
    Memory(std::vec::IntoIter<HostName>),
    File(Box<InputReader>),
}

impl Hosts {
    /// The next valid host; `None` at the end. Invalid lines of a file read again
    /// were reported by [`Input::check`] and are passed over.
    async fn next(&mut self) -> Option<HostName> {
        match self {
            Self::Memory(hosts) => hosts.next(),
            Self::File(reader) => loop {
                match reader.next().await? {
                    InputLine::Host { host, .. } => return Some(host),
                    InputLine::Invalid { .. } => {}
                }
            },
        }
    }

    /// The read error that ended a file early.
    fn read_error(&self) -> Option<&std::io::Error> {
        match self {
            Self::Memory(_) => None,
            Self::File(reader) => reader.read_error(),
        }
    }
}

async fn seed(
    args: &Args,
    redis: &Redis<'_>,
    input: Option<Input>,
    client: &Client,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> i32 {
    let key = &args.key;
    if args.recover {
        let keys = vec![
            key.clone(),
            format!("{key}:processing"),
            format!("{key}:leases"),
        ];
        match client.eval::<i64, _, _, _>(RECOVER_SCRIPT, keys, ()).await {
            Ok(moved) => {
                let _ = writeln!(stdout, "recovered {moved} items from {key}:processing");
            }
            Err(error) => {
                let what = format!("recovering {key}:processing");
                let _ = writeln!(stderr, "redis: {}", redis.error(&what, &error));
                return 1;
            }
        }
    }
    let Some(input) = input else {
        return 0;
    };
    let name = input.name.clone();
    let skipped = input.skipped;
    let mut hosts = match input.hosts().await {
        Ok(hosts) => hosts,
        Err(error) => {
            let _ = writeln!(stderr, "{error}");
            let _ = writeln!(stderr, "pushed 0, skipped {skipped}");
            return 1;
        }
    };
    let now = spyder_model::Timestamp::now().unix_seconds();
    let mut pushed = 0usize;
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK);
    loop {
        let host = hosts.next().await;
        let end = host.is_none();
        if let Some(host) = host {
            let item = QueueItem::new(host, now);
            let item = match &args.traceparent {
                Some(tp) => item.with_traceparent(tp),
                None => item,
            };
            chunk.push(item.raw().to_owned());
        }
        if chunk.len() >= CHUNK || (end && !chunk.is_empty()) {
            let items = std::mem::take(&mut chunk);
            let count = items.len();
            // One try: a command-line tool reports and exits.
            let (_, failed) = lpush_chunked(client, key, &items, CHUNK, Retry::Attempts(1)).await;
            if let Some(error) = failed {
                let what = format!("LPUSH {key}");
                let _ = writeln!(stderr, "redis: {}", redis.error(&what, &error));
                let _ = writeln!(stderr, "pushed {pushed}, skipped {skipped}");
                return 1;
            }
            pushed += count;
        }
        if end {
            break;
        }
    }
    if let Some(error) = hosts.read_error() {
        // The file was read whole a moment ago; it changed or broke since.
        let _ = writeln!(stderr, "{name}: cannot read it again: {error}");
        let _ = writeln!(stderr, "pushed {pushed}, skipped {skipped}");
        return 1;
    }
    let _ = writeln!(stdout, "seeded {key}");
    let _ = writeln!(stderr, "pushed {pushed}, skipped {skipped}");
    0
}

/// Connects once (no reconnects: a command-line tool reports and exits) and PINGs.
/// The error names the address (password hidden).
async fn connect(redis: &Redis<'_>) -> Result<Connection, String> {
    let options = ConnectOptions {
        command_timeout: REDIS_TIMEOUT,
        within: Duration::ZERO,
        reconnect: false,
    };
    let connection = Connection::open(redis.addr, "-redis", options)
        .await
        .map_err(|e| e.to_string())?;
    match connection.client().ping::<String>(None).await {
        Ok(_) => Ok(connection),
        Err(error) => Err(redis.error("PING", &error)),
    }
}
