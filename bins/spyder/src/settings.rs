//! Where config keys become the library crates' own settings: the one mapping from
//! [`Config`] to components (ripgrep's `HiArgs` is the model). Library crates know
//! no config key; live changes use the same functions (`run/reload.rs`).

use std::path::{Path, PathBuf};

use spyder_config::{Config, OutputFormat, TrustRoots};
use spyder_emitter::{Destination, EmitterConfig, Format, IngestConfig, MtlsFiles};
use spyder_probe::{DnsSettings, ProbeConfig, ProbeSettings, TlsRoots};
use spyder_sink::SinkSettings;

/// Everything needed to build a [`spyder_probe::Probe`].
pub fn probe_config(config: &Config) -> ProbeConfig {
    let mut probe = ProbeConfig::new(probe_settings(config));
    probe.probe_id = config.probe.clone();
    probe.run_id = config.run.clone();
    probe.tls_roots = match &config.crawling.tls_roots {
        TrustRoots::Webpki => TlsRoots::Webpki,
        TrustRoots::System => TlsRoots::System,
        TrustRoots::PemFile(path) => TlsRoots::PemFile(path.clone()),
    };
    probe.dns_sockets = config.dns.sockets as usize;
    probe.dns_cache_size = config.dns.cache_size as usize;
    probe
}

/// The probe's hot-reloadable settings (Tier 1 `crawling.*`, `dns.*`, `ua`,
/// `exclude_tlds`).
pub fn probe_settings(config: &Config) -> ProbeSettings {
    let c = &config.crawling;
    let mut s = ProbeSettings::new(DnsSettings::new(config.dns.servers.clone()));
    s.user_agent = config.ua.clone();
    s.exclude_tlds = config.exclude_tlds.clone();
    s.rate_per_host = c.rate_per_host;
    s.rate_burst = c.rate_burst;
    s.rate_global = f64::from(c.rate_global);
    s.max_conns_per_ip = usize::try_from(c.max_conns_per_ip).unwrap_or(usize::MAX);
    s.task_timeout = c.task_timeout;
    s.dns_timeout = c.dns_timeout;
    s.tls_timeout = c.tls_timeout;
    s.http_timeout = c.http_timeout;
    s.body_max_bytes = usize::try_from(c.body_max_bytes).unwrap_or(usize::MAX);
    s.max_redirects = c.max_redirects;
    s.http_fallback = c.http_fallback;
    s.allow_private = c.allow_private;
    s.allow_cidrs = c.allow_cidrs.clone();
    s.https_port = c.https_port;
    s.http_port = c.http_port;
    s.redirect_ports = c.redirect_ports.clone();
    s.dns.query_timeout = config.dns.query_timeout;
    s.dns.retries = config.dns.retries;
    s.dns.max_inflight = config.dns.max_inflight as usize;
    s
}

/// The discovery filter's settings (SPEC §3.10).
pub fn sink_settings(config: &Config) -> SinkSettings {
    SinkSettings {
        exclude_tlds: config.exclude_tlds.clone(),
        allow_private: config.crawling.allow_private,
        max_domains: config.crawling.max_domains,
    }
}

/// The emitter's settings: `output.*`, `batch.*`, `mtls.*`.
pub fn emitter_config(config: &Config) -> EmitterConfig {
    let out = &config.output;
    let destination = if !out.ingest.is_empty() {
        Destination::Ingest(IngestConfig {
            url: out.ingest.clone(),
            spool_dir: out.spool_dir.clone(),
            mtls: MtlsFiles {
                cert: non_empty(&config.mtls.cert),
                key: non_empty(&config.mtls.key),
                ca: non_empty(&config.mtls.ca),
            },
        })
    } else if !out.file.as_os_str().is_empty() {
        Destination::File(out.file.clone())
    } else {
        Destination::Stdout
    };
    EmitterConfig {
        probe_id: config.probe.clone(),
        run_id: config.run.clone(),
        format: match out.format {
            OutputFormat::Json => Format::Json,
            OutputFormat::Jsonl => Format::Jsonl,
            OutputFormat::Csv => Format::Csv,
        },
        destination,
        spool_dir: out.spool_dir.clone(),
        max_edges: config.batch.max_edges as usize,
        flush_interval: config.batch.flush_interval,
        node_threshold_ratio: config.batch.node_threshold_ratio,
        status_records: config.output.status_records,
    }
}

fn non_empty(p: &Path) -> Option<PathBuf> {
    (!p.as_os_str().is_empty()).then(|| p.to_path_buf())
}
