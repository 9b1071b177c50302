//! The html5ever tokenizer's sink: which tags and attributes hold links, the
//! document base, and the list of hosts found so far (first-seen order, at most
//! `max_hosts`, with the base's host pending until it is known).

use std::borrow::Borrow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};

use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Tag, TagKind, Token, TokenSink, TokenSinkResult};
use html5ever::{LocalName, local_name};
use spyder_model::{HostName, NameKind};
use url::{Host, Url};

use super::authority::{LinkForm, WrittenHost, link_form};
use super::url::{domain_of, is_http, join};

/// Stand-in host for "whatever the document base turns out to be": links seen
/// before a `<base href>` are resolved against a copy of the page URL carrying
/// this address, so a path-relative link can be told from one naming a host.
const PENDING_BASE: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5350, 0x5944, 0x4552, 0x0001);

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
pub(super) struct LinkSink<'a> {
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
    pub(super) fn new(page_url: &'a Url, max_hosts: usize) -> Self {
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
    pub(super) fn is_full(&self) -> bool {
        let hosts = &self.state.borrow().hosts;
        hosts.pending.is_none() && hosts.slots.len() >= self.max_hosts
    }

    /// Resolves what is still pending and returns the hosts.
    pub(super) fn finish(self) -> Vec<HostName> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::tests::hosts_of;

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
}
