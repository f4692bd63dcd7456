//! Size-delimited frames: a 4-byte big-endian length, then that many bytes.
//!
//! The length is checked against `socket.request.max.bytes` before anything is
//! allocated, and the buffer then grows only as bytes actually arrive, so a 2 GiB
//! prefix followed by nothing costs nothing.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Growth step while a frame's bytes arrive.
const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is outside 0..={max} (socket.request.max.bytes)")]
    InvalidSize { size: i64, max: usize },
    #[error("connection closed mid-frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len_buf);
    if size < 0 || size as usize > max_bytes {
        return Err(FrameError::InvalidSize {
            size: size as i64,
            max: max_bytes,
        });
    }
    let size = size as usize;
    // Allocate the first chunk only; once the client has really sent that much, take
    // the whole (already bounded) size, so a large frame costs one more allocation and
    // no copying.
    let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK_BYTES));
    while buf.len() < size {
        if buf.len() >= READ_CHUNK_BYTES && buf.capacity() < size {
            buf.reserve(size - buf.len());
        }
        let want = (size - buf.len()).min(buf.capacity() - buf.len()).max(1);
        let n = (&mut *reader).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_prefix_is_refused_without_allocation() {
        let data: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 1, 2];
        let mut r = data;
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(FrameError::InvalidSize { .. })
        ));
    }

    #[tokio::test]
    async fn frame_round_trip_and_truncation() {
        let data: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 9, 1];
        let mut r = data;
        assert_eq!(&read_frame(&mut r, 1024).await.unwrap().unwrap()[..], &[1, 2, 3]);
        assert!(matches!(read_frame(&mut r, 1024).await, Err(FrameError::Truncated)));
    }
}
