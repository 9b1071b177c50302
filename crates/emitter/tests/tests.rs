//! The emitter's integration tests, as one test binary (issue #12; ripgrep's
//! `tests/tests.rs` model): one link instead of four, and one copy of the helpers.

mod common;

mod batching;
mod formats;
mod ingest;
mod reconfigure;
