//! Resuming a file-mode run (`-resume FILE`, as httpx and dnsx have it): where the
//! input stood and which of the hosts read were not finished yet.
//!
//! [`ResumeTracker`] follows a run: the input reader says which line it consumed and
//! which host it queued ([`ResumeTracker::queued`]), a task says when a host's records
//! are safe ([`ResumeTracker::finished`]). [`ResumeTracker::checkpoint`] takes both
//! at one instant, so a [`Checkpoint`] never claims a line whose host is neither
//! finished nor pending. It is written atomically ([`Checkpoint::save`]: temp file,
//! fsync, rename, directory fsync), so a SIGKILL leaves the previous checkpoint or
//! the new one, never a torn file.
//!
//! A run started again with the checkpoint skips the lines it covers and crawls its
//! pending hosts first: every host of the file is crawled at least once, and none
//! that finished before the checkpoint is crawled again.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use spyder_model::HostName;

/// The checkpoint format's version; a file of another version is refused.
const VERSION: u32 = 1;

/// What a resumed run needs: the input position and the hosts not finished.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format version (1).
    pub version: u32,
    /// The domains file the run reads, as given.
    pub domains: String,
    /// Every line up to this one (1-based, inclusive) was consumed: its host was
    /// queued (and is finished or in `pending`) or the line was skipped as invalid.
    pub line: u64,
    /// Hosts of consumed lines whose records are not safe yet (queued, in flight or
    /// waiting for their batch), in the order they were read.
    pub pending: Vec<String>,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The file exists but cannot be read or is not a checkpoint.
    #[error("-resume {path}: cannot use it: {reason}; remove it to start over")]
    Unreadable {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint was written for another domains file.
    #[error(
        "-resume {path}: it was written for -domains {recorded:?}, not {given:?}; use the same domains file or remove it to start over"
    )]
    OtherInput {
        /// The checkpoint file.
        path: PathBuf,
        /// The domains file it records.
        recorded: String,
        /// The domains file of this run.
        given: String,
    },
}

impl Checkpoint {
    /// Reads the checkpoint at `path` for a run over `domains`; `None` when there is
    /// none yet (a first run).
    pub fn load(path: &Path, domains: &str) -> Result<Option<Self>, ResumeError> {
        let unreadable = |reason: String| ResumeError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(e.to_string())),
        };
        let checkpoint: Self =
            serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if checkpoint.version != VERSION {
            return Err(unreadable(format!(
                "version {} (this spyder writes {VERSION})",
                checkpoint.version
            )));
        }
        if checkpoint.domains != domains {
            return Err(ResumeError::OtherInput {
                path: path.to_path_buf(),
                recorded: checkpoint.domains,
                given: domains.to_owned(),
            });
        }
        Ok(Some(checkpoint))
    }

    /// Writes the checkpoint to `path` atomically: a temp file beside it, fsynced,
    /// renamed over it, and the directory fsynced. Blocks; run it on a blocking thread.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut bytes = serde_json::to_vec(self)?;
        bytes.push(b'\n');
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    }
}

/// Follows a run for its checkpoints; shared by the input reader and the tasks.
#[derive(Debug)]
pub struct ResumeTracker {
    domains: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    line: u64,
    /// Host → how many of its queued copies are not finished.
    pending: HashMap<HostName, u32>,
    /// Read order of the pending hosts (may hold finished ones; filtered on save).
    order: Vec<HostName>,
    /// Changed since the last checkpoint.
    dirty: bool,
}

impl ResumeTracker {
    /// A tracker for a run over `domains`, continuing `from` when resuming.
    pub fn new(domains: &str, from: Option<&Checkpoint>) -> Self {
        let mut state = State {
            line: from.map_or(0, |c| c.line),
            ..State::default()
        };
        // The resumed pending hosts are queued again (with `queued`) by the reader.
        state.dirty = from.is_none();
        Self {
            domains: domains.to_owned(),
            state: Mutex::new(state),
        }
    }

    /// `host` (from `line`, or a resumed pending host with `line` = `None`) is about
    /// to be queued: it is pending until [`ResumeTracker::finished`].
    pub fn queued(&self, host: &HostName, line: Option<u64>) {
        let Ok(mut s) = self.state.lock() else { return };
        let count = s.pending.entry(host.clone()).or_insert(0);
        *count = count.saturating_add(1);
        if *count == 1 {
            s.order.push(host.clone());
        }
        if let Some(line) = line {
            s.line = s.line.max(line);
        }
        s.dirty = true;
    }

    /// `line` was consumed without queueing anything (an invalid line).
    pub fn skipped(&self, line: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.line = s.line.max(line);
        s.dirty = true;
    }

    /// One queued copy of `host` is finished: its records are safe (or it needed no
    /// crawl).
    pub fn finished(&self, host: &HostName) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(count) = s.pending.get_mut(host) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                s.pending.remove(host);
            }
            s.dirty = true;
        }
    }

    /// The state now, when it changed since the last call (or `force`).
    pub fn checkpoint(&self, force: bool) -> Option<Checkpoint> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        if !s.dirty && !force {
            return None;
        }
        s.dirty = false;
        let State { pending, order, .. } = &mut *s;
        order.retain(|h| pending.contains_key(h));
        let mut hosts = Vec::with_capacity(order.len());
        for host in order.iter() {
            let copies = pending.get(host).copied().unwrap_or(0);
            for _ in 0..copies {
                hosts.push(host.as_str().to_owned());
            }
        }
        Some(Checkpoint {
            version: VERSION,
            domains: self.domains.clone(),
            line: s.line,
            pending: hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> HostName {
        HostName::parse(s, spyder_model::NameKind::Strict).expect("host")
    }

    #[test]
    fn a_checkpoint_holds_the_line_and_the_unfinished_hosts_in_read_order() {
        let t = ResumeTracker::new("d.txt", None);
        t.queued(&host("a.example"), Some(1));
        t.skipped(2);
        t.queued(&host("b.example"), Some(3));
        t.queued(&host("a.example"), Some(4));
        t.finished(&host("a.example"));
        let c = t.checkpoint(false).expect("changed");
        assert_eq!(c.line, 4);
        assert_eq!(c.pending, ["a.example", "b.example"]);
        assert!(t.checkpoint(false).is_none(), "unchanged");
        t.finished(&host("a.example"));
        t.finished(&host("b.example"));
        t.finished(&host("never.example"));
        let c = t.checkpoint(false).expect("changed");
        assert!(c.pending.is_empty());
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_another_input() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("resume.json");
        assert!(Checkpoint::load(&path, "d.txt").expect("none").is_none());
        let c = Checkpoint {
            version: VERSION,
            domains: "d.txt".into(),
            line: 7,
            pending: vec!["x.example".into()],
        };
        c.save(&path).expect("saved");
        assert_eq!(Checkpoint::load(&path, "d.txt").expect("ok"), Some(c));
        assert!(matches!(
            Checkpoint::load(&path, "other.txt"),
            Err(ResumeError::OtherInput { .. })
        ));
        fs::write(&path, b"{not json").expect("write");
        assert!(matches!(
            Checkpoint::load(&path, "d.txt"),
            Err(ResumeError::Unreadable { .. })
        ));
        let left: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temp file left");
    }
}
