//! `-resume FILE` (issue #13 step 3): a file-mode run SIGKILLed three times and
//! started again with the same checkpoint crawls every host of the file at least
//! once, and no host finished before a run's last checkpoint again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Harness, finish};

const LIMIT: Duration = Duration::from_secs(120);

/// The checkpoint on disk, if there is one yet.
fn checkpoint(path: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&bytes).expect("a checkpoint is always whole JSON"))
}

/// Hosts a checkpoint says are finished: on lines it covers and not pending.
fn finished(cp: &serde_json::Value, hosts: &[String]) -> BTreeSet<String> {
    let line = cp["line"].as_u64().expect("line");
    let pending: BTreeSet<&str> = cp["pending"]
        .as_array()
        .expect("pending")
        .iter()
        .map(|h| h.as_str().expect("host"))
        .collect();
    hosts
        .iter()
        .take(usize::try_from(line).expect("line"))
        .filter(|h| !pending.contains(h.as_str()))
        .cloned()
        .collect()
}

/// Hosts of the status records in `out[from..]`; a line cut by a SIGKILL is skipped.
fn crawled(out: &[u8], from: usize) -> Vec<String> {
    String::from_utf8_lossy(&out[from..])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["record"] == "status")
        .map(|l| l["host"].as_str().expect("host").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_three_times_and_resumed_crawls_every_host_and_no_finished_one_again() {
    let h = Harness::new(0x5eed_0a01, 30).await;
    // The domains file holds the world's hosts, one per line, in order.
    let hosts: Vec<String> = std::fs::read_to_string(&h.domains)
        .expect("domains")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(hosts.len(), 30);
    let resume = h.path("resume.json");
    let out = h.path("out.jsonl");
    let run = |h: &Harness| {
        let mut cmd = h.spyder();
        cmd.args([
            "-jsonl",
            "-status_records",
            "-quiet",
            "-c",
            "2",
            "-rl",
            "10",
        ])
        .arg("-set=batch.flush_interval=300ms")
        .arg(format!("-o={}", out.display()))
        .arg(format!("-resume={}", resume.display()));
        cmd
    };

    // Three SIGKILLs, each once a few more hosts finished than at the last one.
    let mut kills: Vec<(usize, BTreeSet<String>)> = Vec::new();
    let mut finished_so_far = 0;
    for _ in 0..3 {
        let mut cmd = run(&h);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spyder starts");
        let pid = child.id().expect("pid");
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let done = checkpoint(&resume).map_or(0, |cp| finished(&cp, &hosts).len());
            if done >= finished_so_far + 4 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint with {} finished hosts",
                finished_so_far + 4
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("spyder ended before the kill: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crate::support::signal(pid, "-KILL");
        let status = tokio::time::timeout(LIMIT, child.wait())
            .await
            .expect("killed in time")
            .expect("status");
        assert!(!status.success());
        // The last checkpoint is what is on disk now.
        let cp = checkpoint(&resume).expect("a checkpoint");
        let done = finished(&cp, &hosts);
        finished_so_far = done.len();
        let written = std::fs::metadata(&out).map_or(0, |m| m.len());
        kills.push((usize::try_from(written).expect("size"), done));
    }

    // Started again, it runs to the end and removes the checkpoint.
    let end = finish(run(&h), LIMIT).await;
    assert_eq!(end.code, Some(0), "{}", end.stderr);
    assert!(!resume.exists(), "checkpoint removed after a complete run");

    let all = std::fs::read(&out).expect("output");
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for host in crawled(&all, 0) {
        *times.entry(host).or_default() += 1;
    }
    for host in &hosts {
        assert!(times.contains_key(host), "{host} never crawled: {times:?}");
    }
    for (at, done) in &kills {
        let again: Vec<String> = crawled(&all, *at)
            .into_iter()
            .filter(|h| done.contains(h))
            .collect();
        assert!(
            again.is_empty(),
            "finished before a checkpoint, crawled again: {again:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_what_it_cannot_resume() {
    let h = Harness::new(0x5eed_0a02, 2).await;
    let resume = h.path("resume.json");
    // stdin cannot be read again.
    let mut cmd = crate::support::spyder();
    cmd.args(["-domains", "-"])
        .arg(format!("-resume={}", resume.display()));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("needs -domains FILE"), "{}", run.stderr);

    // A checkpoint of another input.
    std::fs::write(
        &resume,
        r#"{"version":1,"domains":"other.txt","line":3,"pending":[]}"#,
    )
    .expect("write");
    let mut cmd = h.spyder();
    cmd.arg(format!("-resume={}", resume.display()));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("it was written for -domains") && run.stderr.contains("other.txt"),
        "{}",
        run.stderr
    );
    assert!(resume.exists(), "left as it was");
}
