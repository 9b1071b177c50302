//! Link extraction from HTML with html5ever's streaming tokenizer (SPEC §3.4).
//!
//! [`link_hosts`] decodes a page (Content-Type charset, else a `<meta>` prescan of
//! the first 1,024 bytes, else UTF-8; a byte-order mark always wins), runs the
//! html5ever tokenizer over it without building a tree, and collects the hosts of
//! every http(s) link:
//!
//! - `href` of `a`, `link` and `area`;
//! - `src` of `script`, `img`, `iframe` and `source`, and every `srcset`
//!   candidate of `img` and `source`;
//! - `action` of `form`;
//! - the URL of `<meta http-equiv="refresh" content="5; url=…">`.
//!
//! Links resolve against the document base: the first `<base href>` (wherever it
//! appears, as in a browser), else the page URL. Content of `script`, `style`,
//! `title`, `textarea` and the other raw-text elements is never read as markup.
//!
//! Most links never reach the URL parser: a relative link has the base's host,
//! and `https://host/…` or `//host/…` with a plain ASCII host names it in its
//! text (`link_form`). Only the rest (IDNs, percent-escapes, IP addresses,
//! stray tabs, odd slashes …) is resolved with `Url::join`, the reference the
//! shortcut is tested against, corrected where the `url` crate departs from
//! the URL standard on a link's host (`join`). The WHATWG URL tests run
//! against [`link_hosts`] in the workspace's conformance suite.

use std::borrow::Borrow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};

use encoding_rs::Encoding;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::{LocalName, local_name};
use spyder_model::{HostName, NameKind};
use url::{Host, Url};

/// Bytes examined by the `<meta>` charset prescan.
const PRESCAN_BYTES: usize = 1024;

/// Decoded text handed to the tokenizer per step; between steps the extractor
/// checks whether it already has all the hosts it may return.
const CHUNK_BYTES: usize = 64 * 1024;

/// Stand-in host for "whatever the document base turns out to be": links seen
/// before a `<base href>` are resolved against a copy of the page URL carrying
/// this address, so a path-relative link can be told from one naming a host.
const PENDING_BASE: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5350, 0x5944, 0x4552, 0x0001);

/// Hosts linked from an HTML page, de-duplicated, first-seen order, at most `max_hosts`.
///
/// `content_type` is the response's `Content-Type` header, if any; `page_url` is the
/// final URL after redirects. Only http and https links count; IP-literal hosts and
/// names that fail [`HostName::parse`] with [`NameKind::Strict`] are skipped. The
/// page's own host is included when linked; telling external hosts apart is up to
/// the caller. Never panics, whatever the bytes.
pub fn link_hosts(
    body: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
    max_hosts: usize,
) -> Vec<HostName> {
    if max_hosts == 0 || body.is_empty() {
        return Vec::new();
    }
    let encoding = sniff_encoding(body, content_type);
    // `decode` lets a byte-order mark override the sniffed encoding.
    let (text, _, _) = encoding.decode(body);

    let tokenizer = Tokenizer::new(LinkSink::new(page_url, max_hosts), TokenizerOpts::default());
    let input = BufferQueue::default();
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(CHUNK_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        input.push_back(StrTendril::from_slice(chunk));
        // The sink never asks for a script pause nor a re-encode, so this runs the
        // whole chunk (or suspends for more input).
        let _ = tokenizer.feed(&input);
        if tokenizer.sink.is_full() {
            return tokenizer.sink.finish();
        }
    }
    tokenizer.end();
    tokenizer.sink.finish()
}

/// One entry of the result being built.
#[derive(Debug)]
enum Slot {
    Host(HostName),
    /// The host of the document base, not known until the first `<base href>` or
    /// the end of the document.
    PendingBase,
}

/// Collects link hosts from the token stream.
#[derive(Debug)]
struct LinkSink<'a> {
    page_url: &'a Url,
    /// `page_url` with its host replaced by [`PENDING_BASE`], made when a link
    /// first needs the URL parser before the base is known.
    pending_base_url: OnceCell<Option<Url>>,
    max_hosts: usize,
    /// Open `<svg>`/`<math>` elements: inside them a self-closing `<script/>` or
    /// `<style/>` is an empty element, not the start of raw text.
    foreign_depth: Cell<u32>,
    state: RefCell<LinkState>,
}

#[derive(Debug)]
struct LinkState {
    /// Set once the first `<base href>` was seen; `None` inside means the base
    /// could not be used and the page URL serves.
    base: Option<Option<Url>>,
    /// What a relative link resolves to under the current base.
    base_host: BaseHost,
    hosts: HostList,
}

/// The host of the current document base, as a relative link sees it.
#[derive(Debug)]
enum BaseHost {
    /// Not known yet: the pending slot stands for it.
    Pending,
    /// An http(s) base with this domain, as the URL parser wrote it; `held` once
    /// it is known to name a host in the list.
    Domain { domain: Box<str>, held: bool },
    /// An http(s) base whose host is an IP address: relative links yield nothing.
    NotDomain,
    /// Not an http(s) base: links resolve through the URL parser.
    OtherScheme,
}

impl BaseHost {
    fn of(base: &Url) -> Self {
        if !is_http(base) {
            return Self::OtherScheme;
        }
        match base.host() {
            Some(Host::Domain(domain)) => Self::Domain {
                domain: domain.into(),
                held: false,
            },
            _ => Self::NotDomain,
        }
    }
}

/// Up to this many hosts, [`HostList`] looks a name up by scanning its slots,
/// which is cheaper than hashing it; past it, a hash set indexes them.
const SCANNED_HOSTS: usize = 32;

/// A host of the list, found in a set by its name.
#[derive(Debug, PartialEq, Eq)]
struct Known(HostName);

impl Hash for Known {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that `Borrow<str>` look-ups work.
        self.0.as_str().hash(state);
    }
}

impl Borrow<str> for Known {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

/// The hosts found so far, in first-seen order.
#[derive(Debug, Default)]
struct HostList {
    slots: Vec<Slot>,
    /// Index of the [`Slot::PendingBase`] entry, if any.
    pending: Option<usize>,
    /// Hosts in `slots` by name, once there are more than [`SCANNED_HOSTS`];
    /// empty until then.
    known: HashSet<Known>,
    /// The last host string looked up and found good: pages link to the same
    /// host many times in a row.
    last_raw: String,
    /// [`WrittenHost::prefix`] of the last link written with an authority
    /// whose host is in the list.
    last_authority: String,
    /// Scratch space for lower-casing a host as a link wrote it.
    lower: String,
}

impl<'a> LinkSink<'a> {
    fn new(page_url: &'a Url, max_hosts: usize) -> Self {
        // An http(s) URL always takes the stand-in host.
        let base_host = if is_http(page_url) {
            BaseHost::Pending
        } else {
            BaseHost::OtherScheme
        };
        Self {
            page_url,
            pending_base_url: OnceCell::new(),
            max_hosts,
            foreign_depth: Cell::new(0),
            state: RefCell::new(LinkState {
                base: None,
                base_host,
                hosts: HostList::default(),
            }),
        }
    }

