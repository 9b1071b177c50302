//! `spyder -completions bash|zsh|fish`: shell completion scripts, generated from the
//! same flag table as the usage, so they never fall behind it.

use std::fmt::Write as _;

use spyder_config::flags::FlagSpec;

/// A shell spyder writes completions for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The shells, as `-completions` takes them.
    pub const NAMES: &'static str = "bash, zsh or fish";

    /// `bash`, `zsh` or `fish`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "bash" => Some(Self::Bash),
            "zsh" => Some(Self::Zsh),
            "fish" => Some(Self::Fish),
            _ => None,
        }
    }
}

/// The completion script for `shell` over `specs`.
pub fn script(shell: Shell, specs: &[FlagSpec]) -> String {
    match shell {
        Shell::Bash => bash(specs),
        Shell::Zsh => zsh(specs),
        Shell::Fish => fish(specs),
    }
}

/// Flags whose value is a file path: completed with file names.
fn takes_path(spec: &FlagSpec) -> bool {
    spec.value_type == Some("path")
}

fn bash(specs: &[FlagSpec]) -> String {
    let all: Vec<String> = specs.iter().map(|s| format!("-{}", s.name)).collect();
    let paths: Vec<String> = specs
        .iter()
        .filter(|s| takes_path(s))
        .map(|s| format!("-{}", s.name))
        .collect();
    let mut out = String::from(
        "# bash completion for spyder: source it, or put it in\n# ~/.local/share/bash-completion/completions/spyder\n_spyder() {\n    local cur prev\n    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n    prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n    case \"$prev\" in\n",
    );
    if !paths.is_empty() {
        let _ = writeln!(
            out,
            "        {})\n            COMPREPLY=($(compgen -f -- \"$cur\"))\n            return ;;",
            paths.join("|")
        );
    }
    out.push_str("        -completions)\n            COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\"))\n            return ;;\n    esac\n");
    let _ = writeln!(
        out,
        "    COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n}}\ncomplete -o default -F _spyder spyder",
        all.join(" ")
    );
    out
}

/// Text safe inside single quotes and zsh's `[...]` descriptions.
fn quoted(help: &str) -> String {
    help.replace('\'', "'\\''")
        .replace('[', "(")
        .replace(']', ")")
        .replace(':', " -")
}

fn zsh(specs: &[FlagSpec]) -> String {
    let mut out = String::from(
        "#compdef spyder\n# zsh completion for spyder: put it in a directory of $fpath as _spyder\n_arguments \\\n",
    );
    for spec in specs {
        let help = quoted(&spec.help);
        let action = match spec.value_type {
            None => String::new(),
            Some("path") => ":path:_files".to_owned(),
            Some("shell") => ":shell:(bash zsh fish)".to_owned(),
            Some(kind) => format!(":{kind}: "),
        };
        let _ = writeln!(out, "  '-{}[{help}]{action}' \\", spec.name);
    }
    // The line continuation after the last flag ends here.
    out.push('\n');
    out
}

fn fish(specs: &[FlagSpec]) -> String {
    let mut out = String::from(
        "# fish completion for spyder: put it in ~/.config/fish/completions/spyder.fish\n",
    );
    for spec in specs {
        let help = spec.help.replace('\'', "\\'");
        let takes = match spec.value_type {
            None => "",
            Some("path") => " -r -F",
            Some("shell") => " -r -f -a 'bash zsh fish'",
            Some(_) => " -r",
        };
        let _ = writeln!(
            out,
            "complete -c spyder -o {}{takes} -d '{help}'",
            spec.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<FlagSpec> {
        vec![
            FlagSpec::value("domains", "path", "", "file of domains, one per line"),
            FlagSpec::value("concurrency", "int", "256", "concurrent tasks [1-65536]"),
            FlagSpec::boolean("quiet", "no progress: it's quiet"),
        ]
    }

    #[test]
    fn every_shell_names_every_flag_and_completes_paths_with_files() {
        let bash = script(Shell::Bash, &specs());
        assert!(bash.contains("-domains -concurrency -quiet"), "{bash}");
        assert!(bash.contains("        -domains)\n            COMPREPLY=($(compgen -f"));
        let zsh = script(Shell::Zsh, &specs());
        assert!(zsh.contains("'-domains[file of domains, one per line]:path:_files'"));
        assert!(zsh.contains("'-concurrency[concurrent tasks (1-65536)]:int: '"));
        assert!(
            zsh.contains("'-quiet[no progress - it'\\''s quiet]'"),
            "{zsh}"
        );
        let fish = script(Shell::Fish, &specs());
        assert!(fish.contains("complete -c spyder -o domains -r -F -d 'file of domains"));
        assert!(fish.contains("complete -c spyder -o quiet -d 'no progress: it\\'s quiet'"));
    }
}
