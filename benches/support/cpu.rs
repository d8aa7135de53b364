//! CPU time of the benchmark's child processes.

const CLOCK_TICKS: f64 = 100.0;

/// CPU seconds of waited-for children so far, from /proc/self/stat (cutime + cstime).
pub fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 16 and 17 of stat(5), counted from the state field (3) here.
    let ticks: u64 = fields[13].parse::<u64>().unwrap() + fields[14].parse::<u64>().unwrap();
    ticks as f64 / CLOCK_TICKS
}
