//! The command line of the real binary: usage, exit codes, version, bad input files.

use std::time::Duration;

use crate::support::{finish, spyder};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn unknown_flag_is_exit_2_with_the_go_message() {
    let mut cmd = spyder();
    cmd.arg("-no_such_flag");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .starts_with("flag provided but not defined: -no_such_flag\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("SPYDER (System for Probing and Yielding DNS-based Entity Relations)")
    );
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn help_is_exit_0_and_no_input_is_exit_1() {
    for flag in ["-h", "-help", "--help"] {
        let mut cmd = spyder();
        cmd.arg(flag);
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "{flag}");
        // Issue #13: help asked for goes to stdout, so `spyder -h | less` works.
        assert!(
            String::from_utf8_lossy(&run.stdout)
                .starts_with("SPYDER (System for Probing and Yielding DNS-based Entity Relations)"),
            "{flag}"
        );
        assert!(run.stderr.is_empty(), "{flag}: {}", run.stderr);
    }
    // No input (stdin is /dev/null, not a pipe): say which input was expected, then
    // the usage.
    let run = finish(spyder(), LIMIT).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with(
            "spyder: no input: give -domains FILE (- reads stdin), pipe domains on stdin, \
             or set REDIS_QUEUE_ADDR (redis.queue_addr) for queue mode\n\
             SPYDER (System for Probing and Yielding DNS-based Entity Relations)"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_mistyped_flag_or_key_gets_a_did_you_mean() {
    let mut cmd = spyder();
    cmd.arg("-concurency=3");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.starts_with(
            "flag provided but not defined: -concurency\nDid you mean -concurrency?\n"
        ),
        "{}",
        run.stderr
    );
    let mut cmd = spyder();
    cmd.arg("-set=crawling.rate_per_hots=2");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("(did you mean crawling.rate_per_host?)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn version_prints_the_original_banner() {
    let mut cmd = spyder();
    cmd.arg("-version");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.starts_with(&format!("SPYDER Probe v{}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[tokio::test]
async fn an_invalid_value_fails_startup_naming_flag_key_and_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let domains = dir.path().join("d.txt");
    std::fs::write(&domains, "example.com\n").expect("write");
    let mut cmd = spyder();
    cmd.arg(format!("-domains={}", domains.display()))
        .arg("-concurrency=0");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1));
    for part in ["crawling.concurrency", "-concurrency", "0"] {
        assert!(run.stderr.contains(part), "{part} not in {}", run.stderr);
    }
}
