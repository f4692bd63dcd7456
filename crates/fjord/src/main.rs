//! `fjord`: the broker and Kafka's command-line tools in one binary.
//!
//! Layout: `server` starts a broker; `topics`, `console_producer`, `console_consumer`,
//! `get_offsets`, `dump_log` and `perf` are the tools, built on librdkafka (`client`).

/// `println!` for the tools' output: when the reader has gone (`fjord topics --list |
/// head -1`), the tool ends quietly with status 0, as Kafka's tools (Java's
/// `PrintStream` drops the error), where `println!` panics. Not for the server: a
/// broker must not stop because whoever read its first line went away.
macro_rules! outln {
    () => {
        $crate::write_stdout_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout_line(format_args!($($arg)*))
    };
}

mod admin_request;
mod client;
mod console_consumer;
mod console_producer;
mod consumer_groups;
mod dump_log;
mod get_offsets;
mod perf;
mod server;
mod topics;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "fjord", version, about = "Fjord: a Kafka-compatible publish/subscribe log")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (kafka-server-start.sh).
    Server(server::ServerArgs),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    Topics(topics::TopicsArgs),
    /// Send lines from stdin as messages (kafka-console-producer.sh).
    ConsoleProducer(console_producer::Args),
    /// Print messages to stdout (kafka-console-consumer.sh).
    ConsoleConsumer(console_consumer::Args),
    /// List, describe (offsets, lag, members), reset and delete consumer groups
    /// (kafka-consumer-groups.sh, the tutorial's offset checker).
    ConsumerGroups(consumer_groups::Args),
    /// Earliest, latest or by-time offsets per partition (kafka-get-offsets.sh).
    GetOffsets(get_offsets::Args),
    /// Print the batches of a segment file (kafka-dump-log.sh).
    DumpLog(dump_log::Args),
    /// Producer and consumer benchmarks (kafka-*-perf-test.sh).
    Perf(perf::Args),
}

/// Writes one line to stdout (`outln!`); a closed stdout ends the process with status
/// 0, another write error with 1.
fn write_stdout_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("fjord: error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FJORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only (and not with NO_COLOR set): a log file or a pipe
        // gets plain text, as Kafka's.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        // A log that cannot be written (stderr on a disk that failed) loses its lines;
        // reporting that would go to the same stderr with `eprintln!`, which panics
        // when it fails, and would take the thread logging down with it.
        .log_internal_errors(false)
        .init();
    // A usage error exits 1, as Kafka's tools exit (clap's own code is 2); --help and
    // --version print to stdout and exit 0.
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(if e.use_stderr() { 1 } else { 0 });
    });
    let result: Result<()> = match cli.command {
        Command::Server(a) => server::run(a),
        Command::Topics(a) => topics::run(a),
        Command::ConsoleProducer(a) => console_producer::run(a),
        Command::ConsoleConsumer(a) => console_consumer::run(a),
        Command::ConsumerGroups(a) => consumer_groups::run(a),
        Command::GetOffsets(a) => get_offsets::run(a),
        Command::DumpLog(a) => dump_log::run(a),
        Command::Perf(a) => perf::run(a),
    };
    if let Err(e) = result {
        eprintln!("fjord: error: {e:#}");
        std::process::exit(1);
    }
}
