//! `spyder`: parse, compose, run. Everything else lives in the `spyder` library and
//! the workspace crates.

/// mimalloc instead of glibc's malloc: a crawl allocates and frees many small buffers
/// (TLS records, tokens, records), and glibc's free lists cost ~12 % of the probe's CPU
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    spyder::main(std::env::args_os())
}