    /// `page_url` with its host replaced by [`PENDING_BASE`].
    fn pending_base_url(&self) -> Option<&Url> {
        self.pending_base_url
            .get_or_init(|| {
                let mut url = self.page_url.clone();
                url.set_ip_host(IpAddr::V6(PENDING_BASE)).ok().map(|()| url)
            })
            .as_ref()
    }

    /// True when no later token can change the result.
    fn is_full(&self) -> bool {
        let hosts = &self.state.borrow().hosts;
        hosts.pending.is_none() && hosts.slots.len() >= self.max_hosts
    }

    /// Resolves what is still pending and returns the hosts.
    fn finish(self) -> Vec<HostName> {
        let page_url = self.page_url;
        let mut hosts = self.state.into_inner().hosts;
        if hosts.pending.is_some() {
            hosts.resolve_pending(domain_of(page_url));
        }
        let mut hosts: Vec<HostName> = hosts
            .slots
            .into_iter()
            .filter_map(|slot| match slot {
                Slot::Host(host) => Some(host),
                Slot::PendingBase => None,
            })
            .collect();
        hosts.truncate(self.max_hosts);
        hosts
    }

    // Kept out of `process_token`, which then stays small for the text tokens
    // that make up most of a page.
    #[inline(never)]
    fn start_tag(&self, tag: &Tag) -> TokenSinkResult<()> {
        let name = &tag.name;
        if *name == local_name!("a") || *name == local_name!("link") || *name == local_name!("area")
        {
            self.add_attr(tag, &local_name!("href"));
        } else if *name == local_name!("img") || *name == local_name!("source") {
            self.add_attr(tag, &local_name!("src"));
            self.add_srcset(tag);
        } else if *name == local_name!("script") {
            self.add_attr(tag, &local_name!("src"));
            return self.raw_text(tag, RawKind::ScriptData);
        } else if *name == local_name!("iframe") {
            self.add_attr(tag, &local_name!("src"));
            return self.raw_text(tag, RawKind::Rawtext);
        } else if *name == local_name!("form") {
            self.add_attr(tag, &local_name!("action"));
        } else if *name == local_name!("meta") {
            self.add_refresh(tag);
        } else if *name == local_name!("base") {
            if let Some(href) = attr(tag, &local_name!("href")) {
                self.set_base(href);
            }
        } else if *name == local_name!("style")
            || *name == local_name!("xmp")
            || *name == local_name!("noembed")
            || *name == local_name!("noframes")
        {
            return self.raw_text(tag, RawKind::Rawtext);
        } else if *name == local_name!("title") || *name == local_name!("textarea") {
            return self.raw_text(tag, RawKind::Rcdata);
        } else if *name == local_name!("plaintext") {
            if self.foreign_depth.get() == 0 || !tag.self_closing {
                return TokenSinkResult::Plaintext;
            }
        } else if (*name == local_name!("svg") || *name == local_name!("math")) && !tag.self_closing
        {
            self.foreign_depth
                .set(self.foreign_depth.get().saturating_add(1));
        }
        TokenSinkResult::Continue
    }

    fn end_tag(&self, tag: &Tag) {
        if tag.name == local_name!("svg") || tag.name == local_name!("math") {
            self.foreign_depth
                .set(self.foreign_depth.get().saturating_sub(1));
        }
    }

    /// Switches the tokenizer to `kind` after a raw-text start tag, except for a
    /// self-closing one inside SVG or MathML, which is an empty element there.
    fn raw_text(&self, tag: &Tag, kind: RawKind) -> TokenSinkResult<()> {
        if tag.self_closing && self.foreign_depth.get() > 0 {
            TokenSinkResult::Continue
        } else {
            TokenSinkResult::RawData(kind)
        }
    }

    fn add_attr(&self, tag: &Tag, name: &LocalName) {
        if let Some(value) = attr(tag, name) {
            self.add(value);
        }
    }

    // The handlers beyond one attribute stay out of `start_tag`, which runs for
    // every start tag and is cheaper small.
    #[inline(never)]
    fn add_srcset(&self, tag: &Tag) {
        if let Some(srcset) = attr(tag, &local_name!("srcset")) {
            for_each_srcset_url(srcset, |url| self.add(url));
        }
    }

    /// The URL of `<meta http-equiv="refresh" content="…; url=…">`.
    #[inline(never)]
    fn add_refresh(&self, tag: &Tag) {
        let refresh = attr(tag, &local_name!("http-equiv")).is_some_and(|v| {
            v.trim_matches(is_html_space)
                .eq_ignore_ascii_case("refresh")
        });
        if refresh && let Some(url) = attr(tag, &local_name!("content")).and_then(refresh_url) {
            self.add(url);
        }
    }

    /// The first `<base href>` fixes the document base; later ones are ignored.
    #[inline(never)]
    fn set_base(&self, href: &str) {
        let mut state = self.state.borrow_mut();
        if state.base.is_some() {
            return;
        }
        // HTML: a base that fails to parse, or is data: or javascript:, leaves the
        // page URL as the base.
        let base =
            join(self.page_url, href).filter(|url| !matches!(url.scheme(), "data" | "javascript"));
        let base_url = base.as_ref().unwrap_or(self.page_url);
        if state.hosts.pending.is_some() {
            state.hosts.resolve_pending(domain_of(base_url));
        }
        state.base_host = BaseHost::of(base_url);
        state.base = Some(base);
    }

    /// Adds the host of one raw link, if it yields one.
    ///
    /// Most links are read without the URL parser (see [`link_form`]); the rest
    /// are resolved against the base in full.
    fn add(&self, raw: &str) {
        let max_hosts = self.max_hosts;
        let mut state = self.state.borrow_mut();
        let LinkState {
            base,
            base_host,
            hosts,
        } = &mut *state;
        if hosts.same_authority_as_last(raw) {
            return;
        }
        let http_base = !matches!(base_host, BaseHost::OtherScheme);
        match link_form(raw) {
            LinkForm::OtherScheme => return,
            LinkForm::Absolute(host) => return hosts.add_written_domain(host, max_hosts),
            LinkForm::SchemeRelative(host) if http_base => {
                return hosts.add_written_domain(host, max_hosts);
            }
            LinkForm::Relative => match base_host {
                BaseHost::Pending => return hosts.add_pending(max_hosts),
                BaseHost::Domain { held: true, .. } | BaseHost::NotDomain => return,
                BaseHost::Domain { domain, held } => {
                    *held = hosts.add_domain(domain, max_hosts);
                    return;
                }
                BaseHost::OtherScheme => {}
            },
            LinkForm::SchemeRelative(_) | LinkForm::NeedsParse => {}
        }
        let base_url = match base {
            Some(base) => base.as_ref().unwrap_or(self.page_url),
            None => self.pending_base_url().unwrap_or(self.page_url),
        };
        let Some(url) = join(base_url, raw) else {
            return;
        };
        if !is_http(&url) {
            return;
        }
        match url.host() {
            Some(Host::Domain(domain)) => {
                hosts.add_domain(domain, max_hosts);
            }
            Some(Host::Ipv6(ip)) if ip == PENDING_BASE && base.is_none() => {
                hosts.add_pending(max_hosts);
            }
            _ => {}
        }
    }
}

impl HostList {
    /// Room for real hosts: `max_hosts`, plus the pending slot while it is open.
    fn has_room(&self, max_hosts: usize) -> bool {
        self.slots.len() < max_hosts + usize::from(self.pending.is_some())
    }

