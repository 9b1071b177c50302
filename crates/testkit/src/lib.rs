//! spyder's offline test world.
//!
//! Everything a test or benchmark needs to exercise the probe without the internet:
//! an authoritative DNS server on loopback ([`dns`]), a private CA issuing valid and
//! broken certificates ([`pki`]), HTTPS and HTTP hosts on distinct 127.0.0.x addresses
//! with scripted behaviours ([`web`]), an ingest receiver ([`ingest`]), an OTLP/HTTP
//! trace receiver that decodes spans ([`otlp`]), a real
//! `redis-server` per test ([`redis`]), and seeded worlds of linked sites that state the
//! edges a correct probe must emit ([`world`]), optionally across internet conditions:
//! round trips, DNS loss and connect-level black holes ([`netsim`]). [`prometheus`]
//! reads a metrics exposition back into numbers for assertions, [`graph`] spyder's
//! output back into edges.

#![deny(missing_docs)]

pub mod dns;
pub mod graph;
pub mod ingest;
pub mod netsim;
pub mod otlp;
pub mod pki;
pub mod prometheus;
pub mod redis;
pub mod web;
pub mod world;
