//! Go's flag syntax, on the generic parser both binaries use.

use std::ffi::OsString;

use spyder_config::flags::{self, FlagArg, FlagError, FlagSpec, Parsed};

fn specs() -> Vec<FlagSpec> {
    vec![
        FlagSpec::value("domains", "path", "", "input"),
        FlagSpec::value("concurrency", "int", "256", "workers"),
        FlagSpec::boolean("continuous", "crawl discoveries"),
        FlagSpec::boolean_default("progress", "true", "progress bar"),
    ]
}

fn parse(args: &[&str]) -> Result<Parsed, FlagError> {
    flags::parse(&specs(), args.iter().map(OsString::from))
}

fn found(args: &[&str]) -> Vec<(&'static str, String)> {
    match parse(args) {
        Ok(Parsed::Flags(found)) => found
            .into_iter()
            .map(|FlagArg { name, value }| (name, value))
            .collect(),
        other => panic!("{args:?} gave {other:?}"),
    }
}

fn pair(name: &'static str, value: &str) -> (&'static str, String) {
    (name, value.to_owned())
}

#[test]
fn the_four_value_forms() {
    for args in [
        &["-concurrency=8"][..],
        &["-concurrency", "8"],
        &["--concurrency=8"],
        &["--concurrency", "8"],
    ] {
        assert_eq!(found(args), [pair("concurrency", "8")], "{args:?}");
    }
}

#[test]
fn values_may_start_with_a_dash_or_be_empty() {
    assert_eq!(found(&["-domains", "-"]), [pair("domains", "-")]);
    assert_eq!(found(&["-domains", "-x.txt"]), [pair("domains", "-x.txt")]);
    assert_eq!(found(&["-domains="]), [pair("domains", "")]);
    assert_eq!(found(&["-domains=a=b"]), [pair("domains", "a=b")]);
}

#[test]
fn booleans_bare_or_with_equals() {
    assert_eq!(found(&["-continuous"]), [pair("continuous", "true")]);
    assert_eq!(found(&["--continuous"]), [pair("continuous", "true")]);
    assert_eq!(found(&["-continuous=true"]), [pair("continuous", "true")]);
    assert_eq!(found(&["-progress=false"]), [pair("progress", "false")]);
    assert_eq!(found(&["-progress=0"]), [pair("progress", "false")]);
    assert_eq!(found(&["-progress=T"]), [pair("progress", "true")]);
    assert_eq!(
        parse(&["-progress=maybe"]),
        Err(FlagError::InvalidBool {
            name: "progress".into(),
            value: "maybe".into()
        })
    );
}

#[test]
fn a_bool_followed_by_false_is_a_stray_argument() {
    let err = parse(&["-progress", "false"]).expect_err("stray");
    assert_eq!(err, FlagError::StrayArgument("false".into()));
    assert!(
        err.to_string().starts_with("stray argument \"false\""),
        "{err}"
    );
}

#[test]
fn double_dash_ends_the_flags() {
    assert_eq!(found(&["-continuous", "--"]), [pair("continuous", "true")]);
    assert_eq!(
        parse(&["--", "-concurrency=1"]),
        Err(FlagError::StrayArgument("-concurrency=1".into()))
    );
    // After the first positional argument nothing is a flag, as in Go.
    assert_eq!(
        parse(&["file.txt", "-continuous"]),
        Err(FlagError::StrayArgument("file.txt".into()))
    );
}

#[test]
fn unknown_flag_text_is_go_s() {
    for args in [
        &["-nope"][..],
        &["--nope=1"],
        &["-continuous", "-nope", "x"],
    ] {
        let err = parse(args).expect_err("unknown");
        assert_eq!(err.to_string(), "flag provided but not defined: -nope");
    }
}

#[test]
fn help_forms() {
    for args in [
        &["-h"][..],
        &["-help"],
        &["--help"],
        &["-concurrency=2", "-h"],
    ] {
        assert_eq!(parse(args), Ok(Parsed::Help), "{args:?}");
    }
}

#[test]
fn missing_value_is_an_error() {
    let err = parse(&["-concurrency"]).expect_err("missing");
    assert_eq!(err.to_string(), "flag needs an argument: -concurrency");
}

#[test]
fn order_is_kept_and_repeats_allowed() {
    assert_eq!(
        found(&["-concurrency=1", "-continuous", "--concurrency", "2"]),
        [
            pair("concurrency", "1"),
            pair("continuous", "true"),
            pair("concurrency", "2")
        ]
    );
}

#[test]
fn usage_lists_flags_sorted_with_defaults_as_go() {
    let text = flags::usage(&specs());
    let expected = "  -concurrency int\n    \tworkers (default 256)\n\
                    \x20 -continuous\n    \tcrawl discoveries\n\
                    \x20 -domains path\n    \tinput\n\
                    \x20 -progress\n    \tprogress bar (default true)\n";
    assert_eq!(text, expected);
}

#[test]
fn version_text_names_program_version_and_build() {
    let text = flags::version_text("seed", "1.2.3");
    let (first, build) = text.split_once('\n').expect("two lines");
    assert_eq!(first, "seed v1.2.3");
    let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    assert!(
        build.starts_with(&format!("built for {target} (")),
        "{build}"
    );
    assert!(
        build.ends_with(" profile)") && !build.contains('\n'),
        "{build}"
    );
}
