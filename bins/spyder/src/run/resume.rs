//! `-resume FILE` in the run: opening the checkpoint, writing it at most once a
//! second while the run goes, and its last state at the end (removed once the whole
//! input was crawled, so the next run with the same flag starts over).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spyder_config::Config;
use spyder_queue::{Checkpoint, ResumeTracker};

/// How often a changed checkpoint is written.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A run's checkpoint: where it is written and what it follows.
pub(super) struct Resume {
    pub(super) path: PathBuf,
    pub(super) tracker: Arc<ResumeTracker>,
    /// What the run starts from (`None` on a first run).
    pub(super) from: Option<Checkpoint>,
}

impl Resume {
    /// Opens `path` for a run of `config`; refuses what cannot be resumed.
    pub(super) fn open(path: &Path, config: &Config) -> Result<Self, String> {
        if !config.redis.queue_addr.is_empty() {
            return Err(format!(
                "-resume {}: queue mode keeps its own state in Redis (redis.queue_addr); drop -resume",
                path.display()
            ));
        }
        if config.domains.is_empty() || config.domains == "-" {
            return Err(format!(
                "-resume {}: needs -domains FILE (stdin cannot be read again)",
                path.display()
            ));
        }
        let from = Checkpoint::load(path, &config.domains).map_err(|e| e.to_string())?;
        match &from {
            Some(c) => tracing::info!(
                resume = %path.display(),
                lines_done = c.line,
                pending = c.pending.len(),
                "resuming: lines up to the checkpoint are skipped, its pending hosts crawled first"
            ),
            None => {
                tracing::info!(resume = %path.display(), "no checkpoint yet; starting from the first line")
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            tracker: Arc::new(ResumeTracker::new(&config.domains, from.as_ref())),
            from,
        })
    }
}

/// Writes the checkpoint whenever it changed, at most every [`CHECKPOINT_EVERY`].
pub(super) async fn keep_writing(path: PathBuf, tracker: Arc<ResumeTracker>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(checkpoint) = tracker.checkpoint(false) {
            save(&path, checkpoint).await;
        }
    }
}

/// The end of the run: the last state, or no file once the input was crawled whole.
pub(super) async fn finish(path: &Path, tracker: &ResumeTracker, input_done: bool) {
    let Some(checkpoint) = tracker.checkpoint(true) else {
        return;
    };
    if input_done && checkpoint.pending.is_empty() {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {
                tracing::info!(resume = %path.display(), "the whole input was crawled; checkpoint removed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(resume = %path.display(), error = %e, "cannot remove the checkpoint")
            }
        }
        return;
    }
    let pending = checkpoint.pending.len();
    save(path, checkpoint).await;
    tracing::info!(resume = %path.display(), pending, "checkpoint written; run again with the same -resume to go on");
}

async fn save(path: &Path, checkpoint: Checkpoint) {
    let target = path.to_path_buf();
    let saved = tokio::task::spawn_blocking(move || checkpoint.save(&target)).await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(resume = %path.display(), error = %e, "cannot write the checkpoint")
        }
        Err(e) => tracing::warn!(resume = %path.display(), error = %e, "checkpoint write failed"),
    }
}
