//! One client connection: a reader that decodes and handles requests one at a time (as
//! Kafka does, so responses leave in request order) and a writer fed through a bounded
//! channel, so the next request is read while the previous response is written.

use super::handlers;
use super::Broker;
use crate::protocol::{self, frame};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
    let (tx, mut rx) = mpsc::channel::<BytesMut>(broker.config.max_in_flight_requests_per_connection);
    let writer = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if let Err(e) = wr.write_all(&buf).await {
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
        match handlers::dispatch(&broker, raw).await {
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