    /// True when `raw` plainly names the same host as the last link with an
    /// authority, so it adds nothing: pages link to one host many times in a row.
    /// The base does not matter: it can only change the scheme of `//host` links,
    /// and a link that is not http(s) adds nothing either.
    fn same_authority_as_last(&self, raw: &str) -> bool {
        let prefix = self.last_authority.as_str();
        !prefix.is_empty()
            && raw.starts_with(prefix)
            && raw
                .as_bytes()
                .get(prefix.len())
                .is_none_or(|b| matches!(b, b'/' | b'\\' | b'?' | b'#'))
    }

    /// Adds a host as a link wrote it.
    fn add_written_domain(&mut self, host: WrittenHost<'_>, max_hosts: usize) {
        let held = if host.has_upper {
            let mut lower = std::mem::take(&mut self.lower);
            lower.clear();
            lower.push_str(host.text);
            lower.make_ascii_lowercase();
            let held = self.add_domain(&lower, max_hosts);
            self.lower = lower;
            held
        } else {
            self.add_domain(host.text, max_hosts)
        };
        if held {
            self.last_authority.clear();
            self.last_authority.push_str(host.prefix);
        }
    }

    /// Adds a domain as the URL parser writes it (lower-case ASCII, IDNs in
    /// punycode, a trailing dot kept). Returns true when the domain is, from now
    /// on, known to name a host in the list.
    fn add_domain(&mut self, domain: &str, max_hosts: usize) -> bool {
        if domain == self.last_raw {
            return true;
        }
        // Such a domain is its host name, but for the trailing dot.
        let name = domain.strip_suffix('.').unwrap_or(domain);
        if !self.holds(name) {
            if !self.has_room(max_hosts) {
                return false;
            }
            let Ok(host) = HostName::parse(domain, NameKind::Strict) else {
                return false;
            };
            if host.as_str() == name || !self.holds(host.as_str()) {
                self.push_host(host);
            }
        }
        self.last_raw.clear();
        self.last_raw.push_str(domain);
        true
    }

    /// True when the list holds the host `name`.
    fn holds(&self, name: &str) -> bool {
        if self.known.is_empty() {
            self.slots
                .iter()
                .any(|slot| matches!(slot, Slot::Host(host) if host.as_str() == name))
        } else {
            self.known.contains(name)
        }
    }

    /// Appends a host the list does not hold.
    fn push_host(&mut self, host: HostName) {
        if !self.known.is_empty() {
            self.known.insert(Known(host.clone()));
        }
        self.slots.push(Slot::Host(host));
        if self.known.is_empty() && self.slots.len() > SCANNED_HOSTS {
            self.known = self
                .slots
                .iter()
                .filter_map(|slot| match slot {
                    Slot::Host(host) => Some(Known(host.clone())),
                    Slot::PendingBase => None,
                })
                .collect();
        }
    }

    /// Records the first link whose host is the still unknown document base.
    fn add_pending(&mut self, max_hosts: usize) {
        // Past `max_hosts` real hosts the slot could only be truncated away.
        if self.pending.is_none() && self.slots.len() < max_hosts {
            self.pending = Some(self.slots.len());
            self.slots.push(Slot::PendingBase);
        }
    }

    /// Replaces the pending slot by `host` (or drops it), keeping first-seen order
    /// and uniqueness.
    fn resolve_pending(&mut self, host: Option<HostName>) {
        let Some(index) = self.pending.take() else {
            return;
        };
        match host {
            Some(host) if !self.holds(host.as_str()) => {
                if !self.known.is_empty() {
                    self.known.insert(Known(host.clone()));
                }
                self.slots[index] = Slot::Host(host);
            }
            Some(host) => {
                let earlier = self.slots[..index]
                    .iter()
                    .any(|slot| matches!(slot, Slot::Host(h) if *h == host));
                if earlier {
                    self.slots.remove(index);
                } else {
                    // Seen later: the pending slot is its first appearance. (The
                    // later one is past `index`, which therefore stays put.)
                    self.slots
                        .retain(|slot| !matches!(slot, Slot::Host(h) if *h == host));
                    self.slots[index] = Slot::Host(host);
                }
            }
            None => {
                self.slots.remove(index);
            }
        }
    }
}

impl TokenSink for LinkSink<'_> {
    type Handle = ();

    #[inline]
    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(tag) => match tag.kind {
                TagKind::StartTag => self.start_tag(&tag),
                TagKind::EndTag => {
                    self.end_tag(&tag);
                    TokenSinkResult::Continue
                }
            },
            _ => TokenSinkResult::Continue,
        }
    }
}

/// The value of attribute `name` (tokenizer attributes carry no namespace).
fn attr<'t>(tag: &'t Tag, name: &LocalName) -> Option<&'t str> {
    tag.attrs
        .iter()
        .find(|a| a.name.local == *name)
        .map(|a| &*a.value)
}

/// The validated host of an http(s) URL with a domain host.
fn domain_of(url: &Url) -> Option<HostName> {
    if !is_http(url) {
        return None;
    }
    match url.host() {
        Some(Host::Domain(domain)) => HostName::parse(domain, NameKind::Strict).ok(),
        _ => None,
    }
}

/// `link` resolved against `base` as the URL standard does it.
///
/// With an http(s) base, the standard reads any run of `/` and `\` before a
/// host as the two slashes of an authority (its "special authority ignore
/// slashes" state): `///host/x` names `host`. The `url` crate does so after a
/// scheme, but fails on a link without one whose run is longer than two (a
/// deviation its own test suite lists), so such a link is handed to it with
/// the run written as `//`.
fn join(base: &Url, link: &str) -> Option<Url> {
    if is_http(base)
        && let Some(link) = with_two_slashes(link)
    {
        return base.join(&link).ok();
    }
    base.join(link).ok()
}

/// A link without a scheme that starts with three or more `/` or `\`, written
/// with two `/` instead, its surrounding C0 controls and spaces and every tab
/// and newline removed (the URL parser ignores them there); `None` for any
/// other link.
fn with_two_slashes(link: &str) -> Option<String> {
    let s = link.trim_matches(|c: char| c <= ' ');
    if !s.starts_with(['/', '\\']) {
        return None;
    }
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let run = s.bytes().take_while(|&b| matches!(b, b'/' | b'\\')).count();
    (run > 2).then(|| format!("//{}", &s[run..]))
}

/// The length of the run of `/` and `\` that `bytes` starts with.
fn slash_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| matches!(b, b'/' | b'\\'))
        .count()
}

