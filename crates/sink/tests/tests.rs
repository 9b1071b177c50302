//! spyder-sink's integration tests, one binary (as ripgrep's `tests/tests.rs`): one
//! module per area, sharing one copy of the helpers. `autotests` is off in
//! Cargo.toml, so a new test file is a `mod` here, or, when it must be its own
//! process because it installs a process-wide global (as `redis_dedup_outage.rs`
//! does), a `[[test]]` there.

// Hosts, records and a counting dedup, shared by the modules below.
mod common;

// The file-mode discovery sink.
mod channel_sink;
// Dedup keys, the memory backend, dedup of records.
mod dedup;
// RedisDedup against a real redis-server.
mod redis_dedup;
// RedisSink against real redis-servers.
mod redis_sink;
