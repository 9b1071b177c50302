//! CPU time of processes, read from `/proc/<pid>/stat` (Linux only).

use std::sync::OnceLock;

/// `utime + stime` of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// `utime + stime` of this process, in seconds.
pub fn own_cpu_seconds() -> Result<f64, String> {
    stat_cpu_seconds("/proc/self/stat")
}

fn stat_cpu_seconds(path: &str) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = cpu_ticks(&text).ok_or_else(|| format!("{path}: unexpected format"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Fields 14 (`utime`) and 15 (`stime`) of a `stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so
/// counting starts after the last `)`, where field 3 is.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(field(14)? + field(15)?)
}

/// `USER_HZ`, the unit of the `stat` times (`getconf CLK_TCK`; 100 on every common
/// Linux architecture, used when `getconf` is missing).
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|&hz| hz > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_an_odd_command_name() {
        let stat = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 3 0 10 1000 200";
        assert_eq!(cpu_ticks(stat), Some(1234 + 56));
    }

    #[test]
    fn rejects_a_truncated_line() {
        assert_eq!(cpu_ticks("4242 (spyder) S 1 4242"), None);
        assert_eq!(cpu_ticks("no parentheses"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(own_cpu_seconds().expect("/proc/self/stat") >= 0.0);
    }
}
