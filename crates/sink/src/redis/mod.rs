//! The Redis side of the sink crate: the shared dedup backend and the RedisSink,
//! over the one Redis connection module ([`spyder_queue::connection`]).

mod dedup;
mod sink;

use std::time::Duration;

use spyder_queue::ConnectError;
use spyder_queue::connection::{ConnectOptions, Connection};

pub use dedup::RedisDedup;
pub use sink::{RedisSink, warn_without_shared_dedup};

/// How long a Redis may stay unreachable at startup before connecting fails.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// How long one command may wait (queued while reconnecting included) before it fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to `addr` (the value of config key `setting`), retrying for up to 10 s,
/// reconnecting forever afterwards.
async fn open(addr: &str, setting: &str) -> Result<Connection, ConnectError> {
    let options = ConnectOptions {
        command_timeout: COMMAND_TIMEOUT,
        within: CONNECT_WITHIN,
        reconnect: true,
    };
    Connection::open(addr, setting, options).await
}
