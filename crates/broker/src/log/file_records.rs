//! `FileRecords`: a slice of a segment file, as Kafka's `FileRecords.slice`: what a
//! fetch returns, sent to the socket with sendfile(2) without entering user space.
//!
//! Contract: `position + len` was within the segment's valid bytes when the slice was
//! taken. The open file handle keeps the data readable even if retention deletes the
//! segment meanwhile (its blocks are freed only once no slice holds it: `log::deletion`). The slice may end inside a batch (a fetch's byte limit), as
//! Kafka's does; clients drop a partial trailing batch.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct FileRecords {
    file: Option<Arc<File>>,
    position: u64,
    len: u64,
}

impl FileRecords {
    pub fn new(file: Arc<File>, position: u64, len: u64) -> FileRecords {
        FileRecords {
            file: Some(file),
            position,
            len,
        }
    }

    pub fn empty() -> FileRecords {
        FileRecords::default()
    }

    pub fn len(&self) -> u64 {
        if self.file.is_some() {
            self.len
        } else {
            0
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn file(&self) -> Option<&Arc<File>> {
        self.file.as_ref()
    }

    /// Copies the slice into memory (replication, tests, tools).
    pub fn read_to_bytes(&self) -> io::Result<Bytes> {
        let Some(file) = &self.file else {
            return Ok(Bytes::new());
        };
        let mut buf = vec![0u8; self.len as usize];
        file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}
