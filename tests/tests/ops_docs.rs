//! The operations docs, the Grafana dashboard and the Prometheus alert rules against
//! what spyder really exports (`spyder_health::METRICS`) and really accepts
//! (`spyder_config::keys()`, the REST API of SPEC §3.12):
//!
//! - every metric and label the dashboard and the rules use exists (a small PromQL
//!   scanner finds selectors, matchers, `by (…)` lists and legends);
//! - the dashboard is a well-formed Grafana dashboard, the rules well-formed rules;
//! - with `promtool` on PATH: `promtool check rules`, `promtool test rules` with alert
//!   scenarios, and `promtool check metrics` on the rendered `/metrics` text;
//! - `docs/operations.md` documents every metric (with its type and labels), every
//!   endpoint, every error code, every alert and the reload tiers of every key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use spyder_config::{KeySpec, Tier};
use spyder_health::{METRICS, MetricKind, MetricSpec};

const DASHBOARD: &str = "docs/grafana/spyder-dashboard.json";
const ALERTS: &str = "docs/prometheus/spyder-alerts.yml";
const OPERATIONS: &str = "docs/operations.md";

/// Labels Prometheus adds to every scraped series (not spyder's own).
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// Every endpoint of SPEC §2.7, §3.12 and §3.14, as `operations.md` must name it.
const ENDPOINTS: &[&str] = &[
    "GET /live",
    "GET /ready",
    "GET /health",
    "GET /metrics",
    "GET /api/v1/config",
    "PATCH /api/v1/config",
    "GET /api/v1/stats",
    "GET /api/v1/events",
    "POST /api/v1/domains",
    "POST /api/v1/domains/bulk",
    "POST /api/v1/control/pause",
    "POST /api/v1/control/resume",
    "POST /api/v1/control/stop",
    "GET /api/v1/keys",
    "POST /api/v1/keys",
    "DELETE /api/v1/keys/{name}",
    // SPEC §3.14: the dashboard page and its assets.
    "GET /dashboard",
    "GET /dashboard/app.js",
    "GET /dashboard/app.css",
];

/// Every error code of SPEC §3.12.
const ERROR_CODES: &[&str] = &[
    "BAD_REQUEST",
    "INVALID_HOST",
    "UNKNOWN_FIELD",
    "INVALID_CONFIG",
    "UNAUTHORIZED",
    "NO_API_KEYS",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "APPLY_ERROR",
    "KEY_EXISTS",
    "TOO_LARGE",
    "RATE_LIMITED",
    "QUEUE_FULL",
    "UNAVAILABLE",
];

/// The alerts issue #5 asks for (the file may hold more).
const REQUIRED_ALERTS: &[&str] = &[
    "SpyderProbeDown",
    "SpyderStalled",
    "SpyderHighErrorRatio",
    "SpyderIngestFailing",
    "SpyderSpoolGrowing",
    "SpyderDedupRedisErrors",
    "SpyderDeadLetterGrowth",
    "SpyderConfigReloadFailed",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

fn alert_rules() -> Yaml {
    serde_yaml::from_str(&read(ALERTS)).expect("the alert rules are YAML")
}

// ---------------------------------------------------------------- PromQL scanning

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    /// `=`, `=~`, `!=`, `!~`, `==`, `>`, `/`, …
    Op(String),
    /// A number, a duration, a `[range]` or a Grafana `$variable` outside a string.
    Literal,
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => {
                let quote = c;
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unterminated string in {expr:?}"));
                }
                i += 1;
                tokens.push(Token::Str);
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("unterminated range in {expr:?}"));
                }
                i += 1;
                tokens.push(Token::Literal);
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            '{' => {
                tokens.push(Token::LBrace);
                i += 1;
            }
            '}' => {
                tokens.push(Token::RBrace);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' || c == '$' => {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "._".contains(chars[i]))
                {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i]))
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if "=!<>+-*/%^".contains(c) => {
                let start = i;
                i += 1;
                while i < chars.len() && "=~".contains(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Op(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?} in {expr:?}")),
        }
    }
    Ok(tokens)
}

/// Aggregation operators: an identifier, never a metric.
const AGGREGATORS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Binary and modifier keywords.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2"];
/// Keywords followed by a label list.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Functions whose argument must be a counter (or histogram series).
const COUNTER_FUNCTIONS: &[&str] = &["rate", "irate", "increase", "resets"];

