//! Link extraction throughput (issue #6): spyder's [`link_hosts`] against html5ever's
//! bare tokenizer on the same bytes, both in bytes per second.
//!
//! Four generated pages, built once before any timing: a ~10 KiB landing page, a
//! ~100 KiB news front page (many `<a href>`, `<link>`, `<script src>`, `<img srcset>`,
//! inline `<script>`/`<style>`, comments and entities), a ~256 KiB script-heavy app
//! page (a large inline JSON state blob and bundle), and a 1 MiB page of repeated news
//! markup. The probe hands [`link_hosts`] at most `crawling.body_max_bytes` (512 KiB
//! by default); the 1 MiB page is what a probe configured with a 1 MiB cap sees.
//!
//! - `link_hosts_as_probe`: the call the probe makes on a root page body, host
//!   normalisation and de-duplication included.
//! - `tokenizer_raw`: `Tokenizer` with a sink that only counts tokens; one
//!   `BufferQueue`, one `feed`, `end`. Script and style content is tokenised as markup.
//! - `tokenizer_rawtext`: the same, but the sink switches to raw text after
//!   `<script>`, `<style>`, `<title>`, … as a link extractor must: the cost of
//!   tokenising alone, without the link handling.
//!
//! ```sh
//! cargo bench -p spyder-probe --bench links
//! ```

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use html5ever::local_name;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use spyder_probe::links::link_hosts;
use url::Url;

fn main() {
    divan::main();
}

/// The probe's cap on link hosts per page (`MAX_LINK_HOSTS` in the probe's fetch step).
const MAX_LINK_HOSTS: usize = 10_000;

/// The `Content-Type` the pages are served with.
const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The pages benchmarked, smallest first.
const PAGES: [PageKind; 4] = [
    PageKind::Landing,
    PageKind::News,
    PageKind::App,
    PageKind::Large,
];

#[divan::bench(args = PAGES)]
fn link_hosts_as_probe(bencher: Bencher, kind: PageKind) {
    let page = kind.page();
    bencher.counter(BytesCount::new(page.html.len())).bench(|| {
        link_hosts(
            black_box(page.html.as_bytes()),
            Some(CONTENT_TYPE),
            &page.url,
            MAX_LINK_HOSTS,
        )
    });
}

#[divan::bench(args = PAGES)]
fn tokenizer_raw(bencher: Bencher, kind: PageKind) {
    let page = kind.page();
    bencher
        .counter(BytesCount::new(page.html.len()))
        .bench(|| tokenize(black_box(page.html.as_bytes()), CountingSink::default()));
}

#[divan::bench(args = PAGES)]
fn tokenizer_rawtext(bencher: Bencher, kind: PageKind) {
    let page = kind.page();
    bencher
        .counter(BytesCount::new(page.html.len()))
        .bench(|| tokenize(black_box(page.html.as_bytes()), RawTextSink::default()));
}

/// Runs the tokenizer over `html` (UTF-8) the plain way and returns the token count.
fn tokenize<S: TokenSink<Handle = ()> + Counted>(html: &[u8], sink: S) -> u64 {
    let text = String::from_utf8_lossy(html);
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&text));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.count()
}

trait Counted {
    fn count(&self) -> u64;
}

/// Counts tokens, nothing else.
#[derive(Debug, Default)]
struct CountingSink {
    tokens: Cell<u64>,
}

impl Counted for CountingSink {
    fn count(&self) -> u64 {
        self.tokens.get()
    }
}

impl TokenSink for CountingSink {
    type Handle = ();

    fn process_token(&self, _token: Token, _line_number: u64) -> TokenSinkResult<()> {
        self.tokens.set(self.tokens.get() + 1);
        TokenSinkResult::Continue
    }
}

/// Counts tokens and switches to raw text after the raw-text start tags.
#[derive(Debug, Default)]
struct RawTextSink {
    tokens: Cell<u64>,
}

impl Counted for RawTextSink {
    fn count(&self) -> u64 {
        self.tokens.get()
    }
}

