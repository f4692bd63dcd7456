//! The command-line tools' option checks and topic selection, as Kafka's tools make
//! them: the same refusals with the same messages and exit status 1, `--topic` as a
//! regular expression, several groups at once, and a group given as a consumer property.

mod common;

use common::{fjord, BrokerProcess, FJORD};

/// Runs the CLI; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(FJORD)
        .args(args)
        .output()
        .expect("run fjord");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(args: &[&str], message: &str) {
    let (code, _, err) = run(args);
    assert_eq!(code, 1, "{args:?} exits 1, as Kafka's tools: {err}");
    assert!(err.contains(message), "{args:?}: expected {message:?} in {err}");
}

#[test]
fn option_checks_refuse_what_kafkas_tools_refuse() {
    // Refused before any connection: no broker is needed, and none is reached.
    let b = "127.0.0.1:1";
    let cg = |rest: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["consumer-groups", "--bootstrap-server", "127.0.0.1:1"];
        v.extend_from_slice(rest);
        v
    };
    let cases: &[(Vec<&str>, &str)] = &[
        (cg(&["--group", "g"]), "Command must include exactly one action"),
        (
            cg(&["--describe"]),
            "Option [describe] takes one of these options: [group], [all-groups]",
        ),
        (
            cg(&["--describe", "--group", "g", "--members", "--state"]),
            "Option [describe] takes at most one of these options",
        ),
        (
            cg(&["--delete", "--group", "g", "--topic", "t"]),
            "The consumer does not support topic-specific offset deletion",
        ),
        (
            cg(&["--delete-offsets", "--group", "g"]),
            "Option [delete-offsets] takes the following options",
        ),
        (
            cg(&[
                "--reset-offsets",
                "--group",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--dry-run",
                "--execute",
            ]),
            "Option [reset-offsets] only accepts one of [execute] and [dry-run]",
        ),
        (
            cg(&[
                "--reset-offsets",
                "--group",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest",
            ]),
            "can't be used with option",
        ),
        (
            cg(&["--reset-offsets", "--group", "g", "--to-earliest"]),
            "One of the reset scopes should be defined: --all-topics, --topic.",
        ),
        (
            cg(&["--reset-offsets", "--group", "g", "--topic", "t"]),
            "Option '[reset-offsets]' requires one of the following scenarios",
        ),
        (
            cg(&["--describe", "--group", "g", "--to-latest"]),
            "applicable only with [reset-offsets]",
        ),
        (
            cg(&["--list", "--group", "g"]),
            "Option \"[group]\" can't be used with option \"[list]\"",
        ),
        (
            cg(&["--describe", "--group", "g", "--all-groups"]),
            "can't be used with option \"[all-groups]\"",
        ),
        (
            vec!["topics", "--bootstrap-server", b, "--topic", "t"],
            "Command must include exactly one action",
        ),
        (
            vec!["topics", "--bootstrap-server", b, "--delete"],
            "Missing required argument \"[topic]\"",
        ),
        (
            vec!["topics", "--bootstrap-server", b, "--alter", "--topic", "t"],
            "Missing required argument \"[partitions]\"",
        ),
        (
            vec!["topics", "--bootstrap-server", b, "--list", "--partitions", "3"],
            "Option \"[partitions]\" can't be used with option \"[list]\"",
        ),
        (
            vec![
                "topics",
                "--bootstrap-server",
                b,
                "--describe",
                "--replication-factor",
                "1",
            ],
            "Option \"[replication-factor]\" can't be used with option \"[describe]\"",
        ),
        (
            vec![
                "topics",
                "--bootstrap-server",
                b,
                "--create",
                "--topic",
                "t",
                "--if-exists",
            ],
            "Option \"[if-exists]\" can't be used with option \"[create]\"",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--partition",
                "0",
                "--offset",
                "3",
                "--from-beginning",
            ],
            "Options from-beginning and offset cannot be specified together.",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--offset",
                "3",
            ],
            "The partition is required when offset is specified.",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--partition",
                "0",
                "--offset",
                "-2",
            ],
            "The provided offset value '-2' is incorrect.",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--group",
                "a",
                "--consumer-property",
                "group.id=b",
            ],
            "Detected group ids: 'a', 'b'",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--consumer-property",
                "group.id=a",
                "--partition",
                "0",
            ],
            "Options group and partition cannot be specified together.",
        ),
        (
            vec!["console-consumer", "--bootstrap-server", b],
            "Exactly one of --include/--topic is required.",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--topic",
                "t",
                "--include",
                "t.*",
            ],
            "Exactly one of --include/--topic is required.",
        ),
        (
            vec![
                "console-consumer",
                "--bootstrap-server",
                b,
                "--include",
                "t.*",
                "--partition",
                "0",
            ],
            "The topic is required when partition is specified.",
        ),
        // clap's own usage errors exit 1 too (clap's code is 2).
        (
            vec!["topics", "--bootstrap-server", b, "--list", "--describe"],
            "cannot be used with",
        ),
        (vec!["topics", "--no-such-flag"], "unexpected argument"),
    ];
    for (args, message) in cases {
        refused(args, message);
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage"));
}

