//! The real `spyder` binary against a 300-site world, in all three output formats.

use std::time::Duration;

use crate::support;
use crate::support::{
    Harness, assert_same_edges, batch_edges, csv_edges, finish, json_batches, jsonl_edges,
};

const LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_site_world_gives_exactly_the_expected_edges_in_every_format() {
    let h = Harness::new(0x5eed_0301, 300).await;
    let want = h.world.expected_edges();
    for format in ["json", "jsonl", "csv"] {
        let mut cmd = h.spyder();
        cmd.arg(format!("-output_format={format}")).arg("-quiet");
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "{format}: stderr:\n{}", run.stderr);
        let got = match format {
            "json" => {
                let batches = json_batches(&run.stdout);
                // B-05: every valid input gets its own NodeDomain.
                let selves: std::collections::BTreeSet<&str> = batches
                    .iter()
                    .flat_map(|b| &b.nodes_domain)
                    .map(|d| d.host.as_str())
                    .collect();
                for host in h.world.hosts() {
                    assert!(selves.contains(host.as_str()), "no NodeDomain for {host}");
                }
                batch_edges(&batches)
            }
            "jsonl" => jsonl_edges(&run.stdout),
            _ => csv_edges(&run.stdout),
        };
        assert_same_edges(&got, &want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_file_gets_the_batches_and_stdout_stays_empty() {
    let h = Harness::new(0x5eed_0302, 40).await;
    let out = h.path("out.json");
    let mut cmd = h.spyder();
    cmd.arg(format!("-output={}", out.display()));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "stdout carries nothing when -output is set"
    );
    let written = std::fs::read(&out).expect("output file written");
    assert_same_edges(
        &batch_edges(&json_batches(&written)),
        &h.world.expected_edges(),
    );
    assert!(
        run.stderr.contains("Final summary: 40 processed"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_domains_file_is_processed_line_by_line() {
    let h = Harness::new(0x5eed_0303, 5).await;
    let hosts = h.world.hosts();
    let mut content: Vec<u8> = b"\xEF\xBB\xBF".to_vec(); // BOM
    content.extend(format!("{}.\r\n", hosts[0].to_uppercase()).as_bytes()); // 1: CRLF, case, dot
    content.extend(b"# a comment\r\n\r\n"); // 2, 3: skipped
    content.extend(b"bad_host.example\n"); // 4
    content.extend([0xff, 0xfe, 0x00, b'A', b'\n']); // 5: binary
    content.extend("a".repeat(5000).as_bytes()); // 6: 5 KB line
    content.push(b'\n');
    content.extend(format!("{}\n", hosts[1]).as_bytes()); // 7
    content.extend("bücher.de\n".as_bytes()); // 8: IDN, unknown to the world's DNS
    content.extend(b"1.2.3.4\n"); // 9
    content.extend(format!("https://{}/path?q=1\n", hosts[2]).as_bytes()); // 10: a URL
    let domains = h.path("hostile.txt");
    std::fs::write(&domains, &content).expect("write");

    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", domains.display()))
        .args(support::world_flags(&h.world, &h.roots))
        .arg("-log_format=text");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let file = domains.display().to_string();
    for (line, value, reason) in [
        (4, "bad_host.example", "invalid character '_'"),
        (9, "1.2.3.4", "IP address literal is not a domain"),
    ] {
        let want = format!("{file}:{line}: invalid host \"{value}\": {reason}");
        assert!(run.stderr.contains(&want), "{want} not in:\n{}", run.stderr);
    }
    assert!(
        run.stderr.contains(&format!("{file}:5: invalid host")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{file}:6: invalid host")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("line too long"), "{}", run.stderr);

    let batches = json_batches(&run.stdout);
    let selves: std::collections::BTreeSet<&str> = batches
        .iter()
        .flat_map(|b| &b.nodes_domain)
        .map(|d| d.host.as_str())
        .collect();
    for host in [
        hosts[0].as_str(),
        hosts[1].as_str(),
        hosts[2].as_str(),
        "xn--bcher-kva.de",
    ] {
        assert!(selves.contains(host), "{host} was not crawled");
    }
    // P-6: accepted lines = ok + error; the 4 invalid lines are errors.
    assert!(
        run.stderr
            .contains("Final summary: 8 processed, 4 successful, 4 failed"),
        "{}",
        run.stderr
    );
    // Issue #13 "say why": the line under the summary names the outcomes and reasons.
    let why = outcomes_line(&run.stderr);
    assert!(why.contains(" 4 invalid"), "{why}");
    assert!(
        why.contains("top causes: 1 invalid: IP address literal is not a domain"),
        "{why}"
    );
    assert!(why.contains("; elapsed "), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_with_black_holed_hosts_completes_with_every_edge() {
    // P-1 and P-6: 10% of the hosts accept and never answer; the run still completes,
    // every input gets its self node, and every edge is there.
    let options = spyder_testkit::world::WorldOptions {
        black_holes: 0.1,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_0304, 2000, options).await;
    let mut cmd = h.spyder();
    cmd.arg("-concurrency=256")
        .arg("-set=crawling.tls_timeout=5s")
        .arg("-batch_max_edges=500");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let batches = json_batches(&run.stdout);
    let selves: std::collections::BTreeSet<&str> = batches
        .iter()
        .flat_map(|b| &b.nodes_domain)
        .map(|d| d.host.as_str())
        .collect();
    let hosts = h.world.hosts();
    assert!(
        hosts.iter().all(|host| selves.contains(host.as_str())),
        "a self node is missing"
    );
    assert_same_edges(&batch_edges(&batches), &h.world.expected_edges());
    assert!(
        run.stderr
            .contains("Final summary: 2000 processed, 2000 successful, 0 failed"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_without_domains_plus_the_flag_runs_and_leaves_the_spool_alone() {
    // B-13 (validation after flags) and B-06 (stdout mode never touches the spool).
    let h = Harness::new(0x5eed_0305, 5).await;
    let spool = h.path("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let old = spool.join("20250101T000000.000000000-0190a0a0-0000-7000-8000-000000000000.json");
    std::fs::write(&old, b"{\"not\":\"touched\"}").expect("spool file");
    let config = h.path("spyder.yaml");
    std::fs::write(
        &config,
        format!(
            "probe: yaml-probe\nconcurrency: 8\noutput:\n  format: jsonl\n  spool_dir: {}\nexclude_tlds: []\n",
            spool.display()
        ),
    )
    .expect("config");
    let mut cmd = support::spyder();
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-domains={}", h.domains.display()))
        .args(support::world_flags(&h.world, &h.roots));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert_same_edges(
        &support::jsonl_edges(&run.stdout),
        &h.world.expected_edges(),
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("\"probe_id\":\"yaml-probe\""));
    assert_eq!(
        std::fs::read(&old).expect("still there"),
        b"{\"not\":\"touched\"}"
    );
    assert_eq!(std::fs::read_dir(&spool).expect("dir").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_as_output_file_is_written_without_fsync_errors() {
    // `-output=/dev/null` cannot be fsynced (EINVAL); that must not end the run.
    let h = Harness::new(0x5eed_0306, 10).await;
    let mut cmd = h.spyder();
    cmd.arg("-output=/dev/null").arg("-batch_max_edges=5");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(!run.stderr.contains("output closed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Final summary: 10 processed"),
        "{}",
        run.stderr
    );
}

/// Issue #13 "say why": with a resolver that never answers, the summary names the
/// cause; `-fail_on_error` turns "every task failed" into exit 2, and without it the
/// run still exits 0 as the Go SPYDER does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_resolver_is_named_and_fail_on_error_exits_2() {
    let h = Harness::new(0x5eed_0313, 3).await;
    // Bound and never read: every query to it times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a silent resolver");
    let silent_addr = silent.local_addr().expect("its address");
    for (extra, code) in [(None, 0), (Some("-fail_on_error"), 2)] {
        let mut cmd = h.spyder();
        cmd.arg(format!("-set=dns.servers={silent_addr}"))
            .arg("-set=dns.query_timeout=200ms")
            .arg("-set=dns.retries=0")
            .arg("-log_format=text")
            .args(extra);
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(code), "{extra:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("Final summary: 3 processed, 0 successful, 3 failed"),
            "{}",
            run.stderr
        );
        let why = outcomes_line(&run.stderr);
        assert!(
            why.starts_with("Outcomes: 3 dns_error; top causes: 3 dns_error: A: "),
            "{why}"
        );
        assert!(why.contains("timed out"), "{why}");
        // Issue #13: said once, naming the server and the setting.
        let warned: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("most DNS queries to"))
            .collect();
        assert_eq!(warned.len(), 1, "{}", run.stderr);
        assert!(
            warned[0].contains(&format!("most DNS queries to {silent_addr} time out"))
                && warned[0].contains("dns.servers"),
            "{}",
            warned[0]
        );
    }
    drop(silent);
}

/// The `Outcomes: …` line the summary prints under `Final summary:`.
fn outcomes_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("Outcomes: "))
        .unwrap_or_else(|| panic!("no outcome breakdown in:\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_records_give_one_line_per_task_after_its_records() {
    // SPEC §3.1 `output.status_records` (issue #13): per task host, outcome, reason,
    // attempt and phase timings, as zdns prints per name.
    let h = Harness::new(0x5eed_0310, 20).await;
    let missing = "no-such-site.example";
    let mut domains = std::fs::read_to_string(&h.domains).expect("domains");
    domains.push_str(missing);
    domains.push('\n');
    std::fs::write(&h.domains, domains).expect("domains");
    let hosts = h.world.hosts();

    let mut cmd = h.spyder();
    cmd.args(["-jsonl", "-status_records", "-quiet"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert_same_edges(&jsonl_edges(&run.stdout), &h.world.expected_edges());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let statuses: Vec<(usize, &serde_json::Value)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["record"] == "status")
        .collect();
    assert_eq!(statuses.len(), hosts.len() + 1, "one per task");
    for host in &hosts {
        let matching: Vec<_> = statuses
            .iter()
            .filter(|(_, s)| s["host"] == host.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "{host}");
        let (at, status) = matching[0];
        // Some sites of a world disallow everyone in robots.txt: no fetch then.
        let outcome = status["outcome"].as_str().expect("outcome");
        assert!(
            ["complete", "robots_blocked"].contains(&outcome),
            "{status}"
        );
        assert_eq!(status["attempt"], 1, "{status}");
        assert!(status["reason"].is_null(), "{status}");
        for phase in ["dns_ms", "tls_ms", "robots_ms", "total_ms"] {
            assert!(status[phase].is_u64(), "{phase}: {status}");
        }
        assert_eq!(
            status["fetch_ms"].is_u64(),
            outcome == "complete",
            "{status}"
        );
        for field in ["probe_id", "run_id", "batch_id", "timestamp", "observed_at"] {
            assert!(status[field].is_string(), "{field}: {status}");
        }
        // After the task's own records: its NodeDomain comes earlier.
        let own = lines
            .iter()
            .position(|l| l["record"] == "node_domain" && l["host"] == host.as_str())
            .expect("own NodeDomain");
        assert!(
            own < *at,
            "{host}: status at line {at}, NodeDomain at {own}"
        );
    }
    let (_, failed) = statuses
        .iter()
        .find(|(_, s)| s["host"] == missing)
        .expect("a status for the missing site");
    assert_ne!(failed["outcome"], "complete", "{failed}");
    assert!(failed["fetch_ms"].is_null(), "never fetched: {failed}");

    // CSV: the header and every row gain the status columns.
    let mut cmd = h.spyder();
    cmd.args(["-output_format=csv", "-status_records", "-quiet"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let rows = support::parse_csv(&String::from_utf8_lossy(&run.stdout));
    assert_eq!(
        rows[0].join(","),
        format!(
            "{},{}",
            spyder_emitter::CSV_HEADER,
            spyder_emitter::CSV_STATUS_COLUMNS
        )
    );
    assert!(rows.iter().all(|r| r.len() == 31), "31 cells in every row");
    let csv_statuses: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == "status").collect();
    assert_eq!(csv_statuses.len(), hosts.len() + 1);
    let reached = csv_statuses
        .iter()
        .filter(|r| r[23] == "complete" || r[23] == "robots_blocked")
        .count();
    assert_eq!(reached, hosts.len());

    // json has no place for them: a startup error naming the key.
    let mut cmd = h.spyder();
    cmd.arg("-status_records");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("output.status_records"),
        "{}",
        run.stderr
    );
}
