//! Fjord's broker: a Kafka-compatible broker in one library.
//!
//! Layout (dependencies point down the list):
//! - `server`: listener, connections, one handler per Kafka API.
//! - `metadata`: topics, partitions, topic ids and configs the cluster knows.
//! - `protocol`: framing, API versions, the one place error codes are mapped.
//! - `log`: storage in Kafka's on-disk format.
//! - `config`: `server.properties` keys and topic configs.
//! - `time`: the clock handle, so tests can drive time.
//! - `sync`: lock helpers shared by all of the above.

pub mod config;
pub mod group;
pub mod log;
pub mod metadata;
pub mod protocol;
pub mod server;
pub mod sync;
pub mod time;
