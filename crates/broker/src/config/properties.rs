//! Java `.properties` syntax, the subset Kafka's files use: `key=value` or `key: value`,
//! `#` and `!` comments, backslash line continuations and escapes.

use super::ConfigError;
use std::collections::BTreeMap;

/// Limit: a properties file larger than this is refused (a config is a few KiB).
pub const PROPERTIES_BYTES_MAX: usize = 1 << 20;

pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    if text.len() > PROPERTIES_BYTES_MAX {
        return Err(ConfigError::Syntax {
            line: 0,
            reason: format!("file larger than {PROPERTIES_BYTES_MAX} bytes"),
        });
    }
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if pending.is_empty() {
            start_line = i + 1;
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
        }
        let continued = line.ends_with('\\') && !line.ends_with("\\\\");
        pending.push_str(if continued { &line[..line.len() - 1] } else { line });
        if continued {
            continue;
        }
        let (k, v) = split_entry(&pending);
        if k.is_empty() {
            return Err(ConfigError::Syntax {
                line: start_line,
                reason: format!("no key in '{pending}'"),
            });
        }
        out.insert(unescape(k), unescape(v.trim_start()));
        pending.clear();
    }
    Ok(out)
}

fn split_entry(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (line[..i].trim_end(), &line[i + 1..]),
            b' ' | b'\t' => {
                let rest = line[i..].trim_start();
                let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
                return (&line[..i], rest);
            }
            _ => i += 1,
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_style_file() {
        let p = parse_properties(
            "# comment\nbroker.id=0\nlog.dirs = /tmp/a,\\\n  /tmp/b\nlisteners: PLAINTEXT://:9092\n! bang\nempty=\n",
        )
        .unwrap();
        assert_eq!(p["broker.id"], "0");
        assert_eq!(p["log.dirs"], "/tmp/a,/tmp/b");
        assert_eq!(p["listeners"], "PLAINTEXT://:9092");
        assert_eq!(p["empty"], "");
    }
}
