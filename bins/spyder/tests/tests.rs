//! spyder's integration tests, one binary (as ripgrep's `tests/tests.rs`): the
//! command line and the settings mapping in process, and the end-to-end tests, which
//! run the real binary against testkit worlds. `autotests` is off in Cargo.toml, so a
//! new test file is a `mod` here, or a `[[test]]` there when it must not share its
//! process with the others (see there).

// Drives the real `spyder` binary against testkit worlds.
mod support;

// The command line (`spyder::cli`) against the configuration it feeds.
mod cli;
// Config keys reach the probe's settings (`spyder::settings`).
mod settings;
// deploy/ and examples/spyder.yaml: command lines, mounts, the systemd unit, the image.
mod deploy;

// Usage, exit codes, version, bad input files.
mod e2e_cli;
// The conventions of httpx, dnsx and tlsx: stdin, short flags, -silent, XDG config.
mod e2e_conventions;
// Continuous mode with the ChannelSink.
mod e2e_continuous;
// The dashboard page and its event stream.
mod e2e_dashboard;
// The dashboard in Chromium over WebDriver: numbers, controls, keys, the fleet.
mod e2e_browser;
// Many probes on one Redis, a SIGKILL and a redis-server restart.
mod e2e_distributed;
// A failing or hanging ingest, signals, a broken pipe, mTLS.
mod e2e_faults;
// Panics in tasks, a huge -concurrency, an input that never closes.
mod e2e_hardening;
// The fleet heartbeat of probes sharing a Redis queue.
mod e2e_fleet;
// OpenTelemetry traces to an OTLP/HTTP receiver.
mod e2e_traces;
// -resume: SIGKILLed runs started again with the checkpoint.
mod e2e_resume;
// A descriptor limit the binary cannot raise.
mod e2e_limits;
// JSON logs and the switches that shape them.
mod e2e_logs;
// The queue, spool and discovery metrics.
mod e2e_metrics;
// Live operations: PATCH, SIGHUP, /health, /ready.
mod e2e_ops;
// Queue mode against a real redis-server.
mod e2e_queue;
// A 300-site world in all three output formats.
mod e2e_world;
