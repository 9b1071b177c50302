//! The stream output: writes batches to stdout, a file or a writer, and spools every
//! batch once that breaks.

use std::io::{self, Write as _};
use std::mem;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use super::all_ended;
use super::spool::{Spool, spool_batch};
use crate::Format;
use crate::mode::{Mode, OnAbort, OnDrain, Raced, race};
use crate::shared::{Sealed, Shared};
use crate::status::Delivery;

/// Opens `path` for appending; also tells whether it is empty (a CSV header is due).
pub(super) async fn open_append(path: &Path) -> io::Result<(std::fs::File, bool)> {
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .await?;
    let empty = file.metadata().await?.len() == 0;
    Ok((file.into_std().await, empty))
}

/// fsyncs `file` when it is a regular file. Devices and pipes given as `output.file`
/// (`/dev/null`, a FIFO) cannot be fsynced (EINVAL) and need not be: their writes are
/// already as durable as they get.
fn sync_if_regular(file: &std::fs::File) -> io::Result<()> {
    if file.metadata()?.is_file() {
        file.sync_data()
    } else {
        Ok(())
    }
}

/// Where a stream output writes.
pub(super) enum Writable {
    /// Appended to, fsynced per batch; written on a blocking thread.
    File(std::fs::File),
    /// stdout or a test writer; flushed per batch.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

/// Writes batches to stdout, a file or a writer; spools once that breaks.
pub(super) struct StreamOutput {
    /// `None` once the output broke.
    pub(super) writable: Option<Writable>,
    /// The next CSV batch starts with the header (new stream or empty file); shared
    /// with a later output that continues this stream.
    pub(super) header_needed: Arc<AtomicBool>,
    pub(super) format: Format,
    pub(super) buf: Vec<u8>,
    pub(super) spool: Spool,
    pub(super) shared: Arc<Shared>,
    pub(super) mode: watch::Receiver<Mode>,
    /// A newer output took over: a break no longer marks the output closed.
    pub(super) retired: Arc<AtomicBool>,
}

impl StreamOutput {
    /// Writes every batch it gets, once the `predecessors` (older stream outputs) ended.
    pub(super) async fn run(
        mut self,
        mut batches: mpsc::UnboundedReceiver<Sealed>,
        predecessors: Vec<watch::Receiver<bool>>,
    ) {
        all_ended(predecessors).await;
        while let Some(sealed) = batches.recv().await {
            if self.writable.is_none() {
                spool_batch(&self.spool, &self.shared, sealed).await;
                continue;
            }
            self.buf.clear();
            let header = self.format == Format::Csv && self.header_needed.load(Ordering::Relaxed);
            let written = match self.format.encode(&sealed.batch, header, &mut self.buf) {
                Ok(()) => self.write().await,
                Err(e) => Err(format!("cannot encode batch: {e}")),
            };
            match written {
                Ok(()) => {
                    if header {
                        self.header_needed.store(false, Ordering::Relaxed);
                    }
                    self.shared.on_delivered();
                    sealed.resolve(|| Ok(Delivery::Written));
                }
                Err(error) => {
                    self.writable = None;
                    if !self.retired.load(Ordering::Relaxed) {
                        self.shared.closed.send_replace(true);
                    }
                    tracing::warn!(%error, "output closed; spooling this and every later batch");
                    spool_batch(&self.spool, &self.shared, sealed).await;
                }
            }
        }
    }

    /// Writes and flushes `buf` (and fsyncs a file); an error leaves `writable` empty.
    async fn write(&mut self) -> Result<(), String> {
        let Some(writable) = self.writable.take() else {
            return Err("output already closed".to_owned());
        };
        let cut_short = || "write did not finish before the shutdown deadline".to_owned();
        match writable {
            Writable::File(mut file) => {
                let buf = mem::take(&mut self.buf);
                let task = tokio::task::spawn_blocking(move || {
                    let result = file.write_all(&buf).and_then(|()| sync_if_regular(&file));
                    (file, buf, result)
                });
                match race(
                    &mut self.mode,
                    None,
                    OnDrain::Deadline,
                    OnAbort::Deadline,
                    task,
                )
                .await
                {
                    Raced::Done(Ok((file, buf, result))) => {
                        self.buf = buf;
                        result.map_err(|e| e.to_string())?;
                        self.writable = Some(Writable::File(file));
                        Ok(())
                    }
                    Raced::Done(Err(e)) => Err(e.to_string()),
                    Raced::TimedOut | Raced::Cut => Err(cut_short()),
                }
            }
            Writable::Writer(mut writer) => {
                let buf = &self.buf;
                let write = async {
                    writer.write_all(buf).await?;
                    writer.flush().await
                };
                match race(
                    &mut self.mode,
                    None,
                    OnDrain::Deadline,
                    OnAbort::Deadline,
                    write,
                )
                .await
                {
                    Raced::Done(Ok(())) => {
                        self.writable = Some(Writable::Writer(writer));
                        Ok(())
                    }
                    Raced::Done(Err(e)) => Err(e.to_string()),
                    Raced::TimedOut | Raced::Cut => Err(cut_short()),
                }
            }
        }
    }
}