/// One series selector: a metric name and the labels its matchers name.
#[derive(Debug)]
struct Selector {
    name: String,
    position: usize,
    matcher_labels: Vec<String>,
}

/// A `by`/`without`/`on`/… list and the token range its labels must exist in.
#[derive(Debug)]
struct LabelList {
    keyword: String,
    labels: Vec<String>,
    scope: std::ops::Range<usize>,
}

#[derive(Debug, Default)]
struct Scanned {
    selectors: Vec<Selector>,
    label_lists: Vec<LabelList>,
    /// Token ranges of `rate(…)`-like calls.
    counter_calls: Vec<(String, std::ops::Range<usize>)>,
}

fn matching_parens(tokens: &[Token]) -> Result<BTreeMap<usize, usize>, String> {
    let mut open = Vec::new();
    let mut pairs = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => open.push(i),
            Token::RParen => {
                let start = open.pop().ok_or("unbalanced ')'")?;
                pairs.insert(start, i);
                pairs.insert(i, start);
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(pairs)
    } else {
        Err("unbalanced '('".to_owned())
    }
}

fn scan(expr: &str) -> Result<Scanned, String> {
    let tokens = tokenize(expr)?;
    let parens = matching_parens(&tokens)?;
    let ident = |i: usize| match tokens.get(i) {
        Some(Token::Ident(word)) => Some(word.as_str()),
        _ => None,
    };
    let mut scanned = Scanned::default();
    let mut i = 0;
    while i < tokens.len() {
        let Some(word) = ident(i) else {
            if tokens[i] == Token::LBrace {
                return Err(format!("a selector without a metric name in {expr:?}"));
            }
            i += 1;
            continue;
        };
        if LABEL_LIST_KEYWORDS.contains(&word) {
            if tokens.get(i + 1) != Some(&Token::LParen) {
                if word.starts_with("group_") {
                    i += 1;
                    continue;
                }
                return Err(format!("{word} without a label list in {expr:?}"));
            }
            let close = parens[&(i + 1)];
            let labels: Vec<String> = (i + 2..close)
                .filter_map(|j| ident(j).map(str::to_owned))
                .collect();
            let scope = if word == "by" || word == "without" {
                if i > 0 && ident(i - 1).is_some_and(|w| AGGREGATORS.contains(&w)) {
                    // `sum by (x) (expr)`
                    let open = close + 1;
                    let end = *parens
                        .get(&open)
                        .ok_or_else(|| format!("{word} (…) without an argument in {expr:?}"))?;
                    open..end + 1
                } else if i > 0 && tokens[i - 1] == Token::RParen {
                    // `sum (expr) by (x)`
                    parens[&(i - 1)]..i
                } else {
                    return Err(format!("{word} (…) outside an aggregation in {expr:?}"));
                }
            } else {
                // Vector matching: the labels must exist on both sides.
                0..tokens.len()
            };
            scanned.label_lists.push(LabelList {
                keyword: word.to_owned(),
                labels,
                scope,
            });
            i = close + 1;
            continue;
        }
        if AGGREGATORS.contains(&word) || KEYWORDS.contains(&word) {
            i += 1;
            continue;
        }
        if tokens.get(i + 1) == Some(&Token::LParen) {
            if COUNTER_FUNCTIONS.contains(&word) {
                scanned
                    .counter_calls
                    .push((word.to_owned(), i + 1..parens[&(i + 1)] + 1));
            }
            i += 1;
            continue;
        }
        // A metric name, maybe with matchers.
        let mut selector = Selector {
            name: word.to_owned(),
            position: i,
            matcher_labels: Vec::new(),
        };
        i += 1;
        if tokens.get(i) == Some(&Token::LBrace) {
            i += 1;
            loop {
                match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(Token::RBrace), _, _) => {
                        i += 1;
                        break;
                    }
                    (Some(Token::Comma), _, _) => i += 1,
                    (Some(Token::Ident(label)), Some(Token::Op(_)), Some(Token::Str)) => {
                        selector.matcher_labels.push(label.clone());
                        i += 3;
                    }
                    _ => return Err(format!("malformed matchers in {expr:?}")),
                }
            }
        }
        scanned.selectors.push(selector);
    }
    Ok(scanned)
}