/// True for an http or https URL.
fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// What the text of a link says about its host, read the way the URL parser
/// reads it but without building a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkForm<'s> {
    /// A scheme other than http(s) (`javascript:`, `mailto:`, `data:` …): no host.
    OtherScheme,
    /// No scheme and no authority: the host is the document base's.
    Relative,
    /// `//host…`, `///host…` (any run of slashes or backslashes): `host` if
    /// the base is http(s).
    SchemeRelative(WrittenHost<'s>),
    /// `http://host…` or `https://host…` (any case, any run of two or more
    /// slashes or backslashes).
    Absolute(WrittenHost<'s>),
    /// Anything else (tabs or newlines where they matter, percent-escapes or
    /// non-ASCII in the host, IP addresses, `xn--` labels, `http:x` …): only the
    /// URL parser can tell.
    NeedsParse,
}

/// Reads `raw` as the URL parser would, as far as its host goes. A host it
/// returns is plain ASCII (`[A-Za-z0-9.-]`), and the URL parser would give
/// the same host lower-cased.
fn link_form(raw: &str) -> LinkForm<'_> {
    // The URL parser trims C0 controls and spaces, and drops tabs and newlines
    // anywhere; those inside what decides the form are left to it.
    let s = raw.trim_matches(|c: char| c <= ' ');
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b'\t' | b'\n' | b'\r' => return LinkForm::NeedsParse,
            b':' if i > 0 && bytes[0].is_ascii_alphabetic() => {
                let scheme = &s[..i];
                if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                    return LinkForm::OtherScheme;
                }
                // `http:` then two or more slashes starts the authority after
                // them, whatever the base; `http:x` and `http:/x` depend on it.
                let run = slash_run(&bytes[i + 1..]);
                if run < 2 {
                    return LinkForm::NeedsParse;
                }
                return plain_host(s, i + 1 + run).map_or(LinkForm::NeedsParse, LinkForm::Absolute);
            }
            _ => break,
        }
    }
    match bytes {
        [b'/' | b'\\', b'\t' | b'\n' | b'\r', ..] => LinkForm::NeedsParse,
        // With an http(s) base, the authority starts after the whole run.
        [b'/' | b'\\', b'/' | b'\\', ..] => {
            plain_host(s, slash_run(bytes)).map_or(LinkForm::NeedsParse, LinkForm::SchemeRelative)
        }
        _ => LinkForm::Relative,
    }
}

/// A host as a link wrote it, known to be plain ASCII (see [`plain_host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrittenHost<'s> {
    text: &'s str,
    /// True when `text` holds upper-case letters.
    has_upper: bool,
    /// The link up to the end of its authority (`https://user@Host:443`): any
    /// link starting with it and then `/`, `\`, `?`, `#` or nothing has this host.
    prefix: &'s str,
}

/// How [`plain_host`] treats each byte of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthorityByte {
    /// `a-z`, `0-9`, `.`
    Lower,
    /// `A-Z`
    Upper,
    Hyphen,
    /// `/`, `\`, `?`, `#`: the authority ends.
    End,
    At,
    Colon,
    /// Anything the fast path leaves to the URL parser.
    Other,
}

const AUTHORITY_BYTES: [AuthorityByte; 256] = {
    let mut table = [AuthorityByte::Other; 256];
    let mut i = 0;
    while i < table.len() {
        table[i] = match i as u8 {
            b'a'..=b'z' | b'0'..=b'9' | b'.' => AuthorityByte::Lower,
            b'A'..=b'Z' => AuthorityByte::Upper,
            b'-' => AuthorityByte::Hyphen,
            b'/' | b'\\' | b'?' | b'#' => AuthorityByte::End,
            b'@' => AuthorityByte::At,
            b':' => AuthorityByte::Colon,
            _ => AuthorityByte::Other,
        };
        i += 1;
    }
    table
};

/// The host of the http(s) authority of `link` that starts at `authority_start`,
/// after the two slashes (`user:pass@host:port/…`), when the URL parser would
/// keep it as written but lower-cased: `[A-Za-z0-9.-]` only, no `xn--` label,
/// not an IPv4 address by the URL standard, and a valid port. `None` leaves the
/// link to the URL parser.
fn plain_host(link: &str, authority_start: usize) -> Option<WrittenHost<'_>> {
    let after_slashes = link.get(authority_start..)?;
    let bytes = after_slashes.as_bytes();
    let mut end = bytes.len();
    let mut host_start = 0;
    let mut colon = None;
    let mut plain = true;
    let mut has_upper = false;
    let mut double_hyphen = false;
    let mut i = 0;
    loop {
        // Runs of lower-case host bytes are the common case.
        while i < bytes.len() && AUTHORITY_BYTES[usize::from(bytes[i])] == AuthorityByte::Lower {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        match AUTHORITY_BYTES[usize::from(b)] {
            AuthorityByte::Lower => {}
            AuthorityByte::Upper => has_upper = true,
            AuthorityByte::Hyphen => double_hyphen |= i > 0 && bytes[i - 1] == b'-',
            // `\` ends it too: it counts as `/` in http(s) URLs.
            AuthorityByte::End => {
                end = i;
                break;
            }
            // Everything so far was user info; the host starts after the last `@`.
            AuthorityByte::At => {
                host_start = i + 1;
                colon = None;
                plain = true;
                has_upper = false;
                double_hyphen = false;
            }
            AuthorityByte::Colon if colon.is_none() => colon = Some(i),
            AuthorityByte::Colon | AuthorityByte::Other => plain = false,
        }
        i += 1;
    }
    let host_end = colon.unwrap_or(end);
    if !plain || host_start == host_end {
        return None;
    }
    if let Some(colon) = colon
        && !valid_port(&bytes[colon + 1..end])
    {
        return None;
    }
    let host = &bytes[host_start..host_end];
    if (double_hyphen && has_ace_label(host)) || ends_in_a_number(host) {
        return None;
    }
    Some(WrittenHost {
        text: after_slashes.get(host_start..host_end)?,
        has_upper,
        prefix: link.get(..authority_start + end)?,
    })
}

/// A port the URL parser accepts: empty, or digits worth at most 65,535.
fn valid_port(port: &[u8]) -> bool {
    let mut value: u32 = 0;
    for &b in port {
        if !b.is_ascii_digit() {
            return false;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return false;
        }
    }
    true
}

/// True when a label starts with `xn--` (any case): the URL parser checks its
/// punycode.
fn has_ace_label(host: &[u8]) -> bool {
    host.split(|&b| b == b'.').any(|label| {
        label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
    })
}

/// The URL standard's "ends in a number": the last label (a trailing dot aside)
/// is all digits, or `0x` and hex digits, so the host is read as IPv4.
fn ends_in_a_number(host: &[u8]) -> bool {
    let host = host.strip_suffix(b".").unwrap_or(host);
    let last = host
        .iter()
        .rposition(|&b| b == b'.')
        .map_or(host, |dot| &host[dot + 1..]);
    match last {
        [] => false,
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        digits => digits.iter().all(u8::is_ascii_digit),
    }
}

