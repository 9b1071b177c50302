//! The one way spyder talks to Redis: connect with a deadline and a reconnect
//! policy, errors as one line naming the setting, and chunked `LPUSH` with retry.
//! Used by the queue, the dedup and discovery sinks, `seed` and the bulk API.

use std::time::Duration;

use fred::prelude::{
    Builder, Client, ClientLike, Config, Error as FredError, ListInterface, ReconnectPolicy,
};
use fred::types::ConnectHandle;
use spyder_model::backoff::Backoff;

/// First pause between connect or retry attempts.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a Redis connection could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address does not parse (`host:port`, `redis://…`, `rediss://…`).
    #[error("invalid Redis address {addr:?} ({setting}): {error}")]
    Address {
        /// The address, password redacted.
        addr: String,
        /// The setting it came from (`redis.addr`, `redis.queue_addr`, `-redis`).
        setting: String,
        /// Redis's reason.
        error: String,
    },
    /// Nothing answered within the deadline.
    #[error("cannot reach Redis at {addr} ({setting}): {error}")]
    Unreachable {
        /// The address, password redacted.
        addr: String,
        /// The setting it came from.
        setting: String,
        /// The last error seen.
        error: String,
    },
}

/// How to connect.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOptions {
    /// How long one command may wait (queued while reconnecting included).
    pub command_timeout: Duration,
    /// How long connecting keeps trying; zero: one try.
    pub within: Duration,
    /// Reconnect forever after a lost connection (100 ms doubling to 5 s). Off for
    /// a command-line tool that reports and exits.
    pub reconnect: bool,
}

/// A connected client and the task driving it; dropping it stops the task.
#[derive(Debug)]
pub struct Connection {
    client: Client,
    task: ConnectHandle,
}

impl Connection {
    /// Connects to `addr` (the value of `setting`), retrying with backoff until
    /// `options.within` has passed.
    pub async fn open(
        addr: &str,
        setting: &str,
        options: ConnectOptions,
    ) -> Result<Self, ConnectError> {
        let redacted = || redact_addr(addr);
        let address_error = |error: FredError| ConnectError::Address {
            addr: redacted(),
            setting: setting.to_owned(),
            error: describe(&error),
        };
        let config = Config::from_url(&redis_url(addr)).map_err(address_error)?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2).min(options.command_timeout);
                c.internal_command_timeout = Duration::from_secs(5);
            })
            .with_performance_config(|p| p.default_command_timeout = options.command_timeout);
        if options.reconnect {
            builder.set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        }
        let client = builder.build().map_err(address_error)?;
        let deadline = tokio::time::Instant::now() + options.within;
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            let remaining = if options.within.is_zero() {
                options.command_timeout
            } else {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            };
            let error = match tokio::time::timeout(remaining, client.init()).await {
                Ok(Ok(task)) => return Ok(Self { client, task }),
                Ok(Err(error)) => describe(&error),
                Err(_) => "no answer".to_owned(),
            };
            if tokio::time::Instant::now() + backoff.peek() >= deadline {
                return Err(ConnectError::Unreachable {
                    addr: redacted(),
                    setting: setting.to_owned(),
                    error,
                });
            }
            backoff.wait().await;
        }
    }

    /// The client, for commands.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A reconnecting client never stops on its own; stop it with its last owner.
        self.task.abort();
    }
}

/// `host:port` becomes `redis://host:port`; URLs pass through.
pub fn redis_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("redis://{addr}")
    }
}

/// `addr` for messages: as given, or with its password hidden when it has one. A
/// `host:port` address is connected to as `redis://host:port`, so `:pass@host:port`
/// holds a password too.
pub fn redact_addr(addr: &str) -> String {
    match spyder_model::secret::hide_url_password(&redis_url(addr)) {
        Some(hidden) if addr.contains("://") => hidden,
        Some(hidden) => hidden
            .strip_prefix("redis://")
            .unwrap_or(&hidden)
            .to_owned(),
        None => addr.to_owned(),
    }
}

