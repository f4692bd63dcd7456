//! `fjord consumer-groups`: kafka-consumer-groups.sh (and the tutorial's offset
//! checker): list groups, describe offsets and lag or members or state, reset offsets,
//! delete groups.

use crate::client::Connect;
use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: Connect,
    #[arg(long, group = "action")]
    pub list: bool,
    #[arg(long, group = "action")]
    pub describe: bool,
    #[arg(long, group = "action")]
    pub delete: bool,
    #[arg(long = "reset-offsets", group = "action")]
    pub reset_offsets: bool,
    /// Delete the group's committed offsets of --topic T (or T:P,P,...).
    #[arg(long = "delete-offsets", group = "action")]
    pub delete_offsets: bool,
    #[arg(long)]
    pub group: Option<String>,
    /// With --describe: the members instead of the offsets.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's state.
    #[arg(long)]
    pub state: bool,
    /// With --describe: offsets and lag (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --reset-offsets: the topic (all the group's topics when absent); with
    /// --delete-offsets: T or T:P,P,... (required).
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    #[arg(long = "to-offset")]
    pub to_offset: Option<i64>,
    #[arg(long = "shift-by", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// YYYY-MM-DDTHH:mm:SS[.sss] (UTC).
    #[arg(long = "to-datetime")]
    pub to_datetime: Option<String>,
    /// ISO-8601 duration back from now, e.g. PT1H or P1DT2H.
    #[arg(long = "by-duration")]
    pub by_duration: Option<String>,
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    #[arg(long)]
    pub execute: bool,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: Args) -> Result<()> {
    let base: BaseConsumer = args.connect.client_config()?.create().context("creating client")?;
    if args.list {
        let groups = base.fetch_group_list(None, TIMEOUT).context("listing groups")?;
        let mut names: Vec<&str> = groups.groups().iter().map(|g| g.name()).collect();
        names.sort_unstable();
        for n in names {
            println!("{n}");
        }
        return Ok(());
    }
    let group = args.group.as_deref().ok_or_else(|| anyhow!("--group is required"))?;
    if args.delete {
        let admin: AdminClient<DefaultClientContext> = args.connect.client_config()?.create()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        for r in rt.block_on(admin.delete_groups(&[group], &AdminOptions::new().request_timeout(Some(TIMEOUT))))? {
            match r {
                Ok(g) => println!("Deletion of requested consumer groups ('{g}') was successful."),
                Err((g, code)) => bail!("deleting group '{g}' failed: {code}"),
            }
        }
        return Ok(());
    }
    if args.reset_offsets {
        return reset(&args, group, &base);
    }
    if args.delete_offsets {
        return delete_offsets(&args, group, &base);
    }
    if args.describe {
        return describe(&args, group, &base);
    }
    bail!("one of --list, --describe, --delete, --reset-offsets, --delete-offsets is required")
}

/// The group's committed offsets, looked up for every partition of every topic.
fn committed(
    args: &Args,
    group: &str,
    base: &BaseConsumer,
    only: Option<&str>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let md = base.fetch_metadata(only, TIMEOUT).context("fetching metadata")?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| !t.name().starts_with("__")) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let c: BaseConsumer = args.connect.client_config()?.set("group.id", group).create()?;
    let result = c
        .committed_offsets(tpl, TIMEOUT)
        .context("fetching committed offsets")?;
    Ok(result
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

/// `(member id, host, client id)` per owned partition.
type Owners = BTreeMap<(String, i32), (String, String, String)>;
/// `(member id, host, client id, partition count)` per member.
type Members = Vec<(String, String, String, usize)>;

/// The group's state, and the partitions each member owns (from the consumer
/// protocol's assignment bytes).
fn owners(base: &BaseConsumer, group: &str) -> Result<(String, Owners, Members)> {
    let list = base
        .fetch_group_list(Some(group), TIMEOUT)
        .context("describing group")?;
    let mut owners = BTreeMap::new();
    let mut members = Vec::new();
    let mut state = "Dead".to_string();
    for g in list.groups().iter().filter(|g| g.name() == group) {
        state = g.state().to_string();
        for m in g.members() {
            let parts = parse_assignment(m.assignment().unwrap_or_default());
            members.push((
                m.id().to_string(),
                m.client_host().to_string(),
                m.client_id().to_string(),
                parts.len(),
            ));
            for tp in parts {
                owners.insert(
                    tp,
                    (
                        m.id().to_string(),
                        m.client_host().to_string(),
                        m.client_id().to_string(),
                    ),
                );
            }
        }
    }
    Ok((state, owners, members))
}

/// ConsumerProtocolAssignment: version i16, [topic string, [partition i32]], user data.
fn parse_assignment(b: &[u8]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let mut pos = 2usize;
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let s = b.get(*pos..*pos + n)?;
        *pos += n;
        Some(s)
    };
    let Some(n) = take(&mut pos, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])) else {
        return out;
    };
    for _ in 0..n.clamp(0, 100_000) {
        let Some(len) = take(&mut pos, 2).map(|x| i16::from_be_bytes([x[0], x[1]]).max(0) as usize) else {
            break;
        };
        let Some(topic) = take(&mut pos, len).map(|x| String::from_utf8_lossy(x).to_string()) else {
            break;
        };
        let Some(count) = take(&mut pos, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])) else {
            break;
        };
        for _ in 0..count.clamp(0, 1_000_000) {
            let Some(p) = take(&mut pos, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])) else {
                break;
            };
            out.push((topic.clone(), p));
        }
    }
    out
}

