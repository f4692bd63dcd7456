//! One client connection: a reader that decodes and handles requests one at a time (as
//! Kafka does, so responses leave in request order) and a writer fed through a bounded
//! channel, so the next request is read while the previous response is written.

use super::handlers;
use super::Broker;
use crate::log::FileRecords;
use crate::protocol::fetch_response::ResponseChunk;
use crate::protocol::{self, frame};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Read buffer per connection.
const READ_BUFFER_BYTES: usize = 8 * 1024;

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let (tx, mut rx) = mpsc::channel::<Vec<ResponseChunk>>(broker.config.max_in_flight_requests_per_connection);
    let writer = tokio::spawn(async move {
        while let Some(chunks) = rx.recv().await {
            if let Err(e) = write_response(&mut wr, &chunks).await {
                tracing::debug!(error = %e, "write failed");
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let max = broker.config.socket_request_max_bytes;
    loop {
        let frame = match frame::read_frame(&mut reader, max).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let raw = match protocol::decode_header(frame.freeze()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "invalid request; closing connection");
                break;
            }
        };
        match handlers::dispatch(&broker, raw, peer).await {
            Ok(Some(response)) => {
                if tx.send(response).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn write_response(wr: &mut OwnedWriteHalf, chunks: &[ResponseChunk]) -> std::io::Result<()> {
    for chunk in chunks {
        match chunk {
            ResponseChunk::Bytes(b) => wr.write_all(b).await?,
            ResponseChunk::File(f) => send_file(wr, f).await?,
        }
    }
    Ok(())
}

/// sendfile(2) from the segment straight to the socket, waiting for writability
/// through tokio so the task never blocks the runtime.
async fn send_file(wr: &mut OwnedWriteHalf, records: &FileRecords) -> std::io::Result<()> {
    let Some(file) = records.file() else { return Ok(()) };
    let mut offset = records.position();
    let end = records.position() + records.len();
    let stream: &TcpStream = wr.as_ref();
    while offset < end {
        stream.writable().await?;
        let remaining = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &**file, Some(&mut offset), remaining).map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                // The file is shorter than the slice (truncated under us): the
                // response cannot be completed, so the connection must close.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment shorter than the fetched slice",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
