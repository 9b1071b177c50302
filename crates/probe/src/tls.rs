//! TLS connections that capture and verify the leaf certificate (SPEC §3.2).
