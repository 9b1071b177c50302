//! OpenTelemetry traces (SPEC §3.14, `telemetry.otel_*`): spans of the `tracing`
//! crate, bridged to the OpenTelemetry SDK and exported over OTLP/HTTP (protobuf).
//!
//! The span processor is ours, not the SDK's batch processor, so that nothing a
//! collector does can slow the crawl and every lost span is counted: a span that
//! ends goes into a bounded queue without waiting ([`SPAN_QUEUE`]); a full queue, or
//! an export that fails or outlasts [`EXPORT_TIMEOUT`], drops spans and counts them
//! (`spyder_otel_spans_dropped_total`, [`Traces::dropped`]). One task exports a
//! batch of up to [`MAX_BATCH`] spans at a time, at least every second.
//!
//! Sampling is by trace id with a ratio that changes live
//! ([`Traces::set_sample_ratio`], `telemetry.otel_sample_ratio`); child spans follow
//! their root.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::trace::{Link, SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample, Span, SpanData,
    SpanExporter as _, SpanProcessor,
};
use tokio::sync::{mpsc, oneshot};

/// Spans waiting for export; more are dropped (and counted) rather than waited for.
pub const SPAN_QUEUE: usize = 4096;
/// Spans per OTLP request at most.
pub const MAX_BATCH: usize = 512;
/// How long one export may take before its spans count as dropped.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// A partial batch waits at most this long.
const EXPORT_EVERY: Duration = Duration::from_secs(1);
/// Response bytes read from the collector.
const RESPONSE_LIMIT: usize = 64 * 1024;

/// What [`Traces::build`] needs: `telemetry.otel_*` as plain values.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TraceSettings {
    /// `telemetry.otel_endpoint`: `host:port`, or a URL; a URL without a path gets
    /// `/v1/traces`.
    pub endpoint: String,
    /// `telemetry.otel_insecure`: `http://` (true) or `https://` for an endpoint
    /// without a scheme.
    pub insecure: bool,
    /// `telemetry.otel_service`: the `service.name` resource attribute.
    pub service: String,
    /// `telemetry.otel_sample_ratio`: the share of tasks traced, 0 to 1.
    pub sample_ratio: f64,
}

impl TraceSettings {
    /// Settings for `endpoint`, all else at the defaults of the key table.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            insecure: true,
            service: "spyder-probe".to_owned(),
            sample_ratio: 1.0,
        }
    }

    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> String {
        let with_scheme = if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else {
            let scheme = if self.insecure { "http" } else { "https" };
            format!("{scheme}://{}", self.endpoint)
        };
        match with_scheme.split_once("://") {
            Some((_, rest)) if !rest.trim_end_matches('/').contains('/') => {
                format!("{}/v1/traces", with_scheme.trim_end_matches('/'))
            }
            _ => with_scheme,
        }
    }
}

/// Why traces could not start; the run goes on without them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The endpoint is not a URL the exporter takes.
    #[error("telemetry.otel_endpoint: {0}")]
    Endpoint(String),
}

/// The trace pipeline of a run.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    ratio: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    commands: mpsc::Sender<Command>,
    url: String,
}

enum Command {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// The export loop of a [`Traces`]: spawn it on the runtime ([`ExportTask::run`]).
/// Until it runs, ended spans wait in the bounded queue.
pub struct ExportTask(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl std::fmt::Debug for ExportTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportTask").finish_non_exhaustive()
    }
}

impl ExportTask {
    /// Exports until the [`Traces`] is dropped.
    pub async fn run(self) {
        self.0.await;
    }
}

impl Traces {
    /// Builds the pipeline; no runtime is needed until [`ExportTask::run`] is spawned,
    /// so the tracing layer can be installed with the subscriber, before the runtime.
    pub fn build(settings: &TraceSettings) -> Result<(Self, ExportTask), TraceError> {
        let url = settings.traces_url();
        url.parse::<http::Uri>()
            .map_err(|e| TraceError::Endpoint(format!("{url:?} is not a URL: {e}")))?;
        let resource = Resource::builder()
            .with_service_name(settings.service.clone())
            .build();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpClient::new())
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            // No retries: a failed batch is dropped and counted (the export loop), and
            // the queue behind it stays bounded. The library's retry backoff also
            // slept on the runtime thread without its `tokio` feature: with the
            // collector down a 10,000-domain crawl took 50.8 s instead of 6.9 s.
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|e| TraceError::Endpoint(e.to_string()))?;
        exporter.set_resource(&resource);
        let dropped = Arc::new(AtomicU64::new(0));
        let (commands, rx) = mpsc::channel(SPAN_QUEUE);
        let task = ExportTask(Box::pin(export_loop(exporter, rx, Arc::clone(&dropped))));
        let ratio = Arc::new(AtomicU64::new(clamp_ratio(settings.sample_ratio).to_bits()));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(LiveRatio(Arc::clone(
                &ratio,
            )))))
            .with_span_processor(BoundedProcessor {
                commands: commands.clone(),
                dropped: Arc::clone(&dropped),
            })
            .build();
        let traces = Self {
            provider,
            ratio,
            dropped,
            commands,
            url,
        };
        Ok((traces, task))
    }

    /// The `tracing` layer that records spyder's spans into this pipeline.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer())
    }

    /// The tracer spans are recorded with (for `tracing_opentelemetry::layer`).
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("spyder")
    }

    /// Where spans go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new sampling ratio (0 to 1) for the traces that start from now on.
    pub fn set_sample_ratio(&self, ratio: f64) {
        self.ratio
            .store(clamp_ratio(ratio).to_bits(), Ordering::Relaxed);
    }

    /// Spans dropped so far: the queue was full or their export failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports what is queued, waiting at most `budget` (shutdown, SPEC §3.14).
    pub async fn flush_within(&self, budget: Duration) {
        let (done, wait) = oneshot::channel();
        let asked = tokio::time::timeout(budget, self.commands.send(Command::Flush(done)));
        let Ok(Ok(())) = asked.await else { return };
        let _ = tokio::time::timeout(budget, wait).await;
    }
}

