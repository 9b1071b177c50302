//! Finding the conformance files and judging a suite's cases against the
//! expected differences.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::expected::{DIFFERENCES, Suite};

/// Overrides where the conformance files are read from (a checkout whose
/// `../shared` is elsewhere, e.g. a git worktree).
pub const DIR_ENV: &str = "SPYDER_CONFORMANCE_DIR";

/// The directory holding the conformance files: `$SPYDER_CONFORMANCE_DIR`, else
/// `../shared/conformance` beside the workspace root.
///
/// When it is missing the suite cannot run: under CI (`CI` set) that fails the
/// test; elsewhere this says why on stderr and gives `None`, and the caller
/// returns.
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os(DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new(".."))
            .join("../shared/conformance"),
    };
    if dir.join("SOURCES.md").is_file() {
        return Some(dir);
    }
    let why = format!(
        "the conformance files are not at {} (expected ../shared/conformance beside the \
         workspace, or the directory named by {DIR_ENV}); the peer suites cannot run",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("NOT RUN: {why}");
    None
}

/// The text of conformance file `name`, read where it lies.
pub fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Conformance file `name`, parsed as JSON.
pub fn read_json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&read(dir, name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The outcome of one case.
pub enum Verdict {
    /// spyder does what the peer's test expects.
    Pass,
    /// spyder does what the peer's test expects, mapped through a rule of the
    /// spec (e.g. an IP-literal link host yields no host, SPEC §3.3); `rule`
    /// names it, for the counts.
    ByDesign { rule: &'static str },
    /// spyder does something else; `detail` says what was expected and got.
    Differs { detail: String },
}

/// Tallies a suite's verdicts and checks them against [`DIFFERENCES`].
pub struct Report {
    suite: Suite,
    passed: usize,
    by_design: std::collections::BTreeMap<&'static str, usize>,
    expected: usize,
    failures: Vec<String>,
    differing: BTreeSet<String>,
    seen: BTreeSet<String>,
}

impl Report {
    pub fn new(suite: Suite) -> Self {
        Self {
            suite,
            passed: 0,
            by_design: Default::default(),
            expected: 0,
            failures: Vec::new(),
            differing: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }

    /// Records the verdict on case `id` (unique within the suite).
    pub fn record(&mut self, id: &str, verdict: Verdict) {
        assert!(
            self.seen.insert(id.to_owned()),
            "{:?}: case id {id:?} occurs twice; the harness must name cases uniquely",
            self.suite
        );
        let listed = DIFFERENCES
            .iter()
            .find(|d| d.suite == self.suite && d.case == id);
        match (verdict, listed) {
            (Verdict::Pass, None) => self.passed += 1,
            (Verdict::ByDesign { rule }, None) => *self.by_design.entry(rule).or_default() += 1,
            (Verdict::Differs { .. }, Some(_)) => {
                self.expected += 1;
                self.differing.insert(id.to_owned());
            }
            (Verdict::Differs { detail }, None) => {
                self.failures.push(format!("{id}: {detail}"));
            }
            (Verdict::Pass | Verdict::ByDesign { .. }, Some(d)) => self.failures.push(format!(
                "{id}: listed as an expected difference ({}) but now agrees; remove it from \
                 expected.rs",
                d.reason
            )),
        }
    }

    /// Prints the counts and fails listing every case that neither passed nor
    /// is an expected difference, and every listed difference that no case of
    /// this run showed.
    pub fn finish(mut self) {
        for d in DIFFERENCES.iter().filter(|d| d.suite == self.suite) {
            if !self.seen.contains(d.case) {
                self.failures.push(format!(
                    "{}: listed as an expected difference but no such case ran",
                    d.case
                ));
            }
        }
        let mut summary = format!(
            "{:?} conformance: {} passed, {} by design, {} expected differences, {} failing",
            self.suite,
            self.passed,
            self.by_design.values().sum::<usize>(),
            self.expected,
            self.failures.len()
        );
        for (rule, n) in &self.by_design {
            let _ = write!(summary, "\n  by design ({rule}): {n}");
        }
        println!("{summary}");
        assert!(
            self.failures.is_empty(),
            "{summary}\nfailing cases:\n  {}",
            self.failures.join("\n  ")
        );
        assert!(
            self.passed > 0,
            "{:?}: no case passed, the harness read nothing",
            self.suite
        );
    }
}
