//! What the benches share: how the sizes to run are chosen.

/// The sizes given as arguments (`cargo bench --bench NAME -- 1000 2000`), else those in
/// `PAGEHOOK_BENCH_N` (comma-separated), else `default`.
pub fn sizes(default: &str) -> Vec<usize> {
    let from_args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if !from_args.is_empty() {
        return from_args;
    }
    std::env::var("PAGEHOOK_BENCH_N")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("PAGEHOOK_BENCH_N: numbers, comma-separated")
        })
        .collect()
}
