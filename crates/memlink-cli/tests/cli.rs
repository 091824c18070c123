//! The command-line tool, run as a user would, on every platform (these also
//! run under Wine): one process holds a region, others read, write and
//! inspect it; bad input gives the right message and exit status.

mod support;

use support::{run, run_with_input, unique, Held};

/// The value of `key` in `memlink info`'s output.
#[track_caller]
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(key).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
        .trim()
}

#[test]
fn a_held_region_is_read_written_and_inspected_by_other_processes() {
    let name = unique("cycle");
    let mut held = Held::start(
        &[
            "create",
            &name,
            "--size",
            "4KiB",
            "--text",
            "hello, world",
            "--encoding",
            "utf-8",
        ],
        "holding it",
    );
    assert_eq!(
        held.seen[0],
        format!(
            "created region \"{name}\": 4 KiB (4096 bytes), lifetime last-handle, mode 0600 (rw-------)"
        )
    );
    assert_eq!(
        held.seen[1],
        "wrote 13 bytes (the text and its NUL) at offset 0"
    );

    // Another process reads the text up to its NUL.
    assert_eq!(run(&["read", &name]).ok(), "hello, world\n");

    // Another writes over part of it; the NUL of --text ends the string.
    run(&["write", &name, "--offset", "7", "--text", "memlink"]).ok();
    assert_eq!(run(&["read", &name]).ok(), "hello, memlink\n");

    // Bytes from stdin, unchanged, at a hex offset; read back raw.
    run_with_input(
        &["write", &name, "--offset", "0x100", "-"],
        b"\x00\x01\xfe\xff",
    )
    .ok();
    let raw = run(&["read", &name, "--offset", "256", "--len", "4", "--raw"]);
    raw.ok();
    assert_eq!(raw.bytes, b"\x00\x01\xfe\xff");

    // An xxd-style dump, with offsets in the region.
    assert_eq!(
        run(&["read", &name, "--hex", "--offset", "0x100", "--len", "20"]).ok(),
        "00000100: 0001 feff 0000 0000 0000 0000 0000 0000  ................\n\
         00000110: 0000 0000                                ....\n"
    );

    // info, as text and as JSON.
    let info = run(&["info", &name]);
    let text = info.ok();
    assert_eq!(field(text, "name"), name, "{text}");
    // Windows' sections carry no mark: memlink cannot tell its own.
    let (made_by, origin) = if cfg!(windows) {
        (
            "region, made by memlink or another program (unknown)",
            "unknown",
        )
    } else {
        ("region, made by memlink", "memlink")
    };
    assert_eq!(field(text, "kind"), made_by, "{text}");
    assert_eq!(field(text, "size"), "4 KiB (4096 bytes)", "{text}");
    assert_eq!(field(text, "state"), "alive", "{text}");
    let json: serde_json::Value =
        serde_json::from_str(run(&["info", &name, "--json"]).ok()).unwrap();
    assert_eq!(json["name"], name.as_str());
    assert_eq!(json["kind"], "region");
    assert_eq!(json["origin"], origin);
    assert_eq!(json["size"], 4096);
    assert_eq!(json["lifetime"], "last-handle");
    assert_eq!(json["state"], "alive");
    if cfg!(target_os = "linux") {
        assert_eq!(json["holders"][0]["pid"], held.pid());
    } else {
        assert_eq!(json["holders"], serde_json::Value::Null, "not known here");
    }

    // The holder goes, and the name with it.
    held.kill();
    assert_eq!(
        run(&["read", &name]).fails(1),
        format!("memlink: cannot open region \"{name}\": not found")
    );
}

