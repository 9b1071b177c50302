//! Reading a Prometheus text exposition (format 0.0.4) back into numbers, so tests can
//! assert what a recorder rendered or what `GET /metrics` served, series by series.
//!
//! ```
//! use spyder_testkit::prometheus::Scrape;
//! let text = "# TYPE spyder_tls_errors_total counter\n\
//!             spyder_tls_errors_total{reason=\"timeout\"} 3\n\
//!             spyder_tls_errors_total{reason=\"connect_refused\"} 2\n";
//! let scrape = Scrape::parse(text).expect("valid exposition");
//! assert_eq!(scrape.value("spyder_tls_errors_total", &[("reason", "timeout")]), Some(3.0));
//! assert_eq!(scrape.sum("spyder_tls_errors_total", &[]), 5.0);
//! ```

use std::collections::BTreeMap;

/// One sample line: metric name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name as written, e.g. `spyder_http_request_duration_seconds_count`.
    pub name: String,
    /// Label names and (unescaped) values.
    pub labels: BTreeMap<String, String>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

/// A line that is not a valid sample.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
    /// The line.
    pub text: String,
}

/// Every sample of one exposition, in text order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text format: `# HELP`/`# TYPE` and other comments and blank lines are
    /// skipped; each other line must be `name{label="value",...} value [timestamp]`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut samples = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fail = |reason| ParseError {
                line: index + 1,
                reason,
                text: line.to_owned(),
            };
            samples.push(parse_sample(trimmed).map_err(fail)?);
        }
        Ok(Self { samples })
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The value of the series `name` whose labels are exactly `labels`; `None` when
    /// no such series was rendered.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// The sum over every series of `name` whose labels include `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && has_labels(s, labels))
            .map(|s| s.value)
            .sum()
    }

    /// The series of `name`, keyed by the value of `label` (series without it skipped).
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            if let Some(v) = s.labels.get(label) {
                *out.entry(v.clone()).or_insert(0.0) += s.value;
            }
        }
        out
    }
}

fn has_labels(sample: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| sample.labels.get(*k).is_some_and(|have| have == v))
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("invalid metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| "invalid value")?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "invalid timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing text");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `label="value",...}` → the labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), &'static str> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(tail) = text.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = text.find('=').ok_or("label without value")?;
        let key = text[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("invalid label name");
        }
        let after = text[eq + 1..].trim_start();
        let mut chars = after
            .strip_prefix('"')
            .ok_or("unquoted label value")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("unterminated label value")?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        // `after` starts with the opening quote: skip it, the value and the closing one.
        text = after[1 + end + 1..].trim_start();
        if let Some(tail) = text.strip_prefix(',') {
            text = tail;
        } else if text.is_empty() {
            return Err("no closing }");
        } else if !text.starts_with('}') {
            return Err("expected , or } after a label");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_escapes() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\n\
                    x_total{a=\"1\",b=\"q\\\"uote\\\\d\\n\"} 4\n\
                    x_total{a=\"2\"} 6 1700000000000\n\
                    \n\
                    h_seconds_bucket{kind=\"root\",le=\"+Inf\"} 3\n\
                    h_seconds_count{kind=\"root\"} 3\n\
                    g 2.5e1\n\
                    up{} +Inf\n";
        let s = Scrape::parse(text).expect("parses");
        assert_eq!(s.samples().len(), 6);
        assert_eq!(
            s.value("x_total", &[("a", "1"), ("b", "q\"uote\\d\n")]),
            Some(4.0)
        );
        assert_eq!(
            s.value("x_total", &[("a", "1")]),
            None,
            "labels must match exactly"
        );
        assert_eq!(s.sum("x_total", &[]), 10.0);
        assert_eq!(s.sum("x_total", &[("a", "2")]), 6.0);
        assert_eq!(s.sum("missing", &[]), 0.0);
        assert_eq!(s.value("h_seconds_count", &[("kind", "root")]), Some(3.0));
        assert_eq!(s.value("g", &[]), Some(25.0));
        assert_eq!(s.value("up", &[]), Some(f64::INFINITY));
        assert_eq!(
            s.by_label("x_total", "a"),
            BTreeMap::from([("1".to_owned(), 4.0), ("2".to_owned(), 6.0)])
        );
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        for (text, reason) in [
            ("x_total", "no value"),
            ("x_total{a=\"1\"", "no closing }"),
            ("x_total{a=\"1} 2", "unterminated label value"),
            ("x_total{a=1} 2", "unquoted label value"),
            (
                "x_total{a=\"1\" b=\"2\"} 2",
                "expected , or } after a label",
            ),
            ("x_total abc", "invalid value"),
            ("x-y 1", "invalid metric name"),
            ("x 1 2 3", "trailing text"),
        ] {
            let err = Scrape::parse(&format!("# ok\n{text}\n")).expect_err(text);
            assert_eq!((err.line, err.reason), (2, reason), "{text}");
        }
    }
}
