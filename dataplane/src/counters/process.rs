//! The process's own facts, read from `/proc/self` when asked (never per request): uptime,
//! resident memory, CPU time, open file descriptors, threads.

use std::fs;

/// What `/proc/self` says about this process now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFacts {
    /// Seconds since the process started.
    pub uptime_seconds: f64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    /// CPU time spent in user mode, in seconds.
    pub cpu_user_seconds: f64,
    /// CPU time spent in the kernel, in seconds.
    pub cpu_system_seconds: f64,
    /// Open file descriptors (sockets and files).
    pub open_fds: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads the facts; a file that cannot be read leaves its fields at 0 (blocking: call it off
/// the async workers).
pub fn read() -> ProcessFacts {
    let mut facts = ProcessFacts::default();
    // SAFETY: sysconf only reads a constant of the system.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
        // The command name (field 2) may hold spaces and parentheses: count after its end.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Fields after the name start at field 3 (index 0): utime 14, stime 15, threads 20,
        // starttime 22.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        facts.cpu_user_seconds = field(14).unwrap_or(0) as f64 / ticks;
        facts.cpu_system_seconds = field(15).unwrap_or(0) as f64 / ticks;
        facts.threads = field(20).unwrap_or(0);
        let booted = fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok());
        if let (Some(booted), Some(start)) = (booted, field(22)) {
            facts.uptime_seconds = (booted - start as f64 / ticks).max(0.0);
        }
    }
    let resident = fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
    facts.rss_bytes = resident.unwrap_or(0) * page.max(0) as u64;
    // The listing holds the descriptor that reads it: not one of ours.
    let fds = fs::read_dir("/proc/self/fd").map(|d| d.count() as u64);
    facts.open_fds = fds.unwrap_or(0).saturating_sub(1);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_of_a_running_process_are_plausible() {
        let f = read();
        assert!(f.rss_bytes > 1 << 20, "{f:?}");
        assert!(f.threads >= 1, "{f:?}");
        assert!(f.open_fds >= 3, "{f:?}");
        assert!(f.uptime_seconds >= 0.0, "{f:?}");
    }
}