#[test]
fn a_file_fills_a_new_region() {
    let name = unique("file");
    let path = std::env::temp_dir().join(format!("{name}.bin"));
    std::fs::write(&path, b"from a file").unwrap();
    let _held = Held::start(
        &[
            "create",
            &name,
            "--size",
            "64",
            "--file",
            path.to_str().unwrap(),
        ],
        "holding it",
    );
    assert_eq!(run(&["read", &name]).ok(), "from a file\n");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_sizes_are_usage_errors() {
    let name = unique("badsize");
    let err = run(&["create", &name, "--size", "12Q"]);
    let stderr = err.fails(2);
    assert!(
        stderr.starts_with(
            "error: invalid value '12Q' for '--size <SIZE>': expected a number of bytes"
        ),
        "{stderr}"
    );
    let stderr = run(&["create", &name, "--size", "0"]).fails(2).to_owned();
    assert!(
        stderr.contains("a region cannot have a size of 0"),
        "{stderr}"
    );
    // Nothing was made.
    run(&["info", &name]).fails(1);
}

#[test]
fn bad_names_are_usage_errors_that_say_what_is_wrong() {
    assert_eq!(
        run(&["create", "bad/name", "--size", "4K"]).fails(2),
        "memlink: cannot create region \"bad/name\": invalid name: '/' is not allowed; \
         use letters, digits, '.', '_', '-' and '@'"
    );
    // Invalid everywhere: '/' on Unix, '\' on Windows (opening takes any
    // name the OS accepts).
    assert!(run(&["read", "bad/na\\me"])
        .fails(2)
        .starts_with("memlink: cannot open region \"bad/na\\me\": invalid name"));
    // A name the OS accepts is looked for, even outside memlink's syntax
    // (a foreign object may have it).
    assert_eq!(
        run(&["read", "no such name"]).fails(1),
        "memlink: cannot open region \"no such name\": not found"
    );
}

#[test]
fn rm_exits_with_the_worst_status_of_its_names() {
    // A bad name is a usage error, as for every other command.
    assert!(run(&["rm", "bad/na\\me"])
        .fails(2)
        .starts_with("memlink: cannot remove object \"bad/na\\me\": invalid name"));
    // A missing name fails (1), a bad one is worse (2), whatever the order;
    // each is reported.
    let missing = unique("rm-missing");
    for args in [
        ["rm", &missing, "bad/na\\me"],
        ["rm", "bad/na\\me", &missing],
    ] {
        let out = run(&args);
        let stderr = out.fails(2);
        assert!(
            stderr.contains(&format!("cannot remove object \"{missing}\": not found")),
            "{stderr}"
        );
        assert!(stderr.contains("invalid name"), "{stderr}");
    }
    assert_eq!(
        run(&["rm", &missing]).fails(1),
        format!("memlink: cannot remove object \"{missing}\": not found")
    );
}

#[test]
fn missing_names_say_so() {
    let name = unique("missing");
    // `info` looks for an object of any kind.
    for (args, what) in [
        (vec!["read", &name], "open region"),
        (vec!["write", &name, "--text", "x"], "open region"),
        (vec!["watch", &name], "open region"),
        (vec!["info", &name], "inspect object"),
    ] {
        assert_eq!(
            run(&args).fails(1),
            format!("memlink: cannot {what} \"{name}\": not found"),
            "{args:?}"
        );
    }
}

#[test]
fn reads_and_writes_past_the_end_say_the_size() {
    let name = unique("pastend");
    let _held = Held::start(&["create", &name, "--size", "4096"], "holding it");
    assert_eq!(
        run(&["read", &name, "--offset", "5000"]).fails(1),
        format!(
            "memlink: cannot read region \"{name}\": offset 5000 is past the end \
             (the region's size is 4096 bytes)"
        )
    );
    assert_eq!(
        run(&["read", &name, "--offset", "4000", "--len", "200"]).fails(1),
        format!(
            "memlink: cannot read region \"{name}\": 200 bytes at offset 4000 go past the end \
             (the region's size is 4096 bytes)"
        )
    );
    assert_eq!(
        run(&[
            "write",
            &name,
            "--offset",
            "4090",
            "--text",
            "0123456789",
            "-e",
            "utf-8"
        ])
        .fails(1),
        format!(
            "memlink: cannot write region \"{name}\": 11 bytes at offset 4090 go past the end \
             (the region's size is 4096 bytes)"
        )
    );
    // A text that fits only without its NUL gets a hint.
    let stderr = run(&[
        "write", &name, "--offset", "4091", "--text", "abcde", "-e", "utf-8",
    ])
    .fails(1)
    .to_owned();
    assert!(
        stderr.ends_with("; the text fits without its NUL (--no-nul)"),
        "{stderr}"
    );
    run(&[
        "write", &name, "--offset", "4091", "--text", "abcde", "--no-nul", "-e", "utf-8",
    ])
    .ok();
    assert_eq!(run(&["read", &name, "--offset", "4091"]).ok(), "abcde\n");
}

#[test]
fn a_text_too_big_for_the_size_makes_nothing() {
    let name = unique("toobig");
    assert_eq!(
        run(&["create", &name, "--size", "4", "--text", "four", "-e", "utf-8"]).fails(1),
        format!(
            "memlink: cannot create region \"{name}\": 5 bytes (the text and its NUL) \
             do not fit in 4 bytes"
        )
    );
    run(&["info", &name]).fails(1);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["read"]).code, Some(2));
    assert_eq!(run(&["write", "x"]).code, Some(2)); // no input given
    assert_eq!(run(&["read", "x", "--hex", "--raw"]).code, Some(2));
    assert_eq!(
        run(&["create", "x", "--size", "4K", "--mode", "999"]).code,
        Some(2)
    );
    assert_eq!(run(&["watch", "x", "--interval", "soon"]).code, Some(2));
    assert_eq!(run(&["frobnicate"]).code, Some(2));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert!(out.ok().contains("memlink"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).code, Some(2));
}