/// The exported metric a series name belongs to, and whether it is a histogram's
/// `_bucket` series (which adds the `le` label).
fn exported(name: &str) -> Option<(&'static MetricSpec, bool)> {
    if let Some(spec) = METRICS.iter().find(|m| m.name == name) {
        return Some((spec, false));
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(spec) = METRICS
                .iter()
                .find(|m| m.name == base && m.kind == MetricKind::Histogram)
        {
            return Some((spec, suffix == "_bucket"));
        }
    }
    None
}

/// The labels a series of this name can carry: its own, the target labels, and `le`
/// for `_bucket` series. `None` for an unknown name.
fn series_labels(name: &str) -> Option<BTreeSet<&'static str>> {
    let mut labels: BTreeSet<&'static str> = TARGET_LABELS.iter().copied().collect();
    if name == "up" {
        return Some(labels);
    }
    let (spec, bucket) = exported(name)?;
    labels.extend(spec.labels.iter().copied());
    if bucket {
        labels.insert("le");
    }
    Some(labels)
}

/// Every problem of one PromQL expression: unknown metrics, unknown labels in
/// matchers, grouping lists and `legend` placeholders, rates of gauges.
fn check_expr(
    context: &str,
    expr: &str,
    legend: Option<&str>,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let scanned = match scan(expr) {
        Ok(scanned) => scanned,
        Err(e) => return vec![format!("{context}: {e}")],
    };
    let mut problems = Vec::new();
    if scanned.selectors.is_empty() {
        problems.push(format!("{context}: no metric in {expr:?}"));
    }
    for selector in &scanned.selectors {
        let Some(labels) = series_labels(&selector.name) else {
            problems.push(format!(
                "{context}: {:?} is not a metric spyder exports",
                selector.name
            ));
            continue;
        };
        if let Some((spec, _)) = exported(&selector.name) {
            used.insert(spec.name.to_owned());
        }
        for label in &selector.matcher_labels {
            if !labels.contains(label.as_str()) {
                problems.push(format!(
                    "{context}: {} has no label {label:?}",
                    selector.name
                ));
            }
        }
    }
    let in_scope = |scope: std::ops::Range<usize>| {
        scanned
            .selectors
            .iter()
            .filter(move |s| scope.contains(&s.position))
    };
    for list in &scanned.label_lists {
        for label in &list.labels {
            for selector in in_scope(list.scope.clone()) {
                if series_labels(&selector.name).is_some_and(|l| !l.contains(label.as_str())) {
                    problems.push(format!(
                        "{context}: {} ({label}) but {} has no label {label:?}",
                        list.keyword, selector.name
                    ));
                }
            }
        }
    }
    for (function, scope) in &scanned.counter_calls {
        for selector in in_scope(scope.clone()) {
            let counter_like = selector.name != "up"
                && exported(&selector.name).is_some_and(|(spec, _)| spec.kind != MetricKind::Gauge);
            if !counter_like && series_labels(&selector.name).is_some() {
                problems.push(format!(
                    "{context}: {function}() of {}, which is not a counter",
                    selector.name
                ));
            }
        }
    }
    if let Some(legend) = legend {
        let known: BTreeSet<&str> = scanned
            .selectors
            .iter()
            .filter_map(|s| series_labels(&s.name))
            .flatten()
            .collect();
        for placeholder in legend.split("{{").skip(1) {
            let label = placeholder.split("}}").next().unwrap_or_default().trim();
            if !known.contains(label) {
                problems.push(format!(
                    "{context}: legend {{{{{label}}}}} is not a label of the queried metrics"
                ));
            }
        }
    }
    problems
}

