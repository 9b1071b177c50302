//! docs/configuration.md lists exactly the schema's keys, with their tiers, aliases,
//! environment variables and flags.

use spyder_config::{Tier, ValueKind, format_duration, keys};

const DOC: &str = include_str!("../../../docs/configuration.md");

/// A cell like `` `x` `` or `–`.
fn code(cell: &str) -> Option<&str> {
    let cell = cell.trim();
    (cell != "–").then(|| cell.trim_matches('`'))
}

#[test]
fn the_key_table_matches_the_schema() {
    let section = DOC
        .split("\n## Keys\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/configuration.md has a ## Keys section");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    let documented: Vec<&str> = rows.iter().map(|r| r[0].trim_matches('`')).collect();
    let schema: Vec<&str> = keys().iter().map(|k| k.path).collect();
    assert_eq!(documented, schema, "keys (in spec order)");

    for (row, key) in rows.iter().zip(keys()) {
        assert_eq!(row.len(), 9, "{}: 9 cells", key.path);
        if let Some(range) = range(key.kind) {
            assert!(
                row[1].starts_with(&range),
                "{}: type {:?} shows the range {range:?}",
                key.path,
                row[1]
            );
        }
        assert_eq!(row[3], key.tier.mark(), "{}: tier", key.path);
        let scope = (key.tier != Tier::ApiOnly).then(|| key.scope.as_str());
        assert_eq!(code(row[4]), scope, "{}: scope", key.path);
        assert_eq!(code(row[5]), key.alias, "{}: alias", key.path);
        assert_eq!(code(row[6]), key.env, "{}: env", key.path);
        let flag = key.flag.map(|f| format!("-{f}"));
        assert_eq!(code(row[7]), flag.as_deref(), "{}: flag", key.path);
    }
}

/// How the Type cell opens for a key with a range: `int 1–65536`, `duration 1ms–1h`,
/// `number > 0, ≤ 1000000` (or `number in (0, 1]`).
fn range(kind: ValueKind) -> Option<String> {
    match kind {
        ValueKind::Int { min, max } => Some(format!("int {min}–{max}")),
        ValueKind::Duration { min, max } => Some(format!(
            "duration {}–{}",
            format_duration(min),
            format_duration(max)
        )),
        ValueKind::Float { max: 1.0 } => Some("number in (0, 1]".to_owned()),
        ValueKind::Float { max } => Some(format!("number > 0, ≤ {max}")),
        _ => None,
    }
}
