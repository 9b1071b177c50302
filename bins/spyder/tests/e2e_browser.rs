//! The dashboard in a real browser (issue #14): Debian's `chromium`, driven over
//! WebDriver (`chromedriver` and fantoccini), against running spyder binaries on
//! testkit worlds. The page's numbers must match `GET /api/v1/stats`; an admin key
//! pauses, resumes, moves the sliders and stops the probe; a read key sees no
//! controls; a wrong key sees an error and no data; a refused SIGHUP reload shows as
//! `config_error`; the fleet table of a queue lists three probes and marks a
//! SIGKILLed one gone.
//!
//! Screenshots of each state are written to `$CARGO_TARGET_TMPDIR/dashboard/`
//! (`target/tmp/dashboard/`). A test fails if the page logged a console error: a
//! script error, a CSP violation or a failed request other than the ones the test
//! provokes (the wrong key's 401, the stream's end after a stop).
//!
//! `.ci/run` installs chromium and chromium-driver; outside CI a machine without
//! them skips these tests, saying so; under `CI` a missing browser fails them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use spyder_testkit::redis::RedisServer;
use spyder_testkit::world::WorldOptions;

use crate::support::{self, Harness};

const ADMIN: &str = "browser-admin-key-0123456789";
const READ: &str = "browser-read-key-0123456789";
const LIMIT: Duration = Duration::from_secs(60);

/// `chromium` and `chromedriver`, where Debian's packages put them; `None` (the
/// caller skips) only outside CI.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    };
    let found = find("chromium").zip(find("chromedriver"));
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "chromium or chromedriver is not on PATH under CI: .ci/run installs them \
         (Debian packages chromium and chromium-driver)"
    );
    if found.is_none() {
        eprintln!(
            "chromium or chromedriver not on PATH: skipping the browser test (CI installs them)"
        );
    }
    found
}

/// Chromium's `browser` log since the last read (chromedriver's log endpoint; the
/// W3C protocol has none).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// A headless chromium with its own chromedriver and profile, gone on drop.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    profile: tempfile::TempDir,
    shots: PathBuf,
    test: &'static str,
}

