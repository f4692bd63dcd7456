//! One client connection, one task: read a request, handle it, write its response,
//! then read the next. As Kafka does (it mutes a connection while a request is in
//! process), so responses leave in request order and a client can never queue more
//! than the socket buffers hold.
//!
//! A connection that sends no request for `connections.max.idle.ms` is closed, as
//! Kafka does; its sockets also have TCP keepalive on (Kafka's acceptor sets it), so
//! a peer that vanished is found even with a long idle limit.
//!
//! Memory: an idle connection is one small task and its socket. It holds no buffer
//! (frames are read straight from the socket into a buffer of their own size) and the
//! handler's future is boxed, allocated only while a request is handled. Idle group
//! members are mostly idle connections, so this is what a member costs.

use super::handlers;
use super::Broker;
use crate::log::FileRecords;
use crate::protocol::fetch_response::ResponseChunk;
use crate::protocol::{self, frame};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// Who is connected, and through which listener (its name says which advertised
/// address the client is told).
#[derive(Debug, Clone)]
pub struct Client {
    pub peer: SocketAddr,
    pub listener: Arc<str>,
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, client: Client) {
    let peer = client.peer;
    let _ = stream.set_nodelay(true);
    let _ = rustix::net::sockopt::set_socket_keepalive(&stream, true);
    let (mut reader, mut wr) = stream.into_split();
    let max = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        let place = |prefix: &[u8]| handlers::produce::placement(&broker, prefix);
        // The limit covers the whole next request: one that trickles in for longer
        // than a connection may stay idle closes the connection too.
        let frame = match tokio::time::timeout(idle, frame::read_frame(&mut reader, max, place)).await {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "idle for connections.max.idle.ms; closing connection");
                break;
            }
        };
        let raw = match protocol::decode_header(frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "invalid request; closing connection");
                break;
            }
        };
        // Boxed: the handler's state exists only while a request is handled.
        match Box::pin(handlers::dispatch(&broker, raw, &client)).await {
            Ok(Some(response)) => {
                if let Err(e) = write_response(&mut wr, &response).await {
                    tracing::debug!(%peer, error = %e, "write failed");
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
    let _ = wr.shutdown().await;
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