#[test]
fn a_reader_that_leaves_early_ends_the_output_quietly() {
    // `memlink completions bash | head -1`: the pipe's reader is gone
    // before the script is written (or, if memlink wins the race, the pipe
    // takes it all); either way no panic and no error.
    let out = support::run_with_output_closed(&["completions", "bash"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// `text` as a UNICODE Win32 program keeps it: UTF-16LE and a two-byte NUL.
fn wide(text: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    bytes.extend_from_slice(&[0, 0]);
    bytes
}

#[test]
fn wide_text_as_the_seeds_write_it_reads_as_text() {
    let name = unique("wide");
    let _held = Held::start(&["create", &name, "--size", "4K"], "holding it");
    // The bytes the seeds' process 1 leaves in the mapping.
    run_with_input(&["write", &name, "-"], &wide("Hello from process 1")).ok();
    assert_eq!(run(&["read", &name]).ok(), "Hello from process 1\n");
    assert_eq!(
        run(&["read", &name, "--utf16"]).ok(),
        "Hello from process 1\n"
    );
    // Asked for UTF-8, the same bytes are one letter and a NUL.
    assert_eq!(run(&["read", &name, "--encoding", "utf-8"]).ok(), "H\n");
    // A text written over them keeps their encoding, for their process 2.
    run(&["write", &name, "--text", "Hello from memlink"]).ok();
    let raw = run(&["read", &name, "--raw", "--len", "38"]);
    raw.ok();
    assert_eq!(raw.bytes, wide("Hello from memlink"));
    // Non-ASCII text, both ways.
    run(&["write", &name, "--text", "wide é and 你好", "--utf16"]).ok();
    assert_eq!(
        run(&["read", &name, "-e", "utf-16le"]).ok(),
        "wide é and 你好\n"
    );
    run(&["write", &name, "--text", "narrow é", "-e", "utf-8"]).ok();
    assert_eq!(run(&["read", &name]).ok(), "narrow é\n");
    assert_eq!(run(&["read", &name, "--len", "3"]).ok(), "nar\n");
}

#[test]
fn new_text_is_wide_on_windows_and_utf8_elsewhere() {
    let name = unique("native");
    let held = Held::start(
        &["create", &name, "--size", "4K", "--text", "Hi"],
        "holding it",
    );
    let raw = run(&["read", &name, "--raw", "--len", "6"]);
    raw.ok();
    if cfg!(windows) {
        assert_eq!(
            held.seen[1],
            "wrote 6 bytes (the text in UTF-16LE and its NUL) at offset 0"
        );
        assert_eq!(raw.bytes, wide("Hi"));
    } else {
        assert_eq!(
            held.seen[1],
            "wrote 3 bytes (the text and its NUL) at offset 0"
        );
        assert_eq!(raw.bytes, b"Hi\0\0\0\0");
    }
    assert_eq!(run(&["read", &name]).ok(), "Hi\n");
    let utf16 = run(&[
        "create",
        &unique("toowide"),
        "--size",
        "4",
        "--utf16",
        "--text",
        "four",
    ]);
    assert_eq!(
        utf16.fails(1),
        format!(
            "memlink: cannot create region \"{}\": 10 bytes (the text in UTF-16LE and its NUL) \
             do not fit in 4 bytes",
            unique("toowide")
        )
    );
    assert_eq!(run(&["read", &name, "--encoding", "latin-1"]).code, Some(2));
}

#[test]
fn wait_returns_once_the_name_exists_and_times_out_with_124() {
    let name = unique("waitfor");
    assert_eq!(
        run(&["wait", &name, "--timeout", "100ms"]).fails(124),
        format!("memlink: cannot wait for \"{name}\": it did not appear within 100ms")
    );
    let mut waiter = support::memlink(&["wait", &name, "--timeout", "60s"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _held = Held::start(&["create", &name, "--size", "4K"], "holding it");
    let status = support::wait_with_deadline(&mut waiter);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn lock_runs_a_command_holding_the_mutex_and_exits_as_it_does() {
    let name = unique("lock");
    // The command's exit status is lock's.
    run(&["lock", &name, "--", support::BIN, "--version"]).ok();
    assert_eq!(
        run(&["lock", &name, "--", support::BIN, "frobnicate"]).code,
        Some(2)
    );
    // Held by another process: a timed lock gives up with 124.
    let _holder = Held::start(&["lock", &name], "locked mutex");
    let busy = run(&[
        "lock",
        &name,
        "--timeout",
        "100ms",
        "--",
        support::BIN,
        "--version",
    ]);
    assert_eq!(busy.code, Some(124), "{}", busy.stderr);
    assert!(
        busy.stdout.is_empty(),
        "the command must not run: {}",
        busy.stdout
    );
}

#[test]
fn events_are_set_reset_and_waited_on_from_the_command_line() {
    let name = unique("event");
    let event = memlink::Event::create(&name, memlink::EventReset::Manual, false).unwrap();
    assert_eq!(
        run(&["event", "wait", &name, "--timeout", "50ms"]).code,
        Some(124)
    );
    run(&["event", "set", &name]).ok();
    assert!(event.try_wait().unwrap(), "set by the command");
    run(&["event", "wait", &name, "--timeout", "5s"]).ok();
    run(&["event", "reset", &name]).ok();
    assert!(!event.try_wait().unwrap(), "reset by the command");
    assert_eq!(
        run(&["event", "set", &unique("noevent")]).fails(1),
        format!(
            "memlink: cannot open event \"{}\": not found",
            unique("noevent")
        )
    );
}

#[test]
fn semaphores_are_released_and_waited_on_from_the_command_line() {
    let name = unique("sem");
    let semaphore = memlink::Semaphore::create(&name, 0, 4).unwrap();
    assert_eq!(run(&["semaphore", "release", &name, "-n", "2"]).ok(), "0\n");
    run(&["semaphore", "wait", &name, "--timeout", "5s"]).ok();
    run(&["semaphore", "wait", &name]).ok();
    assert_eq!(
        run(&["semaphore", "wait", &name, "--timeout", "50ms"]).code,
        Some(124)
    );
    assert_eq!(
        semaphore.release(1).unwrap(),
        0,
        "both taken by the commands"
    );
    assert!(run(&["semaphore", "release", &name, "-n", "9"])
        .fails(1)
        .starts_with(&format!("memlink: cannot release semaphore \"{name}\"")));
}

#[test]
fn a_background_create_that_fails_says_why_and_exits_as_create_would() {
    let name = unique("bgtaken");
    let _held = Held::start(&["create", &name, "--size", "4K"], "holding it");
    assert_eq!(
        run(&["create", &name, "--size", "4K", "--background"]).fails(1),
        format!("memlink: cannot create region \"{name}\": already exists")
    );
}

#[test]
fn small_things_read_right() {
    let name = unique("small");
    let held = Held::start(
        &[
            "create", &name, "--size", "0x1", "--text", "", "-e", "utf-8",
        ],
        "holding it",
    );
    assert!(
        held.seen[0].contains(": 1 byte, lifetime"),
        "{:?}",
        held.seen
    );
    assert_eq!(
        held.seen[1],
        "wrote 1 byte (the text and its NUL) at offset 0"
    );
    let huge = run(&["create", &unique("huge"), "--size", "18446744073709551615"]);
    assert!(
        huge.fails(2).contains("a region can have at most"),
        "{}",
        huge.stderr
    );
    let long = "a".repeat(5000);
    assert_eq!(
        run(&["demo", "--name", &name, "--text", &long, "-e", "utf-8"]).fails(1),
        format!(
            "memlink: cannot create region \"{name}\": 5001 bytes (the text in UTF-8 and its \
             NUL) do not fit in 4096 bytes"
        )
    );
}

/// The README's command table names every long option of these commands.
#[test]
fn the_readme_command_table_names_every_option() {
    let readme = include_str!("../../../README.md");
    let table = &readme[readme
        .find("| command | what it does |")
        .expect("the table")..];
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    for command in ["create", "read", "write", "watch", "wait", "lock"] {
        let help = run(&[command, "--help"]);
        for word in help
            .ok()
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            if word.starts_with("--")
                && word.len() > 2
                && !matches!(word, "--help" | "--version" | "--color")
            {
                assert!(
                    table.contains(word),
                    "the README's table lacks `{command} {word}`"
                );
            }
        }
    }
}

#[test]
fn create_in_the_background_returns_once_the_region_exists() {
    for round in 0..3 {
        let name = unique(&format!("bg{round}"));
        let started = run(&["create", &name, "--size", "4K", "--background"]);
        let pid: u32 = started
            .ok()
            .trim()
            .parse()
            .expect("only the pid is printed");
        // At once, with no wait of its own: the region exists.
        run(&["write", &name, "--text", "hi"]).ok();
        assert_eq!(run(&["read", &name]).ok(), "hi\n");
        // Ended as a user would end it, the holder closes the region.
        let pid = pid.to_string();
        let (program, args) = if cfg!(windows) {
            ("taskkill", vec!["/F", "/PID", pid.as_str()])
        } else {
            ("kill", vec![pid.as_str()])
        };
        let status = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{program} {pid}");
        let deadline = std::time::Instant::now() + support::DEADLINE;
        while run(&["read", &name]).code == Some(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the background holder kept {name}"
            );
            // The holder's end has nothing to block on from here.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            run(&["read", &name]).fails(1),
            format!("memlink: cannot open region \"{name}\": not found")
        );
    }
}