#[test]
fn the_promql_scanner_finds_metrics_labels_and_groupings() {
    let mut used = BTreeSet::new();
    let ok = r#"histogram_quantile(0.95, sum by (le, kind) (rate(spyder_http_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))"#;
    assert_eq!(
        check_expr("ok", ok, Some("p95 {{kind}}"), &mut used),
        Vec::<String>::new()
    );
    assert!(used.contains("spyder_http_request_duration_seconds"));
    let postfix = r#"sum(rate(spyder_tasks_total{status="error"}[5m])) by (status) / sum(rate(spyder_tasks_total[5m])) by (instance)"#;
    assert_eq!(
        check_expr("postfix", postfix, None, &mut used),
        Vec::<String>::new()
    );

    let problems =
        |expr: &str, legend: Option<&str>| check_expr("t", expr, legend, &mut BTreeSet::new());
    assert_eq!(
        problems("rate(spyder_task_total[5m])", None).len(),
        1,
        "unknown metric"
    );
    assert_eq!(
        problems(r#"spyder_tasks_total{outcome="x"}"#, None).len(),
        1,
        "unknown matcher label"
    );
    assert_eq!(
        problems("sum by (reason) (rate(spyder_tasks_total[5m]))", None).len(),
        1,
        "unknown by label"
    );
    assert_eq!(
        problems("sum(rate(spyder_tasks_total[5m])) by (le)", None).len(),
        1,
        "le without _bucket"
    );
    assert_eq!(
        problems("rate(spyder_active_workers[5m])", None).len(),
        1,
        "rate of a gauge"
    );
    assert_eq!(
        problems("sum by (status) (spyder_tasks_total)", Some("{{type}}")).len(),
        1,
        "legend"
    );
    assert!(
        problems("sum by (status (spyder_tasks_total)", None).len() == 1,
        "unbalanced"
    );
}

// ---------------------------------------------------------------- the dashboard

/// Every panel, rows' nested panels included.
fn all_panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(panels: &'a [Json], out: &mut Vec<&'a Json>) {
        for panel in panels {
            out.push(panel);
            if let Some(nested) = panel.get("panels").and_then(Json::as_array) {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        dashboard["panels"]
            .as_array()
            .expect("the dashboard has panels"),
        &mut out,
    );
    out
}

/// The dashboard's queries: `(context, expr, legend)`, templating queries included.
fn dashboard_queries(dashboard: &Json) -> Vec<(String, String, Option<String>)> {
    let mut queries = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel
            .get("targets")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            queries.push((
                format!("panel {title:?} target {}", target["refId"]),
                target["expr"].as_str().unwrap_or_default().to_owned(),
                target["legendFormat"].as_str().map(str::to_owned),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = match &variable["query"] {
            Json::String(q) => q.clone(),
            other => other["query"].as_str().unwrap_or_default().to_owned(),
        };
        queries.push((format!("variable {}", variable["name"]), query, None));
    }
    queries
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_with_a_prometheus_input() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "an input DS_PROMETHEUS of type prometheus: {inputs:?}"
    );
    let datasource = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});

    let mut ids = BTreeSet::new();
    let mut data_panels = 0;
    for panel in all_panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24) && grid["h"].as_u64() > Some(0),
            "panel {title:?}: gridPos {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        data_panels += 1;
        assert_eq!(
            panel["datasource"], datasource,
            "panel {title:?}: datasource"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no target");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {title:?}: empty expr");
            assert!(
                ref_ids.insert(target["refId"].as_str().expect("refId")),
                "panel {title:?}: refId used twice"
            );
            if let Some(ds) = target.get("datasource") {
                assert_eq!(*ds, datasource, "panel {title:?}: target datasource");
            }
        }
    }
    assert!(data_panels >= 15, "only {data_panels} panels");
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            variable["datasource"], datasource,
            "variable {}",
            variable["name"]
        );
    }
}

#[test]
fn the_dashboard_uses_only_exported_metrics_and_labels_and_shows_every_metric() {
    let dashboard = dashboard();
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (context, query, legend) in dashboard_queries(&dashboard) {
        // `label_values(<selector>, <label>)`: the label must be one of the selector's.
        if let Some(inner) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            let (selector, label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            problems.extend(check_expr(
                &context,
                selector,
                Some(&format!("{{{{{}}}}}", label.trim())),
                &mut used,
            ));
            continue;
        }
        problems.extend(check_expr(&context, &query, legend.as_deref(), &mut used));
    }
    assert_eq!(problems, Vec::<String>::new());
    let missing: Vec<&str> = METRICS
        .iter()
        .map(|m| m.name)
        .filter(|name| !used.contains(*name))
        .collect();
    assert_eq!(
        missing,
        Vec::<&str>::new(),
        "exported metrics the dashboard does not show"
    );
}

// ---------------------------------------------------------------- the alert rules

