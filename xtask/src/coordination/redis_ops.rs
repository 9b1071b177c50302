//! The Redis side of the benchmark: seeding, queue lengths, `INFO` numbers, one
//! command at a time over [`RedisServer::command`].

use spyder_model::HostName;
use spyder_queue::QueueItem;
use spyder_testkit::redis::RedisServer;

use super::{KEY, LPUSH_CHUNK, Result, SEEDED_AT};

/// `LLEN <key>`, `LLEN <key>:processing`, `ZCARD <key>:leases`.
pub(super) fn queue_counts(redis: &RedisServer) -> Result<[i64; 3]> {
    Ok([
        integer(redis, &["LLEN", KEY])?,
        integer(redis, &["LLEN", &format!("{KEY}:processing")])?,
        integer(redis, &["ZCARD", &format!("{KEY}:leases")])?,
    ])
}

/// An empty `<key>:dead`: every item was crawled, none given up.
pub(super) fn expect_no_dead_items(redis: &RedisServer) -> Result<()> {
    match integer(redis, &["LLEN", &format!("{KEY}:dead")])? {
        0 => Ok(()),
        n => Err(format!("{n} items ended in {KEY}:dead")),
    }
}

/// Pushes one fresh item per host, as `seed` does (LPUSH in chunks).
pub(super) fn seed(redis: &RedisServer, hosts: &[String]) -> Result<()> {
    for chunk in hosts.chunks(LPUSH_CHUNK) {
        let items = chunk
            .iter()
            .map(|h| {
                let host = HostName::from_input(h).map_err(|e| format!("world host {h}: {e}"))?;
                Ok(QueueItem::new(host, SEEDED_AT).raw().to_owned())
            })
            .collect::<Result<Vec<String>>>()?;
        let mut args = vec!["LPUSH", KEY];
        args.extend(items.iter().map(String::as_str));
        integer(redis, &args)?;
    }
    Ok(())
}

/// `used_cpu_sys + used_cpu_user` of `INFO cpu`: the server's CPU seconds so far.
pub(super) fn redis_cpu_seconds(redis: &RedisServer) -> Result<f64> {
    let info = command(redis, &["INFO", "cpu"])?;
    match (
        info_field(&info, "used_cpu_sys"),
        info_field(&info, "used_cpu_user"),
    ) {
        (Some(sys), Some(user)) => Ok(sys + user),
        _ => Err(format!("INFO cpu without used_cpu_sys/user: {info:?}")),
    }
}

/// One `cmdstat_` line of `INFO commandstats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommandStat {
    /// Lower-case command name (`evalsha`, `blmove`, ...).
    pub(super) name: String,
    pub(super) calls: u64,
    /// Time spent executing the command on Redis's main thread.
    pub(super) usec: u64,
}

/// The commands run since the last `CONFIG RESETSTAT`, most called first.
pub(super) fn command_stats(redis: &RedisServer) -> Result<Vec<CommandStat>> {
    Ok(parse_command_stats(&command(
        redis,
        &["INFO", "commandstats"],
    )?))
}

fn parse_command_stats(info: &str) -> Vec<CommandStat> {
    let mut stats: Vec<CommandStat> = info
        .lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.trim().parse().ok())
            };
            Some(CommandStat {
                name: name.to_owned(),
                calls: field("calls")?,
                usec: field("usec")?,
            })
        })
        .collect();
    stats.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
    stats
}

/// A numeric `name:value` line of an `INFO` reply.
pub(super) fn info_field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// Runs one command; a Redis error reply is an error.
pub(super) fn command(redis: &RedisServer, args: &[&str]) -> Result<String> {
    let reply = redis
        .command(args)
        .map_err(|e| format!("redis {}: {e}", args[0]))?;
    if reply.starts_with('-') {
        return Err(format!("redis {}: {}", args[0], reply.trim()));
    }
    Ok(reply)
}

/// The integer of a `:n` reply.
pub(super) fn integer(redis: &RedisServer, args: &[&str]) -> Result<i64> {
    let reply = command(redis, args)?;
    reply
        .strip_prefix(':')
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("redis {}: not an integer reply: {reply:?}", args[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_stats_are_parsed_most_called_first() {
        let info = "# Commandstats\r\ncmdstat_zadd:calls=3,usec=30,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=7,usec=700,usec_per_call=100.00\r\ncmdstat_broken:calls=x\r\n";
        let stat = |name: &str, calls, usec| CommandStat {
            name: name.to_owned(),
            calls,
            usec,
        };
        assert_eq!(
            parse_command_stats(info),
            vec![stat("evalsha", 7, 700), stat("zadd", 3, 30)]
        );
    }

    #[test]
    fn info_fields_are_read_by_exact_name() {
        let info =
            "# CPU\r\nused_cpu_sys:1.25\r\nused_cpu_user:0.50\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(info_field(info, "used_cpu_sys"), Some(1.25));
        assert_eq!(info_field(info, "used_cpu_user"), Some(0.5));
        assert_eq!(info_field(info, "used_cpu_sys_main_thread"), None);
    }
}
