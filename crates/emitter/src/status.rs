//! What the emitter tells its caller: how records were made safe, and its counters.

/// How a batch's records were made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The ingest endpoint answered 2xx.
    Delivered,
    /// Written and flushed to stdout or the writer, or written, flushed and fsynced to the file.
    Written,
    /// Written (fsynced, renamed) to the spool directory.
    Spooled,
    /// The submitted records were empty: there was nothing to write.
    Empty,
}

/// A point-in-time view of the emitter, for `/health`, `/api/v1/stats` and the run loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitterStatus {
    /// The last ingest try (live or replay) failed.
    pub ingest_failing: bool,
    /// Batches answered 2xx by the ingest endpoint, or written to stdout/the file.
    pub batches_delivered: u64,
    /// Batches written to the spool.
    pub batches_spooled: u64,
    /// Spool files delivered by replay (and deleted).
    pub batches_replayed: u64,
    /// Spool files currently in the spool directory (`spyder_spool_files`).
    pub spool_files: u64,
    /// Spool writes that failed. The batch stays in memory for the next try (see
    /// `batches_unspooled`); it is lost only past the bound or at exit.
    pub spool_errors: u64,
    /// Batches in memory that neither reached the output nor the spool yet.
    pub batches_unspooled: u64,
    /// Batches given up: neither delivered nor spooled. Non-zero means records were lost.
    pub batches_lost: u64,
    /// stdout or the file broke; nothing is written since.
    pub output_closed: bool,
    /// Batches not written because stdout or the file broke (never spooled).
    pub batches_not_written: u64,
    /// The records (nodes and edges) in those batches.
    pub records_not_written: u64,
    /// The edges among those records.
    pub edges_not_written: u64,
}

/// What a shutdown or abort left behind: the final [`EmitterStatus`].
pub type ShutdownReport = EmitterStatus;
