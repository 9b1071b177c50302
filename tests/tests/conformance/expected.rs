//! Every case of the peer suites on which spyder knowingly differs, with its
//! reason: the one place for exceptions. A listed case that starts to agree,
//! or that no longer runs, fails its suite, so this list stays true.

/// The suite a case belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// `test_psl.txt`.
    PslTests,
    /// The rules of `public_suffix_list.dat`.
    PslList,
    /// `robots_cases.json`.
    Robots,
    /// `urltestdata.json`.
    Url,
}

/// One case spyder knowingly answers differently.
pub struct Difference {
    pub suite: Suite,
    /// The case's id, as the suite's harness names it.
    pub case: &'static str,
    pub reason: &'static str,
}

const fn diff(suite: Suite, case: &'static str, reason: &'static str) -> Difference {
    Difference {
        suite,
        case,
        reason,
    }
}

/// Google's matcher cuts a `User-agent` value at its first space.
const UA_CUT_AT_SPACE: &str = "Google-only extension: a User-agent value is cut at its first space \
     (`User-agent: Foo Bar` names `foo`); RFC 9309 product tokens hold no spaces and spyder \
     (texting_robots) compares the whole value";

/// Google's tests hand its matcher the URL as written, unencoded.
const CALLER_ENCODING: &str = "Google's caller convention: its matcher gets the URL unencoded and \
     compares it with the rule as written; RFC 9309 §2.2.2 percent-encodes both sides before \
     comparing, as spyder (texting_robots) does, so `/foo/bar/ツ` matches `Allow: /foo/bar/ツ`";

const INDEX_HTML: &str = "Google-only extension: `Allow: /dir/index.html` also allows `/dir/`";

const LINE_TOO_LONG: &str = "Google-only extension: lines are cut at 16,664 bytes; spyder reads \
     whole lines (the body cap is 500 KiB)";

/// The `psl` crate embeds its own copy of the list.
const PSL_VERSION: &str = "public_suffix_list.dat (publicsuffix/list e8c9a2b, 2026-08-19) has \
     this rule and the copy the psl crate (2.1.247) embeds does not: the list versions differ, \
     not the algorithm";

const fn psl_version(case: &'static str) -> Difference {
    diff(Suite::PslList, case, PSL_VERSION)
}

pub const DIFFERENCES: &[Difference] = &[
    diff(Suite::Robots, "R030", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R031", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R032", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R036", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R037", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R038", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R039", UA_CUT_AT_SPACE),
    diff(Suite::Robots, "R063", CALLER_ENCODING),
    diff(Suite::Robots, "R065", CALLER_ENCODING),
    diff(Suite::Robots, "R078", INDEX_HTML),
    diff(Suite::Robots, "R083", LINE_TOO_LONG),
    diff(Suite::Robots, "R086", LINE_TOO_LONG),
    psl_version("spyderprobe.aliases121.com"),
    psl_version("spyderprobe.gitapp.si"),
    psl_version("spyderprobe.demo.datacenter.fi"),
    psl_version("spyderprobe.paas.datacenter.fi"),
    psl_version("spyderprobe.knightpoint.systems"),
    psl_version("spyderprobe.oya.to"),
    psl_version("spyderprobe.perspecta.cloud"),
    psl_version("spyderprobe.alpha-myqnapcloud.com"),
    psl_version("spyderprobe.dev-myqnapcloud.com"),
    psl_version("spyderprobe.xnbay.com"),
    psl_version("spyderprobe.u2.xnbay.com"),
    psl_version("spyderprobe.u2-local.xnbay.com"),
];
