//! Timing shared by the benchmarks.

use std::time::{Duration, Instant};

const BATCHES: usize = 21;

/// Runs `ours` and `reference` in alternating batches of `per_batch`
/// cycles, so that load from elsewhere on the machine falls on both alike.
/// Returns the median time per cycle of each and the median of the
/// per-batch ratios.
pub fn compare(
    per_batch: usize,
    mut ours: impl FnMut(),
    mut reference: impl FnMut(),
) -> (Duration, Duration, f64) {
    let batch = |cycle: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..per_batch {
            cycle();
        }
        start.elapsed() / per_batch as u32
    };
    batch(&mut ours);
    batch(&mut reference);
    let mut pairs: Vec<(Duration, Duration)> = (0..BATCHES)
        .map(|_| (batch(&mut ours), batch(&mut reference)))
        .collect();
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|(o, r)| o.as_secs_f64() / r.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    pairs.sort_by_key(|p| p.0);
    let ours_median = pairs[BATCHES / 2].0;
    pairs.sort_by_key(|p| p.1);
    (ours_median, pairs[BATCHES / 2].1, ratios[BATCHES / 2])
}
