//! Host name costs (issue #6): normalisation of input lines and link hosts, and the
//! apex (registrable domain) lookup in the Public Suffix List.
//!
//! - `from_input`: [`HostName::from_input`] per kind of input line (plain, upper case,
//!   trailing dot, IDN, URL) and on the mix of all of them.
//! - `parse`: [`HostName::parse`] of bare names, as link hosts and DNS targets arrive.
//! - `apex`: [`HostName::apex`] of normalised names with one- and two-label public
//!   suffixes and private-section suffixes.
//!
//! Counters are names per second.
//!
//! ```sh
//! cargo bench -p spyder-model --bench names
//! ```

use std::fmt;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use spyder_model::{HostName, NameKind};

fn main() {
    divan::main();
}

/// Kinds of input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Plain,
    UpperCase,
    TrailingDot,
    Idn,
    Url,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Plain => "plain",
            Self::UpperCase => "upper_case",
            Self::TrailingDot => "trailing_dot",
            Self::Idn => "idn",
            Self::Url => "url",
        })
    }
}

const INPUTS: [Input; 5] = [
    Input::Plain,
    Input::UpperCase,
    Input::TrailingDot,
    Input::Idn,
    Input::Url,
];

impl Input {
    fn lines(self) -> &'static [&'static str] {
        match self {
            Self::Plain => &[
                "example.com",
                "www.herald-news.com",
                "mail.shop-partner.co.uk",
                "cdn.static-assets.net",
            ],
            Self::UpperCase => &[
                "WWW.Example.COM",
                "Shop.Acme-Cloud.IO",
                "API.Herald-News.com",
                "Static.CDN.Example.NET",
            ],
            Self::TrailingDot => &[
                "example.org.",
                "ns1.dns-provider.net.",
                "www.herald-news.com.",
                "mx.mail-host.co.uk.",
            ],
            Self::Idn => &[
                "bücher.de",
                "www.münchen-reisen.de",
                "пример.рф",
                "xn--bcher-kva.de",
            ],
            Self::Url => &[
                "https://www.example.co.uk:8443/path?q=1",
                "http://user@Blog.Example.com/post#comments",
                "  https://Bücher.de/katalog  ",
                "https://cdn.static-assets.net/js/app.js",
            ],
        }
    }
}

#[divan::bench(args = INPUTS)]
fn from_input(bencher: Bencher, input: Input) {
    let lines = input.lines();
    bencher.counter(ItemsCount::new(lines.len())).bench(|| {
        for line in black_box(lines) {
            black_box(HostName::from_input(line).expect("benchmark inputs are valid"));
        }
    });
}

#[divan::bench]
fn from_input_mix(bencher: Bencher) {
    let lines: Vec<&str> = INPUTS.iter().flat_map(|i| i.lines()).copied().collect();
    bencher.counter(ItemsCount::new(lines.len())).bench(|| {
        for line in black_box(&lines) {
            black_box(HostName::from_input(line).expect("benchmark inputs are valid"));
        }
    });
}

/// Bare names as the URL parser hands link hosts over (lower case, ASCII or punycode)
/// and as DNS answers carry targets.
const BARE: [(&str, NameKind); 6] = [
    ("static.heraldcdn.net", NameKind::Strict),
    ("www.wirenews-agency.com", NameKind::Strict),
    ("xn--mnchen-3ya.de", NameKind::Strict),
    ("herald-news.com.edgekey-cdn.net.", NameKind::DnsTarget),
    ("_dmarc.herald-news.com", NameKind::DnsTarget),
    ("alt1.aspmx.mail-host.com.", NameKind::DnsTarget),
];

#[divan::bench]
fn parse(bencher: Bencher) {
    bencher.counter(ItemsCount::new(BARE.len())).bench(|| {
        for (name, kind) in black_box(&BARE) {
            black_box(HostName::parse(name, *kind).expect("benchmark names are valid"));
        }
    });
}

/// Normalised names across the kinds of public suffix.
const APEX_NAMES: [&str; 10] = [
    "www.herald-news.com",
    "a.b.c.shop-partner.co.uk",
    "static.heraldcdn.net",
    "user.github.io",
    "foo.blogspot.com",
    "deep.sub.domain.example.com.au",
    "xn--bcher-kva.de",
    "bucket.s3.amazonaws.com",
    "www.city.kawasaki.jp",
    "com",
];

#[divan::bench]
fn apex(bencher: Bencher) {
    let names: Vec<HostName> = APEX_NAMES
        .iter()
        .map(|n| HostName::parse(n, NameKind::Strict).expect("benchmark names are valid"))
        .collect();
    bencher.counter(ItemsCount::new(names.len())).bench(|| {
        for name in black_box(&names) {
            black_box(name.apex());
        }
    });
}
