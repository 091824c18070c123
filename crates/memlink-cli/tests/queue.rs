//! `memlink push` and `memlink pop` between real processes, and queues in
//! `ls` / `info`.

mod support;

use support::{run, run_with_input, unique, Held};

#[test]
fn push_reaches_a_popping_consumer_and_ls_and_info_show_the_queue() {
    let name = unique("queue");
    let mut pop = Held::start_quiet(&["pop", &name, "-n", "3"]);
    run(&["push", &name, "--text", "first", "--wait-consumers", "1"]).ok();
    let ls = run(&["ls"]);
    let line = ls
        .ok()
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} not in:\n{}", ls.stdout));
    if !cfg!(windows) {
        assert!(line.contains(" queue "), "{line}");
    }
    assert!(line.contains("0 prod, 1 cons"), "{line}");
    let info = run(&["info", &name]);
    let text = info.ok();
    assert!(text.contains("slices of u8"), "{text}");
    assert!(text.contains("redelivered"), "{text}");
    let consumers = text.lines().find(|l| l.starts_with("consumers")).unwrap();
    // Windows tells another process's program, not its arguments.
    let program = if cfg!(windows) { "memlink" } else { "pop" };
    assert!(consumers.contains(program), "{text}");
    run_with_input(&["push", &name, "-"], b"second\nthird\n").ok();
    assert_eq!(pop.wait_exit(), Some(0));
    assert_eq!(pop.seen, ["first", "second", "third"]);
}

#[test]
fn bad_push_and_pop_input_says_what_is_wrong() {
    let name = unique("queue-bad");
    let err = run(&["pop", &name, "--timeout", "50ms"]);
    assert!(
        err.fails(124).contains("no message for 50ms"),
        "{}",
        err.stderr
    );
    let err = run(&["push", &name, "--text", "x", "-w", "1", "--timeout", "50ms"]);
    assert!(
        err.fails(124).contains("0 of 1 consumers connected"),
        "{}",
        err.stderr
    );
    let too_big = vec![b'x'; 5000];
    let err = run_with_input(&["push", &name, "-"], &too_big);
    assert!(
        err.fails(1)
            .contains("larger than the queue's largest, 4096"),
        "{}",
        err.stderr
    );
}
