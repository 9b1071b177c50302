//! The stream output: writes batches to stdout, a file or a writer. Once that breaks
//! (a closed pipe, a full disk) nothing more is written and nothing is spooled: stdout
//! and file mode never replay a spool (SPEC §3.1), so the batches are counted as not
//! written and the run shuts down.

use std::io::{self, Write as _};
use std::mem;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use super::all_ended;
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

/// Writes batches to stdout, a file or a writer; counts them as not written once
/// that breaks.
pub(super) struct StreamOutput {
    /// `None` once the output broke.
    pub(super) writable: Option<Writable>,
    /// The next CSV batch starts with the header (new stream or empty file); shared
    /// with a later output that continues this stream.
    pub(super) header_needed: Arc<AtomicBool>,
    pub(super) format: Format,
    pub(super) buf: Vec<u8>,
    /// Why the output broke, once it did.
    pub(super) broken: Option<String>,
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
            if let Some(reason) = &self.broken {
                self.shared.not_written(sealed, reason);
                continue;
            }
            self.buf.clear();
            let header = self.format == Format::Csv && self.header_needed.load(Ordering::Relaxed);
            let written = match self.format.encode_with_status(
                &sealed.batch,
                header,
                self.shared.status_columns,
                &mut self.buf,
            ) {
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
                    tracing::warn!(%error, "output closed; this and every later batch is not written (nothing is spooled in stdout or file mode)");
                    self.shared.not_written(sealed, &error);
                    self.broken = Some(error);
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
