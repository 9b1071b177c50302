//! docs/configuration.md lists exactly the schema's keys, with their tiers, aliases,
//! environment variables and flags.

use spyder_config::keys;

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
        assert_eq!(row.len(), 8, "{}: 8 cells", key.path);
        assert_eq!(row[3], key.tier.mark(), "{}: tier", key.path);
        assert_eq!(code(row[4]), key.alias, "{}: alias", key.path);
        assert_eq!(code(row[5]), key.env, "{}: env", key.path);
        let flag = key.flag.map(|f| format!("-{f}"));
        assert_eq!(code(row[6]), flag.as_deref(), "{}: flag", key.path);
    }
}
