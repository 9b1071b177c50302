//! Go-style command-line flags on top of lexopt, for both binaries.
//!
//! Accepted, as Go's `flag` package: `-name=value`, `-name value`, `--name=value`,
//! `--name value`; booleans as `-name` or `-name=true|false`; `--` ends the flags.
//! `-h`, `-help` and `--help` ask for help unless defined. Neither binary takes
//! positional arguments, so any is an error (this is what makes `-bool false` fail).
//!
//! ```
//! use spyder_config::flags::{self, FlagSpec, Parsed};
//! let specs = [
//!     FlagSpec::value("key", "string", "spyder:queue", "list key"),
//!     FlagSpec::boolean("recover", "move :processing items back"),
//! ];
//! let args = ["-key=q", "-recover"].map(std::ffi::OsString::from);
//! let Ok(Parsed::Flags(found)) = flags::parse(&specs, args) else { panic!() };
//! assert_eq!(found[0].name, "key");
//! assert_eq!(found[0].value, "q");
//! assert_eq!(found[1].value, "true");
//! ```

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt::Write as _;

use crate::values::parse_bool;

/// One flag a program defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagSpec {
    /// Name without dashes.
    pub name: &'static str,
    /// Type shown in usage (`int`, `string`, ...); `None` for a boolean flag.
    pub value_type: Option<&'static str>,
    /// Default shown in usage; empty, `false` and `0` are not shown, as in Go.
    pub default: &'static str,
    /// One line of help.
    pub help: Cow<'static, str>,
}

impl FlagSpec {
    /// A flag that takes a value.
    pub fn value(
        name: &'static str,
        value_type: &'static str,
        default: &'static str,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            name,
            value_type: Some(value_type),
            default,
            help: help.into(),
        }
    }

    /// A boolean flag, default false.
    pub fn boolean(name: &'static str, help: impl Into<Cow<'static, str>>) -> Self {
        Self::boolean_default(name, "false", help)
    }

    /// A boolean flag with this default (`"true"` or `"false"`).
    pub fn boolean_default(
        name: &'static str,
        default: &'static str,
        help: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            name,
            value_type: None,
            default,
            help: help.into(),
        }
    }

    fn is_bool(&self) -> bool {
        self.value_type.is_none()
    }
}

/// One flag as given; boolean values are normalised to `true` or `false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagArg {
    /// The defined flag's name, without dashes.
    pub name: &'static str,
    /// The value given (`true` or `false` for a boolean).
    pub value: String,
}

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `-h`, `-help` or `--help`.
    Help,
    /// The flags given, in order.
    Flags(Vec<FlagArg>),
}

/// A command line that does not parse. The binary prints it with its usage and
/// exits 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// A flag no spec defines; holds its name.
    #[error("flag provided but not defined: -{0}")]
    NotDefined(String),
    /// A value flag at the end of the line, without its value; holds its name.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// A boolean flag given a value other than `true` or `false`.
    #[error("invalid boolean value {value:?} for -{name}: want true or false")]
    InvalidBool {
        /// The flag's name.
        name: String,
        /// The value given.
        value: String,
    },
    /// A positional argument (neither binary takes any); holds it.
    #[error(
        "stray argument {0:?}: flags take -name=value or -name value, and booleans -name or -name=false"
    )]
    StrayArgument(String),
    /// A flag's value is not valid UTF-8; holds the flag's name.
    #[error("invalid value for -{0}: not valid UTF-8")]
    NotUnicode(String),
    /// Any other error of the argument parser, as its text.
    #[error("{0}")]
    Other(String),
}

