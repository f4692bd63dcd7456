//! `fjord console-producer`: each line of stdin becomes one message
//! (kafka-console-producer.sh). Lines are read as Kafka's `LineMessageReader` reads
//! them: `--property parse.key=true --property key.separator=:` splits a key off each
//! line, `parse.headers=true` headers before it (`h1:v1,h2:v2<TAB>`), `null.marker`
//! stands for a null key, value or header value, `ignore.error=true` takes a line
//! without its separator whole instead of stopping.

use crate::client::{parse_bool, parse_pairs, unescape, Connect};
use anyhow::{bail, Context, Result};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Reports each message the broker refused, as Kafka's `ErrorLoggingCallback`, and
/// counts them: rdkafka's default context drops delivery errors, so a refused message
/// (MESSAGE_TOO_LARGE, say) went unreported and the tool exited 0.
#[derive(Default)]
struct DeliveryErrors {
    failed: AtomicUsize,
}

impl rdkafka::ClientContext for DeliveryErrors {}

impl ProducerContext for DeliveryErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        use rdkafka::Message;
        if let Err((e, m)) = result {
            let key = m.key().map(String::from_utf8_lossy).unwrap_or_else(|| "null".into());
            let bytes = m.payload().map_or(0, <[u8]>::len);
            eprintln!(
                "Error when sending message to topic {} with key: {key}, value: {bytes} bytes with error: {e}",
                m.topic()
            );
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long)]
    pub topic: String,
    /// parse.key, key.separator, parse.headers, headers.delimiter, headers.separator,
    /// headers.key.separator, null.marker, ignore.error (KEY=VALUE, repeatable).
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// librdkafka producer properties (KEY=VALUE, repeatable).
    #[arg(long = "producer-property")]
    pub producer_properties: Vec<String>,
    /// none, gzip, snappy, lz4 or zstd; the flag alone means gzip, as Kafka's.
    #[arg(long = "compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// acks: 0, 1 or -1/all.
    #[arg(long = "request-required-acks", default_value = "-1")]
    pub acks: String,
    /// Wait for each message to be acknowledged before reading the next line.
    #[arg(long)]
    pub sync: bool,
}

pub fn run(args: Args) -> Result<()> {
    let reader = LineMessageReader::configure(&parse_pairs(&args.properties, "--property")?)?;
    let mut config = args.connect.client_config()?;
    let acks = match args.acks.as_str() {
        "all" | "-1" => "-1",
        "0" => "0",
        "1" => "1",
        other => bail!("--request-required-acks expects 0, 1, -1 or all, got '{other}'"),
    };
    // Kafka's tool names itself so; a --producer-property may say otherwise.
    config.set("acks", acks).set("client.id", "console-producer");
    if let Some(codec) = &args.compression_codec {
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&codec.as_str()) {
            bail!("--compression-codec expects none, gzip, snappy, lz4 or zstd, got '{codec}'");
        }
        config.set("compression.codec", codec);
    }
    for (k, v) in parse_pairs(&args.producer_properties, "--producer-property")? {
        config.set(k, v);
    }
    let producer: ThreadedProducer<DeliveryErrors> = config
        .create_with_context(DeliveryErrors::default())
        .context("creating producer")?;
    let read = send_lines(&producer, &args, &reader);
    // Whatever ended the input, the lines sent before it are delivered (Kafka's tool
    // closes its producer in a shutdown hook, which sends what it holds).
    producer.flush(Duration::from_secs(30)).context("flushing messages")?;
    read?;
    // Kafka's tool exits 0 here after logging; a non-zero exit lets a script that pipes
    // data in know that some of it was not stored.
    match producer.context().failed.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => bail!("{n} message(s) were not delivered"),
    }
}

