//! Builds the release `spyder` binary and finds it wherever the target directory is
//! (`CARGO_TARGET_DIR`, `build.target-dir` or the workspace's `target/`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `cargo build --release -p spyder` and returns the path of the binary, as
/// cargo's own JSON messages name it.
pub fn build_spyder() -> Result<PathBuf, String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "spyder",
            "--bin",
            "spyder",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build --release -p spyder failed ({})",
            output.status
        ));
    }
    executable_of(&String::from_utf8_lossy(&output.stdout), "spyder")
        .ok_or_else(|| "cargo build named no spyder executable".to_owned())
}

/// Environment variables spyder reads that would leak a developer's own setup (their
/// Redis, log level or API keys) into a benchmark run.
const SPYDER_ENV: [&str; 5] = [
    "REDIS_ADDR",
    "REDIS_QUEUE_ADDR",
    "REDIS_QUEUE_KEY",
    "LOG_LEVEL",
    "SPYDER_API_KEYS",
];

/// Clears [`SPYDER_ENV`] from a spyder command; the caller sets what the run needs.
pub fn without_spyder_env(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    for var in SPYDER_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The `executable` of the `compiler-artifact` message for binary target `name`.
fn executable_of(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_binary_among_cargo_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"spyder"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"seed"},"executable":"/t/release/seed"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"spyder"},"executable":"/t/release/spyder"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable_of(messages, "spyder"),
            Some(PathBuf::from("/t/release/spyder"))
        );
        assert_eq!(executable_of(messages, "absent"), None);
    }
}
