//! The spool: undeliverable batches as JSON files, written atomically (SPEC §3.11).
//!
//! A file is named `<UTC YYYYMMDDTHHMMSS.nnnnnnnnn>-<batch_id>.json`, so name order is
//! age order. It is written as `.<name>.tmp`, fsynced, renamed and the directory
//! fsynced, so a crash leaves either a whole file or a `.tmp` that the next start
//! deletes. [`Spool`]'s calls block; run them on a blocking thread ([`blocking`]).
//!
//! The spool order (SPEC §3.11): a batch whose spool write failed stays in memory
//! (bounded) and goes first at the next write, so a full disk for a while loses
//! nothing and the spool keeps the batches' order.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use spyder_model::Batch;
use time::OffsetDateTime;

use crate::shared::{Sealed, Shared};
use crate::status::Delivery;

/// Suffix an undecodable spool file is renamed with.
const BAD_SUFFIX: &str = ".bad";

/// A spool directory.
#[derive(Clone, Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ingest mode: creates the directory (0755), proves it writable and, when
    /// `delete_stale_tmp` (at startup), deletes stale `.tmp` files. Returns how many
    /// spool files wait for replay.
    pub(crate) fn prepare(&self, delete_stale_tmp: bool) -> io::Result<usize> {
        create_dir(&self.dir)?;
        let check = self.dir.join(".write-check.tmp");
        File::create(&check)?.sync_all()?;
        fs::remove_file(&check)?;
        if !delete_stale_tmp {
            return Ok(self.list()?.len());
        }
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") && entry.file_type()?.is_file() {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "deleted stale spool temp file")
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.list()?.len())
    }

    /// Writes `batch` as one JSON line and returns the file's path.
    pub(crate) fn write(&self, batch: &Batch) -> io::Result<PathBuf> {
        create_dir(&self.dir)?;
        let mut bytes = Vec::with_capacity(4096);
        serde_json::to_writer(&mut bytes, batch)?;
        bytes.push(b'\n');
        let name = format!(
            "{}-{}.json",
            utc_stamp(OffsetDateTime::now_utc()),
            batch.batch_id
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(name);
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    /// Spool files waiting for replay, oldest (smallest name) first.
    pub(crate) fn list(&self) -> io::Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && is_spool_name(name)
                && entry.file_type()?.is_file()
            {
                names.push(name.to_owned());
            }
        }
        names.sort_unstable();
        Ok(names.into_iter().map(|n| self.dir.join(n)).collect())
    }

    /// Renames an undecodable file to `<name>.bad` so that replay skips it from now on.
    pub(crate) fn mark_bad(path: &Path) -> io::Result<PathBuf> {
        let mut bad = path.as_os_str().to_owned();
        bad.push(BAD_SUFFIX);
        let bad = PathBuf::from(bad);
        fs::rename(path, &bad)?;
        Ok(bad)
    }
}

/// Runs `f` on a blocking thread; a panic there becomes an I/O error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Writes `sealed` to the spool and resolves its receipts. Batches whose spool write
/// failed before go first; a failed write keeps the batch in memory for the next try
/// (bounded), so a full disk for a while loses nothing.
pub(crate) async fn spool_batch(spool: &Spool, shared: &Shared, sealed: Sealed) {
    let mut waiting = shared.take_unspooled();
    waiting.push_back(sealed);
    spool_in_order(spool, shared, waiting).await;
}

/// Retries the batches whose spool write failed (a replay round, shutdown).
pub(crate) async fn retry_unspooled(spool: &Spool, shared: &Shared) {
    let waiting = shared.take_unspooled();
    if !waiting.is_empty() {
        spool_in_order(spool, shared, waiting).await;
    }
}

/// Spools `waiting` oldest first; at the first failed write, the rest is held again.
async fn spool_in_order(spool: &Spool, shared: &Shared, mut waiting: VecDeque<Sealed>) {
    while let Some(sealed) = waiting.pop_front() {
        let batch_id = sealed.batch.batch_id;
        let writer = spool.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = writer.write(&sealed.batch);
            (sealed, result)
        })
        .await;
        match joined {
            Ok((sealed, Ok(path))) => {
                shared.on_spooled();
                tracing::debug!(%batch_id, file = %path.display(), "batch spooled");
                sealed.resolve(|| Ok(Delivery::Spooled));
            }
            Ok((sealed, Err(e))) => {
                shared.on_spool_error();
                waiting.push_front(sealed);
                tracing::error!(%batch_id, spool_dir = %spool.dir().display(), error = %e, held = waiting.len(), "cannot spool batch; kept in memory for the next try");
                shared.hold_unspooled(waiting, spool.dir(), &e.to_string());
                return;
            }
            Err(e) => {
                // The receipts were dropped with the task: they resolve as `Closed`.
                shared.on_spool_error();
                shared.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%batch_id, error = %e, "spool task failed; the batch's records are lost");
            }
        }
    }
}

/// A finished spool file: `<stamp>-<id>.json`, not hidden (temp files are).
fn is_spool_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".json")
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o755);
    }
    builder.create(dir)
}

/// `YYYYMMDDTHHMMSS.nnnnnnnnn` in UTC.
fn utc_stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_fixed_width_utc() {
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(1_723_300_000_000_000_042).expect("in range");
        assert_eq!(utc_stamp(t), "20240810T142640.000000042");
    }

    #[test]
    fn only_finished_json_files_are_spool_files() {
        assert!(is_spool_name("20240810T142640.000000042-0190.json"));
        assert!(!is_spool_name(".20240810T142640.000000042-0190.json.tmp"));
        assert!(!is_spool_name("20240810T142640.000000042-0190.json.bad"));
    }
}
