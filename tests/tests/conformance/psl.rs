//! The Public Suffix List's tests and its list against the model's apex
//! (SPEC §2.1: eTLD+1 by the full list, private section included, else the
//! host itself).

use std::collections::HashSet;

use spyder_model::{HostName, NameKind};

use crate::expected::Suite;
use crate::support::{self, Report, Verdict};

/// `test_psl.txt`: `checkPublicSuffix(input, expected)` lines, where
/// `expected` is the registrable domain or `null`.
///
/// Mapping: an input [`HostName`] refuses (`null`, a leading dot) has no apex,
/// which only a `null` expectation allows. Otherwise the apex must be the
/// expected domain in spyder's normal form (lower case, IDNs in punycode,
/// SPEC §3.3), or the host itself where the list expects `null` (SPEC §2.1).
#[test]
fn psl_test_file() {
    let Some(dir) = support::data_dir() else {
        return;
    };
    let text = support::read(&dir, "test_psl.txt");
    let mut report = Report::new(Suite::PslTests);
    let mut cases = 0;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(args) = line
            .strip_prefix("checkPublicSuffix(")
            .and_then(|rest| rest.strip_suffix(");"))
        else {
            assert!(
                line.is_empty() || line.starts_with("//"),
                "test_psl.txt:{}: unreadable line {line:?}",
                number + 1
            );
            continue;
        };
        let (input, expected) = parse_args(args)
            .unwrap_or_else(|| panic!("test_psl.txt:{}: unreadable {line:?}", number + 1));
        cases += 1;
        let id = format!("checkPublicSuffix({})", args);
        report.record(&id, judge(input.as_deref(), expected.as_deref()));
    }
    assert!(cases > 50, "test_psl.txt held only {cases} cases");
    report.finish();
}

fn judge(input: Option<&str>, expected: Option<&str>) -> Verdict {
    let host = input.and_then(|input| HostName::parse(input, NameKind::Strict).ok());
    let Some(host) = host else {
        return match expected {
            None => Verdict::ByDesign {
                rule: "input not a host name: no apex",
            },
            Some(expected) => Verdict::Differs {
                detail: format!("{input:?} is refused as a host name; expected apex {expected}"),
            },
        };
    };
    match expected {
        None if host.apex() == host.as_str() => Verdict::ByDesign {
            rule: "no registrable domain: the apex is the host (SPEC §2.1)",
        },
        None => Verdict::Differs {
            detail: format!(
                "{host} has no registrable domain, yet its apex is {}",
                host.apex()
            ),
        },
        Some(expected) => match HostName::parse(expected, NameKind::Strict) {
            Ok(want) if want.as_str() == host.apex() => Verdict::Pass,
            Ok(want) => Verdict::Differs {
                detail: format!("apex of {host} is {}, expected {want}", host.apex()),
            },
            Err(e) => panic!("expected apex {expected:?} is no host name: {e}"),
        },
    }
}

/// `'a', 'b'`, `null, null` …: the two arguments, `None` for `null`.
fn parse_args(args: &str) -> Option<(Option<String>, Option<String>)> {
    fn one(arg: &str) -> Option<Option<String>> {
        let arg = arg.trim();
        if arg == "null" {
            return Some(None);
        }
        let inner = arg.strip_prefix('\'')?.strip_suffix('\'')?;
        (!inner.contains('\'')).then(|| Some(inner.to_owned()))
    }
    let (input, expected) = args.split_once(',')?;
    Some((one(input)?, one(expected)?))
}