impl Browser {
    async fn start(test: &'static str) -> Option<Self> {
        let (chromium, chromedriver) = browser_tools()?;
        let port = support::free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            // chromium's crash handler runs in a session of its own with its database
            // under the XDG config dir: there, its command line names the profile too,
            // so the cleanup below finds it.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        support::until("chromedriver listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        // The flags that keep chromium off this machine's closed network and quiet.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1150",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            LIMIT,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("a WebDriver session in time")
        .expect("a WebDriver session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Some(Self {
            client,
            _driver: driver,
            profile,
            shots,
            test,
        })
    }

    /// Ends the session, then checks that no process of this browser is left.
    async fn quit(self) {
        let profile = self.profile.path().to_owned();
        let _ = tokio::time::timeout(LIMIT, self.client.clone().close()).await;
        drop(self);
        // Killed processes take a moment to go.
        eventually("no browser process left", Duration::from_secs(10), || {
            let left = processes_mentioning(&profile);
            async move { left.is_empty().then_some(()) }
        })
        .await;
    }

    /// Writes a PNG of the page as `<test>-<state>.png`.
    async fn screenshot(&self, state: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(format!("{}-{state}.png", self.test));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The browser log entries since the last call, as `(level, source, message)`.
    async fn log(&self) -> Vec<(String, String, String)> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        entries
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|e| {
                        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                        (text("level"), text("source"), text("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails on any console error since the last read, except failed requests whose
    /// message contains one of `expected`.
    async fn assert_no_console_errors(&self, expected: &[&str]) {
        let errors: Vec<_> = self
            .log()
            .await
            .into_iter()
            .filter(|(level, _, _)| level == "SEVERE")
            .filter(|(_, source, message)| {
                !(source == "network" && expected.iter().any(|e| message.contains(e)))
            })
            .collect();
        assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    }

    /// `textContent` of the element with `id` (hidden ones too).
    async fn text(&self, id: &str) -> String {
        let value = self
            .client
            .execute(
                "const el = document.getElementById(arguments[0]); return el ? el.textContent : null;",
                vec![json!(id)],
            )
            .await
            .expect("script runs");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Whether the element with `id` is shown (it and no ancestor `hidden`).
    async fn shown(&self, id: &str) -> bool {
        let value = self
            .client
            .execute(
                "let el = document.getElementById(arguments[0]); \
                 if (!el) return false; \
                 for (; el; el = el.parentElement) if (el.hidden) return false; \
                 return true;",
                vec![json!(id)],
            )
            .await
            .expect("script runs");
        value.as_bool().unwrap_or(false)
    }

    /// Rows of the table with `id`, as their cells' text (`th` and `td`), each with
    /// its class.
    async fn rows(&self, id: &str) -> Vec<(String, Vec<String>)> {
        let value = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr')) \
                 .map(tr => [tr.className, Array.from(tr.cells).map(c => c.textContent)]);",
                vec![json!(id)],
            )
            .await
            .expect("script runs");
        serde_json::from_value(value).expect("rows")
    }

    /// A two-column table of the page (name, count) as a map.
    async fn counts(&self, id: &str) -> std::collections::BTreeMap<String, u64> {
        self.rows(id)
            .await
            .into_iter()
            .filter_map(|(_, cells)| Some((cells.first()?.clone(), page_number(cells.get(1)?)?)))
            .collect()
    }

    async fn login(&self, key: &str) {
        let input = self
            .client
            .find(Locator::Id("key"))
            .await
            .expect("key input");
        input.send_keys(key).await.expect("type the key");
        self.client
            .find(Locator::Css("#login-form button[type=submit]"))
            .await
            .expect("connect button")
            .click()
            .await
            .expect("click connect");
    }

    async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    /// Sends WebDriver keys to the element with `id` (a slider moves and fires its
    /// events as for a user's keyboard).
    async fn keys(&self, id: &str, keys: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .send_keys(keys)
            .await
            .unwrap_or_else(|e| panic!("keys to #{id}: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Whatever ended the test (a failed assertion too), no browser outlives it:
        // chromium's processes survive their chromedriver, so they are found by this
        // browser's own profile directory and killed.
        for pid in processes_mentioning(self.profile.path()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Processes whose command line contains `path` (from `/proc`).
fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v1/stats` with the read key.
fn stats(port: u16) -> Option<Value> {
    support::get(port, "/api/v1/stats", Some(READ)).and_then(|b| serde_json::from_str(&b).ok())
}

/// A number as the page formats it (`toLocaleString`: thousands separated).
fn page_number(text: &str) -> Option<u64> {
    text.replace(',', "").trim().parse().ok()
}

fn keys_config(path: &Path) {
    std::fs::write(
        path,
        format!(
            "api:\n  keys:\n    - key: {ADMIN}\n      name: operator\n      scope: admin\n    \
             - key: {READ}\n      name: viewer\n      scope: read\n"
        ),
    )
    .expect("config file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser_shows_the_run_and_steers_it() {
    let Some(browser) = Browser::start("probe").await else {
        return;
    };
    // Black holes keep tasks running for tls_timeout each, so workers are busy for
    // the whole test; the rest give edges and discoveries.
    let options = WorldOptions {
        black_holes: 0.6,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_b40e, 300, options).await;
    let config = h.path("spyder.yaml");
    keys_config(&config);
    let port = support::free_port();
    let mut cmd = h.spyder();
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg(format!("-output={}", h.path("graph.json").display()))
        .args([
            "-concurrency=4",
            "-set=crawling.tls_timeout=8s",
            "-set=crawling.shutdown_grace=5s",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(h.path("stderr.log")).expect("stderr file"));
    let mut child = cmd.spawn().expect("spyder starts");
    let base = format!("http://127.0.0.1:{port}");
    support::until("the probe serves its stats", || stats(port)).await;
    let b = &browser;

    // The page before a key: a prompt, no data.
    b.client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("open the dashboard");
    eventually("the login prompt", LIMIT, || async {
        b.shown("key").await.then_some(())
    })
    .await;
    assert!(!b.shown("main").await, "no data before a key");
    b.screenshot("login").await;

    // A wrong key: an error, still no data.
    b.login("not-a-key-of-this-probe").await;
    let error = eventually("the wrong key's error", LIMIT, || async {
        let text = b.text("login-error").await;
        (b.shown("login-error").await && !text.is_empty()).then_some(text)
    })
    .await;
    assert!(error.contains("401"), "{error}");
    assert!(!b.shown("main").await, "no data for a wrong key");
    assert_eq!(b.text("tasks-ok").await, "–", "nothing was drawn");
    b.screenshot("wrong-key").await;
    b.assert_no_console_errors(&["/api/v1/events"]).await;

    // A read key: data, no controls.
    b.login(READ).await;
    eventually("data for the read key", LIMIT, || async {
        (b.shown("main").await && page_number(&b.text("tasks-ok").await).is_some()).then_some(())
    })
    .await;
    assert!(!b.shown("controls").await, "a read key sees no controls");
    b.screenshot("read-key").await;
    b.click("disconnect").await;

    // The admin key: controls, stop included; the badge says crawling.
    b.login(ADMIN).await;
    eventually("the badge says crawling", LIMIT, || async {
        (b.text("badge").await == "crawling").then_some(())
    })
    .await;
    assert!(b.shown("controls").await && b.shown("stop").await);
    eventually("the sliders hold the configuration", LIMIT, || async {
        (b.text("concurrency-value").await == "4").then_some(())
    })
    .await;
    eventually("discoveries listed", LIMIT, || async {
        (!b.text("discoveries").await.is_empty()).then_some(())
    })
    .await;
    b.screenshot("crawling").await;

    // Pause: workers go to 0 and the badge to paused.
    b.click("pause").await;
    eventually("active workers at 0", LIMIT, || async {
        stats(port).filter(|s| s["workers"]["active"] == 0 && s["paused"] == true)
    })
    .await;
    eventually("the badge says paused", LIMIT, || async {
        (b.text("badge").await == "paused").then_some(())
    })
    .await;
    // Nothing runs now: the page shows what the API says within a refresh (1 s;
    // the wait allows a loaded machine a few).
    let api = stats(port).expect("stats");
    let want = |s: &Value, k: &str, f: &str| s[k][f].as_u64().expect("a count");
    let shown = eventually(
        "the page's numbers equal the API's",
        Duration::from_secs(10),
        || async {
            let page = [
                page_number(&b.text("tasks-ok").await),
                page_number(&b.text("tasks-error").await),
                page_number(&b.text("workers-target").await),
                page_number(&b.text("workers-active").await),
            ];
            let api = [
                want(&api, "tasks", "ok"),
                want(&api, "tasks", "error"),
                want(&api, "workers", "target"),
                want(&api, "workers", "active"),
            ];
            (page == api.map(Some)).then_some(api)
        },
    )
    .await;
    assert!(shown[0] > 0, "tasks finished before the pause: {shown:?}");
    let records = b.counts("edges").await;
    let api = stats(port).expect("stats");
    for (kind, n) in api["edges"].as_object().expect("edges") {
        let n = n.as_u64().expect("a count");
        if n > 0 {
            assert_eq!(
                records.get(kind),
                Some(&n),
                "{kind} on the page: {records:?}"
            );
        }
    }
    // The TLS reasons of the black holes are among the top causes, as the API counts them.
    let causes = b.counts("causes").await;
    for cause in api["causes"].as_array().expect("causes") {
        let name = format!(
            "{}: {}",
            cause["outcome"].as_str().unwrap_or_default(),
            cause["reason"].as_str().unwrap_or_default()
        );
        assert_eq!(
            causes.get(&name).copied(),
            cause["count"].as_u64(),
            "{name} on the page: {causes:?}"
        );
    }
    assert!(
        causes
            .keys()
            .any(|c| c.starts_with("no_web: https timeout")),
        "a black hole's TLS timeout among the causes: {causes:?}"
    );
    let newest = api["recent_discoveries"][0]["host"]
        .as_str()
        .expect("a discovery");
    let listed = b.text("discoveries").await;
    assert!(
        listed.starts_with(newest),
        "{listed:?} starts with {newest}"
    );
    b.screenshot("paused").await;

    // Resume: workers come back.
    b.click("resume").await;
    eventually("active workers again", LIMIT, || async {
        stats(port).filter(|s| s["workers"]["active"].as_u64() > Some(0) && s["paused"] == false)
    })
    .await;
    eventually("the badge says crawling again", LIMIT, || async {
        (b.text("badge").await == "crawling").then_some(())
    })
    .await;

    // The concurrency slider: Home moves it to 1, and the pool shrinks to one task
    // (the others end within tls_timeout); two steps right make it 3 again.
    let active = || support::scrape(port).and_then(|m| m.value("spyder_active_workers", &[]));
    b.keys("concurrency", &Key::Home.to_string()).await;
    eventually("one active worker", LIMIT, || async {
        active().filter(|&n| n <= 1.0)
    })
    .await;
    assert_eq!(stats(port).expect("stats")["workers"]["target"], 1);
    b.keys("concurrency", &format!("{}{}", Key::Right, Key::Right))
        .await;
    eventually("three active workers", LIMIT, || async {
        active().filter(|&n| n == 3.0)
    })
    .await;
    assert_eq!(b.text("concurrency-value").await, "3");
    // The rate slider: one step left of 1000 (the world's flags) is 999.9.
    b.keys("rate", &Key::Left.to_string()).await;
    eventually("rate_per_host changed", LIMIT, || async {
        support::get(port, "/api/v1/config", Some(READ))
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .filter(|c| c["config"]["crawling"]["rate_per_host"] == 999.9)
    })
    .await;
    b.screenshot("concurrency-3").await;
    b.assert_no_console_errors(&[]).await;

    // A refused SIGHUP reload: config_error on the badge, until a good one.
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, "api: [unclosed\n").expect("bad config");
    support::signal(child.id().expect("pid"), "-HUP");
    eventually("the badge says config_error", LIMIT, || async {
        eprintln!(
            "DEBUG {} {} {:?}",
            b.text("badge").await,
            b.text("reason").await,
            stats(port).map(|s| s["config_error"].clone())
        );
        (b.text("badge").await == "config_error").then_some(())
    })
    .await;
    assert!(
        b.text("reason").await.contains("reload refused"),
        "{}",
        b.text("reason").await
    );
    b.screenshot("config-error").await;
    std::fs::write(&config, good).expect("good config");
    support::signal(child.id().expect("pid"), "-HUP");
    eventually("crawling after a good reload", LIMIT, || async {
        (b.text("badge").await == "crawling").then_some(())
    })
    .await;

    // Stop, confirmed: the probe drains and exits 0.
    b.click("stop").await;
    b.client.accept_alert().await.expect("confirm the stop");
    eventually("the badge says draining", LIMIT, || async {
        (b.text("badge").await == "draining").then_some(())
    })
    .await;
    b.screenshot("draining").await;
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the probe exits after the stop")
        .expect("status");
    let stderr = std::fs::read_to_string(h.path("stderr.log")).unwrap_or_default();
    assert!(status.success(), "{status}: {stderr}");
    // After the stop the stream ends and reconnects fail: those requests are expected.
    b.assert_no_console_errors(&["/api/v1/events", "ERR_CONNECTION_REFUSED"])
        .await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_table_lists_the_probes_of_a_queue_and_marks_a_killed_one_gone() {
    let Some(browser) = Browser::start("fleet").await else {
        return;
    };
    let h = Harness::new(0x5eed_f1ee, 10).await;
    let redis = RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let config = h.path("probe.yaml");
    keys_config(&config);
    let start = |id: &str, port: u16| {
        let mut cmd = h.queue_probe(&redis, &config, id, port);
        cmd.spawn().expect("spyder starts")
    };
    let ports = [
        support::free_port(),
        support::free_port(),
        support::free_port(),
    ];
    let mut probes: Vec<_> = ["probe-a", "probe-b", "probe-c"]
        .iter()
        .zip(ports)
        .map(|(id, port)| start(id, port))
        .collect();
    support::until("probe-a serves its stats", || stats(ports[0])).await;
    let b = &browser;
    b.client
        .goto(&format!("http://127.0.0.1:{}/dashboard", ports[0]))
        .await
        .expect("open the dashboard");
    b.login(READ).await;
    let by_probe = |rows: Vec<(String, Vec<String>)>| -> std::collections::BTreeMap<String, (String, Vec<String>)> {
        rows.into_iter()
            .filter_map(|(class, cells)| Some((cells.first()?.clone(), (class, cells))))
            .collect()
    };
    let fleet = eventually("three live probes listed", LIMIT, || async {
        let fleet = by_probe(b.rows("fleet").await);
        let live = ["probe-a", "probe-b", "probe-c"].iter().all(|id| {
            fleet
                .get(*id)
                .is_some_and(|(class, cells)| class != "gone" && cells[1] != "gone")
        });
        live.then_some(fleet)
    })
    .await;
    // Each row links to that probe's own dashboard.
    for (id, port) in ["probe-a", "probe-b", "probe-c"].iter().zip(ports) {
        let (_, cells) = &fleet[*id];
        assert_eq!(
            cells.last().map(String::as_str),
            Some(format!("127.0.0.1:{port}").as_str())
        );
    }
    assert!(!b.shown("controls").await, "a read key sees no controls");
    b.screenshot("fleet").await;

    // SIGKILL probe-c: no goodbye; its heartbeat ages past 30 s and the row says gone.
    let killed = Instant::now();
    probes[2].start_kill().expect("SIGKILL");
    let _ = probes[2].wait().await;
    eventually("probe-c marked gone", Duration::from_secs(45), || async {
        let fleet = by_probe(b.rows("fleet").await);
        fleet
            .get("probe-c")
            .filter(|(class, cells)| class == "gone" && cells[1] == "gone")
            .map(|_| ())
    })
    .await;
    let fleet = by_probe(b.rows("fleet").await);
    for id in ["probe-a", "probe-b"] {
        assert_ne!(fleet[id].0, "gone", "{id} lives: {fleet:?}");
    }
    eprintln!(
        "probe-c shown gone {:?} after its SIGKILL",
        killed.elapsed()
    );
    b.screenshot("fleet-gone").await;
    b.assert_no_console_errors(&[]).await;

    for probe in &probes[..2] {
        support::signal(probe.id().expect("pid"), "-TERM");
    }
    for probe in &mut probes[..2] {
        let status = tokio::time::timeout(LIMIT, probe.wait())
            .await
            .expect("probe exits")
            .expect("status");
        assert!(status.success());
    }
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_badge_says_stalled_then_degraded_with_the_failing_check() {
    let Some(browser) = Browser::start("health").await else {
        return;
    };
    // Every site a black hole: no task finishes for tls_timeout, so with a 1 s
    // stall_after the progress check fires while work is pending.
    let options = WorldOptions {
        black_holes: 1.0,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_57a1, 20, options).await;
    let mut redis = RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let config = h.path("probe.yaml");
    keys_config(&config);
    let port = support::free_port();
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg(format!("-output={}", h.path("graph.json").display()))
        .args([
            "-set=crawling.tls_timeout=30s",
            "-set=crawling.task_timeout=40s",
            "-set=telemetry.stall_after=1s",
            "-set=crawling.shutdown_grace=1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spyder starts");
    support::until("the probe serves its stats", || stats(port)).await;
    let b = &browser;
    b.client
        .goto(&format!("http://127.0.0.1:{port}/dashboard"))
        .await
        .expect("open the dashboard");
    b.login(READ).await;
    eventually("the badge says stalled", LIMIT, || async {
        (b.text("badge").await == "stalled").then_some(())
    })
    .await;
    assert!(
        b.text("reason").await.contains("stall_after"),
        "{}",
        b.text("reason").await
    );
    b.screenshot("stalled").await;

    // The queue's Redis gone: its check is unhealthy, which outranks a stall.
    redis.kill().expect("kill redis-server");
    eventually("the badge says degraded", LIMIT, || async {
        (b.text("badge").await == "degraded").then_some(())
    })
    .await;
    let reason = b.text("reason").await;
    assert!(reason.starts_with("redis_queue:"), "{reason}");
    assert!(
        b.shown("checks-panel").await,
        "the failing checks are listed"
    );
    let checks: Vec<String> = b
        .rows("checks")
        .await
        .into_iter()
        .filter_map(|(_, cells)| cells.first().cloned())
        .collect();
    assert!(checks.contains(&"redis_queue".to_owned()), "{checks:?}");
    b.screenshot("degraded").await;
    b.assert_no_console_errors(&[]).await;

    support::signal(child.id().expect("pid"), "-TERM");
    tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the probe exits with its Redis gone")
        .expect("status");
    browser.quit().await;
}