/// ASCII white space as HTML defines it.
fn is_html_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// [`is_html_space`] for one byte of UTF-8.
fn is_html_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Index of the first HTML space in `bytes` at or after `from`, else `bytes.len()`.
/// Skips eight bytes at a time while none of them is `<= b' '`.
fn find_html_space(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_ne_bytes(chunk);
        // Non-zero when some byte is below 0x21 (a classic SWAR test).
        if word.wrapping_sub(ONES * 0x21) & !word & (ONES * 0x80) != 0 {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && !is_html_space_byte(bytes[i]) {
        i += 1;
    }
    i
}

/// Calls `f` with the URL of every candidate of a `srcset` attribute.
///
/// Works on bytes: every delimiter is ASCII, so each cut falls between characters.
fn for_each_srcset_url<'s>(srcset: &'s str, mut f: impl FnMut(&'s str)) {
    let bytes = srcset.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (is_html_space_byte(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if i == bytes.len() {
            return;
        }
        let start = i;
        i = find_html_space(bytes, i);
        let url = &srcset[start..i];
        if url.ends_with(',') {
            // "a.png," : a candidate without descriptors.
            f(url.trim_end_matches(','));
            continue;
        }
        f(url);
        // Skip descriptors up to the next comma outside parentheses.
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// The URL of a meta-refresh `content` value (`"5; url=/next"`, `"0;'/x'"`),
/// following the HTML "shared declarative refresh steps".
fn refresh_url(content: &str) -> Option<&str> {
    let s = content.trim_start_matches(is_html_space);
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 && !s.starts_with('.') {
        return None;
    }
    let rest = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let first = rest.chars().next()?;
    if !(first == ';' || first == ',' || is_html_space(first)) {
        return None;
    }
    let rest = rest.trim_start_matches(is_html_space);
    let rest = rest
        .strip_prefix([';', ','])
        .unwrap_or(rest)
        .trim_start_matches(is_html_space);
    if rest.is_empty() {
        return None;
    }
    let mut url = rest;
    if rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("url")) {
        let after = rest[3..].trim_start_matches(is_html_space);
        if let Some(value) = after.strip_prefix('=') {
            url = value.trim_start_matches(is_html_space);
        }
    }
    if let Some(quote) = url.chars().next().filter(|&c| c == '"' || c == '\'') {
        let inner = &url[1..];
        url = inner.split(quote).next().unwrap_or(inner);
    }
    let url = url.trim_end_matches(is_html_space);
    (!url.is_empty()).then_some(url)
}

/// Picks the encoding: Content-Type charset, else the `<meta>` prescan, else UTF-8.
fn sniff_encoding(body: &[u8], content_type: Option<&str>) -> &'static Encoding {
    if let Some(encoding) = content_type
        .and_then(|ct| charset_in(ct.as_bytes()))
        .and_then(Encoding::for_label)
    {
        return encoding;
    }
    prescan(&body[..body.len().min(PRESCAN_BYTES)]).unwrap_or(encoding_rs::UTF_8)
}

/// The `charset=` value in a Content-Type-like string (HTML "extracting a
/// character encoding from a meta element"; also fits the HTTP header).
fn charset_in(s: &[u8]) -> Option<&[u8]> {
    let is_space = |b: &u8| b.is_ascii_whitespace();
    let mut i = 0;
    while i + 7 <= s.len() {
        if !s[i..i + 7].eq_ignore_ascii_case(b"charset") {
            i += 1;
            continue;
        }
        i += 7;
        while s.get(i).is_some_and(is_space) {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while s.get(i).is_some_and(is_space) {
            i += 1;
        }
        return match s.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let value = &s[i + 1..];
                let end = value.iter().position(|&b| b == q)?;
                Some(&value[..end])
            }
            Some(_) => {
                let value = &s[i..];
                let end = value
                    .iter()
                    .position(|b| is_space(b) || *b == b';')
                    .unwrap_or(value.len());
                Some(&value[..end])
            }
            None => None,
        };
    }
    None
}

/// A simplified HTML "prescan a byte stream to determine its encoding": looks for
/// `<meta charset>` or `<meta http-equiv=content-type content="…charset=…">`,
/// skipping comments and other tags.
fn prescan(bytes: &[u8]) -> Option<&'static Encoding> {
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"<!--") {
            // "-->" may share its dashes with the opening "<!--".
            i += 2 + find(&rest[2..], b"-->")? + 3;
            continue;
        }
        if rest.len() >= 6
            && rest[..5].eq_ignore_ascii_case(b"<meta")
            && (rest[5].is_ascii_whitespace() || rest[5] == b'/')
        {
            i += 5;
            if let Some(encoding) = meta_encoding(bytes, &mut i) {
                return Some(encoding);
            }
            continue;
        }
        let tag_start = match rest {
            [b'<', b'/', c, ..] | [b'<', c, ..] if c.is_ascii_alphabetic() => true,
            [b'<', b'!' | b'/' | b'?', ..] => false,
            _ => {
                i += 1;
                continue;
            }
        };
        if tag_start {
            // Skip the tag name, then its attributes (their values may hold '>').
            i += rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>')
                .unwrap_or(rest.len());
            while get_attribute(bytes, &mut i).is_some() {}
        } else {
            i += rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        }
        i += 1;
    }
    None
}

/// Reads the attributes of one `<meta` (position just after the tag name) and
/// returns the encoding it declares, per the prescan rules.
fn meta_encoding(bytes: &[u8], i: &mut usize) -> Option<&'static Encoding> {
    let mut got_pragma = false;
    let mut need_pragma = None;
    let mut charset: Option<Vec<u8>> = None;
    let mut seen_http_equiv = false;
    let mut seen_content = false;
    let mut seen_charset = false;
    while let Some((name, value)) = get_attribute(bytes, i) {
        match name.as_slice() {
            b"http-equiv" if !seen_http_equiv => {
                seen_http_equiv = true;
                got_pragma = value == b"content-type";
            }
            b"content" if !seen_content => {
                seen_content = true;
                if charset.is_none()
                    && let Some(found) = charset_in(&value)
                {
                    charset = Some(found.to_vec());
                    need_pragma = Some(true);
                }
            }
            b"charset" if !seen_charset => {
                seen_charset = true;
                charset = Some(value);
                need_pragma = Some(false);
            }
            _ => {}
        }
    }
    match need_pragma {
        None => return None,
        Some(true) if !got_pragma => return None,
        _ => {}
    }
    let encoding = Encoding::for_label(&charset?)?;
    Some(
        if encoding == encoding_rs::UTF_16BE || encoding == encoding_rs::UTF_16LE {
            encoding_rs::UTF_8
        } else if encoding == encoding_rs::X_USER_DEFINED {
            encoding_rs::WINDOWS_1252
        } else {
            encoding
        },
    )
}

