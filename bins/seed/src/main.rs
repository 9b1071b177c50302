//! `seed`: fills the Redis work queue (SPEC §2.5).

fn main() {}
