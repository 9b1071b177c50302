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
        assert!(
            run.stderr
                .starts_with("SPYDER (System for Probing and Yielding DNS-based Entity Relations)"),
            "{flag}"
        );
    }
    let run = finish(spyder(), LIMIT).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("SPYDER (System for Probing and Yielding DNS-based Entity Relations)")
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
