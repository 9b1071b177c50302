//! Issue #13 step 2: spyder works the way ProjectDiscovery's httpx, dnsx and tlsx
//! work: a pipe on stdin is the input, `-o`, `-jsonl`, `-c`, `-rl` and `-silent`
//! mean what they mean there, and a configuration file is found under
//! `$XDG_CONFIG_HOME` when `-config` is absent.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::{self, Harness};

const LIMIT: Duration = Duration::from_secs(120);

/// `cat domains.txt | spyder -jsonl -o FILE -c 8 -silent`: no `-domains`, data in the
/// file, nothing at all on stdout or stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_is_the_input_and_silent_means_data_only() {
    let h = Harness::new(0x5eed_1301, 12).await;
    let out = h.path("graph.jsonl");
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .arg("-jsonl")
        .arg(format!("-o={}", out.display()))
        .arg("-c=8")
        .arg("-silent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut stdin = child.stdin.take().expect("a pipe");
    let domains = std::fs::read(&h.domains).expect("domains");
    stdin.write_all(&domains).await.expect("write the domains");
    drop(stdin);
    let run = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("spyder finishes in time")
        .expect("its output");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    support::assert_same_edges(
        &support::jsonl_edges(&std::fs::read(&out).expect("the output file")),
        &h.world.expected_edges(),
    );
    assert!(run.stdout.is_empty(), "-o: stdout stays empty");
    assert!(stderr.is_empty(), "-silent: no logs, no summary:\n{stderr}");
}

/// A redirected file is read as stdin is; without `-silent` the log says so, and
/// `-rl` spaces the requests the web servers see, across all hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_file_is_the_input_and_rl_caps_requests_across_hosts() {
    let h = Harness::new(0x5eed_1302, 8).await;
    let before = h.world.web.requests().len();
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .arg("-rl=20")
        .stdin(std::fs::File::open(&h.domains).expect("open the domains"));
    let run = support::finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_same_edges_in_json(&run.stdout, &h);
    assert!(
        run.stderr.contains("reading domains from stdin"),
        "{}",
        run.stderr
    );
    let mut arrivals: Vec<_> = h.world.web.requests()[before..]
        .iter()
        .map(|r| r.at)
        .collect();
    arrivals.sort();
    assert!(arrivals.len() >= 16, "{} requests", arrivals.len());
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        unreachable!("checked above")
    };
    // 20 a second, evenly spaced: n requests span at least (n - 1) / 20 s when sent;
    // arrival times may shift by scheduling, hence the margin.
    let floor = Duration::from_millis(50 * (arrivals.len() as u64 - 1)).mul_f64(0.8);
    assert!(
        *last - *first >= floor,
        "{} requests arrived within {:?}, want at least {floor:?}",
        arrivals.len(),
        *last - *first
    );
}

/// Without `-config`, `$XDG_CONFIG_HOME/spyder/config.yaml` is read, and the log names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_config_file_is_found_under_xdg_config_home() {
    let h = Harness::new(0x5eed_1303, 3).await;
    let xdg = h.path("xdg");
    std::fs::create_dir_all(xdg.join("spyder")).expect("mkdir");
    let file = xdg.join("spyder/config.yaml");
    std::fs::write(&file, "probe: xdg-probe\nconcurency: 4\n").expect("write");
    let mut cmd = h.spyder();
    cmd.env("XDG_CONFIG_HOME", &xdg);
    let run = support::finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("\"probe_id\":\"xdg-probe\""),
        "the file's probe id is used"
    );
    let logs: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let found = logs
        .iter()
        .find(|l| l["message"] == "configuration file found (no -config given)")
        .unwrap_or_else(|| panic!("no 'found' line in:\n{}", run.stderr));
    assert_eq!(found["config_file"], file.display().to_string());
    assert!(
        logs.iter().any(|l| l["message"]
            == "config: unknown key \"concurency\" ignored (did you mean \"crawling.concurrency\"?)"),
        "{}",
        run.stderr
    );
    // Values, not Rust Debug text.
    let start = logs
        .iter()
        .find(|l| l["message"] == "starting spyder")
        .expect("a starting line");
    assert_eq!(
        start["exclude_tlds"],
        serde_json::json!(["gov", "mil", "int"]),
        "{start}"
    );
    let loaded = logs
        .iter()
        .find(|l| l["message"] == "loaded config from file")
        .expect("a loaded line");
    assert_eq!(loaded["config_file"], file.display().to_string());
}

fn assert_same_edges_in_json(stdout: &[u8], h: &Harness) {
    support::assert_same_edges(
        &support::batch_edges(&support::json_batches(stdout)),
        &h.world.expected_edges(),
    );
}
