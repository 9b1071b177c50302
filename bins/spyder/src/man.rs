//! spyder(1): the man page in roff, generated from the flag table (`cargo xtask man`).

use std::fmt::Write as _;

use spyder_config::flags::FlagSpec;

/// Text safe in roff: backslashes and dashes escaped, no line starting a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The page for `specs` and `environment` (name, help), of spyder `version`.
pub fn page(specs: &[FlagSpec], environment: &[(&str, &str)], version: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH SPYDER 1 \"\" \"spyder {}\" \"User Commands\"",
        roff(version)
    );
    out.push_str(
        ".SH NAME\nspyder \\- map how internet domains relate: DNS, TLS certificates, links\n",
    );
    out.push_str(
        ".SH SYNOPSIS\n.B spyder\n[\\fB\\-config\\fR \\fIspyder.yaml\\fR] [\\fIflags\\fR]\n",
    );
    out.push_str(".SH DESCRIPTION\nFor every domain, spyder resolves DNS with its own client, captures the TLS certificate, reads robots.txt and the root page, extracts links to other registrable domains, and emits a graph of domain, IP and certificate nodes joined by RESOLVES_TO, USES_NS, ALIAS_OF, USES_MX, LINKS_TO and USES_CERT edges, in batches to stdout, a file or an HTTP ingest endpoint. Domains come from \\fB\\-domains\\fR, a pipe on stdin, or a Redis work queue (queue mode).\n");
    out.push_str(".PP\nFlags are Go style: \\fB\\-name=value\\fR, \\fB\\-name value\\fR or \\fB\\-\\-name value\\fR; booleans \\fB\\-name\\fR or \\fB\\-name=false\\fR.\n");
    out.push_str(".SH OPTIONS\n");
    for spec in specs {
        out.push_str(".TP\n");
        match spec.value_type {
            Some(kind) => {
                let _ = writeln!(out, "\\fB\\-{}\\fR \\fI{}\\fR", roff(spec.name), roff(kind));
            }
            None => {
                let _ = writeln!(out, "\\fB\\-{}\\fR", roff(spec.name));
            }
        }
        let _ = write!(out, "{}", roff(&spec.help));
        let shown = !spec.default.is_empty() && spec.default != "false" && spec.default != "0";
        if shown {
            let _ = write!(out, " (default {})", roff(spec.default));
        }
        out.push('\n');
    }
    out.push_str(".SH ENVIRONMENT\n");
    for (name, help) in environment {
        let _ = writeln!(out, ".TP\n.B {}\n{}", roff(name), roff(help));
    }
    out.push_str(".PP\nPrecedence: defaults < configuration file < environment < flags.\n");
    out.push_str(".SH EXIT STATUS\n.TP\n0\ndone (every record delivered, written or spooled; or stdout closed early)\n.TP\n1\nstartup failed (configuration, files, Redis unreachable, busy port)\n.TP\n2\nbad command line; or every task failed with \\fB\\-fail_on_error\\fR\n.TP\n3\nrecords were neither delivered nor spooled, or the output file broke\n.TP\n130\na second signal\n");
    out.push_str(".SH EXAMPLES\n.EX\nspyder \\-domains domains.txt\ncat domains.txt | spyder \\-jsonl \\-silent\nspyder \\-domains seeds.txt \\-continuous \\-max_domains 10000\nspyder \\-check \\-config /etc/spyder/spyder.yaml\n.EE\n");
    out.push_str(".SH SEE ALSO\n.BR seed (1);\ndocs/configuration.md, docs/output.md and docs/operations.md in the source.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_flag_escaped_for_roff() {
        let specs = [
            FlagSpec::value("dns_servers", "list", "", "resolvers, ip or ip:port"),
            FlagSpec::boolean("quiet", ".no progress"),
        ];
        let page = page(&specs, &[("LOG_LEVEL", "debug or info")], "1.2.3");
        assert!(page.starts_with(".TH SPYDER 1 \"\" \"spyder 1.2.3\""));
        assert!(
            page.contains(".TP\n\\fB\\-dns_servers\\fR \\fIlist\\fR\nresolvers, ip or ip:port\n")
        );
        assert!(
            page.contains(".TP\n\\fB\\-quiet\\fR\n\\&.no progress\n"),
            "{page}"
        );
        assert!(page.contains(".TP\n.B LOG_LEVEL\ndebug or info\n"));
    }
}