fn describe(args: &Args, group: &str, base: &BaseConsumer) -> Result<()> {
    let (state, owners, members) = owners(base, group)?;
    if args.state {
        println!("{:<24} {:<12} #MEMBERS", "GROUP", "STATE");
        println!("{:<24} {:<12} {}", group, state, members.len());
        return Ok(());
    }
    if args.members {
        println!(
            "{:<24} {:<48} {:<16} {:<24} #PARTITIONS",
            "GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID"
        );
        for (id, host, client, n) in &members {
            println!("{group:<24} {id:<48} {host:<16} {client:<24} {n}");
        }
        return Ok(());
    }
    let committed = committed(args, group, base, None)?;
    if committed.is_empty() && owners.is_empty() {
        bail!("consumer group '{group}' does not exist or has no committed offsets");
    }
    let mut rows: BTreeMap<(String, i32), Option<i64>> = committed.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
    for k in owners.keys() {
        rows.entry(k.clone()).or_insert(None);
    }
    println!(
        "{:<24} {:<24} {:<10} {:<15} {:<15} {:<8} {:<48} {:<16} CLIENT-ID",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    for ((topic, partition), current) in rows {
        let (_, end) = base.fetch_watermarks(&topic, partition, TIMEOUT)?;
        let lag = current
            .map(|c| (end - c).max(0).to_string())
            .unwrap_or_else(|| "-".into());
        let current = current.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let (id, host, client) = owners
            .get(&(topic.clone(), partition))
            .cloned()
            .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
        println!(
            "{group:<24} {topic:<24} {partition:<10} {current:<15} {end:<15} {lag:<8} {id:<48} {host:<16} {client}"
        );
    }
    Ok(())
}

fn reset(args: &Args, group: &str, base: &BaseConsumer) -> Result<()> {
    let (state, _, members) = owners(base, group)?;
    if !members.is_empty() && args.execute {
        bail!("assignments can only be reset if the group '{group}' is inactive, but the current state is {state}");
    }
    let committed = committed(args, group, base, args.topic.as_deref())?;
    let md = base.fetch_metadata(args.topic.as_deref(), TIMEOUT)?;
    let mut targets: Vec<(String, i32)> = Vec::new();
    for t in md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
    {
        if args.topic.is_none() && !committed.keys().any(|(n, _)| n == t.name()) {
            continue;
        }
        for p in t.partitions() {
            targets.push((t.name().to_string(), p.id()));
        }
    }
    if targets.is_empty() {
        bail!("no topic to reset: give --topic, or commit offsets for the group first");
    }
    let by_time = match (&args.to_datetime, &args.by_duration) {
        (Some(d), _) => Some(parse_datetime(d)?),
        (None, Some(d)) => Some(now_ms() - parse_duration(d)?),
        _ => None,
    };
    let mut new_offsets = Vec::new();
    for (topic, partition) in &targets {
        let (low, high) = base.fetch_watermarks(topic, *partition, TIMEOUT)?;
        let current = committed.get(&(topic.clone(), *partition)).copied();
        let target = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(n) = args.shift_by {
            current.unwrap_or(low) + n
        } else if let Some(ts) = by_time {
            offset_for_time(base, topic, *partition, ts)?.unwrap_or(high)
        } else {
            bail!(
                "one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration is required"
            );
        };
        new_offsets.push((topic.clone(), *partition, target.clamp(low, high)));
    }
    println!("{:<24} {:<24} {:<10} NEW-OFFSET", "GROUP", "TOPIC", "PARTITION");
    for (t, p, o) in &new_offsets {
        println!("{group:<24} {t:<24} {p:<10} {o}");
    }
    if args.execute {
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &new_offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let c: BaseConsumer = args.connect.client_config()?.set("group.id", group).create()?;
        c.commit(&tpl, CommitMode::Sync).context("committing the new offsets")?;
    } else if !args.dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. Use --dry-run to silence this warning.");
    }
    Ok(())
}

