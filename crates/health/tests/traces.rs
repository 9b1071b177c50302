//! The trace pipeline against a failing collector: a batch is POSTed once and
//! dropped (counted), never retried, and the runtime is never blocked.

use std::time::Duration;

use opentelemetry::trace::Tracer as _;
use spyder_health::traces::{TraceSettings, Traces};
use spyder_testkit::otlp::OtlpReceiver;

// One runtime thread: a blocking sleep in the export path (the exporter's retry
// backoff without its `tokio` feature) would stall the receiver and the flush.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_collector_gets_each_batch_once_and_its_spans_count_as_dropped() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.set_status(503);
    let (traces, task) = Traces::build(&TraceSettings::new(receiver.url())).unwrap();
    let export = tokio::spawn(task.run());
    let tracer = traces.tracer();
    for n in 0..3 {
        tracer.in_span(format!("span-{n}"), |_| {});
    }
    traces.flush_within(Duration::from_secs(10)).await;
    assert_eq!(traces.dropped(), 3, "the refused batch's spans");
    assert_eq!(receiver.requests(), 1, "one POST, no retries");
    assert!(receiver.spans().is_empty());
    drop(tracer);
    drop(traces);
    export.abort();
}