/// A Redis error as one line for logs and health text.
pub fn describe(error: &FredError) -> String {
    let details = error.details();
    if details.is_empty() {
        error.kind().to_str().to_owned()
    } else {
        io_error_text(details).unwrap_or_else(|| details.to_owned())
    }
}

/// fred keeps an I/O error as its `Debug` text (`Os { code: 111, kind:
/// ConnectionRefused, message: "Connection refused" }`); this gives what the error's
/// `Display` says (`Connection refused (os error 111)`), `None` for other text.
fn io_error_text(details: &str) -> Option<String> {
    // A `Debug` string field: up to the first unescaped quote, escapes undone.
    let field = |name: &str| {
        let rest = details[details.find(name)? + name.len()..].strip_prefix('"')?;
        let mut text = String::new();
        let mut chars = rest.chars();
        loop {
            match chars.next()? {
                '"' => return Some(text),
                '\\' => text.push(chars.next()?),
                c => text.push(c),
            }
        }
    };
    if let Some(body) = details.strip_prefix("Os { code: ") {
        let code = body.split(',').next()?.trim();
        return Some(format!("{} (os error {code})", field("message: ")?));
    }
    if details.starts_with("Custom { kind: ") {
        return field("error: ");
    }
    None
}

/// How a push retries.
#[derive(Clone, Copy, Debug)]
pub enum Retry {
    /// At most this many attempts in all.
    Attempts(u32),
    /// Until this much time has passed since the first attempt.
    Within(Duration),
}

/// `LPUSH`es `items` onto `key`, at most `chunk` per command, retrying each command
/// with backoff as `retry` allows. Returns how many items were pushed, and the
/// error that stopped the rest (chunks after a failed one are not tried).
pub async fn lpush_chunked(
    client: &Client,
    key: &str,
    items: &[String],
    chunk: usize,
    retry: Retry,
) -> (usize, Option<FredError>) {
    let mut pushed = 0;
    for part in items.chunks(chunk.max(1)) {
        if let Err(error) =
            with_retry(retry, || client.lpush::<i64, _, _>(key, part.to_vec())).await
        {
            return (pushed, Some(error));
        }
        pushed += part.len();
    }
    (pushed, None)
}

/// Runs `op` until it succeeds or `retry` is spent, backing off between attempts;
/// each failure before the last is logged at WARN.
pub async fn with_retry<T, F, Fut>(retry: Retry, mut op: F) -> Result<T, FredError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, FredError>>,
{
    let start = tokio::time::Instant::now();
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut attempt = 1u32;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let spent = match retry {
            Retry::Attempts(n) => attempt >= n,
            Retry::Within(limit) => start.elapsed() + backoff.peek() >= limit,
        };
        if spent {
            return Err(error);
        }
        tracing::warn!(attempt, error = %describe(&error), "Redis call failed; retrying");
        backoff.wait().await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_urls() {
        assert_eq!(redis_url("127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redis_url("rediss://h:1/2"), "rediss://h:1/2");
    }

    #[test]
    fn addresses_lose_their_password() {
        assert_eq!(redact_addr("127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(redact_addr(":s3cret@h:6379"), ":***@h:6379");
        assert_eq!(
            redact_addr("rediss://u:s3cret@h:6379/2"),
            "rediss://u:***@h:6379/2"
        );
        assert_eq!(redact_addr("redis://u@h:6379"), "redis://u@h:6379");
    }

    #[test]
    fn io_errors_read_as_their_display() {
        let refused = std::io::Error::from_raw_os_error(111);
        let error = FredError::from(refused);
        assert_eq!(
            describe(&error),
            std::io::Error::from_raw_os_error(111).to_string()
        );
        let custom = FredError::from(std::io::Error::other(r#"tls says "no""#));
        assert_eq!(describe(&custom), r#"tls says "no""#);
        let plain = FredError::new(fred::error::ErrorKind::Timeout, "Request timed out.");
        assert_eq!(describe(&plain), "Request timed out.");
    }
}
