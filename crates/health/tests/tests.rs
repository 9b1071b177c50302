//! spyder-health's integration tests, one binary (as ripgrep's `tests/tests.rs`): a
//! server per test over real HTTP. `autotests` is off in Cargo.toml, so a new test
//! file is a `mod` here, or, when it must be its own process because it installs a
//! process-wide global (as `logs.rs` and `metrics_install.rs` do), a `[[test]]`
//! there.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

// A fake run loop, a raw HTTP/1.1 client and the server harness.
mod support;

// The REST API: checks in order, every endpoint's shape, keys.
mod api;
// GET /dashboard and its assets.
mod dashboard;
// GET /api/v1/events: the dashboard's snapshot stream.
mod events;
// /live, /ready, /health, binding.
mod health;
// The trace pipeline against a failing collector.
mod traces;
