//! Builds the release `spyder` binary and finds it wherever the target directory is
//! (`CARGO_TARGET_DIR`, `build.target-dir` or the workspace's `target/`).
//!
//! Every nested cargo of xtask (the demo's and the benchmarks' builds through
//! [`build_spyder`], `xtask fuzz`'s `cargo fuzz`) starts from [`cargo`] or
//! [`without_cargo_run_env`], so it shares the fingerprints of the user's own builds.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Variables cargo sets for the process it runs (`cargo xtask` is a `cargo run`)
/// that describe xtask's own package. A nested cargo passes them on to build scripts,
/// and some fingerprint them: with xtask's `CARGO_MANIFEST_DIR`, ring's build script
/// reruns, and ring, rustls, fred and every spyder crate rebuild on each nested
/// build, and again on the user's next plain `cargo build`.
const CARGO_RUN_ENV: [&str; 8] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_RUSTC_CURRENT_DIR",
    "CARGO_TARGET_TMPDIR",
];

/// True for a variable of [`CARGO_RUN_ENV`] or a `CARGO_PKG_*` one.
fn set_by_cargo_run(name: &str) -> bool {
    CARGO_RUN_ENV.contains(&name) || name.starts_with("CARGO_PKG_")
}

/// A `cargo` command (the one running xtask) with the environment a user's shell
/// would give it: what `cargo run` added for xtask removed, so nested builds share
/// the fingerprints of the user's own builds.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    without_cargo_run_env(&mut cmd);
    cmd
}

/// Removes what `cargo run` set for xtask from `cmd`'s environment.
pub fn without_cargo_run_env(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Runs `cargo build --release -p spyder` and returns the path of the binary, as
/// cargo's own JSON messages name it.
pub fn build_spyder() -> Result<PathBuf, String> {
    let output = cargo()
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
    fn nested_cargo_drops_what_cargo_run_set_for_xtask() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION",
            "CARGO_CRATE_NAME",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_PROFILE_RELEASE_LTO",
            "PATH",
        ] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
        // `cargo xtask` runs these tests under cargo, which sets the variable.
        if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
            let cmd = cargo();
            let removed = cmd
                .get_envs()
                .any(|(k, v)| k == "CARGO_MANIFEST_DIR" && v.is_none());
            assert!(
                removed,
                "CARGO_MANIFEST_DIR is removed for the nested cargo"
            );
        }
    }

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
