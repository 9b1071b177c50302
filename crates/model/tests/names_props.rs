//! Property tests for host-name normalisation (SPEC §3.3): whatever the input,
//! `HostName::from_input` and `HostName::parse` never panic, and every name they
//! accept is valid, normalised and a fixed point of parsing.

use proptest::prelude::*;
use spyder_model::{HostName, NameKind};

/// Asserts the §3.3 invariants of an accepted name.
fn check_valid(host: &HostName, kind: NameKind) -> Result<(), TestCaseError> {
    let s = host.as_str();
    prop_assert!(!s.is_empty(), "empty name");
    prop_assert!(s.len() <= 253, "{s:?} longer than 253");
    prop_assert!(s.is_ascii(), "{s:?} not ASCII");
    prop_assert!(!s.ends_with('.'), "{s:?} keeps a trailing dot");
    for label in s.split('.') {
        prop_assert!((1..=63).contains(&label.len()), "label {label:?} of {s:?}");
        prop_assert!(
            !label.starts_with('-') && !label.ends_with('-'),
            "hyphen in {label:?}"
        );
        for c in label.chars() {
            let ok = c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (c == '_' && kind == NameKind::DnsTarget);
            prop_assert!(ok, "character {c:?} in {s:?} ({kind:?})");
        }
    }
    if kind == NameKind::Strict {
        let tld = s.rsplit('.').next().unwrap_or(s);
        prop_assert!(
            !tld.bytes().all(|b| b.is_ascii_digit()),
            "numeric TLD in {s:?}"
        );
    }
    // Idempotent: the output parses to itself, under the same rules.
    let again = HostName::parse(s, kind);
    prop_assert_eq!(again.as_ref(), Ok(host), "re-parse of {:?}", s);
    Ok(())
}

fn check_all(input: &str) -> Result<(), TestCaseError> {
    if let Ok(host) = HostName::from_input(input) {
        check_valid(&host, NameKind::Strict)?;
        let again = HostName::from_input(host.as_str());
        prop_assert_eq!(again.as_ref(), Ok(&host));
    }
    for kind in [NameKind::Strict, NameKind::DnsTarget] {
        if let Ok(host) = HostName::parse(input, kind) {
            check_valid(&host, kind)?;
        }
    }
    Ok(())
}

/// Characters that stress case folding, IDNA mapping and label splitting.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            'a', 'z', 'A', 'Z', '0', '9', '-', '_', '.', '.', '.',
        ]),
        1 => prop::sample::select(vec![
            'ü', 'Ü', 'ß', 'ẞ', 'İ', 'ı', 'ς', 'Σ', 'Ａ', 'ｚ', '０', '。', '．', '｡',
            '\u{200d}', '\u{200c}', '\u{fe0f}', '\u{00ad}', '\u{0301}', '\u{feff}', '\u{0}',
            ' ', '\t', '\r', '\n', '/', ':', '@', '[', ']', '%', '#', '?', '\u{7f}', '\u{10ffff}',
            'ǅ', 'ﬀ', '℡', '㍱', 'ⓐ', '١', '٢', 'א', 'ب', '中', '😀',
        ]),
    ]
}

fn hostile_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// Names built from labels, including ACE (`xn--`) labels and long ones.
fn structured_name() -> impl Strategy<Value = String> {
    let label = prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?",
        "[a-z0-9-]{0,70}",
        "(xn|XN|Xn)--[a-z0-9-]{0,20}",
        "[a-zäöüß0-9]{1,12}",
        hostile_string(8),
    ];
    (
        prop::collection::vec(label, 1..8),
        any::<bool>(),
        prop::sample::select(vec!["", "https://", "http://", "HTTP://u:p@", "ftp://"]),
        prop::sample::select(vec!["", ":443", ":8080/path?q#f", "/", ":", ":x"]),
    )
        .prop_map(|(labels, dot, scheme, tail)| {
            let mut s = String::from(scheme);
            s.push_str(&labels.join("."));
            if dot {
                s.push('.');
            }
            s.push_str(tail);
            s
        })
}

/// Inputs proptest found: a multi-byte character straddling the length of the
/// `http://`/`https://` prefix once made `from_input` slice inside a character.
#[test]
fn multibyte_character_at_the_scheme_prefix_length() {
    for input in ["ftp://ö", "aaaaaaü", "a𑃰𐳀", "https:/ü", "http:/€x.com"] {
        check_all(input).expect("invariants hold");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(input in any::<String>()) {
        check_all(&input)?;
    }

    #[test]
    fn hostile_strings(input in hostile_string(80)) {
        check_all(&input)?;
    }

    #[test]
    fn structured_names(input in structured_name()) {
        check_all(&input)?;
    }

    #[test]
    fn long_names(n in 0usize..6000, c in hostile_char()) {
        // Long runs around the 63/253/4096 limits.
        let label = "a".repeat(n % 70);
        let name: String = std::iter::repeat_n(label.as_str(), 1 + n / 70)
            .collect::<Vec<_>>()
            .join(".");
        check_all(&name)?;
        let mut padded = "b".repeat(n);
        padded.push(c);
        check_all(&padded)?;
    }

    #[test]
    fn valid_ldh_names_are_accepted_lower_cased(
        labels in prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", 1..5),
        tld in "[a-zA-Z]{2,6}",
    ) {
        let name = format!("{}.{tld}", labels.join("."));
        let host = HostName::from_input(&name);
        // ACE-looking labels ("xn--…") must also be valid punycode; skip those.
        prop_assume!(!name.to_ascii_lowercase().split('.').any(|l| l.starts_with("xn--")));
        prop_assert_eq!(
            host.map(HostName::into_string),
            Ok(name.to_ascii_lowercase())
        );
    }
}
