//! Per-host token buckets shared by all workers (SPEC §3.6).
