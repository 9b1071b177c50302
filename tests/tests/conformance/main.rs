//! Peers' conformance suites run against spyder's own code (issue 10):
//!
//! - `psl`: the Public Suffix List's `test_psl.txt`, and every rule of its
//!   `public_suffix_list.dat`, against the model's apex;
//! - `robots`: Google's robotstxt test vectors (`robots_cases.json`) against
//!   the probe's robots.txt rules;
//! - `url`: the WHATWG `urltestdata.json` against the probe's link-host
//!   extraction.
//!
//! The files are third-party and stay outside the repository: they are read from
//! `../shared/conformance/` beside the workspace (see [`support::data_dir`]).
//! Every case either passes or is listed, with its reason, in
//! [`expected::DIFFERENCES`], the one place for exceptions.

mod expected;
mod psl;
mod robots;
mod support;
mod url;