#[test]
fn topics_are_selected_by_regular_expression_and_groups_by_name_or_all() {
    let mut b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let bs = b.bootstrap.clone();
    for t in ["cli-a", "cli-b", "other"] {
        common::create_topic_cli(&bs, t, "1");
    }
    let topics = |rest: &[&str]| -> Vec<String> {
        let mut v = vec!["topics", "--bootstrap-server", bs.as_str()];
        v.extend_from_slice(rest);
        v.iter().map(|s| s.to_string()).collect()
    };
    // --list: a regular expression over whole names; a missing topic lists nothing.
    assert_eq!(ok(&refs(&topics(&["--list", "--topic", "cli-.*"]))), "cli-a\ncli-b\n");
    assert_eq!(
        ok(&refs(&topics(&["--list", "--topic", "cli-a,other"]))),
        "cli-a\nother\n"
    );
    assert_eq!(
        ok(&refs(&topics(&["--list", "--topic", "cli"]))),
        "",
        "whole names only"
    );
    assert_eq!(ok(&refs(&topics(&["--list", "--topic", "missing"]))), "");
    // --describe: every match; a --topic that matches nothing is an error unless --if-exists.
    let out = ok(&refs(&topics(&["--describe", "--topic", "cli-.*"])));
    assert_eq!(out.lines().filter(|l| l.starts_with("Topic: ")).count(), 2, "{out}");
    refused(
        &refs(&topics(&["--describe", "--topic", "missing"])),
        "Topic 'missing' does not exist as expected",
    );
    assert_eq!(
        ok(&refs(&topics(&["--describe", "--topic", "missing", "--if-exists"]))),
        ""
    );
    refused(
        &refs(&topics(&["--delete", "--topic", "missing"])),
        "does not exist as expected",
    );

    // A group named through --consumer-property joins and commits, as with --group.
    let produce = |topic: &str| {
        let (good, _, err) = fjord(
            &["console-producer", "--bootstrap-server", &bs, "--topic", topic],
            Some("1\n2\n3\n"),
        );
        assert!(good, "{err}");
    };
    produce("cli-a");
    produce("cli-b");
    for (group, topic) in [("g1", "cli-a"), ("g2", "cli-b")] {
        let (good, out, err) = fjord(
            &[
                "console-consumer",
                "--bootstrap-server",
                &bs,
                "--topic",
                topic,
                "--from-beginning",
                "--max-messages",
                "3",
                "--timeout-ms",
                "20000",
                "--consumer-property",
                &format!("group.id={group}"),
            ],
            None,
        );
        assert!(good, "{err}");
        assert_eq!(out, "1\n2\n3\n");
    }
    let cg = |rest: &[&str]| -> Vec<String> {
        let mut v = vec!["consumer-groups", "--bootstrap-server", bs.as_str()];
        v.extend_from_slice(rest);
        v.iter().map(|s| s.to_string()).collect()
    };
    let rows = |out: &str, group: &str| -> Vec<Vec<String>> {
        out.lines()
            .filter(|l| l.starts_with(group))
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    // --describe of two groups, by name and with --all-groups.
    for selection in [vec!["--group", "g1", "--group", "g2"], vec!["--all-groups"]] {
        let mut args = vec!["--describe"];
        args.extend(selection);
        let out = ok(&refs(&cg(&args)));
        assert_eq!(rows(&out, "g1")[0][1..4], ["cli-a", "0", "3"], "{out}");
        assert_eq!(rows(&out, "g2")[0][1..4], ["cli-b", "0", "3"], "{out}");
    }
    // A group that does not exist is reported as Kafka's tool reports it (stdout,
    // status 0), and the others are still described.
    let (code, out, err) = run(&refs(&cg(&[
        "--describe",
        "--group",
        "g1",
        "--group",
        "nosuch",
        "--group",
        "g2",
    ])));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\nError: Consumer group 'nosuch' does not exist.\n"),
        "{out}"
    );
    assert_eq!(rows(&out, "g1").len() + rows(&out, "g2").len(), 2, "{out}");
    // --reset-offsets --all-topics of every group, to a time given with a zone offset:
    // before every record, so back to the start.
    let out = ok(&refs(&cg(&[
        "--reset-offsets",
        "--all-groups",
        "--all-topics",
        "--to-datetime",
        "2000-01-01T01:00:00.000+01:00",
        "--execute",
    ])));
    assert_eq!(rows(&out, "g1"), [["g1", "cli-a", "0", "0"]], "{out}");
    assert_eq!(rows(&out, "g2"), [["g2", "cli-b", "0", "0"]], "{out}");
    let out = ok(&refs(&cg(&["--describe", "--group", "g1"])));
    assert_eq!(rows(&out, "g1")[0][1..6], ["cli-a", "0", "0", "3", "3"], "{out}");
    // --delete by regular expression: the matches go, the rest stays.
    ok(&refs(&topics(&["--delete", "--topic", "cli-.*"])));
    common::wait_for("the deleted topics to leave the list", || {
        ok(&refs(&topics(&["--list", "--exclude-internal"]))) == "other\n"
    });
    refused(
        &refs(&topics(&["--delete", "--topic", "__consumer_offsets"])),
        "is a kafka internal topic and is not allowed to be marked for deletion",
    );
    b.stop();
}

