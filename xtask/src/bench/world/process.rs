//! The client side: the benchmark's handle on the world process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{Conditions, Hello, WorldStats};
use crate::bench::Result;
use crate::bench::pinning::Pinning;

/// A running `world-serve` process. Killed when dropped.
#[derive(Debug)]
pub(crate) struct WorldProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Bound on one `stats` answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Bound on the process's exit after EOF.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

impl WorldProcess {
    /// Starts `xtask world-serve` (this very executable) under the world's pinning and
    /// waits up to `ready_limit` for its [`Hello`].
    pub(crate) async fn start(
        pinning: &Pinning,
        sites: usize,
        seed: u64,
        dir: &Path,
        ready_limit: Duration,
    ) -> Result<(Self, Hello)> {
        let conditions = Conditions::default();
        Self::start_with(pinning, sites, seed, &conditions, dir, ready_limit).await
    }

    /// Like [`WorldProcess::start`], with the world behind `conditions`.
    pub(crate) async fn start_with(
        pinning: &Pinning,
        sites: usize,
        seed: u64,
        conditions: &Conditions,
        dir: &Path,
        ready_limit: Duration,
    ) -> Result<(Self, Hello)> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = pinning.world_command(&exe);
        command
            .arg("world-serve")
            .args(["--sites", &sites.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(conditions.args())
            .arg("--dir")
            .arg(dir);
        Self::spawn(command, &format!("world of {sites} sites"), ready_limit).await
    }

    /// Spawns `command` (a `world-serve`) and waits up to `ready_limit` for its hello.
    pub(super) async fn spawn(
        mut command: tokio::process::Command,
        what: &str,
        ready_limit: Duration,
    ) -> Result<(Self, Hello)> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {what}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin for the world process")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout for the world process")?;
        let mut world = Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        let line = world
            .read_line(ready_limit)
            .await
            .map_err(|e| format!("{what} not ready: {e}"))?;
        let hello =
            serde_json::from_str(&line).map_err(|e| format!("world hello {line:?}: {e}"))?;
        Ok((world, hello))
    }

    /// The world's counters and costs now.
    pub(crate) async fn stats(&mut self) -> Result<WorldStats> {
        let stdin = self.stdin.as_mut().ok_or("the world's stdin is closed")?;
        stdin
            .write_all(b"stats\n")
            .await
            .and(stdin.flush().await)
            .map_err(|e| format!("world stdin: {e}"))?;
        let line = self.read_line(ANSWER_LIMIT).await?;
        serde_json::from_str(&line).map_err(|e| format!("world stats {line:?}: {e}"))
    }

    /// Closes stdin and waits for a clean exit.
    pub(crate) async fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(EXIT_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the world process exited with {status}")),
            Ok(Err(e)) => Err(format!("world process: {e}")),
            Err(_) => Err(format!(
                "the world process did not exit within {EXIT_LIMIT:?} of EOF (killed)"
            )),
        }
    }

    async fn read_line(&mut self, limit: Duration) -> Result<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(limit, self.stdout.read_line(&mut line))
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
            .map_err(|e| format!("world stdout: {e}"))?;
        if read == 0 {
            let status = self.child.try_wait().ok().flatten();
            return Err(format!(
                "the world process closed its stdout (exit status: {status:?}); see its stderr above"
            ));
        }
        Ok(line.trim_end().to_owned())
    }
}
