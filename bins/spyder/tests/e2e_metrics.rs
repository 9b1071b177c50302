//! The §3.13 metrics of the work queue, the spool and discovery, read from the
//! binary's `/metrics` after runs whose outcome the test knows exactly (issue #10
//! item 3): requeued, dead and skipped (already taken) items, the queue depth of each
//! list, held leases, spool files on disk, and discoveries enqueued or dropped at
//! `max_domains`.

use std::process::Stdio;
use std::time::Duration;

use spyder_testkit::ingest::{Answer, IngestOptions, IngestServer};
use spyder_testkit::prometheus::Scrape;

use crate::support;
use crate::support::{Harness, free_port, int, scrape};

/// Bound on every wait of these tests.
const LIMIT: Duration = Duration::from_secs(120);

/// Scrapes `port` until `done` holds for the scrape, within [`LIMIT`]; `what` says
/// what was awaited when it never happens.
async fn scrape_until(port: u16, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut last = None;
    loop {
        if let Some(m) = scrape(port) {
            if done(&m) {
                return m;
            }
            last = Some(m);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not reached in {LIMIT:?}; last scrape:\n{:?}",
            last.map(|m| m
                .samples()
                .iter()
                .filter(|s| s.name.starts_with("spyder_queue")
                    || s.name.starts_with("spyder_tasks")
                    || s.name.starts_with("spyder_discovery")
                    || s.name.starts_with("spyder_spool"))
                .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
                .collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_spool_metrics_count_what_happened_to_the_items() {
    // 30 world hosts: 28 queued fresh, one held under an expired lease at attempt 0
    // (the reaper requeues it: requeued 1, then crawled), one under an expired lease
    // at attempt 2 of 3 (dead), plus an undecodable item and an invalid host (dead).
    // The ingest refuses every batch, so every batch is spooled.
    let h = Harness::new(0x5eed_1013, 30).await;
    let redis = spyder_testkit::redis::RedisServer::start().expect("redis-server");
    let hosts = h.world.hosts();
    support::seed_queue(&redis, &hosts[2..]);
    let requeued = spyder_queue::QueueItem::new(
        spyder_model::HostName::from_input(&hosts[0]).expect("valid"),
        1_723_300_000,
    );
    let exhausted = format!(r#"{{"host":"{}","ts":1723300000,"attempt":2}}"#, hosts[1]);
    for raw in [requeued.raw(), exhausted.as_str()] {
        int(&redis
            .command(&["RPUSH", "spyder:queue:processing", raw])
            .expect("rpush"));
        int(&redis
            .command(&["ZADD", "spyder:queue:leases", "1", raw])
            .expect("zadd"));
    }
    for raw in [
        "{not json",
        r#"{"host":"-bad-.example","ts":1,"attempt":0}"#,
    ] {
        int(&redis
            .command(&["LPUSH", "spyder:queue", raw])
            .expect("lpush"));
    }

    let port = free_port();
    // 400 is not retried (SPEC §3.11): each batch goes to the spool at once, where
    // a refused connection would hold it for 30 s of retries.
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    ingest.set_default(Answer::Status(400));
    let spool = h.path("spool");
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .env("REDIS_ADDR", redis.addr())
        .arg("-set=crawling.shutdown_grace=2s")
        .arg("-set=redis.max_attempts=3")
        .arg("-batch_flush_sec=1")
        .arg("-batch_max_edges=25")
        .arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", spool.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spyder starts");

    let crawled = (hosts.len() - 1) as f64;
    let m = scrape_until(port, "every item crawled, buried and the lists read", |m| {
        m.sum("spyder_tasks_total", &[]) >= crawled
            && m.value("spyder_queue_depth", &[("list", "dead")]) == Some(3.0)
            && m.value("spyder_queue_depth", &[("list", "pending")]) == Some(0.0)
            && m.value("spyder_queue_depth", &[("list", "processing")]) == Some(0.0)
            && m.value("spyder_queue_held", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        m.sum("spyder_tasks_total", &[]),
        crawled,
        "one task per live item"
    );
    assert_eq!(m.value("spyder_queue_requeued_total", &[]), Some(1.0));
    assert_eq!(m.value("spyder_queue_dead_total", &[]), Some(3.0));
    let dead = int(&redis.command(&["LLEN", "spyder:queue:dead"]).expect("llen"));
    assert_eq!(dead, 3, "the gauge shows the list as it is");
    let skipped = |m: &Scrape| m.sum("spyder_queue_skipped_total", &[("reason", "already_taken")]);
    assert_eq!(skipped(&m), 0.0, "no host came twice yet");

    // Now items for hosts already crawled: a copy back from an expired lease
    // (attempt 1) and a discovered copy are acked without a crawl (already_taken);
    // a seeded copy is crawled again (seeding twice crawls twice), and so is a
    // discovered item of the host that went dead without being crawled.
    let item = |host: &str| {
        spyder_queue::QueueItem::new(
            spyder_model::HostName::from_input(host).expect("valid"),
            1_723_300_000,
        )
    };
    let discovered = |host: &str| {
        spyder_queue::QueueItem::discovered(
            spyder_model::HostName::from_input(host).expect("valid"),
            1_723_300_000,
        )
    };
    let requeued_copy = format!(r#"{{"host":"{}","ts":1723300000,"attempt":1}}"#, hosts[5]);
    for raw in [
        requeued_copy.as_str(),
        discovered(&hosts[6]).raw(),
        item(&hosts[7]).raw(),
        discovered(&hosts[1]).raw(),
    ] {
        int(&redis
            .command(&["LPUSH", "spyder:queue", raw])
            .expect("lpush"));
    }
    let m = scrape_until(port, "the four items taken and acked", |m| {
        m.sum("spyder_tasks_total", &[]) + skipped(m) >= crawled + 4.0
            && m.value("spyder_queue_depth", &[("list", "pending")]) == Some(0.0)
            && m.value("spyder_queue_depth", &[("list", "processing")]) == Some(0.0)
            && m.value("spyder_queue_held", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(skipped(&m), 2.0, "the requeued and the discovered copy");
    // Leased items = tasks + skipped (the three dead items never were tasks).
    assert_eq!(m.sum("spyder_tasks_total", &[]), crawled + 2.0);
    assert_eq!(m.value("spyder_queue_dead_total", &[]), Some(3.0));

    // Every batch went to the spool; the gauge counts the files on disk.
    let on_disk = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                    .count()
            })
            .unwrap_or(0) as f64
    };
    let m = scrape_until(port, "the spool gauge equal to the files on disk", |m| {
        m.value("spyder_spool_files", &[]) == Some(on_disk())
    })
    .await;
    let files = on_disk();
    assert!(files >= 1.0, "batches were spooled");
    assert_eq!(
        m.sum("spyder_batch_emissions_total", &[("status", "success")]),
        0.0,
        "the ingest took nothing"
    );
    assert!(
        m.sum("spyder_batch_emissions_total", &[("status", "failure")]) >= files,
        "each spool file is a spooled batch"
    );
    support::signal(child.id().expect("pid"), "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(2 + 15), child.wait_with_output())
        .await
        .expect("exits within shutdown_grace + 15 s")
        .expect("output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_counts_what_max_domains_let_through() {
    // File mode, continuous, stdin kept open so the run stays up to be read: five
    // seeds of a 60-site world whose pages link to many other sites; max_domains 6
    // lets exactly six discoveries in, the rest are dropped.
    let h = Harness::new(0x5eed_1014, 60).await;
    let seeds = 5;
    let cap = 6;
    let port = free_port();
    let mut cmd = support::spyder();
    cmd.arg("-domains=-")
        .args(support::world_flags(&h.world, &h.roots))
        .arg("-continuous")
        .arg(format!("-max_domains={cap}"))
        .arg(format!("-output={}", h.path("graph.json").display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = h.world.hosts()[..seeds].join("\n") + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .expect("write stdin");

    let want = (seeds + cap) as f64;
    let m = scrape_until(port, "seeds and admitted discoveries crawled", |m| {
        m.sum("spyder_tasks_total", &[]) >= want && m.value("spyder_queue_held", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(
        m.sum("spyder_discovery_enqueued_total", &[("sink", "channel")]),
        cap as f64,
        "exactly max_domains discoveries enqueued"
    );
    assert!(
        m.sum("spyder_discovery_dropped_total", &[("sink", "channel")]) >= 1.0,
        "discoveries past max_domains are counted as dropped"
    );
    assert_eq!(
        m.sum("spyder_tasks_total", &[]),
        want,
        "tasks = seeds + enqueued discoveries"
    );
    drop(stdin);
    support::exits_zero(child, "exits once stdin closes").await;
}