impl TokenSink for RawTextSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        self.tokens.set(self.tokens.get() + 1);
        let Token::TagToken(tag) = token else {
            return TokenSinkResult::Continue;
        };
        if tag.kind != TagKind::StartTag {
            return TokenSinkResult::Continue;
        }
        let name = &tag.name;
        if *name == local_name!("script") {
            TokenSinkResult::RawData(RawKind::ScriptData)
        } else if *name == local_name!("style")
            || *name == local_name!("iframe")
            || *name == local_name!("xmp")
            || *name == local_name!("noembed")
            || *name == local_name!("noframes")
        {
            TokenSinkResult::RawData(RawKind::Rawtext)
        } else if *name == local_name!("title") || *name == local_name!("textarea") {
            TokenSinkResult::RawData(RawKind::Rcdata)
        } else {
            TokenSinkResult::Continue
        }
    }
}

// ---------------------------------------------------------------------------------
// The pages.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageKind {
    Landing,
    News,
    App,
    Large,
}

impl fmt::Display for PageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Landing => "landing_10k",
            Self::News => "news_100k",
            Self::App => "app_256k",
            Self::Large => "large_1m",
        })
    }
}

impl PageKind {
    fn page(self) -> &'static Page {
        static LANDING: LazyLock<Page> = LazyLock::new(landing_page);
        static NEWS: LazyLock<Page> = LazyLock::new(|| news_page(100 * 1024, 24));
        static APP: LazyLock<Page> = LazyLock::new(app_page);
        static LARGE: LazyLock<Page> = LazyLock::new(|| news_page(1024 * 1024, 400));
        match self {
            Self::Landing => &LANDING,
            Self::News => &NEWS,
            Self::App => &APP,
            Self::Large => &LARGE,
        }
    }
}

/// One page and the URL it was fetched from.
struct Page {
    url: Url,
    html: String,
}

impl Page {
    fn new(url: &str, html: String) -> Self {
        let page = Self {
            url: Url::parse(url).expect("page URLs are valid"),
            html,
        };
        let hosts = link_hosts(
            page.html.as_bytes(),
            Some(CONTENT_TYPE),
            &page.url,
            MAX_LINK_HOSTS,
        );
        assert!(hosts.len() >= 5, "{url}: only {} link hosts", hosts.len());
        page
    }
}

/// Hosts a news site links to: its own CDNs, wires, social networks, ad tech.
const NEWS_HOSTS: [&str; 24] = [
    "static.heraldcdn.net",
    "img.heraldcdn.net",
    "www.wirenews-agency.com",
    "apnews-wire.org",
    "platform.chirper.com",
    "www.facebook-share.net",
    "www.linkedin-share.net",
    "cdn.jsdelivr-mirror.net",
    "fonts.webfont-cdn.com",
    "securepubads.adservice.net",
    "tags.analytics-tag.com",
    "video.player-host.tv",
    "en.wikipedia-mirror.org",
    "www.parliament.example.gov",
    "shop.partner-store.co.uk",
    "columnist.newsletter-platform.com",
    "weather.forecast-service.com",
    "maps.mapprovider.com",
    "www.stock-quotes.com",
    "podcasts.audio-host.fm",
    "subscribe.herald-news.com",
    "help.herald-news.com",
    "jobs.herald-news.com",
    "archive.herald-news.com",
];

const SECTIONS: [&str; 12] = [
    "world", "uk", "politics", "business", "tech", "science", "health", "sport", "culture",
    "travel", "opinion", "weather",
];

const TITLES: [&str; 8] = [
    "Markets rally as central bank holds rates",
    "Storm warnings issued for coastal regions",
    "Parliament votes on late-night amendment",
    "Inside the race to build cheaper batteries",
    "Champions edge past rivals in extra time",
    "The quiet village that became a film set",
    "Researchers map the deep-sea cable network",
    "What the new housing rules mean for renters",
];

const STANDFIRSTS: [&str; 4] = [
    "Officials said the &ldquo;measured&rdquo; approach would continue &ndash; for now &amp; until the spring review.",
    "Residents were told to prepare for disruption; the agency&#8217;s advice is updated hourly.",
    "It&rsquo;s the third time this year that the café owners&nbsp;have had to close — and they&#39;re not alone.",
    "A 12&#x2011;month study found costs fell by 18&percnt; &lt;in real terms&gt; across the sector.",
];