/// OffsetDelete, which the rdkafka crate does not expose: sent by `admin_request`.
fn delete_offsets(args: &Args, group: &str, base: &BaseConsumer) -> Result<()> {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse;
    use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let spec = args
        .topic
        .as_deref()
        .ok_or_else(|| anyhow!("--delete-offsets needs --topic T or T:P,P,..."))?;
    let (topic, listed) = match spec.split_once(':') {
        Some((t, ps)) => {
            let ps: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
            (t, Some(ps.with_context(|| format!("bad partition list in '{spec}'"))?))
        }
        None => (spec, None),
    };
    let partitions = match listed {
        Some(ps) => ps,
        None => {
            let md = base.fetch_metadata(Some(topic), TIMEOUT).context("fetching metadata")?;
            let t = md
                .topics()
                .first()
                .ok_or_else(|| anyhow!("topic '{topic}' not found"))?;
            if let Some(e) = t.error() {
                bail!("topic '{topic}': {e:?}");
            }
            t.partitions().iter().map(|p| p.id()).collect()
        }
    };
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                    .collect(),
            )]);
    let resp: OffsetDeleteResponse =
        crate::admin_request::to_group_coordinator(&args.connect.bootstrap()?, group, ApiKey::OffsetDelete, 0, &req)?;
    match resp.error_code {
        0 => {}
        69 => bail!("consumer group '{group}' does not exist"),
        code => bail!("deleting offsets of group '{group}' failed: error code {code}"),
    }
    println!("Request succeed for deleting offsets with topic {topic} group {group}\n");
    println!("{:<24} {:<10} STATUS", "TOPIC", "PARTITION");
    let mut failed = false;
    for t in &resp.topics {
        for p in &t.partitions {
            let status = match p.error_code {
                0 => "Successful".to_string(),
                86 => {
                    failed = true;
                    "Error: the group is actively subscribed to the topic".to_string()
                }
                c => {
                    failed = true;
                    format!("Error: code {c}")
                }
            };
            println!("{:<24} {:<10} {status}", t.name.as_str(), p.partition_index);
        }
    }
    if failed {
        bail!("some offsets could not be deleted");
    }
    Ok(())
}

fn offset_for_time(base: &BaseConsumer, topic: &str, partition: i32, ts: i64) -> Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(ts))?;
    let r = base.offsets_for_times(tpl, TIMEOUT)?;
    Ok(r.elements().first().and_then(|e| match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:mm:SS[.sss]`, UTC.
fn parse_datetime(s: &str) -> Result<i64> {
    let bad = || anyhow!("--to-datetime expects YYYY-MM-DDTHH:mm:SS[.sss], got '{s}'");
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    // A fraction of a second: ".5" is 500 ms.
    let fraction = format!("{:0<3}", millis.trim_end_matches('Z'));
    let ms: i64 = fraction.get(..3).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

/// ISO-8601 durations as Kafka's tool takes them: `PnDTnHnMnS`.
fn parse_duration(s: &str) -> Result<i64> {
    let bad = || anyhow!("--by-duration expects an ISO-8601 duration such as PT1H30M or P2D, got '{s}'");
    let body = s.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = body.split_once('T').unwrap_or((body, ""));
    let mut ms = 0i64;
    if !days.is_empty() {
        ms += days
            .strip_suffix('D')
            .ok_or_else(bad)?
            .parse::<i64>()
            .map_err(|_| bad())?
            * 86_400_000;
    }
    let mut num = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' | 'M' | 'S' => {
                let v: f64 = num.parse().map_err(|_| bad())?;
                ms += (v * match c {
                    'H' => 3_600_000.0,
                    'M' => 60_000.0,
                    _ => 1000.0,
                }) as i64;
                num.clear();
            }
            _ => return Err(bad()),
        }
    }
    if !num.is_empty() || (days.is_empty() && time.is_empty()) {
        return Err(bad());
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_durations() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5").unwrap(), 1500);
        assert_eq!(parse_datetime("2024-02-29T12:00:00").unwrap(), 1_709_208_000_000);
        assert_eq!(parse_duration("PT1H30M").unwrap(), 5_400_000);
        assert_eq!(parse_duration("P1DT1S").unwrap(), 86_401_000);
        assert!(parse_duration("1H").is_err());
    }
}