/// `fjord perf produce` and `perf consume`, as kafka-producer-perf-test and
/// kafka-consumer-perf-test: what they say they sent is what the log holds, what they
/// say they read is all of it, and a window line comes every `--reporting-interval`.
#[test]
fn perf_tools_report_what_they_moved() {
    let b = BrokerProcess::start(&[]);
    let bs = b.bootstrap.as_str();
    common::create_topic_cli(bs, "perf", "2");
    let out = ok(&[
        "perf",
        "produce",
        "--bootstrap-server",
        bs,
        "--topic",
        "perf",
        "--num-records",
        "20000",
        "--record-size",
        "200",
        "--throughput",
        "20000",
        "--reporting-interval",
        "200",
        "--producer-props",
        "acks=all",
        "linger.ms=5",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    let summary = lines.last().expect("a summary line");
    assert!(summary.starts_with("20000 records sent, "), "{out}");
    assert!(summary.contains(" ms 99th, "), "{out}");
    // At 20,000 records/s the run lasts about a second: several 200 ms windows, each
    // counting records that the summary counts too.
    let windows: Vec<u64> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            assert!(l.ends_with(" ms max latency."), "a window line: {l}");
            l.split(' ').next().and_then(|n| n.parse().ok()).expect("a count")
        })
        .collect();
    assert!(windows.len() >= 3, "windows of 200 ms over about 1 s: {out}");
    assert!(windows.iter().sum::<u64>() <= 20000, "{out}");
    let offsets = ok(&["get-offsets", "--bootstrap-server", bs, "--topic", "perf"]);
    let total: u64 = offsets
        .lines()
        .map(|l| {
            l.rsplit(':')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("an offset")
        })
        .sum();
    assert_eq!(total, 20000, "the log holds what perf produce reported: {offsets}");

    let consume = |messages: &str| {
        run(&[
            "perf",
            "consume",
            "--bootstrap-server",
            bs,
            "--topic",
            "perf",
            "--messages",
            messages,
            "--timeout-ms",
            "2000",
        ])
    };
    let (code, out, err) = consume("20000");
    assert_eq!(code, 0, "{err}");
    let fields: Vec<&str> = out.lines().nth(1).expect("a figures line").split(", ").collect();
    assert_eq!(fields[2], "20000", "{out}");
    assert_eq!(fields[0], "3.8147", "20,000 x 200 bytes in MiB: {out}");
    // Asked for more than there is: it stops after the timeout and says so.
    let (code, _, err) = consume("30000");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("consumed 20000 of 30000 messages"), "{err}");
    refused(
        &[
            "perf",
            "produce",
            "--mock",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--reporting-interval",
            "0",
        ],
        "--reporting-interval",
    );
}

