//! Logs and the switches that shape them (SPEC §3.14, B-20): JSON logs with their
//! fields as keys, LOG_LEVEL, -verbose, -quiet; stdout carries data only.

use std::time::Duration;

use crate::support;
use crate::support::{Harness, finish};

const LIMIT: Duration = Duration::from_secs(60);

fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| {
            !["Final summary:", "Outcomes:", "Output:"]
                .iter()
                .any(|summary| l.starts_with(summary))
        })
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_top_level_fields_and_log_level_applies() {
    let h = Harness::new(0x5eed_0501, 3).await;
    let mut cmd = h.spyder();
    cmd.env("LOG_LEVEL", "DEBUG").arg("-probe=probe-7");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines = json_lines(&run.stderr);
    for l in &lines {
        for key in ["timestamp", "level", "message", "target"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    let start = lines
        .iter()
        .find(|l| l["message"] == "starting spyder")
        .expect("a starting line");
    assert_eq!(start["probe"], "probe-7");
    assert!(
        start.get("concurrency").is_some() && start.get("run").is_some(),
        "{start}"
    );
    // Issue #13: values, not Rust Debug text: the list as a JSON array, no Some(…).
    assert_eq!(
        start["exclude_tlds"],
        serde_json::json!(["gov", "mil", "int"]),
        "{start}"
    );
    assert!(
        !run.stderr.contains("Some(") && !run.stderr.contains(" { "),
        "Debug text in the logs:\n{}",
        run.stderr
    );
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "LOG_LEVEL=DEBUG shows debug lines"
    );
    assert!(lines.iter().any(|l| l["message"] == "shutdown complete"));
    // stdout is data only: every line a batch.
    assert!(!support::json_batches(&run.stdout).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_quiet_and_levels() {
    let h = Harness::new(0x5eed_0502, 3).await;
    let mut cmd = h.spyder();
    cmd.arg("-verbose").arg("-quiet");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines = json_lines(&run.stderr);
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "-verbose shows debug lines"
    );
    assert!(
        !run.stderr.contains("Final summary"),
        "-quiet drops the summary"
    );

    // One invalid line makes sure there is a WARN line to see, so that "every line is
    // WARN or above" cannot hold vacuously.
    let with_invalid = h.path("with-invalid.txt");
    std::fs::write(
        &with_invalid,
        std::fs::read_to_string(&h.domains).expect("domains") + "bad_host!.example\n",
    )
    .expect("write");
    let mut cmd = h.spyder();
    cmd.env("LOG_LEVEL", "warn")
        .arg(format!("-domains={}", with_invalid.display()));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines = json_lines(&run.stderr);
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"),
        "the invalid line is logged at WARN:\n{}",
        run.stderr
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "LOG_LEVEL=warn hides INFO and DEBUG:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Final summary: 4 processed"),
        "{}",
        run.stderr
    );

    let mut cmd = h.spyder();
    cmd.env("LOG_LEVEL", "chatty");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("LOG_LEVEL"), "{}", run.stderr);
}