fn rules(file: &Yaml) -> Vec<&Yaml> {
    file["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .collect()
}

fn is_prometheus_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

#[test]
fn the_alert_rules_are_well_formed() {
    let file = alert_rules();
    let groups = file["groups"].as_sequence().expect("a groups list");
    assert!(!groups.is_empty());
    let mut group_names = BTreeSet::new();
    let mut alert_names = BTreeSet::new();
    for group in groups {
        let name = group["name"].as_str().expect("every group has a name");
        assert!(group_names.insert(name), "group {name} twice");
        let rules = group["rules"].as_sequence().expect("every group has rules");
        assert!(!rules.is_empty(), "group {name} has no rule");
        for rule in rules {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            assert!(alert_names.insert(alert), "alert {alert} twice");
            assert!(
                rule["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{alert}: expr"
            );
            let wait = rule["for"].as_str().expect("every alert has `for`");
            assert!(is_prometheus_duration(wait), "{alert}: for {wait:?}");
            let severity = rule["labels"]["severity"]
                .as_str()
                .expect("labels.severity");
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{alert}: severity {severity}"
            );
            assert!(
                rule["annotations"]["summary"]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{alert}: annotations.summary"
            );
        }
    }
    let missing: Vec<&&str> = REQUIRED_ALERTS
        .iter()
        .filter(|a| !alert_names.contains(**a))
        .collect();
    assert!(missing.is_empty(), "missing alerts: {missing:?}");
}

#[test]
fn the_alert_rules_use_only_exported_metrics_and_labels() {
    let file = alert_rules();
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for rule in rules(&file) {
        let alert = rule["alert"].as_str().unwrap_or_default();
        problems.extend(check_expr(
            &format!("alert {alert}"),
            rule["expr"].as_str().unwrap_or_default(),
            None,
            &mut used,
        ));
    }
    assert_eq!(problems, Vec::<String>::new());
}

// ---------------------------------------------------------------- promtool

/// promtool's path; `None` (the caller says what it skips) only outside CI: under
/// `CI` a missing promtool fails the test, since .ci/run installs it.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "promtool is not on PATH under CI: .ci/run installs it (Debian package prometheus)"
    );
    found
}

fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(workspace_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write to promtool");
    }
    child.wait_with_output().expect("promtool output")
}

fn assert_success(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not on PATH: skipping `promtool check rules` (CI installs it)");
        return;
    };
    let output = run_promtool(&promtool, &["check", "rules", ALERTS], None);
    assert_success("promtool check rules", &output);
}

