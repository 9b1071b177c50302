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

mod authority;
mod charset;
mod sink;
mod url;

use ::url::Url;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};
use spyder_model::HostName;

use charset::sniff_encoding;
use sink::LinkSink;

/// Decoded text handed to the tokenizer per step; between steps the extractor
/// checks whether it already has all the hosts it may return.
const CHUNK_BYTES: usize = 64 * 1024;

/// Hosts linked from an HTML page, de-duplicated, first-seen order, at most `max_hosts`.
///
/// `content_type` is the response's `Content-Type` header, if any; `page_url` is the
/// final URL after redirects. Only http and https links count; IP-literal hosts and
/// names that fail [`HostName::parse`] with [`NameKind::Strict`](spyder_model::NameKind::Strict) are skipped. The
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(super) fn page() -> Url {
        Url::parse("https://www.example.com/dir/page.html").unwrap()
    }

    pub(super) fn hosts_of(html: &str) -> Vec<String> {
        hosts_with(html.as_bytes(), None, &page(), 10_000)
    }

    pub(super) fn hosts_with(body: &[u8], ct: Option<&str>, url: &Url, max: usize) -> Vec<String> {
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