/// Sends each line of stdin, read as UTF-8 with invalid bytes replaced (as Java's
/// reader does), until its end or a line that does not parse.
fn send_lines(producer: &ThreadedProducer<DeliveryErrors>, args: &Args, reader: &LineMessageReader) -> Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    for line_number in 1u64.. {
        buf.clear();
        if stdin.read_until(b'\n', &mut buf).context("reading stdin")? == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = String::from_utf8_lossy(&buf);
        let record = reader.read_record(&line, line_number)?;
        send(producer, &args.topic, &record)?;
        if args.sync {
            producer
                .flush(Duration::from_secs(30))
                .context("waiting for acknowledgement")?;
            // As Kafka's `--sync`: a refused message ends the run.
            if producer.context().failed.load(Ordering::Relaxed) > 0 {
                bail!("a message was not delivered");
            }
        }
    }
    Ok(())
}

/// One line's message.
#[derive(Debug, PartialEq)]
struct LineRecord {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, Option<String>)>,
}

/// Kafka's `LineMessageReader`: its properties, defaults and checks.
#[derive(Debug)]
struct LineMessageReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
    ignore_error: bool,
}

impl LineMessageReader {
    fn configure(props: &std::collections::BTreeMap<String, String>) -> Result<LineMessageReader> {
        let flag = |k: &str| props.get(k).map(|v| parse_bool(k, v)).unwrap_or(Ok(false));
        let text = |k: &str, default: &str| unescape(props.get(k).map(String::as_str).unwrap_or(default));
        let r = LineMessageReader {
            parse_key: flag("parse.key")?,
            key_separator: text("key.separator", "\t"),
            parse_headers: flag("parse.headers")?,
            headers_delimiter: text("headers.delimiter", "\t"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_marker: props.get("null.marker").map(|m| unescape(m)),
            ignore_error: flag("ignore.error")?,
        };
        let separators = [
            ("key.separator", &r.key_separator),
            ("headers.delimiter", &r.headers_delimiter),
            ("headers.separator", &r.headers_separator),
            ("headers.key.separator", &r.headers_key_separator),
        ];
        for (name, sep) in separators {
            if sep.is_empty() {
                bail!("property {name} must not be empty");
            }
        }
        let distinct = [
            (
                "headers.delimiter",
                &r.headers_delimiter,
                "headers.separator",
                &r.headers_separator,
            ),
            (
                "headers.delimiter",
                &r.headers_delimiter,
                "headers.key.separator",
                &r.headers_key_separator,
            ),
            (
                "headers.separator",
                &r.headers_separator,
                "headers.key.separator",
                &r.headers_key_separator,
            ),
        ];
        for (a, x, b, y) in distinct {
            if x == y {
                bail!("{a} and {b} may not be equal");
            }
        }
        if let Some(marker) = &r.null_marker {
            for (name, sep) in separators {
                if sep == marker {
                    bail!("null.marker and {name} may not be equal");
                }
            }
        }
        Ok(r)
    }

    /// The message of one line (`line_number` counts from 1, for the error).
    fn read_record(&self, line: &str, line_number: u64) -> Result<LineRecord> {
        let headers = self.split_off(
            self.parse_headers,
            line,
            &self.headers_delimiter,
            "headers delimiter",
            line_number,
        )?;
        let rest = headers.map_or(line, |h| &line[h.len() + self.headers_delimiter.len()..]);
        let key = self.split_off(self.parse_key, rest, &self.key_separator, "key separator", line_number)?;
        let value = key.map_or(rest, |k| &rest[k.len() + self.key_separator.len()..]);
        let headers = match headers.filter(|h| !self.is_null(h)) {
            Some(h) => self.split_headers(h, line_number)?,
            None => Vec::new(),
        };
        Ok(LineRecord {
            key: key.filter(|k| !self.is_null(k)).map(str::to_string),
            value: Some(value).filter(|v| !self.is_null(v)).map(str::to_string),
            headers,
        })
    }

    /// Kafka's `parse`: what comes before `separator`, when `enabled`.
    fn split_off<'a>(
        &self,
        enabled: bool,
        line: &'a str,
        separator: &str,
        name: &str,
        line_number: u64,
    ) -> Result<Option<&'a str>> {
        if !enabled {
            return Ok(None);
        }
        match line.find(separator) {
            Some(i) => Ok(Some(&line[..i])),
            None if self.ignore_error => Ok(None),
            None => bail!("No {name} found on line number {line_number}: '{line}'"),
        }
    }

    /// Kafka's `splitHeaders` (its separator taken literally, not as a pattern).
    fn split_headers(&self, headers: &str, line_number: u64) -> Result<Vec<(String, Option<String>)>> {
        headers
            .split(self.headers_separator.as_str())
            .map(|pair| match pair.find(self.headers_key_separator.as_str()) {
                None if self.ignore_error => Ok((pair.to_string(), None)),
                None => bail!("No header key separator found in pair '{pair}' on line number {line_number}"),
                Some(i) => {
                    let key = &pair[..i];
                    if self.is_null(key) {
                        bail!("Header keys should not be equal to the null marker '{key}' as they can't be null");
                    }
                    let value = &pair[i + self.headers_key_separator.len()..];
                    Ok((
                        key.to_string(),
                        Some(value).filter(|v| !self.is_null(v)).map(str::to_string),
                    ))
                }
            })
            .collect()
    }

    fn is_null(&self, s: &str) -> bool {
        self.null_marker.as_deref() == Some(s)
    }
}