/// Alert scenarios for `promtool test rules`. `RULES` is replaced by the rule file.
/// Annotations are stripped from the rules under test (promtool compares them too):
/// these scenarios prove when each alert fires, not its wording.
const RULE_SCENARIOS: &str = r#"
rule_files:
  - RULES
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # a: scraped twice, then down
      - series: 'up{job="spyder", instance="a:9090"}'
        values: '1 1 0x30'
      # b: workers busy, tasks stop finishing at minute 10
      - series: 'spyder_tasks_total{job="spyder", instance="b:9090", status="ok"}'
        values: '0+10x10 100x40'
      - series: 'spyder_tasks_total{job="spyder", instance="b:9090", status="error"}'
        values: '0x50'
      - series: 'spyder_active_workers{job="spyder", instance="b:9090"}'
        values: '5x50'
      # c: busy and healthy (1 error in 11)
      - series: 'spyder_tasks_total{job="spyder", instance="c:9090", status="ok"}'
        values: '0+10x50'
      - series: 'spyder_tasks_total{job="spyder", instance="c:9090", status="error"}'
        values: '0+1x50'
      - series: 'spyder_active_workers{job="spyder", instance="c:9090"}'
        values: '5x50'
      # d: idle: nothing to do, no worker busy
      - series: 'spyder_tasks_total{job="spyder", instance="d:9090", status="ok"}'
        values: '7x50'
      - series: 'spyder_active_workers{job="spyder", instance="d:9090"}'
        values: '0x50'
      # e: three tasks in four fail
      - series: 'spyder_tasks_total{job="spyder", instance="e:9090", status="ok"}'
        values: '0+1x50'
      - series: 'spyder_tasks_total{job="spyder", instance="e:9090", status="error"}'
        values: '0+3x50'
    alert_rule_test:
      - eval_time: 5m
        alertname: SpyderProbeDown
        exp_alerts: []
      - eval_time: 10m
        alertname: SpyderProbeDown
        exp_alerts:
          - exp_labels: {severity: critical, job: spyder, instance: "a:9090"}
      - eval_time: 12m
        alertname: SpyderStalled
        exp_alerts: []
      - eval_time: 25m
        alertname: SpyderStalled
        exp_alerts:
          - exp_labels: {severity: critical, job: spyder, instance: "b:9090"}
      - eval_time: 10m
        alertname: SpyderHighErrorRatio
        exp_alerts: []
      - eval_time: 30m
        alertname: SpyderHighErrorRatio
        exp_alerts:
          - exp_labels: {severity: warning, job: spyder, instance: "e:9090"}

  - interval: 1m
    input_series:
      # f: three batches in four spooled, spool growing, dedup Redis failing, dead letters
      - series: 'spyder_batch_emissions_total{job="spyder", instance="f:9090", status="success"}'
        values: '0+1x80'
      - series: 'spyder_batch_emissions_total{job="spyder", instance="f:9090", status="failure"}'
        values: '0+3x80'
      - series: 'spyder_spool_files{job="spyder", instance="f:9090"}'
        values: '0+1x80'
      - series: 'spyder_dedup_errors_total{job="spyder", instance="f:9090", backend="redis"}'
        values: '0+2x80'
      - series: 'spyder_queue_dead_total{job="spyder", instance="f:9090"}'
        values: '0x10 1x70'
      # g: delivering, a few old spool files, requeued leases, one failed reload
      - series: 'spyder_batch_emissions_total{job="spyder", instance="g:9090", status="success"}'
        values: '0+4x80'
      - series: 'spyder_batch_emissions_total{job="spyder", instance="g:9090", status="failure"}'
        values: '0x80'
      - series: 'spyder_spool_files{job="spyder", instance="g:9090"}'
        values: '3x80'
      - series: 'spyder_dedup_errors_total{job="spyder", instance="g:9090", backend="redis"}'
        values: '0x80'
      - series: 'spyder_queue_requeued_total{job="spyder", instance="g:9090"}'
        values: '0x10 4x70'
      - series: 'spyder_config_reloads_total{job="spyder", instance="g:9090", result="failure"}'
        values: '0x5 1x75'
      - series: 'spyder_config_reloads_total{job="spyder", instance="g:9090", result="success"}'
        values: '0+1x80'
    alert_rule_test:
      - eval_time: 5m
        alertname: SpyderIngestFailing
        exp_alerts: []
      - eval_time: 30m
        alertname: SpyderIngestFailing
        exp_alerts:
          - exp_labels: {severity: critical, job: spyder, instance: "f:9090"}
      - eval_time: 20m
        alertname: SpyderSpoolGrowing
        exp_alerts: []
      - eval_time: 70m
        alertname: SpyderSpoolGrowing
        exp_alerts:
          - exp_labels: {severity: warning, job: spyder, instance: "f:9090"}
      - eval_time: 15m
        alertname: SpyderDedupRedisErrors
        exp_alerts:
          - exp_labels: {severity: warning, job: spyder, instance: "f:9090"}
      - eval_time: 20m
        alertname: SpyderDeadLetterGrowth
        exp_alerts:
          - exp_labels: {severity: warning, job: spyder}
      - eval_time: 60m
        alertname: SpyderDeadLetterGrowth
        exp_alerts: []
      - eval_time: 20m
        alertname: SpyderLeasesExpiring
        exp_alerts:
          - exp_labels: {severity: info, job: spyder}
      - eval_time: 10m
        alertname: SpyderConfigReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: spyder, instance: "g:9090"}
      - eval_time: 40m
        alertname: SpyderConfigReloadFailed
        exp_alerts: []
"#;

#[test]
fn the_alerts_fire_exactly_in_their_scenarios() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not on PATH: skipping `promtool test rules` (CI installs it)");
        return;
    };
    let mut file = alert_rules();
    for group in file["groups"].as_sequence_mut().expect("groups") {
        for rule in group["rules"].as_sequence_mut().expect("rules") {
            rule.as_mapping_mut()
                .expect("a rule is a mapping")
                .remove("annotations");
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, serde_yaml::to_string(&file).expect("yaml")).expect("write rules");
    let tests_path = dir.path().join("tests.yml");
    let scenarios = RULE_SCENARIOS.replace(
        "RULES",
        &serde_json::to_string(&rules_path.to_string_lossy()).expect("quoted path"),
    );
    std::fs::write(&tests_path, scenarios).expect("write tests");
    let tests_arg = tests_path.to_string_lossy().into_owned();
    let output = run_promtool(&promtool, &["test", "rules", &tests_arg], None);
    assert_success("promtool test rules", &output);
}