/// A news front page of about `size` bytes (exactly `size` from 512 KiB up: the tail
/// is padded), linking to `NEWS_HOSTS` plus up to `extra_hosts` generated hosts.
fn news_page(size: usize, extra_hosts: usize) -> Page {
    let mut html = String::with_capacity(size + 4096);
    news_head(&mut html);
    html.push_str("<body class=\"front\">\n<!-- Google Tag Manager (noscript) -->\n<noscript><iframe src=\"https://tags.analytics-tag.com/ns.html?id=GTM-XYZ\" height=\"0\" width=\"0\" style=\"display:none;visibility:hidden\"></iframe></noscript>\n");
    news_nav(&mut html);
    html.push_str("<main id=\"main\">\n");
    let footer = news_footer();
    let mut i = 0;
    loop {
        let mut item = String::new();
        news_item(&mut item, i, extra_hosts);
        if html.len() + item.len() + footer.len() + 32 > size && i > 0 {
            break;
        }
        html.push_str(&item);
        i += 1;
    }
    html.push_str("</main>\n");
    html.push_str(&footer);
    if size >= 512 * 1024 {
        // Pad to the exact size with white space, as trailing template output.
        while html.len() < size {
            html.push('\n');
        }
    }
    Page::new("https://www.herald-news.com/", html)
}

fn news_head(html: &mut String) {
    html.push_str("<!DOCTYPE html>\n<html lang=\"en-GB\" class=\"no-js\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Herald News &ndash; Latest news, sport &amp; opinion</title>\n");
    html.push_str("<meta name=\"description\" content=\"The latest headlines, analysis &amp; opinion from the Herald.\">\n<meta property=\"og:image\" content=\"https://img.heraldcdn.net/og/front.jpg\">\n<meta property=\"og:url\" content=\"https://www.herald-news.com/\">\n<meta name=\"twitter:site\" content=\"@herald\">\n");
    html.push_str("<link rel=\"canonical\" href=\"https://www.herald-news.com/\">\n");
    for lang in ["en-us", "en-au", "fr", "de", "es"] {
        let _ = writeln!(
            html,
            "<link rel=\"alternate\" hreflang=\"{lang}\" href=\"https://{lang}.herald-news.com/\">"
        );
    }
    for host in [
        "static.heraldcdn.net",
        "img.heraldcdn.net",
        "fonts.webfont-cdn.com",
        "securepubads.adservice.net",
    ] {
        let _ = writeln!(
            html,
            "<link rel=\"preconnect\" href=\"https://{host}\" crossorigin>"
        );
    }
    for (i, css) in ["core", "front", "print"].iter().enumerate() {
        let _ = writeln!(
            html,
            "<link rel=\"stylesheet\" href=\"//static.heraldcdn.net/css/{css}.{i}a9f3c.css\" media=\"all\">"
        );
    }
    html.push_str("<link rel=\"icon\" href=\"/favicon.ico\" sizes=\"any\">\n<link rel=\"apple-touch-icon\" href=\"/static/icons/apple-touch-icon.png\">\n<link rel=\"manifest\" href=\"/manifest.webmanifest\">\n");
    for src in [
        "https://static.heraldcdn.net/js/vendor.7c1e.js",
        "https://static.heraldcdn.net/js/app.3b2d.js",
        "https://securepubads.adservice.net/tag/js/gpt.js",
        "https://tags.analytics-tag.com/gtm.js?id=GTM-XYZ",
        "https://cdn.jsdelivr-mirror.net/npm/lazysizes@5/lazysizes.min.js",
        "https://platform.chirper.com/widgets.js",
        "/static/js/polyfills.js",
        "/static/js/consent.js",
    ] {
        let _ = writeln!(html, "<script async src=\"{src}\"></script>");
    }
    // JSON-LD.
    html.push_str("<script type=\"application/ld+json\">{\"@context\":\"https://schema.org\",\"@type\":\"NewsMediaOrganization\",\"name\":\"Herald News\",\"url\":\"https://www.herald-news.com/\",\"logo\":{\"@type\":\"ImageObject\",\"url\":\"https://img.heraldcdn.net/logo.png\"},\"sameAs\":[\"https://www.facebook-share.net/herald\",\"https://platform.chirper.com/herald\"]}</script>\n");
    // Inline style: a critical-CSS block.
    html.push_str("<style>\n");
    for i in 0..80 {
        let _ = writeln!(
            html,
            ".c{i}>a:hover,.story--{i} .story__title{{color:#1a1a1a;font:600 1.{}rem/1.3 \"Herald Serif\",Georgia,serif;margin:0 0 {}px}}",
            i % 10,
            i % 24
        );
    }
    html.push_str("@media (max-width:600px){.nav>li{display:none}.story{grid-template-columns:1fr}}\n@font-face{font-family:\"Herald Serif\";src:url(https://fonts.webfont-cdn.com/herald-serif.woff2) format(\"woff2\")}\n</style>\n");
    // Inline script: consent and ad set-up, with '<' comparisons and markup in strings.
    html.push_str("<script>\nwindow.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}\n");
    for i in 0..40 {
        let _ = writeln!(
            html,
            "if(window.innerWidth<{w}&&document.cookie.indexOf('consent={i}')<0){{var el=document.createElement('div');el.innerHTML='<a href=\"/consent/{i}\">Manage</a></div>';slots.push({{id:'div-gpt-ad-{i}',sizes:[[300,250],[728,90]],path:'/1234/herald/front/{i}'}});}}",
            w = 600 + i
        );
    }
    html.push_str("</script>\n</head>\n");
}

