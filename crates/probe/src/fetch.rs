//! The web phase: connections, robots.txt, the root page and redirects (SPEC §3.4).
