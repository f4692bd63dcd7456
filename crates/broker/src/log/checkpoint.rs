//! Kafka's small text files, written atomically (temp file, fsync, rename):
//!
//! - offset checkpoints (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//!   `replication-offset-checkpoint`): `0\n<count>\n<topic> <partition> <offset>\n...`
//! - `leader-epoch-checkpoint`: `0\n<count>\n<epoch> <start_offset>\n...`
//! - `partition.metadata`: `version: 0\ntopic_id: <base64url uuid>\n`
//! - `meta.properties`: `version=1\ncluster.id=...\nnode.id=...\ndirectory.id=...\n`

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use base64::Engine;

/// Limit: entries accepted from one checkpoint file (a broker holds far fewer partitions).
pub const CHECKPOINT_ENTRIES_MAX: usize = 1_000_000;

/// Replaces `path` with `contents` durably: temp file, fsync, rename, fsync of the
/// directory (without which the rename itself may not survive a power loss, as
/// Kafka's `Utils.atomicMoveWithFallback` flushes the parent too).
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        super::device_flush::sync_all(&f)
    });
    finish_replacing(&tmp, path, written)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// fsyncs a directory, so the names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    super::device_flush::sync_all(&File::open(dir)?)
}

/// Renames `tmp` over `path` once written; a failed write (a full disk) leaves no
/// partial `tmp` behind to hold space.
fn finish_replacing(tmp: &Path, path: &Path, written: io::Result<()>) -> io::Result<()> {
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    fs::rename(tmp, path)
}

/// Writes `contents` to a temporary file and renames it over `path`, without fsync:
/// readers never see a half-written file while the broker runs; after a crash the
/// file may be missing or torn, so only for files that are checked when read.
pub fn write_replacing(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::write(&tmp, contents);
    finish_replacing(&tmp, path, written)
}

fn bad(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

/// Reads `version\ncount\n` then `count` lines split on spaces.
fn read_lines(path: &Path, fields: usize) -> io::Result<Vec<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad(path, "unsupported checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad(path, "bad entry count"))?;
    if count > CHECKPOINT_ENTRIES_MAX {
        return Err(bad(path, "too many entries"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines.next().ok_or_else(|| bad(path, "fewer entries than the count"))?;
        let parts: Vec<String> = line.split(' ').map(String::from).collect();
        if parts.len() != fields {
            return Err(bad(path, "malformed entry"));
        }
        out.push(parts);
    }
    Ok(out)
}

/// `(topic, partition) -> offset`.
pub fn read_offset_checkpoint(path: &Path) -> io::Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    for parts in read_lines(path, 3)? {
        let p: i32 = parts[1].parse().map_err(|_| bad(path, "bad partition"))?;
        let o: i64 = parts[2].parse().map_err(|_| bad(path, "bad offset"))?;
        out.insert((parts[0].clone(), p), o);
    }
    Ok(out)
}

pub fn write_offset_checkpoint(path: &Path, entries: &BTreeMap<(String, i32), i64>) -> io::Result<()> {
    let mut s = format!("0\n{}\n", entries.len());
    for ((t, p), o) in entries {
        s.push_str(&format!("{t} {p} {o}\n"));
    }
    write_atomically(path, s.as_bytes())
}

pub fn read_leader_epoch_checkpoint(path: &Path) -> io::Result<Vec<(i32, i64)>> {
    let mut out = Vec::new();
    for parts in read_lines(path, 2)? {
        let e: i32 = parts[0].parse().map_err(|_| bad(path, "bad epoch"))?;
        let o: i64 = parts[1].parse().map_err(|_| bad(path, "bad offset"))?;
        out.push((e, o));
    }
    Ok(out)
}

pub fn write_leader_epoch_checkpoint(path: &Path, entries: &[(i32, i64)]) -> io::Result<()> {
    let mut s = format!("0\n{}\n", entries.len());
    for (e, o) in entries {
        s.push_str(&format!("{e} {o}\n"));
    }
    write_atomically(path, s.as_bytes())
}

/// Kafka prints topic ids as URL-safe base64 without padding.
pub fn topic_id_to_string(id: uuid::Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn topic_id_from_string(s: &str) -> Option<uuid::Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
    uuid::Uuid::from_slice(&bytes).ok()
}

pub fn write_partition_metadata(dir: &Path, topic_id: uuid::Uuid) -> io::Result<()> {
    let s = format!("version: 0\ntopic_id: {}\n", topic_id_to_string(topic_id));
    write_atomically(&dir.join("partition.metadata"), s.as_bytes())
}

pub fn read_partition_metadata(dir: &Path) -> io::Result<Option<uuid::Uuid>> {
    let text = match fs::read_to_string(dir.join("partition.metadata")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(topic_id_from_string))
}

/// `meta.properties` as `key -> value`.
pub fn read_meta_properties(path: &Path) -> io::Result<Option<BTreeMap<String, String>>> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn write_meta_properties(path: &Path, cluster_id: &str, node_id: i32, directory_id: uuid::Uuid) -> io::Result<()> {
    let s = format!(
        "#\n#Written by Fjord\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\ndirectory.id={}\n",
        topic_id_to_string(directory_id)
    );
    write_atomically(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips() {
        let dir = std::env::temp_dir().join(format!("fjord-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("recovery-point-offset-checkpoint");
        let mut m = BTreeMap::new();
        m.insert(("t".to_string(), 0), 42);
        write_offset_checkpoint(&path, &m).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n1\nt 0 42\n");
        assert_eq!(read_offset_checkpoint(&path).unwrap(), m);
        let id = uuid::Uuid::new_v4();
        assert_eq!(topic_id_from_string(&topic_id_to_string(id)), Some(id));
        fs::remove_dir_all(&dir).unwrap();
    }
}
