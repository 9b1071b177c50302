//! Continuous mode with the ChannelSink: discoveries are crawled until the closure is
//! reached, and `max_domains` caps what one probe enqueues (SPEC §3.10).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use spyder_model::EdgeType;
use spyder_testkit::dns::{DnsServer, Zone};
use spyder_testkit::pki::{CertKind, TestCa};
use spyder_testkit::web::{Reply, Site, WebServer};

use crate::support;
use crate::support::{finish, json_batches};

const LIMIT: Duration = Duration::from_secs(120);

/// Sites `c0.example` … `c{n-1}.example`, each linking to the next; the last links
/// back to the first. Only DNS A records, certificates naming the site itself.
struct Chain {
    dns: DnsServer,
    web: WebServer,
    dir: tempfile::TempDir,
}

fn name(i: usize) -> String {
    format!("c{i}.example")
}

impl Chain {
    async fn start(n: usize) -> Self {
        let ca = TestCa::new();
        let mut zone = Zone::new();
        let mut sites = Vec::new();
        for i in 0..n {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 5, 0, 1)) + i as u32);
            zone.a(&name(i), ip);
            let page = format!("<a href=\"https://{}/\">next</a>", name((i + 1) % n));
            let config = ca.issue(&[&name(i)], CertKind::Valid).server_config();
            sites.push(Site::https(ip, config, Reply::Html(page)));
        }
        let dns = DnsServer::start(zone).await.expect("dns");
        let web = WebServer::start(sites).await.expect("web");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("seed.txt"), format!("{}\n", name(0))).expect("seed");
        std::fs::write(dir.path().join("ca.pem"), ca.root_pem()).expect("roots");
        Self { dns, web, dir }
    }

    async fn run(&self, extra: &[&str]) -> (BTreeSet<String>, String) {
        let mut cmd = support::spyder();
        cmd.arg(format!(
            "-domains={}",
            self.dir.path().join("seed.txt").display()
        ))
        .arg(format!("-dns_servers={}", self.dns.addr()))
        .arg("-allow_cidrs=127.0.0.0/8")
        .arg(format!(
            "-set=crawling.https_port={}",
            self.web.https_port()
        ))
        .arg(format!("-set=crawling.http_port={}", self.web.http_port()))
        .arg(format!(
            "-set=crawling.tls_roots={}",
            self.dir.path().join("ca.pem").display()
        ))
        .arg("-metrics_addr=")
        .arg("-log_format=text")
        .arg("-continuous")
        .args(extra);
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        let crawled = json_batches(&run.stdout)
            .iter()
            .flat_map(|b| b.edges.clone())
            .filter(|e| e.kind == EdgeType::ResolvesTo)
            .map(|e| e.source)
            .collect();
        (crawled, run.stderr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_reaches_the_closure_once() {
    let chain = Chain::start(30).await;
    let (crawled, _) = chain.run(&[]).await;
    let want: BTreeSet<String> = (0..30).map(name).collect();
    assert_eq!(crawled, want);
    // Each host crawled once: one TLS handshake per site.
    assert_eq!(chain.web.handshakes(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_domains_caps_what_this_probe_enqueues() {
    let chain = Chain::start(30).await;
    let (crawled, stderr) = chain.run(&["-max_domains=7"]).await;
    let want: BTreeSet<String> = (0..8).map(name).collect();
    assert_eq!(crawled, want, "the seed plus 7 discoveries");
    let line = "max_domains reached (7); further discoveries are not queued";
    assert_eq!(stderr.matches(line).count(), 1, "logged once:\n{stderr}");
}
