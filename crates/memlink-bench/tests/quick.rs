//! `memlink-bench --quick`, run as a user would, for a subset of groups:
//! the JSON parses, every figure is the median of its batches and every
//! ratio the median of the per-batch ratios. Figures are checked for being
//! there and consistent, never for being fast.
#![cfg(target_os = "linux")]

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A quick run takes about a second here; this allows for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `memlink-bench args...` to the end, within the deadline.
#[track_caller]
fn finish(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_memlink-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(DEADLINE) {
        Ok(output) => output.unwrap(),
        Err(e) => panic!("memlink-bench {} did not end ({e:?})", args.join(" ")),
    }
}

/// Runs `memlink-bench args...`, which must succeed quietly; its stdout.
#[track_caller]
fn succeed(args: &[&str]) -> String {
    let out = finish(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "memlink-bench {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    assert_eq!(stderr, "", "memlink-bench {}", args.join(" "));
    stdout.into_owned()
}

/// The median as the benchmark takes it: the upper middle for an even count.
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

#[track_caller]
fn positive(value: &Value, what: &str) -> f64 {
    let number = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is {value}, not a number"));
    assert!(number.is_finite() && number > 0.0, "{what} is {number}");
    number
}

#[test]
fn a_quick_json_run_has_every_figure_and_ratios_from_its_batches() {
    let stdout = succeed(&[
        "--quick",
        "--json",
        "--only",
        "polling,send-cost",
        "--rounds",
        "3",
    ]);
    let json: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    assert_eq!(json["batches"], 3, "{json:#}");

    let figures = json["figures"].as_array().expect("figures");
    let batches_of = |key: &str| -> Vec<f64> {
        let figure = figures
            .iter()
            .find(|f| f["key"] == key)
            .unwrap_or_else(|| panic!("no figure {key} in:\n{json:#}"));
        let batches = figure["batches"].as_array().expect("batches");
        assert_eq!(batches.len(), 3, "{key}");
        batches
            .iter()
            .map(|b| positive(b, &format!("a batch of {key}")))
            .collect()
    };
    let mut keys: Vec<&str> = figures.iter().map(|f| f["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "poll.floor1",
        "poll.floor2",
        "poll.floor_payload",
        "poll.memlink",
        "poll.iceoryx2",
        "poll.memlink_4k",
        "poll.memlink_1m",
        "poll.iceoryx2_4k",
        "poll.iceoryx2_1m",
        "send.memlink_1",
        "send.memlink_8",
        "send.memlink_64",
        "send.iceoryx2_1",
        "send.iceoryx2_8",
        "send.iceoryx2_64",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected, "only the groups asked for");
    for figure in figures {
        let key = figure["key"].as_str().unwrap();
        assert_close(
            key,
            positive(&figure["median"], key),
            median(batches_of(key)),
        );
    }

    let comparisons = json["comparisons"].as_array().expect("comparisons");
    let mut aims = 0;
    for c in comparisons {
        let (figure, reference) = (
            c["figure"].as_str().unwrap(),
            c["reference"].as_str().unwrap(),
        );
        let ratios = batches_of(figure)
            .iter()
            .zip(batches_of(reference))
            .map(|(f, r)| f / r)
            .collect();
        let what = format!("{figure} / {reference}");
        assert_close(&what, positive(&c["ratio"], &what), median(ratios));
        let ratio = c["ratio"].as_f64().unwrap();
        match (&c["aim"], &c["met"]) {
            (Value::Null, Value::Null) => {}
            (aim, Value::Bool(met)) => {
                aims += 1;
                let want = if let Some(limit) = aim["at_most"].as_f64() {
                    ratio <= limit
                } else {
                    ratio >= aim["at_least"].as_f64().expect("at_most or at_least")
                };
                assert_eq!(*met, want, "{what}: {c}");
            }
            _ => panic!("an aim without a verdict, or the other way round: {c}"),
        }
    }
    // Polling: floor and iceoryx2; zero-copy: 1 MiB; send cost: 64 vs 1.
    assert_eq!(aims, 4, "{json:#}");
}

#[test]
fn a_quick_run_prints_a_table_with_a_heading_per_group() {
    let stdout = succeed(&["--quick", "--only", "send-cost", "--rounds", "3"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("median of 3 batches per figure"),
        "{stdout}"
    );
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "MEASURE",
            "FIGURE",
            "CPU",
            "REFERENCE",
            "CPU",
            "RATIO",
            "AIM"
        ],
        "{stdout}"
    );
    assert!(lines[2].starts_with("Send 64 B"), "{stdout}");
    let rows = &lines[3..];
    assert_eq!(rows.len(), 5, "{stdout}");
    for row in rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(
            cells
                .iter()
                .any(|c| c.ends_with('x') && c[..c.len() - 1].parse::<f64>().is_ok()),
            "no ratio in {row:?}"
        );
        assert!(cells.contains(&"ns"), "{row:?}");
        assert_eq!(
            cells.iter().filter(|c| c.ends_with('%')).count(),
            2,
            "{row:?}"
        );
    }
    assert!(
        rows[0].ends_with(" met") || rows[0].ends_with("MISSED"),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    assert_eq!(finish(&["--rounds", "0"]).status.code(), Some(2));
    assert_eq!(finish(&["--only", "everything"]).status.code(), Some(2));
}

#[test]
fn a_quick_queue_run_measures_one_and_three_consumers_against_pubsub() {
    let stdout = succeed(&["--quick", "--json", "--only", "queue", "--rounds", "3"]);
    let json: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    let figures = json["figures"].as_array().expect("figures");
    let mut keys: Vec<&str> = figures.iter().map(|f| f["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["queue.memlink_1", "queue.memlink_3", "queue.pubsub"],
        "{json:#}"
    );
    let batches_of = |key: &str| -> Vec<f64> {
        let figure = figures.iter().find(|f| f["key"] == key).unwrap();
        let batches = figure["batches"].as_array().expect("batches");
        assert_eq!(batches.len(), 3, "{key}");
        let batches: Vec<f64> = batches.iter().map(|b| positive(b, key)).collect();
        assert_close(
            key,
            positive(&figure["median"], key),
            median(batches.clone()),
        );
        positive(&figure["peer_cpu"], &format!("{key}'s consumer CPU"));
        batches
    };
    let comparisons = json["comparisons"].as_array().expect("comparisons");
    assert_eq!(comparisons.len(), 3, "{json:#}");
    for c in comparisons {
        let (figure, reference) = (
            c["figure"].as_str().unwrap(),
            c["reference"].as_str().unwrap(),
        );
        let ratios = batches_of(figure)
            .iter()
            .zip(batches_of(reference))
            .map(|(f, r)| f / r)
            .collect();
        let what = format!("{figure} / {reference}");
        assert_close(&what, positive(&c["ratio"], &what), median(ratios));
    }
}
