//! `spyder`: parse, compose, run. Everything else lives in the `spyder` library and
//! the workspace crates.

fn main() -> std::process::ExitCode {
    spyder::main(std::env::args_os())
}
