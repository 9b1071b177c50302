//! Where a run's configuration and input come from when the command line does not
//! say: the user's configuration file (XDG) and a piped stdin, as ProjectDiscovery's
//! tools read them.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// What spyder says, before the usage, when it has nothing to crawl.
pub const NO_INPUT: &str = "spyder: no input: give -domains FILE (- reads stdin), pipe domains \
     on stdin, or set REDIS_QUEUE_ADDR (redis.queue_addr) for queue mode";

/// `$XDG_CONFIG_HOME/spyder/config.yaml` (or `~/.config/spyder/config.yaml` when
/// `XDG_CONFIG_HOME` is unset or empty), if that file exists; `env` is the process
/// environment.
pub fn user_config_file(env: &[(String, String)]) -> Option<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    let base = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|home| home.join(".config")))?;
    let path = base.join("spyder").join("config.yaml");
    path.is_file().then_some(path)
}

/// Whether stdin carries data to read: a pipe, a socket or a redirected regular
/// file. A terminal, `/dev/null` (a character device) or a closed stdin does not.
pub fn stdin_has_data() -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    let kind = meta.file_type();
    kind.is_fifo() || kind.is_socket() || kind.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_config_is_found_under_xdg_or_home() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = |pairs: &[(&str, &std::path::Path)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.display().to_string()))
                .collect()
        };
        let xdg = dir.path().join("xdg");
        let home = dir.path().join("home");
        assert_eq!(user_config_file(&env(&[("XDG_CONFIG_HOME", &xdg)])), None);
        std::fs::create_dir_all(xdg.join("spyder")).expect("mkdir");
        std::fs::write(xdg.join("spyder/config.yaml"), "probe: p\n").expect("write");
        std::fs::create_dir_all(home.join(".config/spyder")).expect("mkdir");
        std::fs::write(home.join(".config/spyder/config.yaml"), "probe: h\n").expect("write");
        assert_eq!(
            user_config_file(&env(&[("XDG_CONFIG_HOME", &xdg), ("HOME", &home)])),
            Some(xdg.join("spyder/config.yaml"))
        );
        assert_eq!(
            user_config_file(&env(&[("HOME", &home)])),
            Some(home.join(".config/spyder/config.yaml"))
        );
        assert_eq!(user_config_file(&[]), None);
    }
}
