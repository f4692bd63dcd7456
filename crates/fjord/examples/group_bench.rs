//! Group coordinator benchmark (issue 3's targets), against a running broker:
//!
//!     cargo run --release --example group_bench -- HOST:PORT [commits] [members] [broker pid]
//!
//! 1. OffsetCommit throughput: 4 connections, 100 pipelined commits each at a time.
//! 2. A group of `members` protocol-level members: time from the last JoinGroup sent to
//!    every member holding its SyncGroup answer.
//!
//! The start-up load time of `__consumer_offsets` is in the broker's log
//! ("group offsets loaded ... elapsed_ms") after a restart.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{ApiKey, GroupId, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn frame<Q: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &Q) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf
}

fn read<R: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16) -> R {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("frame");
    let mut b = Bytes::from(buf);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).expect("header");
    R::decode(&mut b, version).expect("body")
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// Creates `bench-topic` (Metadata's auto-creation, on by default): commits to a
/// partition the cluster lacks are refused, as Kafka's.
fn create_topic(addr: &str) {
    use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
    use kafka_protocol::messages::metadata_response::MetadataResponse;
    let mut c = TcpStream::connect(addr).expect("connect");
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("bench-topic"))))
        ]))
        .with_allow_auto_topic_creation(true);
    c.write_all(&frame(ApiKey::Metadata, 12, 1, &req)).expect("write");
    let r: MetadataResponse = read(&mut c, ApiKey::Metadata, 12);
    let code = r.topics[0].error_code;
    assert!(code == 0 || code == 5, "creating bench-topic: error {code}");
}

fn commits(addr: &str, total: usize) {
    create_topic(addr);
    let per_conn = total / 4;
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(&addr).expect("connect");
                let _ = c.set_nodelay(true);
                let mut sent = 0;
                while sent < per_conn {
                    let n = 100.min(per_conn - sent);
                    let mut out = BytesMut::new();
                    for i in 0..n {
                        let req = OffsetCommitRequest::default()
                            .with_group_id(GroupId(s(&format!("bench-{t}-{}", (sent + i) % 50))))
                            .with_generation_id_or_member_epoch(-1)
                            .with_topics(vec![OffsetCommitRequestTopic::default()
                                .with_name(TopicName(s("bench-topic")))
                                .with_partitions(vec![OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset((sent + i) as i64)])]);
                        out.extend_from_slice(&frame(ApiKey::OffsetCommit, 8, (sent + i) as i32, &req));
                    }
                    c.write_all(&out).expect("write");
                    for _ in 0..n {
                        let r: kafka_protocol::messages::offset_commit_response::OffsetCommitResponse =
                            read(&mut c, ApiKey::OffsetCommit, 8);
                        assert_eq!(r.topics[0].partitions[0].error_code, 0);
                    }
                    sent += n;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "offset commits: {} in {secs:.2} s = {:.0} commits/s",
        per_conn * 4,
        (per_conn * 4) as f64 / secs
    );
}

fn join_req(member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(&group_name())))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0"))])
}

/// The broker's resident memory, from /proc.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn group(addr: &str, members: usize, broker_pid: Option<u32>) {
    let rss_before = broker_pid.and_then(rss_bytes);
    // Each member gets its id first (KIP-394), then all join at once.
    let mut conns: Vec<(TcpStream, String)> = (0..members)
        .map(|_| {
            let mut c = TcpStream::connect(addr).expect("connect");
            c.write_all(&frame(ApiKey::JoinGroup, 5, 1, &join_req("")))
                .expect("write");
            let r: JoinGroupResponse = read(&mut c, ApiKey::JoinGroup, 5);
            (c, r.member_id.to_string())
        })
        .collect();
    let last_join = Instant::now();
    for (c, id) in conns.iter_mut() {
        c.write_all(&frame(ApiKey::JoinGroup, 5, 2, &join_req(id)))
            .expect("write");
    }
    let joined: Vec<JoinGroupResponse> = conns.iter_mut().map(|(c, _)| read(c, ApiKey::JoinGroup, 5)).collect();
    let generation = joined[0].generation_id;
    let leader = joined[0].leader.to_string();
    for ((c, id), _) in conns.iter_mut().zip(&joined) {
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group_name())))
            .with_generation_id(generation)
            .with_member_id(s(id));
        if *id == leader {
            req.assignments = joined
                .iter()
                .map(|j| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(j.member_id.clone())
                        .with_assignment(Bytes::from_static(b"\0\0\0\0\0\0\0\0\0\0"))
                })
                .collect();
        }
        c.write_all(&frame(ApiKey::SyncGroup, 3, 3, &req)).expect("write");
    }
    for (c, _) in conns.iter_mut() {
        let r: SyncGroupResponse = read(c, ApiKey::SyncGroup, 3);
        assert_eq!(r.error_code, 0);
    }
    println!(
        "group of {members}: settled {:.0} ms after the last join (generation {generation})",
        last_join.elapsed().as_secs_f64() * 1000.0
    );
    // Idle members: connections open, nothing in flight.
    std::thread::sleep(std::time::Duration::from_millis(500));
    if let (Some(before), Some(after)) = (rss_before, broker_pid.and_then(rss_bytes)) {
        println!(
            "broker RSS {:.1} MB -> {:.1} MB: {} bytes per idle member, its connection included",
            before as f64 / 1e6,
            after as f64 / 1e6,
            after.saturating_sub(before) / members as u64
        );
    }
    drop(conns);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .expect("usage: group_bench HOST:PORT [commits] [members] [broker pid]");
    let total: usize = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(200_000);
    let members: usize = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(100);
    let broker_pid: Option<u32> = args.get(4).and_then(|x| x.parse().ok());
    commits(addr, total);
    group(addr, members, broker_pid);
}

/// A group name unique to this run, so members of an earlier run do not slow it down.
fn group_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("bench-group-{}", std::process::id()))
        .clone()
}
