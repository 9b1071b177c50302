//! A real `redis-server` per test, on a free loopback port, in its own directory.
//!
//! Never the machine's Redis: [`RedisServer::start`] spawns `redis-server` (it must be
//! on PATH) bound to 127.0.0.1 on a port no one uses, waits until it answers `PING`,
//! and kills it when dropped. [`RedisServer::restart`] brings it back on the same
//! port and directory, so with AOF on (the default here) the data survives.

use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How to start a [`RedisServer`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// Append-only file on (survives a restart).
    pub appendonly: bool,
    /// `maxmemory` in bytes with `noeviction` (writes fail with OOM past it).
    pub maxmemory: Option<u64>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            appendonly: true,
            maxmemory: None,
        }
    }
}

/// A running `redis-server` owned by the test.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with AOF on.
    pub fn start() -> io::Result<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: RedisOptions) -> io::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("spyder-testkit-redis-")
            .tempdir()?;
        let mut server = Self {
            port,
            dir,
            options,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`, the form `REDIS_ADDR` takes.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (AOF lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id, while it runs (to stop it with SIGSTOP in a test:
    /// a frozen server answers nothing, unlike a dead one that refuses at once).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL); its port stays reserved for [`RedisServer::restart`].
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// Runs one command and returns the raw RESP reply (for assertions in tests).
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes())?;
        read_reply(&mut stream)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                if self.options.appendonly { "yes" } else { "no" },
            ])
            .args([
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ]);
        if let Some(bytes) = self.options.maxmemory {
            cmd.arg("--maxmemory")
                .arg(bytes.to_string())
                .args(["--maxmemory-policy", "noeviction"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("redis-server (is it on PATH?): {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if self
                .command(&["PING"])
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not answer PING", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A port nothing listens on right now (bind to 0, read it, release it).
fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(l.local_addr()?.port())
}

/// Reads one RESP reply, enough for simple commands.
/// Reads one complete RESP reply (however many reads it takes) and gives its raw text.
fn read_reply(stream: &mut TcpStream) -> io::Result<String> {
    let mut reader = io::BufReader::new(stream);
    let mut raw = Vec::new();
    read_value(&mut reader, &mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// Appends one RESP value to `raw`: a line for `+ - :`, a line and its bytes for `$`,
/// a line and its elements for `*`.
fn read_value(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> io::Result<()> {
    let start = raw.len();
    if reader.read_until(b'\n', raw)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-reply",
        ));
    }
    let line = String::from_utf8_lossy(&raw[start..]).trim_end().to_owned();
    let count = |text: &str| {
        text.parse::<i64>().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP length {text:?}: {e}"),
            )
        })
    };
    match line.split_at_checked(1) {
        Some(("$", len)) => {
            let len = count(len)?;
            if len >= 0 {
                let mut body = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
                reader.read_exact(&mut body)?;
                raw.extend_from_slice(&body);
            }
        }
        Some(("*", n)) => {
            for _ in 0..count(n)?.max(0) {
                read_value(reader, raw)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_keeps_data_across_a_restart() {
        let mut redis = RedisServer::start().expect("redis-server starts");
        assert_eq!(redis.command(&["SET", "k", "v"]).expect("set"), "+OK\r\n");
        redis.restart().expect("restarts");
        assert_eq!(redis.command(&["GET", "k"]).expect("get"), "$1\r\nv\r\n");
        redis.kill().expect("kill");
        assert!(redis.command(&["PING"]).is_err(), "down after kill");
    }

    #[test]
    fn maxmemory_makes_writes_fail() {
        let redis = RedisServer::start_with(RedisOptions {
            appendonly: false,
            maxmemory: Some(1),
        })
        .expect("redis-server starts");
        let reply = redis.command(&["LPUSH", "q", "x"]).expect("reply");
        assert!(reply.starts_with("-OOM"), "{reply}");
    }
}