/// The prescan's "get an attribute": the next `(name, value)`, lower-cased, or
/// `None` at `>` or the end of input. `i` is left after what was read.
fn get_attribute(bytes: &[u8], i: &mut usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let at = |i: usize| bytes.get(i).copied();
    while at(*i).is_some_and(|b| b.is_ascii_whitespace() || b == b'/') {
        *i += 1;
    }
    if at(*i)? == b'>' {
        return None;
    }
    let mut name = Vec::new();
    let mut value = Vec::new();
    // Name.
    loop {
        let b = at(*i)?;
        if b == b'=' && !name.is_empty() {
            *i += 1;
            break;
        }
        if b.is_ascii_whitespace() {
            while at(*i)?.is_ascii_whitespace() {
                *i += 1;
            }
            if at(*i)? != b'=' {
                return Some((name, value));
            }
            *i += 1;
            break;
        }
        if b == b'/' || b == b'>' {
            return Some((name, value));
        }
        name.push(b.to_ascii_lowercase());
        *i += 1;
    }
    // Value.
    while at(*i)?.is_ascii_whitespace() {
        *i += 1;
    }
    let b = at(*i)?;
    if b == b'"' || b == b'\'' {
        *i += 1;
        loop {
            let c = at(*i)?;
            *i += 1;
            if c == b {
                return Some((name, value));
            }
            value.push(c.to_ascii_lowercase());
        }
    }
    if b == b'>' {
        return Some((name, value));
    }
    loop {
        let Some(c) = at(*i) else {
            return Some((name, value));
        };
        if c.is_ascii_whitespace() || c == b'>' {
            return Some((name, value));
        }
        value.push(c.to_ascii_lowercase());
        *i += 1;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://www.example.com/dir/page.html").unwrap()
    }

    fn hosts_of(html: &str) -> Vec<String> {
        hosts_with(html.as_bytes(), None, &page(), 10_000)
    }

    fn hosts_with(body: &[u8], ct: Option<&str>, url: &Url, max: usize) -> Vec<String> {
        link_hosts(body, ct, url, max)
            .into_iter()
            .map(HostName::into_string)
            .collect()
    }

    #[test]
    fn every_link_source() {
        let html = r#"<!doctype html><html><head>
            <link rel=stylesheet href="https://css.example.org/a.css">
            <script src="//js.example.net/x.js"></script>
            </head><body>
            <a href="http://a.example.org/">a</a>
            <area href="https://area.example.org/">
            <img src="https://img.example.org/1.png" srcset="https://s1.example.org/1x.png 1x, https://s2.example.org/2x.png 2x">
            <picture><source srcset="https://pic.example.org/a.webp" src="https://src.example.org/b"></picture>
            <iframe src="https://frame.example.org/"></iframe>
            <form action="https://form.example.org/post"></form>
            <meta http-equiv="Refresh" content="5; URL='https://refresh.example.org/next'">
            <video src="https://video.example.org/ignored.mp4"></video>
            </body></html>"#;
        assert_eq!(
            hosts_of(html),
            [
                "css.example.org",
                "js.example.net",
                "a.example.org",
                "area.example.org",
                "img.example.org",
                "s1.example.org",
                "s2.example.org",
                "src.example.org",
                "pic.example.org",
                "frame.example.org",
                "form.example.org",
                "refresh.example.org",
            ]
        );
    }

    #[test]
    fn relative_links_use_the_page_url() {
        let html = r#"<a href="/x">x</a><a href="y">y</a><a href="https://other.example/">o</a>"#;
        assert_eq!(hosts_of(html), ["www.example.com", "other.example"]);
    }

    #[test]
    fn first_base_href_wins_even_after_links() {
        let html = r#"<head>
            <a href="rel-before">r</a>
            <a href="https://abs.example.org/">a</a>
            <base href="https://base.example.net/sub/">
            <base href="https://second.example.net/">
            </head><a href="rel-after">r</a><a href="//proto.example.org/">p</a>"#;
        assert_eq!(
            hosts_of(html),
            ["base.example.net", "abs.example.org", "proto.example.org"]
        );
    }

    #[test]
    fn base_pending_resolves_to_a_host_seen_later_or_earlier() {
        // Pending base slot comes first; the same host linked later is merged into it.
        let html = r#"<a href="x"></a><a href="https://b.example.org/"></a><base href="https://b.example.org/">"#;
        assert_eq!(hosts_of(html), ["b.example.org"]);
        // Same host linked before the pending slot keeps its earlier place.
        let html = r#"<a href="https://b.example.org/"></a><a href="x"></a><a href="https://c.example.org/"></a><base href="https://b.example.org/">"#;
        assert_eq!(hosts_of(html), ["b.example.org", "c.example.org"]);
        // No base at all: the pending slot is the page host.
        let html = r#"<a href="https://c.example.org/"></a><a href="?q"></a>"#;
        assert_eq!(hosts_of(html), ["c.example.org", "www.example.com"]);
    }

    #[test]
    fn relative_and_unusable_base() {
        // A relative base resolves against the page URL.
        let html = r#"<base href="/root/"><a href="x"></a>"#;
        assert_eq!(hosts_of(html), ["www.example.com"]);
        // A javascript: base is ignored: the page URL stays the base.
        let html = r#"<base href="javascript:alert(1)"><a href="x"></a>"#;
        assert_eq!(hosts_of(html), ["www.example.com"]);
        // An ftp: base makes relative links ftp links, which are ignored.
        let html = r#"<a href="x"></a><base href="ftp://files.example.org/"><a href="y"></a><a href="https://h.example.org/"></a>"#;
        assert_eq!(hosts_of(html), ["h.example.org"]);
        // A base without href does not count.
        let html = r#"<base target=_blank><base href="https://real.example.org/"><a href="x"></a>"#;
        assert_eq!(hosts_of(html), ["real.example.org"]);
    }

    #[test]
    fn final_url_is_the_base() {
        let final_url = Url::parse("http://redirected.example.net/landing").unwrap();
        let got = hosts_with(b"<a href=/about>about</a>", None, &final_url, 10);
        assert_eq!(got, ["redirected.example.net"]);
    }

    #[test]
    fn link_forms() {
        let written = |text, has_upper, prefix| WrittenHost {
            text,
            has_upper,
            prefix,
        };
        assert_eq!(
            link_form(" HTTPS://u:p@Host.example.org:8443/x "),
            LinkForm::Absolute(written(
                "Host.example.org",
                true,
                "HTTPS://u:p@Host.example.org:8443"
            ))
        );
        assert_eq!(
            link_form("\\\\cdn.example.org?x"),
            LinkForm::SchemeRelative(written("cdn.example.org", false, "\\\\cdn.example.org"))
        );
        for relative in [
            "", "x", "/x", "../x:y", "?q", "#f", "1a:b", ":x", "/\u{0}/x",
        ] {
            assert_eq!(link_form(relative), LinkForm::Relative, "{relative:?}");
        }
        for other in [
            "mailto:a@b.example",
            "JavaScript:x",
            "ftp://f.example/",
            "a+b:c",
        ] {
            assert_eq!(link_form(other), LinkForm::OtherScheme, "{other:?}");
        }
        for parse in [
            "http:x.example",
            "https:/x.example",
            "ht\ttp://x.example",
            "/\t/x.example",
            "http://b%C3%BC.example/",
            "http://bü.example/",
            "http://xn--bcher-kva.de/",
            "http://1.0x7f/",
            "http://example.09./",
            "http://x.example:65536/",
            "http://x.example:8a/",
            "http://[::1]/",
            "http://@/",
        ] {
            assert_eq!(link_form(parse), LinkForm::NeedsParse, "{parse:?}");
        }
    }

    #[test]
    fn link_forms_skip_a_run_of_slashes_before_the_host() {
        let written = |text, prefix| WrittenHost {
            text,
            has_upper: false,
            prefix,
        };
        for (link, prefix) in [
            ("///x.example/p", "///x.example"),
            ("/\\/x.example", "/\\/x.example"),
            ("\\\\\\\\x.example?q", "\\\\\\\\x.example"),
        ] {
            assert_eq!(
                link_form(link),
                LinkForm::SchemeRelative(written("x.example", prefix)),
                "{link:?}"
            );
        }
        for (link, prefix) in [
            ("http:///x.example", "http:///x.example"),
            ("https:\\\\/x.example/", "https:\\\\/x.example"),
        ] {
            assert_eq!(
                link_form(link),
                LinkForm::Absolute(written("x.example", prefix)),
                "{link:?}"
            );
        }
    }

    #[test]
    fn a_run_of_slashes_before_the_host_names_it() {
        // The URL standard skips every `/` and `\\` before an http(s) host.
        for link in [
            "///slashes.example.org/path",
            "////slashes.example.org",
            "//\\slashes.example.org/",
            "/\\slashes.example.org",
            "\\\\slashes.example.org",
            "\\/\\/slashes.example.org",
            " ///slashes.example.org ",
            "/\t//slashes.example.org",
            "//\n/slashes.example.org",
            "///user:pw@slashes.example.org:8080/x",
            "///SLASHES.example.org",
            "///slashes.example.org./",
            "///b%C3%BC.example.org/",
            "http:///slashes.example.org",
            "http:\\\\\\slashes.example.org",
            "https:/\\/slashes.example.org",
            // Another scheme than the base's: the host follows whatever slashes.
            "http:slashes.example.org",
            "http:/slashes.example.org",
        ] {
            let html = format!(r#"<a href="{link}">x</a>"#);
            let expected = if link.contains("%C3%BC") {
                "xn--b-eha.example.org"
            } else {
                "slashes.example.org"
            };
            assert_eq!(hosts_of(&html), [expected], "{link:?}");
            // The same before a `<base href>`, and after one.
            let html = format!(r#"<a href="{link}">x</a><base href="https://b.example.net/">"#);
            assert_eq!(hosts_of(&html), [expected], "{link:?} before <base>");
            let html = format!(r#"<base href="https://b.example.net/"><a href="{link}">x</a>"#);
            assert_eq!(hosts_of(&html), [expected], "{link:?} after <base>");
        }
        // The same scheme as the base's without two slashes is a path.
        assert_eq!(
            hosts_of(r#"<a href="https:slashes.example.org">x</a>"#),
            ["www.example.com"]
        );
        // A run with no host after it is no URL; under another base it is a path.
        for link in ["///", "///?q", "\\\\\\#f", "///:80/"] {
            let html = format!(r#"<a href="{link}">x</a>"#);
            assert!(hosts_of(&html).is_empty(), "{link:?}");
        }
        let html =
            r#"<base href="ftp://files.example.org/"><a href="///slashes.example.org/">x</a>"#;
        assert!(hosts_of(html).is_empty());
        // A `<base href>` written that way counts as its host.
        let html = r#"<base href="///base.example.org/dir/"><a href="rel">x</a>"#;
        assert_eq!(hosts_of(html), ["base.example.org"]);
    }

    #[test]
    fn srcset_candidates() {
        let mut urls = Vec::new();
        for_each_srcset_url(
            " a.png 1x,b.png 2x , c.png, d.png,e.png, data:image/png;base64,AAAA 3x, f.png (x, y) 4x, g.png",
            |u| urls.push(u),
        );
        // Commas inside a URL belong to it (HTML srcset parsing); only trailing ones split.
        assert_eq!(
            urls,
            [
                "a.png",
                "b.png",
                "c.png",
                "d.png,e.png",
                "data:image/png;base64,AAAA",
                "f.png",
                "g.png"
            ]
        );
        let html = r#"<img srcset="https://a.example.org/x.png 100w,https://b.example.org/y.png 200w,https://c.example.org/z.png">"#;
        assert_eq!(
            hosts_of(html),
            ["a.example.org", "b.example.org", "c.example.org"]
        );
    }

    #[test]
    fn meta_refresh_forms() {
        assert_eq!(
            refresh_url("5; url=https://x.example/"),
            Some("https://x.example/")
        );
        assert_eq!(
            refresh_url("0;URL = 'https://x.example/a b'"),
            Some("https://x.example/a b")
        );
        assert_eq!(refresh_url("3, \"/next\""), Some("/next"));
        assert_eq!(
            refresh_url("0; https://bare.example/"),
            Some("https://bare.example/")
        );
        assert_eq!(refresh_url(".5 url=/half"), Some("/half"));
        assert_eq!(refresh_url("5"), None);
        assert_eq!(refresh_url("5;"), None);
        assert_eq!(refresh_url("url=/x"), None);
        assert_eq!(refresh_url("5x; url=/x"), None);
        let html = r#"<meta content="0; url=//r.example.org/" http-equiv=refresh><meta http-equiv=other content="0; url=https://no.example.org/">"#;
        assert_eq!(hosts_of(html), ["r.example.org"]);
    }

    #[test]
    fn raw_text_elements_are_not_markup() {
        let html = r#"
            <script>var s = '<a href="https://script.example.org/">';</script>
            <style>a::after { content: '<a href="https://style.example.org/">' }</style>
            <title><a href="https://title.example.org/">t</a></title>
            <textarea><img src="https://textarea.example.org/x"></textarea>
            <xmp><a href="https://xmp.example.org/"></a></xmp>
            <noembed><a href="https://noembed.example.org/"></a></noembed>
            <noframes><a href="https://noframes.example.org/"></a></noframes>
            <iframe src="https://frame.example.org/"><a href="https://inframe.example.org/"></a></iframe>
            <!-- <a href="https://comment.example.org/"> -->
            <a href="https://after.example.org/">ok</a>"#;
        assert_eq!(hosts_of(html), ["frame.example.org", "after.example.org"]);
    }

    #[test]
    fn script_end_needs_the_right_tag_and_plaintext_ends_markup() {
        let html = r#"<script src="https://s.example.org/a.js"></style><a href="https://no.example.org/"></script><a href="https://yes.example.org/">"#;
        assert_eq!(hosts_of(html), ["s.example.org", "yes.example.org"]);
        let html =
            r#"<a href="https://yes.example.org/"><plaintext><a href="https://no.example.org/">"#;
        assert_eq!(hosts_of(html), ["yes.example.org"]);
    }

    #[test]
    fn self_closing_raw_tags_inside_svg() {
        let html = r#"<svg><style/><script/></svg><a href="https://after.example.org/">"#;
        assert_eq!(hosts_of(html), ["after.example.org"]);
        // In HTML, <script/> still starts raw text.
        let html = r#"<script/><a href="https://no.example.org/"></script><a href="https://yes.example.org/">"#;
        assert_eq!(hosts_of(html), ["yes.example.org"]);
    }

    #[test]
    fn ignored_schemes_and_ip_literals() {
        let html = r#"
            <a href="javascript:go('https://js.example.org/')">j</a>
            <a href=" JavaScript:void(0)">j</a>
            <a href="java&#10;script:alert(1)">j</a>
            <a href="mailto:someone@mail.example.org">m</a>
            <a href="tel:+15555550100">t</a>
            <img src="data:image/png;base64,iVBORw0KGgo=">
            <a href="ftp://ftp.example.org/">f</a>
            <a href="ws://ws.example.org/">w</a>
            <a href="http://1.2.3.4/">ip</a>
            <a href="https://[2001:db8::1]/">ip6</a>
            <a href="http://0x7f.1/">hexip</a>
            <a href="https://under_score.example.org/">bad</a>
            <a href="https://example.123/">numeric tld</a>
            <a href="http://">empty</a>
            <a href="HTTPS://Good.Example.ORG./path">good</a>"#;
        assert_eq!(hosts_of(html), ["good.example.org"]);
    }

    #[test]
    fn idn_and_case_are_normalised_and_deduplicated() {
        let html = r#"<a href="https://Bücher.DE/">1</a><a href="https://xn--bcher-kva.de/x">2</a>
            <a href="https://b%C3%BCcher.de/">3</a><a href="HTTPS://BÜCHER.de.">4</a>"#;
        assert_eq!(hosts_of(html), ["xn--bcher-kva.de"]);
    }

    #[test]
    fn max_hosts_caps_in_first_seen_order() {
        let mut html = String::new();
        for i in 0..50 {
            html.push_str(&format!("<a href='https://h{i}.example.org/'>x</a>"));
            html.push_str(&format!("<a href='https://h{i}.example.org/again'>x</a>"));
        }
        let got = hosts_with(html.as_bytes(), None, &page(), 5);
        assert_eq!(
            got,
            [
                "h0.example.org",
                "h1.example.org",
                "h2.example.org",
                "h3.example.org",
                "h4.example.org"
            ]
        );
        assert!(hosts_with(html.as_bytes(), None, &page(), 0).is_empty());
    }

    #[test]
    fn max_hosts_with_a_pending_base() {
        // The pending slot precedes the others and resolves to a new host: it is kept.
        let html = r#"<a href=x></a><a href=https://a.example.org/></a><a href=https://b.example.org/></a><base href=https://base.example.org/>"#;
        assert_eq!(
            hosts_with(html.as_bytes(), None, &page(), 2),
            ["base.example.org", "a.example.org"]
        );
        // It resolves to a host already held: the next new host takes the freed place.
        let html = r#"<a href=x></a><a href=https://a.example.org/></a><a href=https://b.example.org/></a><base href=https://a.example.org/>"#;
        assert_eq!(
            hosts_with(html.as_bytes(), None, &page(), 2),
            ["a.example.org", "b.example.org"]
        ); // The same, with the new host after the base: the resolved slot leaves
        // no stale entry behind to take up room.
        let html = r#"<a href=x></a><a href=https://a.example.org/></a><base href=https://a.example.org/><a href=https://b.example.org/></a>"#;
        assert_eq!(
            hosts_with(html.as_bytes(), None, &page(), 2),
            ["a.example.org", "b.example.org"]
        );
    }

    #[test]
    fn charset_from_header() {
        // "bücher" in windows-1252 / ISO-8859-1: ü is 0xFC.
        let mut body = b"<a href=\"https://b".to_vec();
        body.push(0xfc);
        body.extend_from_slice(b"cher.de/\">x</a>");
        let got = hosts_with(&body, Some("text/html; charset=ISO-8859-1"), &page(), 10);
        assert_eq!(got, ["xn--bcher-kva.de"]);
        let got = hosts_with(
            &body,
            Some("text/html;charset=\"windows-1252\""),
            &page(),
            10,
        );
        assert_eq!(got, ["xn--bcher-kva.de"]);
        // Decoded as UTF-8 the byte is invalid: U+FFFD is not a valid host character.
        assert!(hosts_with(&body, Some("text/html"), &page(), 10).is_empty());
    }

    #[test]
    fn charset_from_meta() {
        for head in [
            "<meta charset=windows-1252>",
            "<meta charset='ISO-8859-1'>",
            r#"<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">"#,
            r#"<!-- <meta charset=utf-8> --><meta content="text/html; charset=latin1" http-equiv=content-type>"#,
        ] {
            let mut body =
                format!("<html><head>{head}</head><body><a href=\"https://b").into_bytes();
            body.push(0xfc);
            body.extend_from_slice(b"cher.de/\">x</a>");
            assert_eq!(
                hosts_with(&body, None, &page(), 10),
                ["xn--bcher-kva.de"],
                "{head}"
            );
        }
        // The header beats the meta; the meta without http-equiv is ignored.
        let body = "<meta charset=windows-1252><a href=https://bücher.de/>".as_bytes();
        assert_eq!(
            hosts_with(body, Some("text/html; charset=utf-8"), &page(), 10),
            ["xn--bcher-kva.de"]
        );
        assert_eq!(prescan(b"<meta content='text/html; charset=latin1'>"), None);
        // A meta past the first 1,024 bytes is not seen.
        let late = format!("{}<meta charset=windows-1252>", " ".repeat(1100));
        assert_eq!(sniff_encoding(late.as_bytes(), None), encoding_rs::UTF_8);
        // Declared UTF-16 in a meta means UTF-8; x-user-defined means windows-1252.
        assert_eq!(
            prescan(b"<meta charset=utf-16le>"),
            Some(encoding_rs::UTF_8)
        );
        assert_eq!(
            prescan(b"<meta charset=x-user-defined>"),
            Some(encoding_rs::WINDOWS_1252)
        );
        // Attribute values of other tags may contain '>' without ending the tag.
        assert_eq!(
            prescan(b"<div title='a>b <meta charset=koi8-r>'><meta charset=iso-8859-2>"),
            Some(encoding_rs::ISO_8859_2)
        );
    }

    #[test]
    fn bom_wins() {
        let mut body = vec![0xef, 0xbb, 0xbf];
        body.extend_from_slice("<a href=https://bücher.de/>x</a>".as_bytes());
        let got = hosts_with(&body, Some("text/html; charset=windows-1252"), &page(), 10);
        assert_eq!(got, ["xn--bcher-kva.de"]);
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "<a href=https://x.example.org/>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(hosts_with(&utf16, None, &page(), 10), ["x.example.org"]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let url = page();
        let mut big = Vec::new();
        while big.len() < 10 * 1024 * 1024 {
            big.extend_from_slice(b"<a href=");
        }
        assert!(link_hosts(&big, None, &url, 10_000).is_empty());
        let nested = "<div>".repeat(100_000) + "<a href=https://deep.example.org/>";
        assert_eq!(hosts_of(&nested), ["deep.example.org"]);
        // None of these holds a complete link: a NUL makes the tag name "a\u{FFFD}",
        // FF FE is a UTF-16LE byte-order mark, the rest end inside a tag or raw text.
        for body in [
            &b"\0\0<a\0 href=\0https://n.example.org/\0>"[..],
            b"\xff\xfe\xfd<a href=https://x",
            b"<a href='https://truncated.example.org/",
            b"<script>",
            b"<!--",
            b"<meta http-equiv=refresh content='0; url=",
            b"<img srcset=',,,, ,, \t, '>",
            b"<base href=>",
            b"<svg></svg></svg></math><math/>",
        ] {
            let got = link_hosts(body, Some("text/html; charset=bogus"), &url, 10);
            assert!(got.is_empty(), "{body:?} gave {got:?}");
        }
        assert_eq!(
            hosts_with(
                b"<a href='https://ok.example.org/'><a href=\"https://trunc",
                None,
                &url,
                10
            ),
            ["ok.example.org"]
        );
    }

    #[test]
    fn many_distinct_hosts_stop_at_the_cap() {
        let mut html = String::new();
        for i in 0..30_000 {
            html.push_str(&format!("<a href=https://h{i}.example.org/>"));
        }
        let got = link_hosts(html.as_bytes(), None, &page(), 10_000);
        assert_eq!(got.len(), 10_000);
        assert_eq!(got[0].as_str(), "h0.example.org");
        assert_eq!(got[9_999].as_str(), "h9999.example.org");
    }
}
