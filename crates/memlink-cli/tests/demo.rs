//! The seeds' demo, run as a user would.

mod support;

use std::process::Command;

#[test]
fn demo_plays_both_processes_and_the_name_goes_away() {
    let name = format!("memlink-demo-test-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_memlink"))
        .args(["demo", "--name", &name, "--text", "ping across processes"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "[process 2] mapped a read-only view and read up to the NUL: \"ping across processes\""
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "opening it again fails, as on Windows: cannot open region \"{name}\": not found"
        )),
        "{stdout}"
    );
}

#[test]
fn demo_reports_a_taken_name() {
    let name = format!("memlink-demo-taken-{}", std::process::id());
    let _held = memlink::Region::create(&name, 16).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_memlink"))
        .args(["demo", "--name", &name])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("a mapping of that name already exists"));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("memlink: cannot create region \"{name}\": already exists")
    );
}

#[test]
fn demo_ends_quietly_when_its_output_is_closed() {
    let name = format!("memlink-demo-pipe-{}", std::process::id());
    let out = support::run_with_output_closed(&["demo", "--name", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.code().is_some_and(|c| c == 0),
        "{:?}: {stderr}",
        out.status
    );
    assert_eq!(
        memlink::Region::open(&name, memlink::Access::ReadOnly)
            .unwrap_err()
            .kind(),
        memlink::ErrorKind::NotFound,
        "the region was closed on the way out"
    );
}