/// The context a W3C `traceparent` names (`00-<trace id>-<span id>-<flags>`), to be
/// the parent of a task's span; `None` when it is not a valid one.
pub fn parent_context(traceparent: &str) -> Option<Context> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The W3C `traceparent` of `span` (its trace and its own span id), when it is
/// traced; what a discovery queued by this task carries.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

fn clamp_ratio(ratio: f64) -> f64 {
    if ratio.is_nan() {
        1.0
    } else {
        ratio.clamp(0.0, 1.0)
    }
}

/// Samples root spans by trace id with the current ratio.
#[derive(Clone, Debug)]
struct LiveRatio(Arc<AtomicU64>);

impl ShouldSample for LiveRatio {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let ratio = f64::from_bits(self.0.load(Ordering::Relaxed));
        Sampler::TraceIdRatioBased(ratio).should_sample(
            parent_context,
            trace_id,
            name,
            span_kind,
            attributes,
            links,
        )
    }
}

/// Hands ended spans to the export task without ever waiting.
#[derive(Debug)]
struct BoundedProcessor {
    commands: mpsc::Sender<Command>,
    dropped: Arc<AtomicU64>,
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self
            .commands
            .try_send(Command::Span(Box::new(span)))
            .is_err()
        {
            count_dropped(&self.dropped, 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // The run flushes with `Traces::flush_within`, which can wait asynchronously.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn count_dropped(dropped: &AtomicU64, spans: usize) {
    let spans = spans as u64;
    dropped.fetch_add(spans, Ordering::Relaxed);
    spyder_model::telemetry::otel_spans_dropped().increment(spans);
}

/// Batches spans and exports them, one request at a time.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut commands: mpsc::Receiver<Command>,
    dropped: Arc<AtomicU64>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    let mut tick = tokio::time::interval(EXPORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= MAX_BATCH {
                        export(&exporter, &mut batch, &dropped).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    // What was queued before the flush came first.
                    while let Ok(Command::Span(span)) = commands.try_recv() {
                        batch.push(*span);
                        if batch.len() >= MAX_BATCH {
                            export(&exporter, &mut batch, &dropped).await;
                        }
                    }
                    export(&exporter, &mut batch, &dropped).await;
                    let _ = done.send(());
                }
                None => {
                    export(&exporter, &mut batch, &dropped).await;
                    return;
                }
            },
            _ = tick.tick() => export(&exporter, &mut batch, &dropped).await,
        }
    }
}

async fn export(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    dropped: &AtomicU64,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
    let count = spans.len();
    match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, spans = count, "span export failed; spans dropped");
            count_dropped(dropped, count);
        }
        Err(_) => {
            tracing::debug!(spans = count, "span export timed out; spans dropped");
            count_dropped(dropped, count);
        }
    }
}

/// The exporter's HTTP client: hyper with rustls (webpki roots), one idle
/// connection, bounded response reads.
#[derive(Debug)]
struct OtlpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl OtlpClient {
    fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = match tls {
            Ok(tls) => builder.with_tls_config(tls),
            // The ring provider supports the default versions; kept total anyway.
            Err(_) => builder.with_webpki_roots(),
        }
        .https_or_http()
        .enable_http1()
        .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Self { client }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(body));
        let response = tokio::time::timeout(EXPORT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| "OTLP request timed out")??;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, RESPONSE_LIMIT)
            .collect()
            .await?
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_url_gets_a_scheme_and_the_path() {
        let url = |endpoint: &str, insecure: bool| {
            let mut s = TraceSettings::new(endpoint);
            s.insecure = insecure;
            s.traces_url()
        };
        assert_eq!(
            url("collector:4318", true),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("collector:4318", false),
            "https://collector:4318/v1/traces"
        );
        assert_eq!(url("http://c:4318/", false), "http://c:4318/v1/traces");
        assert_eq!(
            url("https://c/otlp/v1/traces", true),
            "https://c/otlp/v1/traces"
        );
    }

    #[test]
    fn ratios_are_clamped() {
        assert_eq!(clamp_ratio(2.0), 1.0);
        assert_eq!(clamp_ratio(-1.0), 0.0);
        assert_eq!(clamp_ratio(f64::NAN), 1.0);
        assert_eq!(clamp_ratio(0.25), 0.25);
    }
}
