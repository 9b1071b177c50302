//! `crawling.max_conns_per_ip` (SPEC §3.6 "Per address", issue 11 item 5): 200
//! domains on one hosting address, crawled 100 at a time, never have more than the
//! cap of connections open at that address, as the server itself counts them; and
//! every domain still completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spyder_probe::{Outcome, Probe, ProbeSettings};
use spyder_testkit::dns::{DnsServer, Zone};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The shared hosting address (no other test of this crate uses 127.9.0.0/16).
const SHARED: [u8; 4] = [127, 9, 0, 1];
const DOMAINS: usize = 200;
const CONCURRENCY: usize = 100;
/// Bound on the whole crawl of one configuration (a failure, not a timing goal).
const LIMIT: Duration = Duration::from_secs(120);

/// Connections open at the server now and at most.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    served: AtomicUsize,
}

/// One connection as the server counts it: from its accept until the root page's
/// response has been written or the client went away, whichever comes first. That
/// span lies inside the client's own (its connect starts before the accept, and it
/// closes only after reading the response), so a peak above the cap here is a peak
/// above the cap at the client, whatever order the server sees closes and accepts in.
struct Counted {
    gauge: Arc<Gauge>,
    open: bool,
}

impl Counted {
    fn new(gauge: &Arc<Gauge>) -> Self {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        Self {
            gauge: Arc::clone(gauge),
            open: true,
        }
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.gauge.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.close();
    }
}

/// A TLS server on `SHARED` answering robots.txt with 404 and `/` with a small page,
/// both a little late so that connections overlap.
async fn shared_host(gauge: Arc<Gauge>) -> u16 {
    let listener = TcpListener::bind((std::net::Ipv4Addr::from(SHARED), 0))
        .await
        .expect("bind the shared address");
    let port = listener.local_addr().expect("local addr").port();
    let config = spyder_testkit::web::self_signed_config(&["shared.example"]).expect("tls config");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let counted = Counted::new(&gauge);
            let acceptor = acceptor.clone();
            let gauge = Arc::clone(&gauge);
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, counted, &gauge).await;
                }
            });
        }
    });
    port
}

async fn serve<S>(stream: S, mut counted: Counted, gauge: &Gauge)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            match stream.read_line(&mut header).await {
                Ok(0) | Err(_) => return,
                Ok(_) if header == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let path = request_line.split(' ').nth(1).unwrap_or("");
        let (response, root) = if path == "/robots.txt" {
            tokio::time::sleep(Duration::from_millis(10)).await;
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
                false,
            )
        } else {
            tokio::time::sleep(Duration::from_millis(40)).await;
            let body = "<html><body>shared</body></html>";
            (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                true,
            )
        };
        let inner = stream.get_mut();
        if inner.write_all(response.as_bytes()).await.is_err() || inner.flush().await.is_err() {
            return;
        }
        if root {
            gauge.served.fetch_add(1, Ordering::SeqCst);
            counted.close();
        }
    }
}

/// The counter `name` in the local recorder's rendering (0 when absent).
fn counter(handle: &metrics_exporter_prometheus::PrometheusHandle, name: &str) -> u64 {
    spyder_testkit::prometheus::Scrape::parse(&handle.render())
        .expect("valid exposition")
        .sum(name, &[]) as u64
}

/// Crawls the 200 domains 100 at a time with `cap`; gives the server's peak of open
/// connections and the `spyder_conn_waits_total` the crawl counted.
async fn crawl_all(cap: usize) -> (usize, u64) {
    // A current-thread runtime: the local recorder sees every task of the crawl.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let gauge = Arc::new(Gauge::default());
    let port = shared_host(Arc::clone(&gauge)).await;
    let names: Vec<String> = (0..DOMAINS).map(|i| format!("site{i}.example")).collect();
    let mut zone = Zone::new();
    for name in &names {
        zone.a(name, SHARED.into());
    }
    let dns = DnsServer::start(zone).await.expect("dns starts");
    let mut settings = ProbeSettings::default();
    settings.allow_cidrs = vec!["127.0.0.0/8".parse().expect("cidr")];
    settings.https_port = port;
    settings.http_fallback = false;
    settings.rate_per_host = 1000.0;
    settings.rate_burst = 10;
    settings.max_conns_per_ip = cap;
    // Waiting for a slot counts against the task deadline: generous.
    settings.task_timeout = Duration::from_secs(60);
    settings.tls_timeout = Duration::from_secs(10);
    settings.http_timeout = Duration::from_secs(10);
    settings.dns_timeout = Duration::from_secs(10);
    settings.dns.servers = vec![dns.addr()];
    settings.dns.query_timeout = Duration::from_millis(500);
    let probe = Arc::new(
        Probe::builder()
            .settings(settings)
            .build()
            .expect("probe builds"),
    );

    let workers = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::new();
    for name in names {
        let probe = Arc::clone(&probe);
        let workers = Arc::clone(&workers);
        tasks.push(tokio::spawn(async move {
            let _worker = workers.acquire_owned().await.expect("semaphore open");
            (name.clone(), probe.crawl(&name).await)
        }));
    }
    let reports = tokio::time::timeout(LIMIT, futures_util::future::join_all(tasks))
        .await
        .expect("every crawl ends in time");
    for joined in reports {
        let (name, report) = joined.expect("crawl task");
        assert_eq!(report.outcome, Outcome::Complete, "{name}: {report:?}");
        assert_eq!(
            report.records.nodes_cert.len(),
            1,
            "{name}: the cert is kept"
        );
    }
    assert_eq!(
        gauge.served.load(Ordering::SeqCst),
        DOMAINS,
        "one root page each"
    );
    (
        gauge.peak.load(Ordering::SeqCst),
        counter(&handle, "spyder_conn_waits_total"),
    )
}

#[tokio::test]
async fn connections_to_one_address_never_exceed_the_cap_and_every_domain_completes() {
    let (peak, waits) = crawl_all(8).await;
    assert!(
        peak <= 8,
        "{peak} connections open at once under a cap of 8"
    );
    assert!(peak >= 1);
    assert!(
        waits > 0,
        "100 workers on one address had to wait for slots"
    );
}

#[tokio::test]
async fn without_a_cap_the_same_crawl_opens_more_connections_at_once() {
    // Proves the test above can fail: the server does see overlapping connections.
    let (peak, waits) = crawl_all(0).await;
    assert!(peak > 8, "only {peak} connections at once without a cap");
    assert_eq!(waits, 0, "nothing waits without a cap");
}
