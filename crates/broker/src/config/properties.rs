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
        // An odd number of trailing backslashes continues the line (an even number is
        // escaped backslashes), as Java's `Properties`.
        let trailing = line.len() - line.trim_end_matches('\\').len();
        let continued = trailing % 2 == 1;
        pending.push_str(if continued { &line[..line.len() - 1] } else { line });
        if continued {
            continue;
        }
        insert_entry(&mut out, &pending, start_line)?;
        pending.clear();
    }
    // A continuation on the last line ends with the file, as in Java: the entry stays.
    if !pending.is_empty() {
        insert_entry(&mut out, &pending, start_line)?;
    }
    Ok(out)
}

fn insert_entry(out: &mut BTreeMap<String, String>, entry: &str, line: usize) -> Result<(), ConfigError> {
    let syntax = |reason: String| ConfigError::Syntax { line, reason };
    let (k, v) = split_entry(entry);
    if k.is_empty() {
        return Err(syntax(format!("no key in '{entry}'")));
    }
    out.insert(unescape(k).map_err(syntax)?, unescape(v.trim_start()).map_err(syntax)?);
    Ok(())
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

/// Java's escapes: `\n`, `\t`, `\r`, `\f`, `\uXXXX`, and `\` before any other
/// character stands for it.
fn unescape(s: &str) -> Result<String, String> {
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
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed \\uxxxx escape in '{s}'"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out.trim_end().to_string())
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

    /// Java's rules at the edges: a continuation on the last line keeps its entry, an
    /// odd run of trailing backslashes continues and an even one is literal, and
    /// `\uXXXX` is a character (a malformed one refuses the file).
    #[test]
    fn continuations_and_escapes_as_java_reads_them() {
        let p = parse_properties("log.dirs=/d/a,\\").unwrap();
        assert_eq!(p["log.dirs"], "/d/a,", "the last line's entry is kept");
        let p = parse_properties("a=x\\\\\\\ny\nb=1\\\\\nc=2\n").unwrap();
        assert_eq!(p["a"], "x\\y", "three backslashes: one escaped, one continuing");
        assert_eq!(p["b"], "1\\", "two backslashes: one escaped, no continuation");
        assert_eq!(p["c"], "2");
        let p = parse_properties("greeting=caf\\u00e9\n").unwrap();
        assert_eq!(p["greeting"], "caf\u{e9}");
        assert!(parse_properties("bad=\\u12\n").is_err());
    }
}