/// The console tools keep what they were given, as Kafka's: a line that does not parse
/// stops the producer, after the lines before it are delivered; headers and a null
/// marker are read as `LineMessageReader` reads them; the consumer commits only what it
/// printed, and a `--consumer-property` wins over its defaults.
#[test]
fn console_tools_keep_what_they_were_given() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let bs = b.bootstrap.as_str();
    common::create_topic_cli(bs, "lines", "1");
    let produce = |props: &[&str], input: &str| {
        let mut args = vec!["console-producer", "--bootstrap-server", bs, "--topic", "lines"];
        for p in props {
            args.extend(["--property", p]);
        }
        fjord(&args, Some(input))
    };
    let (good, _, err) = produce(&["parse.key=true"], "k1\tv1\nnosep\nk3\tv3\n");
    assert!(!good);
    assert!(
        err.contains("No key separator found on line number 2: 'nosep'"),
        "{err}"
    );
    let latest = || ok(&["get-offsets", "--bootstrap-server", bs, "--topic", "lines"]);
    assert_eq!(latest(), "lines:0:1\n", "the line before the bad one is delivered");
    let (good, _, err) = produce(&["parse.headers=true", "parse.key=true"], "h1:x,h2:y\tk2\tv2\n");
    assert!(good, "{err}");
    let (good, _, err) = produce(&["parse.key=true", "ignore.error=true"], "whole line\n");
    assert!(good, "{err}");
    let consumer_args = |extra: &[&'static str]| {
        let mut args = vec!["console-consumer", "--bootstrap-server", bs, "--topic", "lines"];
        args.extend_from_slice(extra);
        args
    };
    let consume = |extra: &[&'static str]| run(&consumer_args(extra));
    // All three, keys and headers printed.
    let formatted = |extra: &[&'static str]| {
        let mut args = vec![
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
        ];
        args.extend_from_slice(extra);
        consume(&args)
    };
    let (code, out, err) = formatted(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "NO_HEADERS\tk1\tv1\nh1:x,h2:y\tk2\tv2\nNO_HEADERS\tnull\twhole line\n"
    );
    // The formatter's other properties, as Kafka's `DefaultMessageFormatter`.
    let (code, out, err) = formatted(&[
        "--property",
        "print.value=false",
        "--property",
        "headers.separator=|",
        "--property",
        "null.literal=<none>",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "NO_HEADERS\tk1\nh1:x|h2:y\tk2\nNO_HEADERS\t<none>\n");
    // Each of five new groups prints one message and commits exactly that one.
    for g in ["g1", "g2", "g3", "g4", "g5"] {
        let (code, out, err) = consume(&["--group", g, "--from-beginning", "--max-messages", "1"]);
        assert_eq!((code, out.as_str()), (0, "v1\n"), "{err}");
        let described = ok(&["consumer-groups", "--bootstrap-server", bs, "--describe", "--group", g]);
        let row: Vec<&str> = described
            .lines()
            .find(|l| l.starts_with(g))
            .expect("a row")
            .split_whitespace()
            .collect();
        assert_eq!(row[3], "1", "CURRENT-OFFSET of {g}: {described}");
    }
    // The next run of a group goes on from there.
    let (code, out, _) = consume(&["--group", "g1", "--max-messages", "1"]);
    assert_eq!((code, out.as_str()), (0, "v2\n"));
    // The user's auto.offset.reset wins over the default (latest); a conflicting one
    // beside --from-beginning is refused.
    let (code, out, err) = consume(&[
        "--group",
        "fresh",
        "--max-messages",
        "3",
        "--consumer-property",
        "auto.offset.reset=earliest",
    ]);
    assert_eq!((code, out.as_str()), (0, "v1\nv2\nwhole line\n"), "{err}");
    refused(
        &consumer_args(&["--from-beginning", "--consumer-property", "auto.offset.reset=latest"]),
        "Can't simultaneously specify --from-beginning and 'auto.offset.reset=latest', please remove one option",
    );
    // A reader that went away (`| head -1`): the tools end quietly, status 0.
    for args in [
        &["topics", "--bootstrap-server", bs, "--list"][..],
        &["consumer-groups", "--bootstrap-server", bs, "--list"][..],
        &consumer_args(&["--from-beginning", "--max-messages", "3"])[..],
    ] {
        let mut child = std::process::Command::new(FJORD)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Without `--group`, Kafka's console consumer subscribes under a made-up group
/// `console-consumer-<n>` that commits nothing (so it shows in `--list` while it runs),
/// and a topic that does not exist yet is created by its subscription and read once
/// records arrive; `--include` subscribes to every topic whose whole name matches.
#[test]
fn console_consumer_without_a_group_subscribes_and_waits_for_its_topic() {
    use std::io::{BufRead, BufReader};
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let bs = b.bootstrap.clone();
    let mut child = std::process::Command::new(FJORD)
        .args([
            "console-consumer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "not-yet",
            "--from-beginning",
            "--max-messages",
            "2",
            "--timeout-ms",
            "60000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let list = |args: &[&str]| ok(args).lines().map(str::to_string).collect::<Vec<_>>();
    common::wait_for("the subscription to create the topic", || {
        list(&["topics", "--bootstrap-server", &bs, "--list"]).contains(&"not-yet".to_string())
    });
    let groups = |bs: &str| -> Vec<String> {
        list(&["consumer-groups", "--bootstrap-server", bs, "--list"])
            .into_iter()
            .filter(|g| g.starts_with("console-consumer-"))
            .collect()
    };
    common::wait_for("the made-up group to have formed", || groups(&bs).len() == 1);
    let group = groups(&bs).remove(0);
    let number = group.strip_prefix("console-consumer-").unwrap_or_default();
    assert!(
        number.parse::<u32>().is_ok_and(|n| n < 100_000),
        "Kafka's form: console-consumer-<0..100000>: {group}"
    );
    let (good, _, err) = fjord(
        &["console-producer", "--bootstrap-server", &bs, "--topic", "not-yet"],
        Some("first\nsecond\n"),
    );
    assert!(good, "{err}");
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        out.push_str(&(line.expect("line") + "\n"));
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    assert_eq!(out, "first\nsecond\n");
    // Nothing was committed under the made-up group.
    let described = ok(&[
        "consumer-groups",
        "--bootstrap-server",
        &bs,
        "--describe",
        "--group",
        &group,
    ]);
    assert!(!described.contains("not-yet"), "no committed offsets: {described}");

    // --include: both topics it matches, not the one it does not.
    for (topic, line) in [
        ("inc-a", "a\n"),
        ("inc-b", "b\n"),
        ("inc-not", "x\n"),
        ("xinc-a", "y\n"),
    ] {
        let (good, _, err) = fjord(
            &["console-producer", "--bootstrap-server", &bs, "--topic", topic],
            Some(line),
        );
        assert!(good, "{err}");
    }
    let out = ok(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--include",
        "inc-[ab]",
        "--from-beginning",
        // Ends 5 s after the last record: a topic matched wrongly would print too.
        "--timeout-ms",
        "5000",
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["a", "b"]);
}

/// get-offsets selects partitions as Kafka's `GetOffsetShell`: `--topic` a regular
/// expression over whole names, `--topic-partitions` rules `REGEX[:P | :FIRST-LAST]`
/// (LAST excluded, `:P` alone for every topic), `--exclude-internal-topics`; lines in
/// the order of "topic-partition" as a string; Kafka's refusals.
#[test]
fn get_offsets_selects_partitions_as_kafkas_get_offset_shell() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let bs = b.bootstrap.as_str();
    for (topic, partitions) in [("go-a", "3"), ("go-b", "1"), ("other", "1"), ("go-c", "12")] {
        common::create_topic_cli(bs, topic, partitions);
    }
    let (good, _, err) = fjord(
        &["console-producer", "--bootstrap-server", bs, "--topic", "go-b"],
        Some("x\ny\n"),
    );
    assert!(good, "{err}");
    let lines = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["get-offsets", "--bootstrap-server", bs];
        args.extend_from_slice(extra);
        ok(&args).lines().map(str::to_string).collect()
    };
    assert_eq!(
        lines(&["--topic", "go-[ab]", "--time", "-2"]),
        ["go-a:0:0", "go-a:1:0", "go-a:2:0", "go-b:0:0"]
    );
    assert_eq!(lines(&["--topic", "go-b"]), ["go-b:0:2"], "latest by default");
    assert_eq!(
        lines(&["--topic-partitions", "go-a:1-3,other", "--time", "earliest"]),
        ["go-a:1:0", "go-a:2:0", "other:0:0"]
    );
    assert_eq!(
        lines(&["--topic-partitions", "go-[abc]:-1,other:0", "--time", "-2"]),
        ["go-a:0:0", "go-b:0:0", "go-c:0:0", "other:0:0"]
    );
    // Kafka's order is the string "go-c-10" before "go-c-2".
    let c = lines(&["--topic", "go-c", "--partitions", "1,2,10", "--time", "-2"]);
    assert_eq!(c, ["go-c:1:0", "go-c:10:0", "go-c:2:0"]);
    // Every topic without a filter; internal ones unless excluded.
    let (good, _, err) = fjord(
        &[
            "console-consumer",
            "--bootstrap-server",
            bs,
            "--topic",
            "go-b",
            "--group",
            "g",
            "--from-beginning",
            "--max-messages",
            "1",
        ],
        None,
    );
    assert!(good, "{err}");
    let all = lines(&["--time", "-2"]);
    assert!(all.iter().any(|l| l.starts_with("__consumer_offsets:")), "{all:?}");
    assert_eq!(all.len(), 3 + 1 + 1 + 12 + 50);
    let external = lines(&["--time", "-2", "--exclude-internal-topics"]);
    assert_eq!(external.len(), 17, "{external:?}");
    for (args, message) in [
        (
            vec!["--topic", "go-a", "--topic-partitions", "go-a:0"],
            "--topic-partitions cannot be used with --topic or --partitions",
        ),
        (
            vec!["--topic", "go-a", "--time", "soon"],
            "Malformed time argument soon. Please use -1 or latest / -2 or earliest / -3 or max-timestamp / -4 or earliest-local / -5 or latest-tiered, or a specified long format timestamp",
        ),
        (
            vec!["--topic", "go-a", "--partitions", "0,x"],
            "--partitions expects a comma separated list of numeric partition ids, but received: 0,x",
        ),
        (vec!["--topic-partitions", "go-a:1x"], "Invalid rule specification: go-a:1x"),
        (
            vec!["--topic", "nothing-.*"],
            "Could not match any topic-partitions with the specified filters",
        ),
    ] {
        let mut all = vec!["get-offsets", "--bootstrap-server", bs];
        all.extend(args);
        refused(&all, message);
    }
}

/// dump-log prints as Kafka's `DumpLogSegments`: the "Log starting offset" line, each
/// batch with deleteHorizonMs, and with --deep-iteration each record's offset,
/// timestamp, sizes, sequence and header keys, with --print-data-log its key (when
/// there is one) and payload too.
#[test]
fn dump_log_prints_as_kafkas_dump_log_segments() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let b = BrokerProcess::start(&[]);
    common::create_topic_cli(&b.bootstrap, "dumped", "1");
    let p: BaseProducer = common::rdkafka_config(&b.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "100")
        .create()
        .expect("producer");
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "h",
        value: Some("x"),
    });
    p.send(
        BaseRecord::to("dumped")
            .key("k0")
            .payload("v0")
            .timestamp(1_000)
            .headers(headers),
    )
    .expect("send");
    p.send(BaseRecord::<(), str>::to("dumped").payload("v1").timestamp(1_001))
        .expect("send");
    p.flush(std::time::Duration::from_secs(10)).expect("flush");
    let segment = b.data_dir.join("dumped-0").join("00000000000000000000.log");
    let path = segment.to_str().expect("path");
    let out = ok(&["dump-log", "--files", path, "--print-data-log"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("Dumping {path}"));
    assert_eq!(lines[1], "Log starting offset: 0");
    assert!(
        lines[2].starts_with("baseOffset: 0 ")
            && lines[2].contains(" isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: "),
        "{out}"
    );
    let records: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(
        records,
        [
            "| offset: 0 CreateTime: 1000 keySize: 2 valueSize: 2 sequence: 0 headerKeys: [h] key: k0 payload: v0",
            "| offset: 1 CreateTime: 1001 keySize: -1 valueSize: 2 sequence: 1 headerKeys: [] payload: v1",
        ],
        "{out}"
    );
    let deep = ok(&["dump-log", "--files", path, "--deep-iteration"]);
    assert!(
        deep.contains("| offset: 1 CreateTime: 1001 keySize: -1 valueSize: 2 sequence: 1 headerKeys: []\n"),
        "{deep}"
    );
}
