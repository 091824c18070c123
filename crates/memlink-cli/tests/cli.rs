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
        &["create", &name, "--size", "4KiB", "--text", "hello, world"],
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
        run(&["write", &name, "--offset", "4090", "--text", "0123456789"]).fails(1),
        format!(
            "memlink: cannot write region \"{name}\": 11 bytes at offset 4090 go past the end \
             (the region's size is 4096 bytes)"
        )
    );
    // A text that fits only without its NUL gets a hint.
    let stderr = run(&["write", &name, "--offset", "4091", "--text", "abcde"])
        .fails(1)
        .to_owned();
    assert!(
        stderr.ends_with("; the text fits without its NUL (--no-nul)"),
        "{stderr}"
    );
    run(&[
        "write", &name, "--offset", "4091", "--text", "abcde", "--no-nul",
    ])
    .ok();
    assert_eq!(run(&["read", &name, "--offset", "4091"]).ok(), "abcde\n");
}

#[test]
fn a_text_too_big_for_the_size_makes_nothing() {
    let name = unique("toobig");
    assert_eq!(
        run(&["create", &name, "--size", "4", "--text", "four"]).fails(1),
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