fn send(producer: &ThreadedProducer<DeliveryErrors>, topic: &str, r: &LineRecord) -> Result<()> {
    let mut record = BaseRecord::to(topic);
    if let Some(v) = &r.value {
        record = record.payload(v.as_str());
    }
    if let Some(k) = &r.key {
        record = record.key(k.as_str());
    }
    if !r.headers.is_empty() {
        let mut headers = rdkafka::message::OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(rdkafka::message::Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        record = record.headers(headers);
    }
    let mut pending = record;
    loop {
        match producer.send(pending) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                pending = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> Result<LineMessageReader> {
        LineMessageReader::configure(&props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn record(key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)]) -> LineRecord {
        LineRecord {
            key: key.map(str::to_string),
            value: value.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    /// As Kafka's `LineMessageReaderTest`: headers, then the key, then the value; the
    /// null marker anywhere but in a header key; a missing separator stops the run
    /// unless `ignore.error`, which takes the line whole.
    #[test]
    fn lines_are_read_as_kafkas_line_message_reader() {
        let plain = reader(&[]).expect("defaults");
        assert_eq!(
            plain.read_record("a\tb", 1).expect("read"),
            record(None, Some("a\tb"), &[])
        );
        let keyed = reader(&[("parse.key", "true"), ("key.separator", ":")]).expect("keyed");
        assert_eq!(
            keyed.read_record("k:v:w", 1).expect("read"),
            record(Some("k"), Some("v:w"), &[])
        );
        let err = keyed.read_record("nosep", 7).expect_err("no separator");
        assert_eq!(err.to_string(), "No key separator found on line number 7: 'nosep'");
        let all = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("null.marker", "<null>"),
        ])
        .expect("all");
        assert_eq!(
            all.read_record("h1:x,h2:<null>,h3:\tk\tv", 1).expect("read"),
            record(
                Some("k"),
                Some("v"),
                &[("h1", Some("x")), ("h2", None), ("h3", Some(""))]
            )
        );
        assert_eq!(
            all.read_record("<null>\t<null>\t<null>", 1).expect("read"),
            record(None, None, &[])
        );
        assert!(
            all.read_record("h1\tk\tv", 2).is_err(),
            "a header with no key separator"
        );
        assert!(all.read_record("<null>:x\tk\tv", 2).is_err(), "a null header key");
        let lenient = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("ignore.error", "true"),
        ])
        .expect("lenient");
        assert_eq!(
            lenient.read_record("nosep", 1).expect("read"),
            record(None, Some("nosep"), &[])
        );
        assert_eq!(
            lenient.read_record("h1\tk\tv", 1).expect("read"),
            record(Some("k"), Some("v"), &[("h1", None)])
        );
        for (props, message) in [
            (
                &[("headers.delimiter", ","), ("headers.separator", ",")][..],
                "headers.delimiter and headers.separator may not be equal",
            ),
            (
                &[("null.marker", "\\t")][..],
                "null.marker and key.separator may not be equal",
            ),
            (&[("key.separator", "")][..], "property key.separator must not be empty"),
        ] {
            assert_eq!(reader(props).expect_err(message).to_string(), message);
        }
    }
}
