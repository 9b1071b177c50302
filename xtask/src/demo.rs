//! `cargo xtask demo [SITES] [--keep] [-- spyder flags]`: spyder against an offline
//! testkit world.
//!
//! 1. Starts a world of SITES generated sites (default 25; fixed seed): a DNS server,
//!    HTTPS/HTTP hosts on 127.0.0.x and the private CA that signed them, and writes
//!    its files to a fresh directory: `domains.txt`, `ca.pem` and
//!    `expected-edges.tsv` (`type`, `source`, `target`: every edge a correct crawl
//!    emits).
//! 2. Builds the release `spyder` (nested cargo without what `cargo run` set for
//!    xtask, so nothing rebuilds: [`crate::release::cargo`]) and runs it over the
//!    world's hosts. Its graph goes to stdout as it comes, and to `graph.<format>`
//!    in the directory; its logs to stderr.
//! 3. Reads the edges back from the graph (json, jsonl or csv) and prints whether
//!    every expected edge was found: `demo: 152 of 152 expected edges found`, or how
//!    many and which are missing, with exit status 1.
//!
//! With `--keep` the world stays up after the crawl, until Ctrl-C, and the directory
//! is kept: the demo prints it, the exact spyder command line for another crawl, and
//! curl and dig commands for one site.
//!
//! Exit status: 0 when spyder exited 0 and every expected edge was found; 1
//! otherwise; 2 for bad arguments; 130 after a Ctrl-C during the crawl (spyder gets
//! the signal too and shuts down cleanly; the world does not stay up).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use spyder_model::EdgeType;
use spyder_testkit::world::{ExpectedEdge, World};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// The world's seed: the same world on every run.
const SEED: u64 = 2026;
/// Sites unless given.
const DEFAULT_SITES: usize = 25;
/// Missing edges listed by name; the rest are counted.
const LIST_MISSING: usize = 20;
/// Unexpected edges listed by name.
const LIST_EXTRA: usize = 5;

/// What `cargo xtask demo` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Sites in the world.
    pub sites: usize,
    /// `--keep`: keep the files and the world up until Ctrl-C.
    pub keep: bool,
    /// Flags after `--`, passed on to spyder after the demo's own.
    pub extra: Vec<String>,
}

impl Options {
    /// Parses the arguments after `demo`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            sites: DEFAULT_SITES,
            keep: false,
            extra: Vec::new(),
        };
        let mut sites = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--keep" => options.keep = true,
                "--" => {
                    options.extra = it.by_ref().cloned().collect();
                }
                other if other.starts_with('-') => {
                    return Err(format!("unknown argument {other:?}"));
                }
                other if sites.is_none() => {
                    sites = Some(other.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(
                        || format!("SITES must be a positive number, not {other:?}"),
                    )?);
                }
                other => return Err(format!("stray argument {other:?}")),
            }
        }
        if let Some(sites) = sites {
            options.sites = sites;
        }
        Ok(options)
    }
}

