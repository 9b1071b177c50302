//! `seed`: fills spyder's Redis work queue with host names (SPEC §2.5), compatible with
//! the original SPYDER seed tool.
//!
//! Each valid line becomes a queue item `{"host":...,"ts":...,"attempt":0,"id":...}`
//! LPUSHed onto `<key>` in chunks of at most 1,000; probes take from the right, so
//! the file is crawled in order. `-recover` moves `<key>:processing` back to `<key>`.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use fred::prelude::{Client, ClientLike, LuaInterface};
use spyder_config::flags::{self, FlagSpec, Parsed};
use spyder_queue::connection::{ConnectOptions, Connection, Retry, describe, lpush_chunked};
use spyder_queue::{InputLine, InputReader, QueueItem};

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
    ]
}

fn usage() -> String {
    format!("Usage of seed:\n{}", flags::usage(&flag_specs()))
}

/// What a `seed` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-h`, `-help` or `--help`: print the usage, exit 0.
    Help,
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
    };
    for flag in found {
        match flag.name {
            "domains" => args.domains = Some(flag.value),
            "redis" => args.redis = flag.value,
            "key" => args.key = flag.value,
            "recover" => args.recover = flag.value == "true",
            _ => {}
        }
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
        Err(error) => {
            let _ = write!(stderr, "{error}\n{}", usage());
            return 2;
        }
    };
    let domains = args.domains.clone().filter(|d| !d.is_empty());
    if domains.is_none() && !args.recover {
        let _ = writeln!(stderr, "missing -domains");
        return 1;
    }
    let connection = match connect(&args.redis).await {
        Ok(connection) => connection,
        Err(error) => {
            let _ = writeln!(stderr, "redis: {error}");
            return 1;
        }
    };
    let client = connection.client();
    let code = seed(&args, domains.as_deref(), client, stdout, stderr).await;
    let _ = client.quit().await;
    code
}

async fn seed(
    args: &Args,
    domains: Option<&str>,
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
                let _ = writeln!(stderr, "redis: {error}");
                return 1;
            }
        }
    }
    let Some(domains) = domains else {
        return 0;
    };
    let mut reader = match InputReader::open(domains).await {
        Ok(reader) => reader,
        Err(error) => {
            let _ = writeln!(stderr, "{domains}: {error}");
            return 1;
        }
    };
    let now = spyder_model::Timestamp::now().unix_seconds();
    let (mut pushed, mut skipped) = (0usize, 0usize);
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK);
    loop {
        let line = reader.next().await;
        let end = line.is_none();
        match line {
            Some(InputLine::Host { host, .. }) => {
                chunk.push(QueueItem::new(host, now).raw().to_owned());
            }
            Some(invalid @ InputLine::Invalid { .. }) => {
                let _ = writeln!(stderr, "{invalid}");
                skipped += 1;
            }
            None => {}
        }
        if chunk.len() >= CHUNK || (end && !chunk.is_empty()) {
            let items = std::mem::take(&mut chunk);
            let count = items.len();
            // One try: a command-line tool reports and exits.
            let (_, failed) = lpush_chunked(client, key, &items, CHUNK, Retry::Attempts(1)).await;
            if let Some(error) = failed {
                let _ = writeln!(stderr, "redis: {}", describe(&error));
                let _ = writeln!(stderr, "pushed {pushed}, skipped {skipped}");
                return 1;
            }
            pushed += count;
        }
        if end {
            break;
        }
    }
    let _ = writeln!(stdout, "seeded {key}");
    let _ = writeln!(stderr, "pushed {pushed}, skipped {skipped}");
    0
}

/// Connects once (no reconnects: a command-line tool reports and exits) and PINGs.
async fn connect(addr: &str) -> Result<Connection, String> {
    let options = ConnectOptions {
        command_timeout: REDIS_TIMEOUT,
        within: Duration::ZERO,
        reconnect: false,
    };
    let connection = Connection::open(addr, "-redis", options)
        .await
        .map_err(|e| e.to_string())?;
    connection
        .client()
        .ping::<String>(None)
        .await
        .map_err(|e| describe(&e))?;
    Ok(connection)
}
