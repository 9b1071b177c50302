//! `GET /dashboard`: one static page, its script and style sheet; no key, no data,
//! no inline code, a strict Content-Security-Policy.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

use spyder_health::RateLimiter;

use crate::support::{self, Harness, Reply};

fn assert_hardened(reply: &Reply) {
    let csp = reply.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn the_page_is_static_hardened_and_has_no_inline_code() {
    let h = Harness::start().await;
    for path in ["/dashboard", "/dashboard/"] {
        // No key needed: the page holds no data.
        let reply = h.get(path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_hardened(&reply);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let html = reply.text().to_ascii_lowercase();
        assert!(html.starts_with("<!doctype html>"));
        // Every script has a src and no body; no style element or attribute; no
        // inline event handler (the CSP would block them all).
        let mut scripts = 0;
        for (i, _) in html.match_indices("<script") {
            let tag_end = html[i..].find('>').unwrap() + i;
            let tag = &html[i..=tag_end];
            assert!(tag.contains(" src=\"/dashboard/"), "inline script: {tag}");
            assert!(html[tag_end + 1..].starts_with("</script>"), "script body");
            scripts += 1;
        }
        assert_eq!(scripts, 1);
        assert!(!html.contains("<style"), "a <style> block");
        assert!(!html.contains(" style="), "a style attribute");
        assert!(
            !html.contains(" onclick=")
                && !html.contains(" onload=")
                && !html.contains(" onsubmit="),
            "an inline handler"
        );
        assert!(html.contains("href=\"/dashboard/app.css\""));
        assert!(html.contains("rel=\"icon\" href=\"/dashboard/icon.svg\""));
        // Nothing from elsewhere.
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//")
        );
        // No data in the page.
        assert!(!html.contains("test-probe"));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn script_and_style_sheet_have_their_types() {
    let h = Harness::start().await;
    let js = h.get("/dashboard/app.js", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_hardened(&js);
    let script = js.text();
    assert!(script.contains("/api/v1/events"));
    assert!(script.contains("Authorization"));
    // The key is kept in memory only.
    for storage in [
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "indexedDB",
    ] {
        assert!(!script.contains(storage), "{storage}");
    }
    assert!(!script.contains("eval(") && !script.contains("new Function"));
    assert!(!script.contains("https://"));
    let css = h.get("/dashboard/app.css", None).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_hardened(&css);
    assert!(!css.text().contains("@import") && !css.text().contains("url("));
    // The page's icon, so a browser does not ask for /favicon.ico (a 401 and a
    // console error).
    let icon = h.get("/dashboard/icon.svg", None).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert_hardened(&icon);
    assert!(icon.text().starts_with("<svg") && !icon.text().contains("<script"));
    h.shutdown().await;
}

#[tokio::test]
async fn other_paths_and_methods_and_no_rate_limit() {
    let h = Harness::start_with(|b| {
        b.keys(support::standard_keys())
            .rate_limiter(RateLimiter::new(1e-6, 1))
    })
    .await;
    h.get("/dashboard/nope.js", None)
        .await
        .error(404, "NOT_FOUND");
    let reply = h.send("POST", "/dashboard", None, None, None).await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    // The page is not rate limited: many loads, the API bucket (1 token) untouched.
    for _ in 0..5 {
        assert_eq!(h.get("/dashboard", None).await.status, 200);
    }
    assert_eq!(
        h.get("/api/v1/stats", Some(support::READ_KEY)).await.status,
        200
    );
    h.shutdown().await;
}