/// A plausible value of each label, for recording one series of every metric.
fn sample_value(label: &str) -> &'static str {
    match label {
        "status" => "ok",
        "outcome" => "complete",
        "type" => "domain",
        "reason" => "handshake_failure",
        "backend" => "redis",
        "sink" => "channel",
        "result" => "success",
        "list" => "pending",
        "kind" => "root",
        _ => "test",
    }
}

#[test]
fn the_metrics_text_passes_promtool_check_metrics() {
    // The recorder `/metrics` renders (`OpsServer` answers `GET /metrics` with exactly
    // `MetricsHandle::render`). One global recorder per process: only this test
    // installs it.
    let handle = spyder_health::install_metrics().expect("install the recorder");
    for spec in METRICS {
        let labels: Vec<(&'static str, &'static str)> = spec
            .labels
            .iter()
            .map(|label| (*label, sample_value(label)))
            .collect();
        match spec.kind {
            MetricKind::Counter => metrics::counter!(spec.name, &labels).increment(3),
            MetricKind::Gauge => metrics::gauge!(spec.name, &labels).set(7.0),
            MetricKind::Histogram => metrics::histogram!(spec.name, &labels).record(0.3),
        }
    }
    let text = handle.render();
    for spec in METRICS {
        assert!(
            text.contains(&format!("# TYPE {} {}\n", spec.name, spec.kind.as_str())),
            "no `# TYPE {} {}` in\n{text}",
            spec.name,
            spec.kind.as_str()
        );
        assert!(
            text.contains(&format!("# HELP {} ", spec.name)),
            "no `# HELP {}` in\n{text}",
            spec.name
        );
        if spec.kind == MetricKind::Histogram {
            assert!(
                text.contains(&format!("{}_bucket{{", spec.name)),
                "no buckets for {}",
                spec.name
            );
        }
    }
    let Some(promtool) = promtool() else {
        eprintln!("promtool not on PATH: skipping `promtool check metrics` (CI installs it)");
        return;
    };
    let output = run_promtool(&promtool, &["check", "metrics"], Some(&text));
    assert_success("promtool check metrics", &output);
}

// ---------------------------------------------------------------- docs/operations.md

/// `text` without its fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The inline code spans of `text` (outside fences).
fn code_spans(text: &str) -> Vec<String> {
    prose(text)
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, span)| span.to_owned())
        .collect()
}

/// The body of the section under `heading` (up to the next heading of any level).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("{OPERATIONS} has no heading {heading:?}"))
        + heading.len()
        + 2;
    let end = doc[start..].find("\n#").map_or(doc.len(), |n| start + n);
    &doc[start..end]
}

#[test]
fn operations_md_documents_every_metric_with_its_type_and_labels() {
    let doc = read(OPERATIONS);
    let mut documented = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `spyder_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let name = cells[0].trim_matches('`');
        assert!(
            documented.insert(name.to_owned(), cells.clone()).is_none(),
            "{name} has two rows"
        );
    }
    for spec in METRICS {
        let cells = documented
            .remove(spec.name)
            .unwrap_or_else(|| panic!("{OPERATIONS} has no table row for {}", spec.name));
        assert_eq!(cells[1], spec.kind.as_str(), "{}: type", spec.name);
        let labels_cell = cells[2];
        if spec.labels.is_empty() {
            assert_eq!(labels_cell, "–", "{}: labels", spec.name);
        }
        for label in spec.labels {
            assert!(
                labels_cell.contains(&format!("`{label}`")),
                "{}: label {label} not in {labels_cell:?}",
                spec.name
            );
        }
        assert!(
            cells.get(3).is_some_and(|m| m.len() > 10),
            "{}: meaning",
            spec.name
        );
    }
    assert!(
        documented.is_empty(),
        "documented but not exported: {:?}",
        documented.keys().collect::<Vec<_>>()
    );
}