fn news_nav(html: &mut String) {
    html.push_str("<header class=\"masthead\"><a class=\"skip\" href=\"#main\">Skip to content</a>\n<a href=\"/\" class=\"logo\"><img src=\"/static/img/logo.svg\" alt=\"Herald News\" width=\"180\" height=\"40\"></a>\n<nav class=\"nav\"><ul>\n");
    for (i, section) in SECTIONS.iter().enumerate() {
        let _ = writeln!(
            html,
            "<li class=\"nav__item c{i}\"><a href=\"/{section}\" data-link-name=\"nav : {section}\">{}</a><ul class=\"sub\"><li><a href=\"/{section}/latest\">Latest</a></li><li><a href=\"/{section}/analysis\">Analysis</a></li><li><a href=\"/{section}?page=2\">More</a></li></ul></li>",
            capitalise(section)
        );
    }
    html.push_str("</ul></nav>\n<form class=\"search\" action=\"/search\" method=\"get\"><input type=\"search\" name=\"q\" placeholder=\"Search&hellip;\"><button>Go</button></form>\n<a class=\"subscribe\" href=\"https://subscribe.herald-news.com/?ref=masthead\">Subscribe</a>\n</header>\n");
}

fn news_item(html: &mut String, i: usize, extra_hosts: usize) {
    let section = SECTIONS[i % SECTIONS.len()];
    let title = TITLES[i % TITLES.len()];
    let standfirst = STANDFIRSTS[i % STANDFIRSTS.len()];
    let external = if extra_hosts > 0 && i.is_multiple_of(3) {
        format!("www.source{}.example-{}.com", i % extra_hosts, i % 7)
    } else {
        NEWS_HOSTS[(i * 7) % NEWS_HOSTS.len()].to_owned()
    };
    let _ = write!(
        html,
        "<article class=\"story story--{kind}\" data-id=\"{i}\">\n<!-- story {i} : {section} -->\n\
<a class=\"story__link\" href=\"/{section}/2025/nov/21/{slug}-{i}\"><h3 class=\"story__title\">{title} &ndash; part {n}</h3></a>\n\
<picture><source type=\"image/webp\" srcset=\"https://img.heraldcdn.net/{i}/320.webp 320w, https://img.heraldcdn.net/{i}/640.webp 640w, https://img.heraldcdn.net/{i}/1280.webp 1280w\">\
<img src=\"https://img.heraldcdn.net/{i}/640.jpg\" srcset=\"https://img.heraldcdn.net/{i}/320.jpg 320w, https://img.heraldcdn.net/{i}/640.jpg 640w\" sizes=\"(max-width: 600px) 100vw, 50vw\" alt=\"Photo: {title}\" loading=\"lazy\" width=\"640\" height=\"360\"></picture>\n\
<p class=\"story__standfirst\">{standfirst}</p>\n\
<footer class=\"story__meta\"><span>By <a href=\"/profile/writer-{w}\">Writer {w}</a></span> <time datetime=\"2025-11-21T08:{mm:02}:00Z\">21 Nov 2025</time> \
<a href=\"https://{external}/2025/11/{slug}\" rel=\"noopener\" target=\"_blank\">Source</a> <a href=\"#comments-{i}\" class=\"comments\">{c} comments</a></footer>\n</article>\n",
        kind = ["lead", "standard", "compact"][i % 3],
        slug = title.to_ascii_lowercase().replace(' ', "-"),
        n = i / TITLES.len() + 1,
        w = i % 37,
        mm = i % 60,
        c = (i * 13) % 500,
    );
    if i % 10 == 9 {
        let _ = writeln!(
            html,
            "<div class=\"ad-slot\" id=\"div-gpt-ad-{i}\"><script>googletag.cmd.push(function(){{if(w<600&&h>0){{googletag.display('div-gpt-ad-{i}')}}else{{document.write('<img src=\"https://securepubads.adservice.net/px?slot={i}\" alt=\"\">')}}}});</script></div>"
        );
    }
    if i % 15 == 14 {
        let _ = writeln!(
            html,
            "<div class=\"share\"><a href=\"https://www.facebook-share.net/sharer.php?u=https%3A%2F%2Fwww.herald-news.com%2F{i}\">Share</a> <a href=\"https://platform.chirper.com/intent/post?url=https%3A%2F%2Fwww.herald-news.com%2F{i}&amp;text=Read\">Post</a> <a href=\"mailto:?subject=Herald&amp;body=https://www.herald-news.com/{i}\">Email</a> <a href=\"javascript:void(0)\" onclick=\"copy({i})\">Copy link</a></div>"
        );
    }
    if i % 25 == 24 {
        let _ = writeln!(
            html,
            "<figure class=\"embed\"><iframe src=\"https://video.player-host.tv/embed/{i}?autoplay=0\" width=\"640\" height=\"360\" allowfullscreen title=\"Video\"></iframe><figcaption>Watch: the day in 90 seconds</figcaption></figure>"
        );
    }
}

