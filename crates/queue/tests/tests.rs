//! spyder-queue's integration tests, one binary (as ripgrep's `tests/tests.rs`): one
//! module per queue. `autotests` is off in Cargo.toml, so a new test file is a `mod`
//! here.

// Streamed input files: line rules and bounded memory.
mod input;
// The file-mode memory queue.
mod memory_queue;
// The Redis queue, against a real redis-server per test.
mod redis_queue;
