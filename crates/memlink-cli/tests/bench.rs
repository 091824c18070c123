//! `memlink bench`, run as a user would: the quick run as JSON and as a
//! table. Figures are checked for being there and consistent, never for
//! being fast (timing belongs in benchmarks, not tests).

mod support;

use std::process::{Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;
use support::{memlink, DEADLINE};

/// Runs `memlink args...` to the end, within the deadline.
#[track_caller]
fn finish(args: &[&str]) -> Output {
    let child = memlink(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(e) => panic!("memlink {} did not end ({e:?})", args.join(" ")),
    }
}

/// Runs `memlink args...`, which must succeed; returns its stdout.
#[track_caller]
fn succeed(args: &[&str]) -> String {
    let out = finish(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "memlink {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    assert_eq!(stderr, "", "memlink {}", args.join(" "));
    stdout.into_owned()
}

/// The figure at `path`, which must be a positive, finite number.
#[track_caller]
fn figure(json: &Value, path: &[&str]) -> f64 {
    let value = path.iter().fold(json, |v, key| &v[key]);
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is {value}, not a number, in:\n{json:#}"));
    assert!(
        number.is_finite() && number > 0.0,
        "{path:?} is {number} in:\n{json:#}"
    );
    number
}

/// The per-batch figures `key` of the array at `path`: `rounds` positive,
/// finite numbers.
#[track_caller]
fn batch_figures(json: &Value, path: &[&str], key: Option<&str>, rounds: usize) -> Vec<f64> {
    let array = path.iter().fold(json, |v, key| &v[key]);
    let array = array
        .as_array()
        .unwrap_or_else(|| panic!("{path:?} is not an array in:\n{json:#}"));
    assert_eq!(array.len(), rounds, "{path:?} in:\n{json:#}");
    array
        .iter()
        .map(|batch| {
            let value = key.map_or(batch, |key| &batch[key]);
            let number = value.as_f64().unwrap_or_else(|| {
                panic!("a batch of {path:?} is {batch}, not a number, in:\n{json:#}")
            });
            assert!(number.is_finite() && number > 0.0, "{path:?}: {number}");
            number
        })
        .collect()
}

/// The median as the command takes it: the middle one, the upper of the
/// two middle ones for an even count.
fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= want.abs() * 1e-9,
        "{what} is {got}, expected {want}"
    );
}

#[test]
fn a_quick_run_as_json_has_every_figure_and_ratios_from_them() {
    let stdout = succeed(&["bench", "--quick", "--json"]);
    let json: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let rounds = json["batches"].as_u64().expect("batches") as usize;
    assert_eq!(rounds, 5, "--quick measures 5 batches");

    assert_eq!(json["region"]["size"], 4096);
    for (figure_key, batches_key) in [
        ("create_us", "create_batches_us"),
        ("open_us", "open_batches_us"),
    ] {
        let median_figure = figure(&json, &["region", figure_key]);
        let batches = batch_figures(&json, &["region", batches_key], None, rounds);
        assert_close(figure_key, median_figure, median(batches));
    }

    let polling = figure(&json, &["polling", "round_trip_us"]);
    let batches = batch_figures(&json, &["polling", "batches_us"], None, rounds);
    assert_close("polling round trip", polling, median(batches));

    // Each ratio is the median of the per-batch ratios, and each figure the
    // median of its batches.
    for (section, ours, theirs) in [
        ("wakeup", "events_us", "pipe_us"),
        ("bulk", "region_gb_s", "memcpy_gb_s"),
    ] {
        let ours_median = figure(&json, &[section, ours]);
        let theirs_median = figure(&json, &[section, theirs]);
        let ratio = figure(&json, &[section, "ratio"]);
        let ours_batches = batch_figures(&json, &[section, "batches"], Some(ours), rounds);
        let theirs_batches = batch_figures(&json, &[section, "batches"], Some(theirs), rounds);
        assert_close(ours, ours_median, median(ours_batches.clone()));
        assert_close(theirs, theirs_median, median(theirs_batches.clone()));
        let ratios = ours_batches
            .iter()
            .zip(&theirs_batches)
            .map(|(o, t)| o / t)
            .collect();
        assert_close(&format!("{section} ratio"), ratio, median(ratios));
    }

    assert_eq!(json["bulk"]["bytes"], 16 << 20, "--quick copies 16 MiB");
    assert_eq!(json["bulk"]["chunk"], 1 << 20);
}

#[test]
fn a_quick_run_prints_a_table_with_a_row_per_figure() {
    let stdout = succeed(&[
        "bench", "--quick", "--size", "64K", "--bulk", "3MiB", "--rounds", "3",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "median of 3 batches per figure; a ratio is the median of the per-batch ratios",
        "{stdout}"
    );
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(lines[1]),
        ["MEASURE", "MEMLINK", "REFERENCE", "RATIO"],
        "{stdout}"
    );
    let rows = &lines[2..];
    let labels = [
        "create+map+write+unmap+close, 64 KiB",
        "open+map+read+unmap+close, 64 KiB",
        "wake-up round trip, 2 events",
        "polling round trip, 1 cache line",
        "bulk copy, 3 MiB in 1 MiB chunks",
    ];
    assert_eq!(rows.len(), labels.len(), "{stdout}");
    for (row, label) in rows.iter().zip(labels) {
        let rest = row
            .strip_prefix(label)
            .unwrap_or_else(|| panic!("expected a row for {label:?}, got {row:?}:\n{stdout}"));
        let cells = words(rest);
        let unit = if label.starts_with("bulk") {
            "GB/s"
        } else {
            "µs"
        };
        let number = |text: &str| text.parse::<f64>().ok().filter(|n| *n > 0.0);
        assert!(
            number(&cells[0]).is_some() && cells[1] == unit,
            "{row:?}:\n{stdout}"
        );
        match label {
            l if l.starts_with("wake-up") || l.starts_with("bulk") => {
                let reference = if l.starts_with("bulk") {
                    "(memcpy)"
                } else {
                    "(pipes)"
                };
                assert!(number(&cells[2]).is_some(), "{row:?}");
                assert_eq!(cells[3..5], [unit, reference], "{row:?}");
                let ratio = cells[5].strip_suffix('x').and_then(number);
                assert!(ratio.is_some() && cells.len() == 6, "{row:?}");
            }
            _ => assert_eq!(cells[2..], ["-", "-"], "{row:?}"),
        }
    }
}

#[test]
fn bad_counts_are_usage_errors() {
    let out = finish(&["bench", "--rounds", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = finish(&["bench", "--bulk", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 1 byte"), "{stderr}");
}
