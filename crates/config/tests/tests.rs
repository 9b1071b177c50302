//! spyder-config's integration tests, one binary (as ripgrep's `tests/tests.rs`): one
//! module per area. `autotests` is off in Cargo.toml, so a new test file is a `mod`
//! here. The `spyder` binary's command line is tested with that binary
//! (bins/spyder/tests/cli.rs).

// docs/configuration.md against the schema.
mod docs;
// Go's flag syntax.
mod flags;
// The live configuration: tiers, atomicity, listeners, reloads.
mod live;
// Layered loading, precedence, validation, redaction.
mod load;
// `crawling.max_conns_per_ip`.
mod max_conns_per_ip;
// `crawling.redirect_ports`.
mod redirect_ports;
