//! Private-target refusal (SPEC §3.5).
