//! CPU time and peak memory of processes, read from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux only).

use std::sync::OnceLock;

/// `utime + stime` of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// `utime + stime` of this process, in seconds.
pub fn own_cpu_seconds() -> Result<f64, String> {
    stat_cpu_seconds("/proc/self/stat")
}

/// `cutime + cstime` of this process, in seconds: the CPU of every child it has
/// waited for (reaped) so far. The difference around one child's `wait` is that
/// child's exact `utime + stime`, with no polling gap at its end.
pub fn reaped_children_cpu_seconds() -> Result<f64, String> {
    let path = "/proc/self/stat";
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks =
        stat_field_sum(&text, 16, 17).ok_or_else(|| format!("{path}: unexpected format"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// CPU seconds the whole machine has been busy (every CPU, every process, interrupts
/// included; idle and iowait excluded), from the `cpu` line of `/proc/stat`.
pub fn machine_busy_seconds() -> Result<f64, String> {
    let path = "/proc/stat";
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = busy_ticks(&text).ok_or_else(|| format!("{path}: no cpu line"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// `user + nice + system + irq + softirq + steal` of the aggregate `cpu` line (guest
/// time is already inside `user` and `nice`).
fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal ...
    let field = |i: usize| fields.get(i).copied();
    Some(field(0)? + field(1)? + field(2)? + field(5)? + field(6)? + field(7).unwrap_or(0))
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    status_peak_rss_kib(&format!("/proc/{pid}/status"))
}

/// `VmHWM` (peak resident set) of this process, in KiB.
pub fn own_peak_rss_kib() -> Result<u64, String> {
    status_peak_rss_kib("/proc/self/status")
}

fn status_peak_rss_kib(path: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    vm_hwm_kib(&text).ok_or_else(|| format!("{path}: no VmHWM line"))
}

/// The `VmHWM:   123456 kB` line of a `status` file, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

fn stat_cpu_seconds(path: &str) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let ticks = cpu_ticks(&text).ok_or_else(|| format!("{path}: unexpected format"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Fields 14 (`utime`) and 15 (`stime`) of a `stat` line, in clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    stat_field_sum(stat, 14, 15)
}

/// The sum of numeric fields `a` and `b` (1-based, as `proc(5)` numbers them) of a
/// `stat` line. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so counting starts after the last `)`, where field 3 is.
fn stat_field_sum(stat: &str, a: usize, b: usize) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<u64>().ok();
    Some(field(a)? + field(b)?)
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
        assert!(reaped_children_cpu_seconds().expect("/proc/self/stat") >= 0.0);
    }

    #[test]
    fn reads_cutime_and_cstime() {
        let stat = "4242 (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 7 8 20 0 3 0 10 1000 200";
        assert_eq!(stat_field_sum(stat, 16, 17), Some(7 + 8));
    }

    #[test]
    fn reads_machine_busy_time() {
        let stat = "cpu  100 2 30 5000 7 1 4 3 0 0\ncpu0 50 1 15 2500 3 0 2 1 0 0\nintr 1 2\n";
        assert_eq!(busy_ticks(stat), Some(100 + 2 + 30 + 1 + 4 + 3));
        assert_eq!(busy_ticks("cpu0 1 2 3 4 5 6 7\n"), None);
        assert_eq!(busy_ticks("cpu  1 2\n"), None);
        assert!(machine_busy_seconds().expect("/proc/stat") > 0.0);
    }

    #[test]
    fn reads_vm_hwm() {
        let status =
            "Name:\tspyder\nVmPeak:\t  900000 kB\nVmHWM:\t   65432 kB\nVmRSS:\t   60000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(65_432));
        assert_eq!(vm_hwm_kib("Name:\tkthreadd\nVmRSS:\t1 kB\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM:\t  many kB\n"), None);
        assert!(own_peak_rss_kib().expect("/proc/self/status") > 0);
    }
}