/// Parses `args` (without the program name) against `specs`.
pub fn parse(
    specs: &[FlagSpec],
    args: impl IntoIterator<Item = OsString>,
) -> Result<Parsed, FlagError> {
    let find = |name: &str| specs.iter().find(|s| s.name == name);
    let args = go_to_lexopt(args, |name| find(name).is_some_and(|s| !s.is_bool()));
    let mut parser = lexopt::Parser::from_args(args);
    let mut found = Vec::new();
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return Err(FlagError::Other(e.to_string())),
        };
        match arg {
            lexopt::Arg::Long(name) => {
                let name = name.to_owned();
                let Some(spec) = find(&name) else {
                    if name == "h" || name == "help" {
                        return Ok(Parsed::Help);
                    }
                    return Err(FlagError::NotDefined(name));
                };
                let value = if spec.is_bool() {
                    match parser.optional_value() {
                        None => "true".to_owned(),
                        Some(raw) => {
                            let raw = utf8(raw, &name)?;
                            match parse_bool(&raw) {
                                Some(b) => b.to_string(),
                                None => {
                                    return Err(FlagError::InvalidBool { name, value: raw });
                                }
                            }
                        }
                    }
                } else {
                    match parser.value() {
                        Ok(raw) => utf8(raw, &name)?,
                        Err(_) => return Err(FlagError::MissingValue(name)),
                    }
                };
                found.push(FlagArg {
                    name: spec.name,
                    value,
                });
            }
            lexopt::Arg::Short(c) => {
                // Unreachable after translation, except for odd inputs; treat as Go does.
                return Err(FlagError::NotDefined(c.to_string()));
            }
            lexopt::Arg::Value(v) => {
                return Err(FlagError::StrayArgument(v.to_string_lossy().into_owned()));
            }
        }
    }
    Ok(Parsed::Flags(found))
}

/// What `-version` prints for `program` at `version` (its `CARGO_PKG_VERSION`):
/// `<program> v<version>`, then `built for <arch>-<os> (<profile> profile)`.
pub fn version_text(program: &str, version: &str) -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "{program} v{version}\nbuilt for {}-{} ({profile} profile)",
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// The defined flag closest to a mistyped `name` (`concurency` gives `concurrency`),
/// for a "did you mean" hint; `None` when nothing is close.
pub fn similar_flag(specs: &[FlagSpec], name: &str) -> Option<&'static str> {
    crate::keys::best_match(name, specs.iter().map(|s| (s.name, [Some(s.name)])))
}

fn utf8(raw: OsString, name: &str) -> Result<String, FlagError> {
    raw.into_string()
        .map_err(|_| FlagError::NotUnicode(name.to_owned()))
}

/// Rewrites Go's single-dash long flags (`-name`, `-name=v`) as `--name...` so lexopt
/// reads them as long options; a value following a value-taking flag is left alone
/// (it may start with `-`), and nothing after `--` or the first positional is touched.
fn go_to_lexopt(
    args: impl IntoIterator<Item = OsString>,
    takes_value: impl Fn(&str) -> bool,
) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut verbatim = false;
    let mut value_next = false;
    for arg in args {
        if verbatim || value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            verbatim = true;
            out.push(arg);
            continue;
        }
        let flag = text
            .strip_prefix("--")
            .or_else(|| text.strip_prefix('-'))
            .filter(|rest| !rest.is_empty());
        match flag {
            Some(rest) => {
                let (name, inline) = match rest.split_once('=') {
                    Some((name, _)) => (name, true),
                    None => (rest, false),
                };
                value_next = !inline && takes_value(name);
                out.push(OsString::from(format!("--{rest}")));
            }
            None => {
                verbatim = true;
                out.push(arg);
            }
        }
    }
    out
}

/// The flag list as Go's `PrintDefaults` shows it, sorted by name.
pub fn usage(specs: &[FlagSpec]) -> String {
    let mut sorted: Vec<&FlagSpec> = specs.iter().collect();
    sorted.sort_by_key(|s| s.name);
    let mut out = String::new();
    for spec in sorted {
        let _ = match spec.value_type {
            Some(kind) => writeln!(out, "  -{} {kind}", spec.name),
            None => writeln!(out, "  -{}", spec.name),
        };
        let _ = write!(out, "    \t{}", spec.help);
        let shown = !matches!(spec.default, "" | "false" | "0");
        if shown {
            let _ = match spec.value_type {
                Some("string" | "path") => write!(out, " (default {:?})", spec.default),
                _ => write!(out, " (default {})", spec.default),
            };
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_leaves_values_alone() {
        let args = ["-run", "-5", "-quiet", "--", "-x"].map(OsString::from);
        let out = go_to_lexopt(args, |name| name == "run");
        assert_eq!(
            out,
            ["--run", "-5", "--quiet", "--", "-x"].map(OsString::from)
        );
    }

    #[test]
    fn stdin_dash_is_a_value() {
        let out = go_to_lexopt(["-domains", "-"].map(OsString::from), |n| n == "domains");
        assert_eq!(out, ["--domains", "-"].map(OsString::from));
    }
}