/// Entry point of `cargo xtask demo`.
pub(crate) fn demo(args: &[String]) -> ExitCode {
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!(
                "xtask demo: {e}\nusage: cargo xtask demo [SITES] [--keep] [-- spyder flags]"
            );
            return ExitCode::from(2);
        }
    };
    eprintln!("xtask demo: building the release spyder");
    let binary = match crate::release::build_spyder() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("xtask demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run(&options, &binary).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("xtask demo: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(options: &Options, binary: &Path) -> Result<ExitCode, String> {
    // From here on a Ctrl-C reaches spyder (same process group), which shuts down
    // cleanly; the demo outlives it to report.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let world = World::generate(SEED, options.sites)
        .await
        .map_err(|e| format!("cannot start the world: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("spyder-demo-")
        .tempdir()
        .map_err(|e| format!("cannot make a directory for the world's files: {e}"))?;
    let expected = world.expected_edges();
    let files = Files::write(dir.path(), &world, &expected)?;
    eprintln!(
        "xtask demo: {} sites; DNS at {}, HTTPS port {}, HTTP port {}",
        options.sites,
        world.dns_addr(),
        world.web.https_port(),
        world.web.http_port()
    );
    let flags = spyder_flags(&world, &files);
    let crawl = crawl(binary, &flags, &options.extra, dir.path()).await?;
    // A signal delivered since `sigint` was set up is waiting there.
    let interrupted = tokio::select! {
        biased;
        _ = sigint.recv() => true,
        () = std::future::ready(()) => false,
    };

    let mut code = ExitCode::SUCCESS;
    if !crawl.status.success() {
        eprintln!("xtask demo: spyder exited with {}", crawl.status);
        code = ExitCode::FAILURE;
    }
    match &crawl.graph {
        None => {
            eprintln!(
                "demo: spyder wrote no graph to stdout (sent elsewhere by a flag?); \
                 the {} expected edges were not checked",
                expected.len()
            );
            code = ExitCode::FAILURE;
        }
        Some(graph) => match read_edges(graph) {
            Ok(found) => {
                let verdict = Verdict::new(&expected, &found);
                eprint!("{}", verdict.text(LIST_MISSING, LIST_EXTRA));
                if !verdict.missing.is_empty() {
                    code = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("demo: cannot read spyder's graph: {e}");
                code = ExitCode::FAILURE;
            }
        },
    }
    if interrupted {
        if options.keep {
            let kept = dir.keep();
            eprintln!(
                "xtask demo: interrupted; the world's files stay in {}",
                kept.display()
            );
        }
        return Ok(ExitCode::from(130));
    }
    if options.keep {
        let kept = dir.keep();
        eprint!(
            "{}",
            keep_text(&world, binary, &flags, &kept, crawl.graph.as_deref())
        );
        sigint.recv().await;
        eprintln!(
            "\nxtask demo: world stopped; its files stay in {}",
            kept.display()
        );
    }
    Ok(code)
}

/// The world's files in the demo's directory.
struct Files {
    domains: PathBuf,
    roots: PathBuf,
}

impl Files {
    fn write(dir: &Path, world: &World, expected: &BTreeSet<ExpectedEdge>) -> Result<Self, String> {
        let files = Self {
            domains: dir.join("domains.txt"),
            roots: dir.join("ca.pem"),
        };
        let expected: String = expected
            .iter()
            .map(|(kind, source, target)| format!("{kind}\t{source}\t{target}\n"))
            .collect();
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(&files.domains, &(world.hosts().join("\n") + "\n"))?;
        write(&files.roots, &world.ca.root_pem())?;
        write(&dir.join("expected-edges.tsv"), &expected)?;
        Ok(files)
    }
}

/// The flags that point spyder at `world` (before the user's own).
fn spyder_flags(world: &World, files: &Files) -> Vec<String> {
    vec![
        format!("-domains={}", files.domains.display()),
        format!("-dns_servers={}", world.dns_addr()),
        "-allow_cidrs=127.0.0.0/8".to_owned(),
        format!("-set=crawling.https_port={}", world.web.https_port()),
        format!("-set=crawling.http_port={}", world.web.http_port()),
        format!("-set=crawling.tls_roots={}", files.roots.display()),
        "-set=crawling.rate_per_host=100".to_owned(),
        "-metrics_addr=".to_owned(),
    ]
}

/// How the crawl went.
struct Crawl {
    status: std::process::ExitStatus,
    /// The file holding spyder's stdout; `None` when it wrote nothing there.
    graph: Option<PathBuf>,
}

/// Runs spyder with `flags` then `extra`; copies its stdout to ours (until ours
/// closes) and to `graph.<format>` in `dir`.
async fn crawl(
    binary: &Path,
    flags: &[String],
    extra: &[String],
    dir: &Path,
) -> Result<Crawl, String> {
    let mut cmd = tokio::process::Command::new(binary);
    // A developer's REDIS_ADDR would send the demo's dedup to their Redis.
    crate::release::without_spyder_env(&mut cmd);
    let mut child = cmd
        .args(flags)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let source = child.stdout.take().ok_or("spyder has no stdout")?;
    let copied = copy_graph(source, dir).await;
    // Whatever the copy did, spyder is waited for (a closed pipe ends it too).
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for spyder: {e}"))?;
    Ok(Crawl {
        status,
        graph: copied?,
    })
}

/// Copies `source` line by line to stdout and to a file in `dir` named after the
/// format of its first line. Stdout closing (`| head`) stops only that copy.
async fn copy_graph(
    source: tokio::process::ChildStdout,
    dir: &Path,
) -> Result<Option<PathBuf>, String> {
    let mut source = tokio::io::BufReader::new(source);
    let mut stdout = Some(tokio::io::stdout());
    let mut file: Option<(PathBuf, tokio::fs::File)> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = source
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading spyder's output: {e}"))?;
        if n == 0 {
            break;
        }
        if file.is_none() {
            let path = dir.join(format!("graph.{}", format_of(&line)));
            let created = tokio::fs::File::create(&path)
                .await
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            file = Some((path, created));
        }
        if let Some((path, out)) = file.as_mut() {
            out.write_all(&line)
                .await
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if let Some(out) = stdout.as_mut() {
            let written = async {
                out.write_all(&line).await?;
                out.flush().await
            };
            if written.await.is_err() {
                stdout = None;
            }
        }
    }
    match file {
        Some((path, mut out)) => {
            out.flush()
                .await
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Some(path))
        }
        None => Ok(None),
    }
}

/// `csv`, `jsonl` or `json`, from the first line of a graph.
fn format_of(first_line: &[u8]) -> &'static str {
    if first_line.starts_with(b"record,") {
        "csv"
    } else if first_line.starts_with(b"{\"record\":") {
        "jsonl"
    } else {
        "json"
    }
}

/// Every edge of a graph file in any output format.
fn read_edges(path: &Path) -> Result<BTreeSet<ExpectedEdge>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    spyder_testkit::graph::edges(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The expected edges against the ones found.
#[derive(Debug)]
struct Verdict<'a> {
    expected: usize,
    missing: Vec<&'a ExpectedEdge>,
    extra: Vec<&'a ExpectedEdge>,
}

impl<'a> Verdict<'a> {
    fn new(expected: &'a BTreeSet<ExpectedEdge>, found: &'a BTreeSet<ExpectedEdge>) -> Self {
        Self {
            expected: expected.len(),
            missing: expected.difference(found).collect(),
            extra: found.difference(expected).collect(),
        }
    }

    /// `demo: N of N expected edges found`, or how many are missing and the first
    /// `list_missing` of them; then a note on edges the world does not expect (the
    /// first `list_extra` named), which `-continuous` and the like add.
    fn text(&self, list_missing: usize, list_extra: usize) -> String {
        let found = self.expected - self.missing.len();
        let mut text = format!("demo: {found} of {} expected edges found", self.expected);
        if self.missing.is_empty() {
            text.push('\n');
        } else {
            text.push_str(&format!("; {} missing:\n", self.missing.len()));
            list(&mut text, &self.missing, list_missing);
        }
        if !self.extra.is_empty() {
            text.push_str(&format!(
                "demo: also {} edges the world does not expect:\n",
                self.extra.len()
            ));
            list(&mut text, &self.extra, list_extra);
        }
        text
    }
}

/// Lines `  TYPE source -> target` for the first `limit` edges, then how many more.
fn list(text: &mut String, edges: &[&ExpectedEdge], limit: usize) {
    for (kind, source, target) in edges.iter().take(limit) {
        text.push_str(&format!("  {kind} {source} -> {target}\n"));
    }
    if edges.len() > limit {
        text.push_str(&format!("  … and {} more\n", edges.len() - limit));
    }
}

/// What `--keep` prints while the world stays up: the directory, a spyder command
/// line, and curl and dig commands for one site.
fn keep_text(
    world: &World,
    binary: &Path,
    flags: &[String],
    dir: &Path,
    graph: Option<&Path>,
) -> String {
    let mut names = vec!["domains.txt", "ca.pem", "expected-edges.tsv"];
    if let Some(name) = graph.and_then(|g| g.file_name()).and_then(|n| n.to_str()) {
        names.push(name);
    }
    let command: Vec<String> = std::iter::once(binary.display().to_string())
        .chain(flags.iter().cloned())
        .map(|arg| shell_quote(&arg))
        .collect();
    let mut text = format!(
        "\nxtask demo: the world stays up until Ctrl-C; its files are kept in {}\n  ({})\n\
         crawl it again (add your own flags):\n  {}\n",
        dir.display(),
        names.join(", "),
        command.join(" ")
    );
    if let Some((host, ip)) = sample_site(world) {
        let https = world.web.https_port();
        let roots = shell_quote(&dir.join("ca.pem").display().to_string());
        let dns = world.dns_addr();
        text.push_str(&format!(
            "look at one site ({host}; a few sites serve an expired or self-signed \
             certificate on purpose):\n  curl --cacert {roots} --resolve {host}:{https}:{ip} https://{host}:{https}/\n  \
             dig @{} -p {} {host} A\n",
            dns.ip(),
            dns.port()
        ));
    }
    text
}

/// A host the world serves whole (`complete`) and the IPv4 address it resolves to.
fn sample_site(world: &World) -> Option<(String, Ipv4Addr)> {
    world
        .sites
        .iter()
        .filter(|site| site.outcome == "complete")
        .find_map(|site| {
            site.edges.iter().find_map(|(kind, source, target)| {
                let ip = target.parse::<Ipv4Addr>().ok()?;
                (*kind == EdgeType::ResolvesTo && *source == site.host)
                    .then(|| (site.host.clone(), ip))
            })
        })
}

/// `arg` as a POSIX shell word: unchanged when it is safe, else single-quoted.
fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        let parsed = Options::parse(&[]).expect("no arguments");
        assert_eq!(
            parsed,
            Options {
                sites: 25,
                keep: false,
                extra: vec![]
            }
        );
        let parsed = Options::parse(&args(&["200", "--keep", "--", "-jsonl", "--keep"]))
            .expect("all of them");
        assert_eq!(parsed.sites, 200);
        assert!(parsed.keep);
        assert_eq!(parsed.extra, ["-jsonl", "--keep"], "after -- is spyder's");
        assert!(
            Options::parse(&args(&["--keep", "7"]))
                .expect("either order")
                .keep
        );
        for bad in [&["x"][..], &["0"], &["5", "6"], &["--kep"]] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    fn edge(kind: EdgeType, source: &str, target: &str) -> ExpectedEdge {
        (kind, source.to_owned(), target.to_owned())
    }

    #[test]
    fn the_graph_file_is_named_after_its_format() {
        assert_eq!(format_of(br#"{"probe_id":"local-1","run_id":"r"}"#), "json");
        assert_eq!(format_of(br#"{"record":"edge","type":"USES_NS"}"#), "jsonl");
        assert_eq!(format_of(b"record,batch_id,timestamp\n"), "csv");
    }

    #[test]
    fn the_verdict_says_whether_every_expected_edge_was_found() {
        let expected: BTreeSet<ExpectedEdge> = [
            edge(EdgeType::ResolvesTo, "a.example", "127.0.0.2"),
            edge(EdgeType::UsesNs, "a.example", "ns.a.example"),
            edge(EdgeType::LinksTo, "a.example", "b.example"),
        ]
        .into();
        let all = Verdict::new(&expected, &expected);
        assert_eq!(all.text(20, 5), "demo: 3 of 3 expected edges found\n");

        let found: BTreeSet<ExpectedEdge> = [
            edge(EdgeType::ResolvesTo, "a.example", "127.0.0.2"),
            edge(EdgeType::LinksTo, "c.example", "d.example"),
        ]
        .into();
        let some = Verdict::new(&expected, &found);
        assert_eq!(some.missing.len(), 2);
        assert_eq!(
            some.text(1, 5),
            "demo: 1 of 3 expected edges found; 2 missing:\n  \
             USES_NS a.example -> ns.a.example\n  … and 1 more\n\
             demo: also 1 edges the world does not expect:\n  \
             LINKS_TO c.example -> d.example\n"
        );
    }

    #[test]
    fn printed_commands_survive_a_shell() {
        assert_eq!(
            shell_quote("-set=crawling.https_port=443"),
            "-set=crawling.https_port=443"
        );
        assert_eq!(shell_quote("-metrics_addr="), "-metrics_addr=");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[tokio::test]
    async fn a_demo_world_names_a_site_to_look_at() {
        let world = World::generate(SEED, DEFAULT_SITES)
            .await
            .expect("world starts");
        let (host, ip) = sample_site(&world).expect("a complete site with an address");
        assert!(world.hosts().contains(&host));
        assert!(ip.is_loopback(), "{ip}");
        let dir = Path::new("/tmp/spyder-demo-x");
        let files = Files {
            domains: dir.join("domains.txt"),
            roots: dir.join("ca.pem"),
        };
        let flags = spyder_flags(&world, &files);
        let text = keep_text(&world, Path::new("/t/release/spyder"), &flags, dir, None);
        assert!(text.contains("/tmp/spyder-demo-x"), "{text}");
        assert!(
            text.contains(&format!(
                "/t/release/spyder -domains=/tmp/spyder-demo-x/domains.txt -dns_servers={} ",
                world.dns_addr()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "--resolve {host}:{}:{ip} ",
                world.web.https_port()
            )),
            "{text}"
        );
    }
}