/// The rules of `public_suffix_list.dat`, each checked through a host just
/// under it: `spyderprobe.<rule>` for a rule, `a.spyderprobe.<rest>` for a
/// wildcard `*.<rest>`, `<rule>` and `spyderprobe.<rule>` for an exception
/// `!<rule>`. The apex each must have is worked out from the file itself by
/// the list's algorithm (<https://publicsuffix.org/list/>), so the check holds
/// the list's whole content, private section included, against the one the
/// `psl` crate embeds. A case's id is its host.
#[test]
fn psl_list_rules() {
    let Some(dir) = support::data_dir() else {
        return;
    };
    let text = support::read(&dir, "public_suffix_list.dat");
    let list = List::parse(&text);
    assert!(
        list.rules.len() > 5000,
        "public_suffix_list.dat held only {} rules",
        list.rules.len()
    );
    let mut report = Report::new(Suite::PslList);
    for rule in &list.rules {
        for probe in rule.probes() {
            let host = HostName::parse(&probe, NameKind::Strict).unwrap_or_else(|e| {
                panic!("rule {}: probe {probe} is no host name: {e}", rule.text)
            });
            let want = list.registrable(host.as_str()).unwrap_or(host.as_str());
            let verdict = if host.apex() == want {
                Verdict::Pass
            } else {
                Verdict::Differs {
                    detail: format!(
                        "(rule {}) apex is {}, the list says {want}",
                        rule.text,
                        host.apex()
                    ),
                }
            };
            report.record(&probe, verdict);
        }
    }
    report.finish();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Wildcard,
    Exception,
}

/// One rule as the file writes it, and its name in punycode without `*.`/`!`.
struct Rule {
    text: String,
    kind: Kind,
    name: String,
}

impl Rule {
    fn probes(&self) -> Vec<String> {
        match self.kind {
            Kind::Normal => vec![format!("spyderprobe.{}", self.name)],
            Kind::Wildcard => vec![format!("a.spyderprobe.{}", self.name)],
            Kind::Exception => vec![self.name.clone(), format!("spyderprobe.{}", self.name)],
        }
    }
}

/// The list, for the reference algorithm.
struct List {
    rules: Vec<Rule>,
    normal: HashSet<String>,
    wildcard: HashSet<String>,
    exception: HashSet<String>,
}

impl List {
    fn parse(text: &str) -> Self {
        let mut list = Self {
            rules: Vec::new(),
            normal: HashSet::new(),
            wildcard: HashSet::new(),
            exception: HashSet::new(),
        };
        for line in text.lines() {
            let Some(token) = line.split_whitespace().next() else {
                continue;
            };
            if token.starts_with("//") {
                continue;
            }
            let (kind, rest) = if let Some(rest) = token.strip_prefix("*.") {
                (Kind::Wildcard, rest)
            } else if let Some(rest) = token.strip_prefix('!') {
                (Kind::Exception, rest)
            } else {
                (Kind::Normal, token)
            };
            let name = HostName::parse(rest, NameKind::Strict)
                .unwrap_or_else(|e| panic!("PSL rule {token:?} is no host name: {e}"))
                .into_string();
            let set = match kind {
                Kind::Normal => &mut list.normal,
                Kind::Wildcard => &mut list.wildcard,
                Kind::Exception => &mut list.exception,
            };
            set.insert(name.clone());
            list.rules.push(Rule {
                text: token.to_owned(),
                kind,
                name,
            });
        }
        list
    }

    /// The registrable domain of `host` by the list's algorithm: the
    /// prevailing rule is an exception if one matches, else the matching rule
    /// with the most labels (`*` when none does); the public suffix is its
    /// match (an exception's without its first label), the registrable domain
    /// that plus one label.
    fn registrable<'h>(&self, host: &'h str) -> Option<&'h str> {
        let labels: Vec<&str> = host.split('.').collect();
        let n = labels.len();
        let suffix_at = |i: usize| {
            let start: usize = labels[..i].iter().map(|l| l.len() + 1).sum();
            &host[start..]
        };
        if let Some(i) = (0..n).find(|&i| self.exception.contains(suffix_at(i))) {
            return Some(suffix_at(i));
        }
        let mut suffix_labels = 1;
        for i in 0..n {
            let suffix = suffix_at(i);
            if self.normal.contains(suffix) {
                suffix_labels = suffix_labels.max(n - i);
            }
            if i + 1 < n && self.wildcard.contains(suffix_at(i + 1)) {
                suffix_labels = suffix_labels.max(n - i);
            }
        }
        (n > suffix_labels).then(|| suffix_at(n - suffix_labels - 1))
    }
}
