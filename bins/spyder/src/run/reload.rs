//! Live changes (SPEC §2.10): the listeners that apply Tier 1 and Tier 2 keys to the
//! running components, and SIGHUP, which re-reads the file.

use std::sync::Arc;

use spyder_config::{ConfigChange, LiveConfig};

use super::pool::resize;
use super::{EXTRA_HELD_LEASES, Options, Shared};
use crate::settings::{emitter_config, probe_settings, sink_settings};

/// Tier 1 keys take effect in the running process (SPEC §2.10); each task reads one
/// snapshot, so a change applies from the next task on.
pub(super) fn subscribe(shared: &Arc<Shared>, options: &Options) {
    let live = &shared.live;
    let weak = Arc::downgrade(shared);
    live.subscribe("workers", move |change: &ConfigChange| {
        if change.touches("crawling.concurrency")
            && let Some(shared) = weak.upgrade()
        {
            let target = change.new.crawling.concurrency as usize;
            tracing::info!(concurrency = target, "worker pool resized");
            spyder_probe::resources::warn_if_short(
                &spyder_probe::resources::descriptor_limit(),
                target,
                change.new.dns.sockets as usize,
            );
            shared
                .queue
                .set_capacity(target.saturating_add(EXTRA_HELD_LEASES));
            resize(&shared, target);
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("probe", move |change: &ConfigChange| {
        if let Some(shared) = weak.upgrade() {
            shared
                .probe
                .update_settings(Arc::new(probe_settings(&change.new)));
            shared
                .sink_settings
                .store(Arc::new(sink_settings(&change.new)));
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("traces", move |change: &ConfigChange| {
        if change.touches("telemetry.otel_sample_ratio")
            && let Some(shared) = weak.upgrade()
            && let Some(traces) = &shared.traces
        {
            traces.set_sample_ratio(change.new.telemetry.otel_sample_ratio);
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("queue", move |change: &ConfigChange| {
        if change.touches("redis")
            && let Some(shared) = weak.upgrade()
        {
            shared.queue.set_lease_settings(
                change.new.redis.lease_timeout,
                change.new.redis.max_attempts,
            );
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("emitter", move |change: &ConfigChange| {
        let Some(shared) = weak.upgrade() else { return };
        if change.touches("batch") {
            let limits = emitter_config(&change.new).batch_limits();
            if let Err(e) = shared.emitter.set_batch_limits(limits) {
                tracing::error!(error = %e, "batch settings not applied");
            }
        }
        if change.touches("output") {
            // Opening the new output may touch the disk or the network: switch in the
            // background, at the next batch boundary.
            let config = emitter_config(&change.new);
            let settings = spyder_emitter::OutputSettings {
                format: config.format,
                destination: config.destination,
                spool_dir: config.spool_dir,
            };
            let emitter = shared.emitter.clone();
            tokio::spawn(async move {
                match emitter.reconfigure_output(settings).await {
                    Ok(()) => tracing::info!("output switched"),
                    Err(e) => {
                        tracing::error!(error = %e, "output not switched; the old output stays")
                    }
                }
            });
        }
    });
    let logs = options.logs.clone();
    live.subscribe("logging", move |change: &ConfigChange| {
        if change.touches("logging")
            && let Err(e) = logs.apply(change.new.logging.level, change.new.logging.format)
        {
            tracing::error!(error = %e, "cannot switch logging");
        }
    });
}

/// SIGHUP re-reads the file and re-applies env and flags (SPEC §2.10); never exits.
///
/// `config_error` holds why the last reload was refused, until one succeeds.
pub(super) fn spawn_reload_on_sighup(
    live: LiveConfig,
    config_error: Arc<std::sync::Mutex<Option<String>>>,
) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("signals: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let live = live.clone();
            // Reading the file is blocking I/O.
            let result = tokio::task::spawn_blocking(move || live.reload()).await;
            let refused = match &result {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Ok(mut error) = config_error.lock() {
                *error = refused;
            }
            match result {
                Ok(Ok(applied)) => {
                    for warning in &applied.warnings {
                        tracing::warn!("{warning}");
                    }
                    if let Some(message) = applied.skipped_message() {
                        tracing::error!("{message}");
                    }
                    let changed: Vec<&str> = applied.changed.iter().map(|k| k.path).collect();
                    tracing::info!(changed = ?changed, "config reloaded");
                }
                Ok(Err(e)) => tracing::error!("config reload failed, nothing changed: {e}"),
                Err(e) => tracing::error!("config reload failed: {e}"),
            }
        }
    });
    Ok(())
}
