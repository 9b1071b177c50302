//! Link extraction from HTML with html5ever's streaming tokenizer (SPEC §3.4).
