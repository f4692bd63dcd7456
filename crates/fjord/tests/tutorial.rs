//! The seed tutorial's single-host steps, with Fjord's tools, and the config checks.

mod common;

use common::{fjord, FJORD};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn tutorial_walkthrough_with_the_tutorials_config_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("server10.properties");
    // The tutorial's keys: broker.id, port, host.name, advertised.host.name, log.dirs,
    // zookeeper.connect. Port 0 instead of 9090: tests never take a fixed port.
    std::fs::write(
        &config,
        format!(
            "broker.id=10\nport=0\nhost.name=127.0.0.1\nadvertised.host.name=127.0.0.1\nlog.dirs={}\nzookeeper.connect=127.0.0.1:2181\nnum.partitions=1\n",
            tmp.path().join("kafka-logs-10").display()
        ),
    )
    .unwrap();
    let mut server = Command::new(FJORD);
    server.arg("server").arg(&config).stderr(Stdio::piped());
    let (mut server, addr) = listening(server);

    let (ok, out, err) = fjord(
        &[
            "topics",
            "--create",
            "--bootstrap-server",
            &addr,
            "--replication-factor",
            "1",
            "--partitions",
            "1",
            "--topic",
            "testTopic",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created topic testTopic.");

    let (ok, out, _) = fjord(
        &[
            "topics",
            "--describe",
            "--bootstrap-server",
            &addr,
            "--topic",
            "testTopic",
        ],
        None,
    );
    assert!(ok);
    assert!(
        out.starts_with("Topic: testTopic\tTopicId: ")
            && out.contains("\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: "),
        "{out}"
    );
    let id = out
        .split("TopicId: ")
        .nth(1)
        .and_then(|r| r.split('\t').next())
        .unwrap_or("");
    assert_eq!(id.len(), 22, "a topic id in Kafka's base64 form: {out}");
    assert!(
        out.contains("\tTopic: testTopic\tPartition: 0\tLeader: 10\tReplicas: 10\tIsr: 10"),
        "{out}"
    );

    let (ok, _, err) = fjord(
        &["console-producer", "--broker-list", &addr, "--topic", "testTopic"],
        Some("this is a message\nthis is another message\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = fjord(
        &[
            "console-consumer",
            "--bootstrap-server",
            &addr,
            "--topic",
            "testTopic",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "this is a message\nthis is another message\n");
    assert!(err.contains("Processed a total of 2 messages"), "{err}");

    // Keys, as the console tools take and print them.
    let (ok, _, err) = fjord(
        &[
            "console-producer",
            "--bootstrap-server",
            &addr,
            "--topic",
            "keyed",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        Some("user1:clicked\nuser2:searched\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, _) = fjord(
        &[
            "console-consumer",
            "--bootstrap-server",
            &addr,
            "--topic",
            "keyed",
            "--from-beginning",
            "--max-messages",
            "2",
            "--property",
            "print.key=true",
        ],
        None,
    );
    assert!(ok);
    assert_eq!(out, "user1\tclicked\nuser2\tsearched\n");

    let (ok, out, _) = fjord(
        &["get-offsets", "--bootstrap-server", &addr, "--topic", "testTopic"],
        None,
    );
    assert!(ok);
    assert_eq!(out.trim(), "testTopic:0:2");
    // -3: the offset of the record with the largest timestamp, one of the two.
    let (ok, out, err) = fjord(
        &[
            "get-offsets",
            "--bootstrap-server",
            &addr,
            "--topic",
            "testTopic",
            "--time",
            "-3",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(["testTopic:0:0", "testTopic:0:1"].contains(&out.trim()), "{out}");
    // As Kafka's GetOffsetShell: a time after every record prints no line; filters that
    // match no partition are an error.
    let get_offsets = |extra: &[&str]| {
        let mut args = vec![
            "get-offsets",
            "--bootstrap-server",
            addr.as_str(),
            "--topic",
            "testTopic",
        ];
        args.extend_from_slice(extra);
        fjord(&args, None)
    };
    let (ok, out, err) = get_offsets(&["--time", "99999999999999"]);
    assert!(ok && out.is_empty(), "{out}{err}");
    let (ok, _, err) = get_offsets(&["--partitions", "7"]);
    assert!(
        !ok && err.contains("Could not match any topic-partitions with the specified filters"),
        "{err}"
    );

    let (ok, _, err) = fjord(&["topics", "--zookeeper", "127.0.0.1:2181", "--list"], None);
    assert!(!ok);
    assert!(
        err.contains("Fjord has no ZooKeeper") && err.contains("--bootstrap-server"),
        "{err}"
    );

    let _ = server.kill();
    let _ = server.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("zookeeper.connect is ignored"),
        "the ZooKeeper key is warned about: {log}"
    );
}

#[test]
fn a_bad_config_value_is_one_line_naming_key_and_value_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("never-created");
    let config = tmp.path().join("bad.properties");
    std::fs::write(&config, format!("log.dirs={}\nnum.partitions=many\n", data.display())).unwrap();
    let out = Command::new(FJORD).arg("server").arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'many' for config 'num.partitions'"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!data.exists(), "nothing was created on disk");

    let out = Command::new(FJORD)
        .args(["server", "--override", "log.segment.bytes=-5", "--override"])
        .arg(format!("log.dirs={}", data.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'log.segment.bytes'"));
    assert!(!data.exists());
}

#[test]
fn unknown_keys_warn_and_the_broker_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = common::BrokerProcess::start_in(&tmp.path().join("d"), &["no.such.setting=1"]);
    b.stop();
    assert!(
        b.log_text().contains("unknown config 'no.such.setting' is ignored"),
        "{}",
        b.log_text()
    );
}

/// A message the broker refuses (here larger than the topic's `max.message.bytes`) is
/// reported on stderr, as Kafka's console producer logs it, and the run exits non-zero:
/// at once with `--sync`, as Kafka's, and at the end without (where Kafka exits 0, and a
/// script piping data in could not tell that some was not stored).
#[test]
fn console_producer_reports_messages_the_broker_refuses() {
    let b = common::BrokerProcess::start(&[]);
    let (ok, _, err) = fjord(
        &[
            "topics",
            "--bootstrap-server",
            &b.bootstrap,
            "--create",
            "--topic",
            "small",
            "--config",
            "max.message.bytes=1000",
        ],
        None,
    );
    assert!(ok, "{err}");
    let big = "x".repeat(5000);
    let input = format!("fits\n{big}\nalso fits\n");
    for sync in [false, true] {
        let mut args = vec![
            "console-producer",
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            "small",
        ];
        if sync {
            args.push("--sync");
        }
        let (ok, _, err) = fjord(&args, Some(&input));
        assert!(!ok, "a refused message fails the run (sync: {sync})");
        assert!(
            err.contains("Error when sending message to topic small") && err.contains("5000 bytes"),
            "{err}"
        );
    }
    let (ok, _, err) = fjord(
        &[
            "console-producer",
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            "small",
        ],
        Some("a\nb\n"),
    );
    assert!(ok, "nothing refused: {err}");
}

/// The shipped `config/server.properties` starts a broker with no warning (every key in
/// it is one Fjord knows), and its console consumer starts at once: the file sets
/// `group.initial.rebalance.delay.ms=0` as Kafka's shipped file does.
#[test]
fn the_shipped_server_properties_starts_a_broker_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.properties");
    let stderr_path = tmp.path().join("stderr");
    let mut server = Command::new(FJORD);
    server
        .arg("server")
        .arg(&config)
        .args(["--override", "listeners=PLAINTEXT://127.0.0.1:0", "--override"])
        .arg(format!("log.dirs={}", tmp.path().join("data").display()))
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let (mut server, addr) = listening(server);
    let (ok, _, err) = fjord(
        &["console-producer", "--bootstrap-server", &addr, "--topic", "shipped"],
        Some("one\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = fjord(
        &[
            "console-consumer",
            "--bootstrap-server",
            &addr,
            "--topic",
            "shipped",
            "--from-beginning",
            "--max-messages",
            "1",
        ],
        None,
    );
    let delay = broker_config(&addr, "group.initial.rebalance.delay.ms");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let status = server.wait().unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "one\n");
    assert_eq!(delay, ("0".to_string(), 4), "set by the file: STATIC_BROKER_CONFIG");
    assert!(status.success(), "clean shutdown: {status}");
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!log.contains("WARN"), "no warnings from the shipped file:\n{log}");
}

/// A broker config's (value, source) through DescribeConfigs, as kafka-configs reads it.
fn broker_config(addr: &str, key: &str) -> (String, i8) {
    use kafka_protocol::messages::describe_configs_request::{DescribeConfigsRequest, DescribeConfigsResource};
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::StrBytes;
    let mut c = common::RawClient::connect(addr);
    let req = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(StrBytes::from_static_str("1"))
        .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_string())]))]);
    let r: DescribeConfigsResponse = c.request(ApiKey::DescribeConfigs, 4, &req);
    let result = &r.results[0];
    assert_eq!(result.error_code, 0, "{r:?}");
    let config = &result.configs[0];
    (config.value.as_deref().unwrap_or("").to_string(), config.config_source)
}

/// Starts `server` with its stdout piped; returns it and the address of its first
/// "listening on" line.
fn listening(mut server: Command) -> (std::process::Child, String) {
    let mut server = server.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("fjord: listening on ")
        .expect("listening line")
        .to_string();
    (server, addr)
}
