//! The Redis side of the sink crate: the shared dedup backend and the RedisSink.

mod dedup;
mod sink;

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config, Error as FredError, ReconnectPolicy};
use fred::types::ConnectHandle;

pub use dedup::RedisDedup;
pub use sink::{RedisSink, warn_without_shared_dedup};

/// How long a Redis may stay unreachable at startup before connecting fails.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// How long one command may wait (queued while reconnecting included) before it fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a Redis connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The address does not parse (`host:port`, `redis://…`, `rediss://…`).
    #[error("invalid Redis address {addr:?} ({setting}): {error}")]
    Address {
        addr: String,
        setting: &'static str,
        error: String,
    },
    /// Nothing answered within 10 s.
    #[error("cannot reach Redis at {addr} ({setting}): {error}")]
    Unreachable {
        addr: String,
        setting: &'static str,
        error: String,
    },
}

/// A connected client that reconnects forever, and the task driving it.
#[derive(Debug)]
struct Connection {
    client: Client,
    task: ConnectHandle,
}

impl Connection {
    /// Connects to `addr` (the value of config key `setting`), retrying for up to 10 s.
    async fn open(addr: &str, setting: &'static str) -> Result<Self, RedisError> {
        let url = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("redis://{addr}")
        };
        let config = Config::from_url(&url).map_err(|error| RedisError::Address {
            addr: spyder_model::secret::redact_url(addr).into_owned(),
            setting,
            error: error.details().to_owned(),
        })?;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(5);
            })
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            // 100 ms doubling to 5 s, forever.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|error| RedisError::Address {
                addr: spyder_model::secret::redact_url(addr).into_owned(),
                setting,
                error: error.details().to_owned(),
            })?;
        let unreachable = |error: String| RedisError::Unreachable {
            addr: spyder_model::secret::redact_url(addr).into_owned(),
            setting,
            error,
        };
        let deadline = tokio::time::Instant::now() + CONNECT_WITHIN;
        let mut pause = Duration::from_millis(100);
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let error = match tokio::time::timeout(remaining, client.init()).await {
                Ok(Ok(task)) => return Ok(Self { client, task }),
                Ok(Err(error)) => describe(&error),
                Err(_) => "no answer".to_owned(),
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(unreachable(error));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The client reconnects forever; stop its task with its last owner.
        self.task.abort();
    }
}

/// A Redis error as one line for logs and health text.
fn describe(error: &FredError) -> String {
    let details = error.details();
    if details.is_empty() {
        error.kind().to_str().to_owned()
    } else {
        details.to_owned()
    }
}
