//! librdkafka's idempotent producer with a forced retry: a proxy of our own drops the
//! broker's first produce responses and cuts the connection, so the client resends the
//! same batches (same producer id and sequences). Every message must be stored once.

mod common;

use common::{rdkafka_config, BrokerProcess};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Forwards every connection to `upstream`; the first `drops` produce responses are
/// swallowed and the connection closed instead.
struct DroppingProxy {
    port: u16,
    dropped: Arc<AtomicUsize>,
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let n = i32::from_be_bytes(len);
    if !(0..=(64 << 20)).contains(&n) {
        return None;
    }
    let mut buf = vec![0u8; n as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn write_frame(s: &mut TcpStream, f: &[u8]) -> bool {
    s.write_all(&(f.len() as i32).to_be_bytes()).is_ok() && s.write_all(f).is_ok()
}

impl DroppingProxy {
    fn start(upstream: Arc<Mutex<String>>, drops: usize) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let addr = upstream.lock().expect("lock").clone();
                let Ok(server) = TcpStream::connect(&addr) else {
                    continue;
                };
                let d = d.clone();
                std::thread::spawn(move || relay(client, server, d, drops));
            }
        });
        DroppingProxy { port, dropped }
    }
}

fn relay(mut client: TcpStream, mut server: TcpStream, dropped: Arc<AtomicUsize>, drops: usize) {
    let keys: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let (mut c_in, mut s_out) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let k = keys.clone();
    std::thread::spawn(move || {
        while let Some(f) = read_frame(&mut c_in) {
            if f.len() >= 8 {
                let key = i16::from_be_bytes([f[0], f[1]]);
                let corr = i32::from_be_bytes([f[4], f[5], f[6], f[7]]);
                k.lock().expect("lock").insert(corr, key);
            }
            if !write_frame(&mut s_out, &f) {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
    });
    while let Some(f) = read_frame(&mut server) {
        let corr = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
        let is_produce = keys.lock().expect("lock").remove(&corr) == Some(0);
        if is_produce && dropped.fetch_add(1, Ordering::SeqCst) < drops {
            // The broker stored the batch; the client never hears so and must retry.
            break;
        }
        if !write_frame(&mut client, &f) {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

#[test]
fn retried_batches_of_an_idempotent_librdkafka_producer_are_stored_once() {
    let upstream = Arc::new(Mutex::new(String::new()));
    let proxy = DroppingProxy::start(upstream.clone(), 3);
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{}", proxy.port);
    let broker = BrokerProcess::start(&[&advertised]);
    *upstream.lock().expect("lock") = broker.bootstrap.clone();
    let via_proxy = format!("127.0.0.1:{}", proxy.port);

    let producer: BaseProducer = rdkafka_config(&via_proxy)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "500")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("retry.backoff.ms", "10")
        .create()
        .expect("producer");
    let n = 20_000;
    let t0 = Instant::now();
    for i in 0..n {
        let v = format!("m{i}");
        loop {
            match producer.send(BaseRecord::<(), _>::to("retried").payload(&v).partition(0)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    eprintln!("produce loop took {:?}", t0.elapsed());
    let t = Instant::now();
    producer.flush(Duration::from_secs(60)).expect("all acknowledged");
    eprintln!("flush took {:?}", t.elapsed());
    assert!(
        proxy.dropped.load(Ordering::SeqCst) > 3,
        "the proxy dropped produce responses, forcing retries"
    );

    let consumer: BaseConsumer = rdkafka_config(&via_proxy)
        .set("group.id", "retry-check")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("retried", 0, Offset::Beginning).expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut seen = HashSet::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while count < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            assert!(seen.insert(v.clone()), "duplicate {v} at offset {}", m.offset());
            assert_eq!(m.offset(), count as i64);
            count += 1;
        }
    }
    eprintln!("consume done at {:?}", t.elapsed());
    assert_eq!(count, n);
    assert!(
        consumer.poll(Duration::from_millis(500)).is_none(),
        "no message beyond the {n} produced"
    );
    let (_, high) = consumer
        .fetch_watermarks("retried", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!(high, n as i64, "the log holds each message exactly once");
}

/// InitProducerId as Kafka answers it without a transactional id: a producer naming
/// its id and epoch (an idempotent producer bumping its epoch, KIP-360) gets a new id
/// at epoch 0, so no client can fence another by naming its id; an id without an
/// epoch, or the reverse, is INVALID_REQUEST.
#[test]
fn init_producer_id_always_hands_out_a_new_id() {
    use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
    use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
    use kafka_protocol::messages::ApiKey;
    const INVALID_REQUEST: i16 = 42;
    let b = common::BrokerProcess::start(&[]);
    let mut c = common::RawClient::connect(&b.bootstrap);
    let first = common::init_producer_id(&mut c);
    let mut init = |id: i64, epoch: i16| -> (i16, i64, i16) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(id.into())
            .with_producer_epoch(epoch);
        let r: InitProducerIdResponse = c.request(ApiKey::InitProducerId, 4, &req);
        (r.error_code, r.producer_id.0, r.producer_epoch)
    };
    let (code, id, epoch) = init(first, 0);
    assert_eq!((code, epoch), (0, 0));
    assert_ne!(id, first, "a new id, not the one named");
    assert_eq!(init(first, -1).0, INVALID_REQUEST);
    assert_eq!(init(-1, 3).0, INVALID_REQUEST);
}