/// The `(method, path)` of every `curl` command in the doc's code blocks (lines joined
/// at a trailing `\\`; `$API` is `/api/v1`, `http://host:port` is dropped).
fn curl_requests(doc: &str) -> Vec<(String, String)> {
    let joined = doc.replace("\\\n", " ");
    let mut requests = Vec::new();
    for line in joined.lines() {
        let command = line.trim_start();
        let command = command.strip_prefix("$ ").unwrap_or(command);
        if !command.starts_with("curl ") {
            continue;
        }
        let words: Vec<&str> = command
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .collect();
        let method = words
            .iter()
            .position(|w| *w == "-X")
            .and_then(|i| words.get(i + 1))
            .map_or("GET", |m| *m);
        for word in &words {
            let path = if let Some(rest) = word.strip_prefix("$API") {
                format!("/api/v1{rest}")
            } else if let Some(rest) = word.strip_prefix("http://") {
                rest.find('/')
                    .map_or_else(String::new, |i| rest[i..].to_owned())
            } else {
                continue;
            };
            requests.push((method.to_owned(), path));
        }
    }
    requests
}

/// Whether a concrete path matches an endpoint path with `{name}` segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
}

#[test]
fn operations_md_documents_every_endpoint_with_a_curl_example() {
    let doc = read(OPERATIONS);
    let requests = curl_requests(&doc);
    for endpoint in ENDPOINTS {
        assert!(
            doc.contains(&format!("`{endpoint}`")),
            "{OPERATIONS} does not name `{endpoint}`"
        );
        let (method, path) = endpoint.split_once(' ').expect("METHOD /path");
        assert!(
            requests
                .iter()
                .any(|(m, p)| m == method && path_matches(path, p)),
            "{OPERATIONS} has no curl example for {endpoint}; it has {requests:?}"
        );
    }
}

#[test]
fn operations_md_documents_every_error_code_and_alert() {
    let doc = read(OPERATIONS);
    for code in ERROR_CODES {
        assert!(
            doc.contains(&format!("`{code}`")),
            "error code {code} missing"
        );
    }
    assert!(doc.contains(spyder_health::NO_API_KEYS_MESSAGE));
    for rule in rules(&alert_rules()) {
        let alert = rule["alert"].as_str().unwrap_or_default();
        assert!(doc.contains(&format!("`{alert}`")), "alert {alert} missing");
    }
}

/// The key paths named in a section, in order of first mention.
fn keys_named(section_text: &str) -> Vec<&'static KeySpec> {
    let mut named: Vec<&'static KeySpec> = Vec::new();
    for span in code_spans(section_text) {
        if let Some(spec) = spyder_config::keys().iter().find(|k| k.path == span)
            && !named.iter().any(|k| k.path == spec.path)
        {
            named.push(spec);
        }
    }
    named
}

#[test]
fn operations_md_lists_every_key_under_its_reload_tier() {
    let doc = read(OPERATIONS);
    let doc = prose(&doc);
    for (heading, tier) in [
        ("### Tier 1", Tier::Immediate),
        ("### Tier 2", Tier::Warn),
        ("### Tier 3", Tier::Restart),
    ] {
        let named: Vec<&str> = keys_named(section(&doc, heading))
            .iter()
            .map(|k| k.path)
            .collect();
        let expected: Vec<&str> = spyder_config::keys()
            .iter()
            .filter(|k| k.tier == tier)
            .map(|k| k.path)
            .collect();
        assert_eq!(named, expected, "{heading}: keys, in key-table order");
    }
    let tier2 = section(&doc, "### Tier 2");
    for key in spyder_config::keys()
        .iter()
        .filter(|k| k.tier == Tier::Warn)
    {
        let warning = key.reload_warning.expect("a Tier 2 key has a warning");
        assert!(
            tier2.contains(&format!("| `{}` | `{warning}` |", key.path)),
            "Tier 2 row of {} with its exact warning",
            key.path
        );
    }
    let tier_a: Vec<&str> = spyder_config::keys()
        .iter()
        .filter(|k| k.tier == Tier::ApiOnly)
        .map(|k| k.path)
        .collect();
    for path in tier_a {
        assert!(
            doc.contains(&format!("| A | `{path}`")),
            "Tier A key {path}"
        );
    }
    let sighup = section(&doc, "### SIGHUP");
    assert!(sighup.contains("`config reload: fields require restart: <list>`"));
    assert!(sighup.contains("spyder_config_reloads_total"));
}
