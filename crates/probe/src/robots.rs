//! robots.txt fetch rules, parsing and cache (SPEC §3.6).