fn news_footer() -> String {
    let mut html = String::from("<footer class=\"site-footer\">\n<ul class=\"links\">\n");
    for (i, host) in NEWS_HOSTS.iter().enumerate() {
        let _ = writeln!(
            html,
            "<li><a href=\"https://{host}/?utm_source=herald&amp;utm_medium=footer&amp;n={i}\">{host}</a></li>"
        );
    }
    for page in [
        "about",
        "contact",
        "privacy",
        "cookies",
        "terms",
        "accessibility",
        "advertise",
        "corrections",
    ] {
        let _ = writeln!(
            html,
            "<li><a href=\"/info/{page}\">{}</a></li>",
            capitalise(page)
        );
    }
    html.push_str("</ul>\n<p>&copy; 2025 Herald News Ltd &middot; All rights reserved &middot; Registered in England &amp; Wales</p>\n<!-- rendered by web-7f9c in 41ms -->\n</footer>\n</body>\n</html>\n");
    html
}

/// A small product landing page, about 10 KiB.
fn landing_page() -> Page {
    let mut html = String::with_capacity(12 * 1024);
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>Acme Cloud &mdash; Deploy in seconds</title>\n<link rel=\"stylesheet\" href=\"https://cdn.acme-static.com/site/main.5f2e.css\">\n<link rel=\"preconnect\" href=\"https://fonts.webfont-cdn.com\">\n<link rel=\"icon\" href=\"/favicon.svg\">\n<script defer src=\"https://cdn.acme-static.com/site/main.9a1c.js\"></script>\n<script async src=\"https://tags.analytics-tag.com/gtag/js?id=G-ACME\"></script>\n<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('js',new Date());gtag('config','G-ACME');</script>\n<style>:root{--brand:#4f46e5}body{margin:0;font-family:system-ui,sans-serif}.hero{padding:6rem 1rem;background:linear-gradient(90deg,#4f46e5,#06b6d4)}.card{border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.1)}</style>\n</head>\n<body>\n<!-- header -->\n<header><a href=\"/\"><img src=\"/img/logo.svg\" alt=\"Acme\" width=\"120\"></a><nav>");
    for page in [
        "product",
        "pricing",
        "docs",
        "blog",
        "customers",
        "careers",
        "login",
        "signup",
    ] {
        let _ = write!(html, "<a href=\"/{page}\">{}</a> ", capitalise(page));
    }
    html.push_str("<a href=\"https://docs.acme-cloud.com/\">Docs</a> <a href=\"https://status.acme-cloud.com/\">Status</a></nav></header>\n<section class=\"hero\"><h1>Deploy in seconds &ndash; scale to millions</h1><p>Acme Cloud runs your apps close to your users&nbsp;&mdash; no servers to manage.</p><a class=\"cta\" href=\"/signup?plan=free\">Start free</a><img src=\"https://cdn.acme-static.com/img/hero.png\" srcset=\"https://cdn.acme-static.com/img/hero@2x.png 2x, https://cdn.acme-static.com/img/hero@3x.png 3x\" alt=\"Dashboard\"></section>\n<section class=\"features\">\n");
    let features = [
        "Global edge network",
        "Instant rollbacks",
        "Preview deployments",
        "Built-in analytics",
        "Managed databases",
        "Zero-config TLS",
    ];
    for (i, feature) in features.iter().enumerate() {
        let _ = writeln!(
            html,
            "<div class=\"card\"><img src=\"https://cdn.acme-static.com/img/feature-{i}.svg\" alt=\"\" loading=\"lazy\"><h3>{feature}</h3><p>Everything you need for {feature_lc} &amp; more, with sensible defaults and an API for the rest. Teams ship faster because the platform handles the boring parts.</p><a href=\"/product/{i}\">Learn more &rarr;</a></div>",
            feature_lc = feature.to_ascii_lowercase()
        );
    }
    html.push_str("</section>\n<section class=\"logos\"><h2>Trusted by teams at</h2>");
    for (i, customer) in [
        "northwind",
        "contoso",
        "fabrikam",
        "globex",
        "initech",
        "umbrella",
        "hooli",
        "piedpiper",
        "wayne-ent",
        "stark-ind",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(
            html,
            "<a href=\"https://www.{customer}.com/?ref=acme\"><img src=\"/img/customers/{i}.svg\" alt=\"{customer}\"></a>"
        );
    }
    html.push_str("</section>\n<section class=\"quotes\">");
    for i in 0..8 {
        let _ = writeln!(
            html,
            "<blockquote>&ldquo;Moving to Acme cut our deploy times from 20&nbsp;minutes to under 30&nbsp;seconds. Our on-call rota finally gets some sleep.&rdquo;<cite>&mdash; Engineer {i}, <a href=\"/customers/story-{i}\">read the story</a></cite></blockquote>"
        );
    }
    html.push_str("</section>\n<footer><ul>");
    for (name, href) in [
        ("GitHub", "https://github-mirror.com/acme"),
        ("Chirper", "https://platform.chirper.com/acme"),
        ("LinkedIn", "https://www.linkedin-share.net/company/acme"),
        ("YouTube", "https://video.player-host.tv/c/acme"),
        ("Privacy", "/legal/privacy"),
        ("Terms", "/legal/terms"),
        ("Security", "/security"),
        ("Contact", "mailto:hello@acme-cloud.com"),
    ] {
        let _ = write!(html, "<li><a href=\"{href}\">{name}</a></li>");
    }
    html.push_str("</ul><p>&copy; 2025 Acme Cloud, Inc.</p></footer>\n<!-- build 2025-11-21 -->\n");
    // A chat widget loader, as such pages carry.
    html.push_str("<script>(function(w,d){var s=d.createElement('script');s.async=1;s.src='https://widget.chat-vendor.io/loader.js';if(w.innerWidth<768){s.dataset.mode='compact'}d.body.appendChild(s)})(window,document);</script>\n");
    while html.len() < 10 * 1024 - 64 {
        html.push_str(
            "<p class=\"fineprint\">Prices exclude VAT &amp; local taxes where applicable.</p>\n",
        );
    }
    html.push_str("</body>\n</html>\n");
    Page::new("https://www.acme-cloud.com/", html)
}

