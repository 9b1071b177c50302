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

/// `-check` (issue #13, step 6): what a service manager runs before every start. It
/// validates without side effects, prints the effective configuration with secrets
/// hidden, and exits 0 or 1.
#[tokio::test]
async fn check_validates_without_crawling_and_prints_the_config_with_secrets_hidden() {
    let dir = tempfile::tempdir().expect("temp dir");
    let domains = dir.path().join("domains.txt");
    std::fs::write(&domains, "example.org\nnot a host\nexample.net\n").expect("write");
    let mut cmd = spyder();
    cmd.current_dir(dir.path()).args([
        "-check",
        "-domains",
        "domains.txt",
        "-ingest",
        "https://ops:hunter2@127.0.0.1:1/v1/batches",
        "-o",
        "graph.jsonl",
    ]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let config: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(config["domains"], "domains.txt");
    let shown = config.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
    assert!(
        run.stderr
            .contains("domains.txt:2: invalid host \"not a host\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the configuration is valid; domains.txt: 2 hosts, 1 invalid lines"),
        "{}",
        run.stderr
    );
    // Nothing created: no output file, no spool directory.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["domains.txt"]);
}

#[tokio::test]
async fn check_fails_on_what_a_run_would_refuse() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A domains file that is not there.
    let mut cmd = spyder();
    cmd.current_dir(dir.path())
        .args(["-check", "-domains", "missing.txt"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("missing.txt"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // A file with no valid host.
    std::fs::write(dir.path().join("bad.txt"), "not a host\n").expect("write");
    let mut cmd = spyder();
    cmd.current_dir(dir.path())
        .args(["-check", "-domains", "bad.txt"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("holds no valid host"), "{}", run.stderr);

    // An mTLS certificate that exists but is no PEM: found only when it is loaded.
    std::fs::write(dir.path().join("ok.txt"), "example.org\n").expect("write");
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").expect("write");
    std::fs::write(dir.path().join("key.pem"), "not a key\n").expect("write");
    let mut cmd = spyder();
    cmd.current_dir(dir.path()).args([
        "-check",
        "-domains",
        "ok.txt",
        "-ingest",
        "https://127.0.0.1:1/v1/batches",
        "-mtls_cert",
        "cert.pem",
        "-mtls_key",
        "key.pem",
    ]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("cert.pem"), "{}", run.stderr);
    assert!(!dir.path().join("spool").exists());
}

/// `spyder -completions bash|zsh|fish` (issue #13 step 6): a script from the same
/// flag table as the usage; bash's is checked by bash itself.
#[tokio::test]
async fn completions_come_from_the_flag_table() {
    let mut cmd = spyder();
    cmd.args(["-completions", "bash"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("spyder.bash");
    std::fs::write(&script, &run.stdout).expect("write");
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}; COMP_WORDS=(spyder -conc); COMP_CWORD=1; _spyder; echo \"${{COMPREPLY[@]}}\"; \
             COMP_WORDS=(spyder -completions ''); COMP_CWORD=2; _spyder; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .expect("bash runs");
    assert!(completed.status.success(), "{completed:?}");
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout),
        "-concurrency\nbash zsh fish\n"
    );
    for (shell, line) in [
        ("zsh", "'-status_records[one status record per task"),
        ("fish", "complete -c spyder -o resume -r -F -d "),
    ] {
        let mut cmd = spyder();
        cmd.args(["-completions", shell]);
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        let text = String::from_utf8_lossy(&run.stdout);
        assert!(text.contains(line), "{shell}:\n{text}");
    }
    let mut cmd = spyder();
    cmd.args(["-completions", "tcsh"]);
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("-completions \"tcsh\": want bash, zsh or fish\n"),
        "{}",
        run.stderr
    );
}
