//! Size-delimited frames: a 4-byte big-endian length, then that many bytes.
//!
//! The length is checked against `socket.request.max.bytes` before anything is
//! allocated, and the buffer then grows only as bytes actually arrive, so a 2 GiB
//! prefix followed by nothing costs nothing. (A large frame placed in memory after its
//! first 4 KiB, see `Placement`, takes its whole bounded size then, as Kafka would.)

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Growth step while a frame's bytes arrive.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A frame larger than this is first read this far, and `place` decides where the
/// whole frame goes in memory. Enough for any Produce request's fields before its
/// records (a topic name is at most 249 bytes).
pub const PLACEMENT_PREFIX_BYTES: usize = 4096;

/// Limit: the largest alignment a placement may ask for.
const PLACEMENT_ALIGN_MAX: usize = 64 * 1024;

/// Where a frame's first byte goes in memory: `remainder` bytes past a multiple of
/// `align` (a power of two). See `produce_prefix` for why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub align: usize,
    pub remainder: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is outside 0..={max} (socket.request.max.bytes)")]
    InvalidSize { size: i64, max: usize },
    #[error("connection closed mid-frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames. `place` sees
/// the first `PLACEMENT_PREFIX_BYTES` of a larger frame and may choose its placement.
pub async fn read_frame<R, P>(reader: &mut R, max_bytes: usize, place: P) -> Result<Option<Bytes>, FrameError>
where
    R: AsyncRead + Unpin,
    P: FnOnce(&[u8]) -> Option<Placement>,
{
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
    // the whole (already bounded) size, so a large frame costs one more allocation.
    let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK_BYTES));
    if size > READ_CHUNK_BYTES {
        read_until(reader, &mut buf, PLACEMENT_PREFIX_BYTES).await?;
        if let Some(placement) = place(&buf) {
            buf = placed(placement, size, &buf);
        }
    }
    while buf.len() < size {
        if buf.len() >= READ_CHUNK_BYTES && buf.capacity() < size {
            buf.reserve(size - buf.len());
        }
        let until = size.min(buf.capacity());
        read_until(reader, &mut buf, until).await?;
    }
    Ok(Some(buf.freeze()))
}

/// A buffer of capacity `size` holding `prefix`, its first byte at `placement`.
fn placed(placement: Placement, size: usize, prefix: &[u8]) -> BytesMut {
    let Placement { align, remainder } = placement;
    assert!(align.is_power_of_two() && align <= PLACEMENT_ALIGN_MAX && remainder < align);
    let mut buf = BytesMut::with_capacity(size + align);
    let skip = remainder.wrapping_sub(buf.as_ptr() as usize) & (align - 1);
    buf.put_bytes(0, skip);
    // Moves the start without copying: the frame begins `skip` bytes in.
    buf.advance(skip);
    buf.extend_from_slice(prefix);
    assert_eq!(buf.as_ptr() as usize & (align - 1), remainder, "placed");
    assert!(buf.capacity() >= size, "room for the whole frame");
    buf
}

/// Reads into `buf` until it holds `len` bytes (`len` within its capacity).
async fn read_until<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut, len: usize) -> Result<(), FrameError> {
    assert!(len <= buf.capacity(), "reads stay within the buffer");
    while buf.len() < len {
        let want = (len - buf.len()) as u64;
        let n = (&mut *reader).take(want).read_buf(buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_prefix_is_refused_without_allocation() {
        let data: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 1, 2];
        let mut r = data;
        assert!(matches!(
            read_frame(&mut r, 1024, |_| None).await,
            Err(FrameError::InvalidSize { .. })
        ));
    }

    #[tokio::test]
    async fn frame_round_trip_and_truncation() {
        let data: &[u8] = &[0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 9, 1];
        let mut r = data;
        assert_eq!(
            &read_frame(&mut r, 1024, |_| None).await.unwrap().unwrap()[..],
            &[1, 2, 3]
        );
        assert!(matches!(
            read_frame(&mut r, 1024, |_| None).await,
            Err(FrameError::Truncated)
        ));
    }

    /// A large frame: `place` sees its first 4 KiB, and the frame lands where asked,
    /// whole and unchanged; a truncated one is still an error.
    #[tokio::test]
    async fn large_frame_is_placed_where_asked() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut data = (body.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(&body);
        for remainder in [0, 1, 123, 4095] {
            let mut r = &data[..];
            let mut seen = 0;
            let place = |prefix: &[u8]| {
                seen = prefix.len();
                assert_eq!(prefix, &body[..prefix.len()]);
                Some(Placement { align: 4096, remainder })
            };
            let frame = read_frame(&mut r, 1 << 20, place).await.unwrap().unwrap();
            assert_eq!(seen, PLACEMENT_PREFIX_BYTES);
            assert_eq!(frame.as_ptr() as usize % 4096, remainder);
            assert_eq!(&frame[..], &body[..]);
        }
        let mut cut = &data[..100_000];
        let placed = read_frame(&mut cut, 1 << 20, |_| {
            Some(Placement {
                align: 4096,
                remainder: 7,
            })
        })
        .await;
        assert!(matches!(placed, Err(FrameError::Truncated)));
    }
}
