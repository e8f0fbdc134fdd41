//! Wall time, CPU time and peak memory of a child process, from /proc (no unsafe code, no
//! extra crate). Entry point: [`run_measured`].
//!
//! While the child runs, its peak resident set (VmHWM) is read every few milliseconds. When it
//! has exited it stays a zombie until it is waited for: its /proc/PID/stat then still holds the
//! user and system time of all its threads, which is read before the child is reaped.

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Context;

/// /proc reports CPU time in USER_HZ ticks, which is 100 on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;
const POLL: Duration = Duration::from_millis(10);

/// What a child process used.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Usage {
    /// Seconds from spawn to exit.
    pub(crate) wall_s: f64,
    /// User + system CPU seconds of all its threads.
    pub(crate) cpu_s: f64,
    /// Peak resident memory (VmHWM), MiB.
    pub(crate) rss_mb: f64,
}

/// The state letter and utime + stime ticks of a /proc/PID/stat line.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) is in parentheses and may contain spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((state, utime + stime))
}

/// VmHWM of a /proc/PID/status, in KiB (absent once the process has exited).
fn parse_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs `cmd` to completion (killing it after `timeout`) and measures it.
pub(crate) fn run_measured(
    cmd: &mut Command,
    timeout: Duration,
) -> anyhow::Result<(ExitStatus, Usage)> {
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let (stat_path, status_path) = (
        format!("/proc/{}/stat", child.id()),
        format!("/proc/{}/status", child.id()),
    );
    let mut hwm_kb = 0;
    let mut ticks = 0;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(parse_hwm_kb)
        {
            hwm_kb = hwm_kb.max(kb);
        }
        let stat = std::fs::read_to_string(&stat_path)
            .ok()
            .as_deref()
            .and_then(parse_stat);
        if let Some((state, t)) = stat {
            ticks = t;
            if state == 'Z' || state == 'X' {
                break;
            }
        } else {
            break; // cannot happen before we reap it; measure what we have
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{cmd:?} did not finish within {timeout:?}; killed");
        }
        std::thread::sleep(POLL);
    }
    let wall_s = start.elapsed().as_secs_f64();
    let status = child.wait().context("waiting for the application")?;
    Ok((
        status,
        Usage {
            wall_s,
            cpu_s: ticks as f64 / TICKS_PER_SECOND,
            rss_mb: hwm_kb as f64 / 1024.0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line =
            "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(line), Some(('S', 325)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tjava\nVmPeak:\t 100 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_hwm_kb(status), Some(204_800));
        assert_eq!(parse_hwm_kb("Name:\tzombie\n"), None);
    }

    #[test]
    fn measures_a_child_that_burns_cpu() {
        // A shell busy-loop: CPU time in the shell itself, not in children it forks.
        let (status, usage) = run_measured(
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(status.success());
        assert!(usage.wall_s > 0.0, "{usage:?}");
        assert!(usage.cpu_s > 0.0, "{usage:?}");
        assert!(usage.rss_mb > 0.0, "{usage:?}");
    }
}