/// A client-rendered app page, about 256 KiB: little markup, a large inline JSON state
/// blob (with HTML fragments and URLs inside strings) and an inline bundle.
fn app_page() -> Page {
    let mut html = String::with_capacity(260 * 1024);
    html.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charSet=\"utf-8\"/><meta name=\"viewport\" content=\"width=device-width\"/><title>Shop &ndash; Winter sale</title><link rel=\"preload\" href=\"https://assets.shopfront-cdn.com/_next/static/css/8d1f.css\" as=\"style\"/><link rel=\"stylesheet\" href=\"https://assets.shopfront-cdn.com/_next/static/css/8d1f.css\"/>");
    for chunk in ["webpack", "framework", "main", "pages/_app", "pages/index"] {
        let _ = write!(
            html,
            "<script src=\"https://assets.shopfront-cdn.com/_next/static/chunks/{chunk}-a1b2c3.js\" defer=\"\"></script>"
        );
    }
    html.push_str("</head><body><div id=\"__next\"><header><a href=\"/\">Shopfront</a><a href=\"/cart\">Cart</a><a href=\"https://help.shopfront.com/\">Help</a></header><main><h1>Winter sale</h1><div id=\"grid\"></div></main></div>\n");
    html.push_str("<script id=\"__NEXT_DATA__\" type=\"application/json\">{\"props\":{\"pageProps\":{\"products\":[");
    let mut i: u32 = 0;
    while html.len() < 200 * 1024 {
        if i > 0 {
            html.push(',');
        }
        let _ = write!(
            html,
            "{{\"id\":{i},\"sku\":\"SKU-{i:06}\",\"name\":\"Wool scarf no. {i}\",\"price\":{{\"amount\":{}.99,\"currency\":\"GBP\"}},\"image\":\"https://images.shopfront-cdn.com/p/{i}/800.jpg\",\"url\":\"/p/wool-scarf-{i}\",\"brand\":{{\"name\":\"Maker {b}\",\"site\":\"https://www.maker{b}.example-brands.com/\"}},\"descriptionHtml\":\"<p>Soft &amp; warm.</p><ul><li>100% wool</li><li>Size < 180cm</li></ul><a href=\\\"https://care.shopfront.com/wool\\\">Care guide</a>\",\"rating\":{r}.{d},\"inStock\":{s}}}",
            10 + i % 90,
            b = i % 40,
            r = 3 + i % 3,
            d = i % 10,
            s = !i.is_multiple_of(4),
        );
        i += 1;
    }
    html.push_str("]}},\"page\":\"/\",\"buildId\":\"x7Yq2\",\"runtimeConfig\":{\"api\":\"https://api.shopfront.com/v2\"}}</script>\n");
    html.push_str("<script>");
    let mut j = 0;
    while html.len() < 256 * 1024 - 256 {
        let _ = write!(
            html,
            "function f{j}(e,t){{for(var n=0;n<e.length;n++){{if(e[n]<t&&t>0)return e[n]}}return document.querySelector('#grid').innerHTML='<div class=\"tile-{j}\"><a href=\"/p/'+t+'\">'+e+'</a></div>'}}"
        );
        j += 1;
    }
    html.push_str("</script>\n<noscript><a href=\"/no-js\">Continue without JavaScript</a></noscript>\n<footer><a href=\"https://www.socialgram.com/shopfront\">Socialgram</a><a href=\"https://platform.chirper.com/shopfront\">Chirper</a><a href=\"/legal\">Legal</a></footer></body></html>\n");
    Page::new("https://www.shopfront.com/", html)
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
