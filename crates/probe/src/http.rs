//! HTTP/1.1 requests over one connection with a decoded body cap (SPEC §3.4).
