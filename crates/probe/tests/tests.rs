//! The probe's integration tests, one binary (as ripgrep's `tests/tests.rs`): each
//! module is one area, with its own fixtures. The DNS load test is a binary of its
//! own (`dns_load.rs`, see its header).

mod conn_cap;
mod dns;
mod engine;
mod http;
mod links_props;
mod tls;
