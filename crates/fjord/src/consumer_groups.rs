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
    /// The group; may be given more than once (with --describe, --delete, --reset-offsets).
    #[arg(long)]
    pub group: Vec<String>,
    /// Every group (with --describe, --delete, --reset-offsets).
    #[arg(long = "all-groups")]
    pub all_groups: bool,
    /// With --describe: the members instead of the offsets.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's state.
    #[arg(long)]
    pub state: bool,
    /// With --describe: offsets and lag (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe --members: each member's partitions too (ASSIGNMENT).
    #[arg(long)]
    pub verbose: bool,
    /// With --reset-offsets or --delete-offsets: T or T:P,P,...; may be given more
    /// than once.
    #[arg(long)]
    pub topic: Vec<String>,
    /// With --reset-offsets: every partition the group has committed offsets for.
    #[arg(long = "all-topics")]
    pub all_topics: bool,
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    #[arg(long = "to-offset")]
    pub to_offset: Option<i64>,
    #[arg(long = "shift-by", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// YYYY-MM-DDTHH:mm:SS[.sss], with a zone offset (Z, +01:00) or in UTC.
    #[arg(long = "to-datetime")]
    pub to_datetime: Option<String>,
    /// ISO-8601 duration back from now, e.g. PT1H or P1DT2H.
    #[arg(long = "by-duration")]
    pub by_duration: Option<String>,
    /// With --reset-offsets: each partition to its committed offset (the log end
    /// where there is none), as a plan to --export.
    #[arg(long = "to-current")]
    pub to_current: bool,
    /// With --reset-offsets: the offsets in a CSV file (topic,partition,offset, or
    /// group,topic,partition,offset), as --export writes them.
    #[arg(long = "from-file")]
    pub from_file: Option<std::path::PathBuf>,
    /// With --reset-offsets: print the plan as CSV instead of a table.
    #[arg(long)]
    pub export: bool,
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    #[arg(long)]
    pub execute: bool,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: Args) -> Result<()> {
    check_args(&args)?;
    let base: BaseConsumer = args.connect.client_config()?.create().context("creating client")?;
    if args.list {
        for n in all_groups(&base)? {
            outln!("{n}");
        }
        return Ok(());
    }
    let groups = if args.all_groups {
        all_groups(&base)?
    } else {
        args.group.clone()
    };
    if args.delete {
        return delete(&args, &groups);
    }
    if args.delete_offsets {
        return delete_offsets(&args, &groups[0], &base);
    }
    // Each group on its own, as Kafka's tool: one that cannot be described or reset is
    // reported and the others go on; the run then exits non-zero.
    let mut failed = 0;
    // An exported plan is one CSV: no line between groups, one after it (Kafka's
    // `println` of the whole).
    let export = args.reset_offsets && args.export;
    for (i, group) in groups.iter().enumerate() {
        if i > 0 && !export {
            outln!();
        }
        let done = if args.reset_offsets {
            reset(&args, group, &base)
        } else {
            describe(&args, group, &base)
        };
        if let Err(e) = done {
            eprintln!("Error: {e:#}");
            failed += 1;
        }
    }
    if export {
        outln!();
    }
    if failed > 0 {
        bail!("{failed} of {} groups failed", groups.len());
    }
    Ok(())
}

/// DeleteGroups of every group at once; the ones deleted are reported even when some
/// are not, as Kafka's tool reports them.
fn delete(args: &Args, groups: &[String]) -> Result<()> {
    if groups.is_empty() {
        // librdkafka refuses an empty DeleteGroups; Kafka's tool succeeds with nothing.
        outln!("Deletion of requested consumer groups () was successful.");
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = args.connect.client_config()?.create()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let results = rt.block_on(admin.delete_groups(&names, &AdminOptions::new().request_timeout(Some(TIMEOUT))))?;
    let (deleted, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    let deleted: Vec<String> = deleted
        .into_iter()
        .filter_map(|r| r.ok())
        .map(|g| format!("'{g}'"))
        .collect();
    if failed.is_empty() {
        outln!(
            "Deletion of requested consumer groups ({}) was successful.",
            deleted.join(", ")
        );
        return Ok(());
    }
    eprintln!("Error: Deletion of some consumer groups failed:");
    for (g, code) in failed.into_iter().filter_map(|r| r.err()) {
        outln!("* Group '{g}' could not be deleted due to: {code}");
    }
    if !deleted.is_empty() {
        outln!(
            "\nThese consumer groups were deleted successfully: {}",
            deleted.join(", ")
        );
    }
    bail!("some consumer groups could not be deleted")
}

fn all_groups(base: &BaseConsumer) -> Result<Vec<String>> {
    let groups = base.fetch_group_list(None, TIMEOUT).context("listing groups")?;
    let mut names: Vec<String> = groups.groups().iter().map(|g| g.name().to_string()).collect();
    names.sort_unstable();
    Ok(names)
}

/// The option checks of Kafka's `ConsumerGroupCommandOptions.checkArgs`, in its order
/// and with its messages, before anything is sent: a command Kafka's tool refuses is
/// refused here too.
fn check_args(a: &Args) -> Result<()> {
    if ![a.list, a.describe, a.delete, a.reset_offsets, a.delete_offsets].contains(&true) {
        bail!(
            "Command must include exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets"
        );
    }
    let scope = "[group], [all-groups]";
    let selected = !a.group.is_empty() || a.all_groups;
    if a.describe {
        if !selected {
            bail!("Option [describe] takes one of these options: {scope}");
        }
        if [a.members, a.offsets, a.state].iter().filter(|x| **x).count() > 1 {
            bail!("Option [describe] takes at most one of these options: [members], [offsets], [state]");
        }
    }
    if a.delete {
        if !selected {
            bail!("Option [delete] takes one of these options: {scope}");
        }
        if !a.topic.is_empty() {
            bail!("The consumer does not support topic-specific offset deletion from a consumer group.");
        }
    }
    if a.delete_offsets && (a.group.len() != 1 || a.all_groups || a.topic.is_empty()) {
        bail!("Option [delete-offsets] takes the following options: [group], [topic]");
    }
    let scenarios = [
        ("to-offset", a.to_offset.is_some()),
        ("to-datetime", a.to_datetime.is_some()),
        ("by-duration", a.by_duration.is_some()),
        ("to-earliest", a.to_earliest),
        ("to-latest", a.to_latest),
        ("shift-by", a.shift_by.is_some()),
        ("from-file", a.from_file.is_some()),
        ("to-current", a.to_current),
    ];
    let used: Vec<&str> = scenarios.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    if a.reset_offsets {
        if a.dry_run && a.execute {
            bail!("Option [reset-offsets] only accepts one of [execute] and [dry-run]");
        }
        if !selected {
            bail!("Option [reset-offsets] takes one of these options: {scope}");
        }
        if let [first, second, ..] = used.as_slice() {
            bail!("Option \"[{first}]\" can't be used with option \"[{second}]\"");
        }
        if used.is_empty() {
            bail!("Option '[reset-offsets]' requires one of the following scenarios: [to-offset, to-datetime, by-duration, to-earliest, to-latest, shift-by, from-file, to-current]");
        }
        if a.topic.is_empty() && !a.all_topics && a.from_file.is_none() {
            bail!("One of the reset scopes should be defined: --all-topics, --topic.");
        }
    } else if let Some(first) = used.first() {
        bail!("Option [{first}] is applicable only with [reset-offsets]");
    }
    if !a.group.is_empty() && a.all_groups {
        bail!("Option \"[group]\" can't be used with option \"[all-groups]\"");
    }
    if a.list && (!a.group.is_empty() || !a.topic.is_empty()) {
        let what = if a.topic.is_empty() { "group" } else { "topic" };
        bail!("Option \"[{what}]\" can't be used with option \"[list]\"");
    }
    if a.describe && !a.topic.is_empty() {
        bail!("Option \"[topic]\" can't be used with option \"[describe]\"");
    }
    Ok(())
}

/// `--topic T` or `--topic T:P,P,...`: the topic and the partitions it names, if any.
fn topic_spec(spec: &str) -> Result<(&str, Option<Vec<i32>>)> {
    match spec.split_once(':') {
        Some((t, ps)) => {
            let ps: Result<Vec<i32>, _> = ps.split(',').map(|p| p.trim().parse::<i32>()).collect();
            Ok((t, Some(ps.with_context(|| format!("bad partition list in '{spec}'"))?)))
        }
        None => Ok((spec, None)),
    }
}

/// The partitions `spec` names, or every partition of its topic.
fn spec_partitions(base: &BaseConsumer, spec: &str) -> Result<(String, Vec<i32>)> {
    let (topic, listed) = topic_spec(spec)?;
    if let Some(ps) = listed {
        return Ok((topic.to_string(), ps));
    }
    let md = base.fetch_metadata(Some(topic), TIMEOUT).context("fetching metadata")?;
    let t = md
        .topics()
        .first()
        .ok_or_else(|| anyhow!("topic '{topic}' not found"))?;
    if let Some(e) = t.error() {
        bail!("topic '{topic}': {e:?}");
    }
    Ok((topic.to_string(), t.partitions().iter().map(|p| p.id()).collect()))
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
    for t in md
        .topics()
        .iter()
        .filter(|t| !broker::metadata::is_internal_topic(t.name()))
    {
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

/// A group as DescribeGroups (v5) and FindCoordinator tell it.
struct Group {
    state: String,
    /// The assignment strategy its members agreed on ("range"), or its assignor.
    protocol: String,
    /// (node id, host, port).
    coordinator: (i32, String, i32),
    members: Vec<Member>,
}

struct Member {
    id: String,
    instance_id: String,
    host: String,
    client_id: String,
    /// From the consumer protocol's assignment bytes.
    partitions: Vec<(String, i32)>,
}

/// The group from its coordinator. A group the coordinator does not know is Dead, as
/// Kafka's describe reports it.
fn describe_group(args: &Args, group: &str) -> Result<Group> {
    use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
    use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
    use kafka_protocol::messages::{ApiKey, GroupId};
    use kafka_protocol::protocol::StrBytes;
    const GROUP_ID_NOT_FOUND: i16 = 69;
    let bootstrap = &args.connect.bootstrap()?;
    let coordinator = crate::admin_request::find_coordinator(bootstrap, group)?;
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let (_, host, port) = &coordinator;
    let mut r: DescribeGroupsResponse = crate::admin_request::to_broker(host, *port, ApiKey::DescribeGroups, 5, &req)?;
    let Some(g) = r.groups.pop() else {
        bail!("describing group '{group}': no answer for it");
    };
    match g.error_code {
        0 => {}
        GROUP_ID_NOT_FOUND => {
            return Ok(Group {
                state: "Dead".into(),
                protocol: String::new(),
                coordinator,
                members: Vec::new(),
            })
        }
        code => bail!("describing group '{group}' failed: error code {code}"),
    }
    let members = g
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.to_string(),
            instance_id: m.group_instance_id.as_deref().unwrap_or_default().to_string(),
            host: m.client_host.to_string(),
            client_id: m.client_id.to_string(),
            partitions: parse_assignment(&m.member_assignment),
        })
        .collect();
    Ok(Group {
        state: g.group_state.to_string(),
        protocol: g.protocol_data.to_string(),
        coordinator,
        members,
    })
}

/// The group's partitions by owner.
fn owners(group: &Group) -> Owners {
    let mut owners = BTreeMap::new();
    for m in &group.members {
        for tp in &m.partitions {
            owners.insert(tp.clone(), (m.id.clone(), m.host.clone(), m.client_id.clone()));
        }
    }
    owners
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
    let described = describe_group(args, group)?;
    if args.state {
        print_state(group, &described);
        return Ok(());
    }
    if args.members {
        print_members(group, &described, args.verbose);
        return Ok(());
    }
    let owners = owners(&described);
    let committed = committed(args, group, base, None)?;
    let mut rows: BTreeMap<(String, i32), Option<i64>> = committed.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
    for k in owners.keys() {
        rows.entry(k.clone()).or_insert(None);
    }
    if !should_print_member_state(group, &described.state, rows.len()) {
        return Ok(());
    }
    let missing = || ("-".to_string(), "-".to_string(), "-".to_string());
    let mut table = Vec::with_capacity(rows.len());
    for ((topic, partition), current) in rows {
        let (_, end) = base.fetch_watermarks(&topic, partition, TIMEOUT)?;
        let lag = current.map_or_else(|| "-".into(), |c| (end - c).max(0).to_string());
        let current = current.map_or_else(|| "-".into(), |c| c.to_string());
        let (id, host, client) = owners.get(&(topic.clone(), partition)).cloned().unwrap_or_else(missing);
        table.push([
            group.to_string(),
            topic,
            partition.to_string(),
            current,
            end.to_string(),
            lag,
            id,
            host,
            client,
        ]);
    }
    // Kafka's `printOffsetFormat`: group, topic, consumer id and host at least 15 wide,
    // or as wide as their widest value.
    let width = |column: usize| table.iter().map(|r| r[column].len()).max().unwrap_or(0).max(15);
    let (g, t, c, h) = (width(0), width(1), width(6), width(7));
    let line = |r: &[&str; 9]| {
        format!(
            "\n{:<g$} {:<t$} {:<10} {:<15} {:<15} {:<15} {:<c$} {:<h$} {}",
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]
        )
    };
    let mut out = line(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in &table {
        out.push_str(&line(&std::array::from_fn(|i| r[i].as_str())));
    }
    outln!("{out}");
    Ok(())
}

/// Kafka's `printStates`: the group, its coordinator, assignment strategy, state and
/// member count.
fn print_state(group: &str, described: &Group) {
    if !should_print_member_state(group, &described.state, 1) {
        return;
    }
    let (id, host, port) = &described.coordinator;
    let coordinator = format!("{host}:{port}  ({id})");
    let w = coordinator.len().max(25);
    outln!(
        "\n{:<w$} {:<25} {:<20} {:<15} #MEMBERS\n{:<w$} {:<25} {:<20} {:<15} {}",
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        group,
        coordinator,
        described.protocol,
        described.state,
        described.members.len()
    );
}

/// Kafka's `printMembers`: a line per member, GROUP-INSTANCE-ID when any member has
/// one, and with `--verbose` each member's partitions, "(0,1), (2)" a topic each.
fn print_members(group: &str, described: &Group, verbose: bool) {
    // Kafka's prints the header whatever this says of the group.
    let _ = should_print_member_state(group, &described.state, described.members.len());
    let ms = &described.members;
    let width = |least: usize, f: &dyn Fn(&Member) -> usize| ms.iter().map(f).fold(least, usize::max);
    let g = group.len().max(15);
    let c = width(15, &|m| m.id.len());
    let i = width(17, &|m| m.instance_id.len());
    let h = width(15, &|m| m.host.len());
    let cl = width(15, &|m| m.client_id.len());
    let with_instance = ms.iter().any(|m| !m.instance_id.is_empty());
    let row = |cols: [&str; 6]| {
        let instance = if with_instance {
            format!("{:<i$} ", cols[2])
        } else {
            String::new()
        };
        format!(
            "{:<g$} {:<c$} {instance}{:<h$} {:<cl$} {:<15} ",
            cols[0], cols[1], cols[3], cols[4], cols[5]
        )
    };
    let mut out = format!(
        "\n{}{}",
        row([
            "GROUP",
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS"
        ]),
        if verbose { "ASSIGNMENT" } else { "" }
    );
    for m in ms {
        let n = m.partitions.len().to_string();
        out.push('\n');
        out.push_str(&row([group, &m.id, &m.instance_id, &m.host, &m.client_id, &n]));
        if verbose {
            out.push_str(&assignment_column(&m.partitions));
        }
    }
    outln!("{out}");
}

/// Kafka's ASSIGNMENT column: a member's partitions grouped by topic, each group
/// "(p,p)" with its partitions sorted as strings, the groups sorted; "-" for none.
fn assignment_column(partitions: &[(String, i32)]) -> String {
    if partitions.is_empty() {
        return "-".into();
    }
    let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(p.to_string());
    }
    let mut groups: Vec<String> = by_topic
        .into_values()
        .map(|mut ps| {
            ps.sort();
            format!("({})", ps.join(","))
        })
        .collect();
    groups.sort();
    groups.join(", ")
}

/// Kafka's `shouldPrintMemberState`: what a describe says of the group's state before
/// its table, or instead of it (a group that does not exist, one with no rows); whether
/// the table follows. The same words and streams as Kafka's, and status 0.
fn should_print_member_state(group: &str, state: &str, rows: usize) -> bool {
    match state {
        "Dead" => {
            outln!("\nError: Consumer group '{group}' does not exist.");
            return false;
        }
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    rows > 0
}

fn reset(args: &Args, group: &str, base: &BaseConsumer) -> Result<()> {
    let state = describe_group(args, group)?.state;
    // As Kafka's `resetOffsets`: only an Empty (or unknown) group's offsets are reset,
    // and an active group's refusal is printed whatever the mode, with the empty plan.
    if state != "Empty" && state != "Dead" {
        outln!("\nError: Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}.");
        if !args.export {
            outln!("{:<24} {:<24} {:<10} NEW-OFFSET", "GROUP", "TOPIC", "PARTITION");
        }
        return Ok(());
    }
    let committed = committed(args, group, base, None)?;
    let plan = match &args.from_file {
        Some(path) => from_file(args, group, path)?,
        None => {
            let mut targets: Vec<(String, i32)> = Vec::new();
            // As Kafka's `getPartitionsToReset`: --all-topics, else the --topic list.
            if args.all_topics {
                targets.extend(committed.keys().cloned());
            } else {
                for spec in &args.topic {
                    let (topic, partitions) = spec_partitions(base, spec)?;
                    targets.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
                }
            }
            targets.sort();
            targets.dedup();
            targets
                .into_iter()
                .map(|tp| Ok((tp.0.clone(), tp.1, scenario_offset(args, base, &committed, &tp)?)))
                .collect::<Result<Vec<_>>>()?
        }
    };
    // A group with no committed offsets under --all-topics has an empty plan, as in
    // Kafka's tool: the header alone.
    let mut new_offsets = Vec::with_capacity(plan.len());
    for (topic, partition, target) in plan {
        // Kafka's tool takes an offset out of range to the nearest end, and says so;
        // --to-current keeps the committed offsets as they are.
        let offset = if args.to_current {
            target
        } else {
            in_range(base, &topic, partition, target)?
        };
        new_offsets.push((topic, partition, offset));
    }
    if args.export {
        // Kafka's `exportOffsetsToCsv`: the group named only when several are.
        let multi = args.group.len() != 1;
        for (t, p, o) in &new_offsets {
            if multi {
                outln!("{group},{t},{p},{o}");
            } else {
                outln!("{t},{p},{o}");
            }
        }
    } else {
        outln!("{:<24} {:<24} {:<10} NEW-OFFSET", "GROUP", "TOPIC", "PARTITION");
        for (t, p, o) in &new_offsets {
            outln!("{group:<24} {t:<24} {p:<10} {o}");
        }
    }
    if args.execute && !new_offsets.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &new_offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        let c: BaseConsumer = args.connect.client_config()?.set("group.id", group).create()?;
        c.commit(&tpl, CommitMode::Sync).context("committing the new offsets")?;
    } else if !args.dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. You should add the --dry-run option explicitly if you are scripting this command.");
    }
    Ok(())
}

/// The offset a reset scenario gives `tp` (before the range check).
fn scenario_offset(
    args: &Args,
    base: &BaseConsumer,
    committed: &BTreeMap<(String, i32), i64>,
    tp: &(String, i32),
) -> Result<i64> {
    let (topic, partition) = (tp.0.as_str(), tp.1);
    let (low, high) = base.fetch_watermarks(topic, partition, TIMEOUT)?;
    let current = committed.get(tp).copied();
    let by_time = match (&args.to_datetime, &args.by_duration) {
        (Some(d), _) => Some(parse_datetime(d)?),
        (None, Some(d)) => Some(now_ms() - parse_duration(d)?),
        _ => None,
    };
    Ok(if args.to_earliest {
        low
    } else if args.to_latest {
        high
    } else if let Some(o) = args.to_offset {
        o
    } else if let Some(n) = args.shift_by {
        let Some(current) = current else {
            bail!("Cannot shift offset for partition {topic}-{partition} since there is no current committed offset");
        };
        current + n
    } else if let Some(ts) = by_time {
        offset_for_time(base, topic, partition, ts)?.unwrap_or(high)
    } else if args.to_current {
        // Kafka's: the committed offset, or the log end where there is none.
        current.unwrap_or(high)
    } else {
        unreachable!("check_args requires a scenario");
    })
}

/// Kafka's `checkOffsetsRange`: an offset past either end is set to that end, with a
/// warning.
fn in_range(base: &BaseConsumer, topic: &str, partition: i32, target: i64) -> Result<i64> {
    let (low, high) = base.fetch_watermarks(topic, partition, TIMEOUT)?;
    if target > high {
        eprintln!("WARN: New offset ({target}) is higher than latest offset for topic partition {topic}-{partition}. Value will be set to {high}");
    } else if target < low {
        eprintln!("WARN: New offset ({target}) is lower than earliest offset for topic partition {topic}-{partition}. Value will be set to {low}");
    }
    Ok(target.clamp(low, high))
}

/// `--from-file`: the plan for `group` in a CSV file, as Kafka's `parseResetPlan` reads
/// it: `topic,partition,offset` lines when one group is named and the first line has
/// three fields, else `group,topic,partition,offset` lines (those of `group` taken).
fn from_file(args: &Args, group: &str, path: &std::path::Path) -> Result<Vec<(String, i32, i64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let without_group = args.group.len() == 1 && lines.first().is_some_and(|l| l.split(',').count() == 3);
    let mut plan = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (g, rest) = match (without_group, fields.as_slice()) {
            (true, [t, p, o]) => (group, [*t, *p, *o]),
            (false, [g, t, p, o]) => (*g, [*t, *p, *o]),
            _ => bail!("Invalid line in the reset plan {}: {line}", path.display()),
        };
        let invalid = || anyhow!("Invalid line in the reset plan {}: {line}", path.display());
        if g == group {
            plan.push((
                rest[0].to_string(),
                rest[1].parse().map_err(|_| invalid())?,
                rest[2].parse().map_err(|_| invalid())?,
            ));
        }
    }
    Ok(plan)
}

/// OffsetDelete, which the rdkafka crate does not expose: sent by `admin_request`.
fn delete_offsets(args: &Args, group: &str, base: &BaseConsumer) -> Result<()> {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse;
    use kafka_protocol::messages::{ApiKey, GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut topics = Vec::new();
    for spec in &args.topic {
        topics.push(spec_partitions(base, spec)?);
    }
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp: OffsetDeleteResponse =
        crate::admin_request::to_group_coordinator(&args.connect.bootstrap()?, group, ApiKey::OffsetDelete, 0, &req)?;
    match resp.error_code {
        0 => {}
        69 => bail!("consumer group '{group}' does not exist"),
        code => bail!("deleting offsets of group '{group}' failed: error code {code}"),
    }
    let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    outln!(
        "Request succeed for deleting offsets with topic {} group {group}\n",
        names.join(", ")
    );
    outln!("{:<24} {:<10} STATUS", "TOPIC", "PARTITION");
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
            outln!("{:<24} {:<10} {status}", t.name.as_str(), p.partition_index);
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

/// `YYYY-MM-DDTHH:mm:SS[.sss]` with an optional zone offset (`Z`, `+01`, `+0100`,
/// `+01:00`), UTC without one: Kafka's `Utils.getDateTime` (which also requires the
/// milliseconds; Fjord does not).
fn parse_datetime(s: &str) -> Result<i64> {
    let bad = |e: jiff::Error| anyhow!("--to-datetime expects YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:mm], got '{s}': {e}");
    let (_, time) = s
        .split_once('T')
        .ok_or_else(|| anyhow!("--to-datetime expects YYYY-MM-DDTHH:mm:SS[.sss], got '{s}': no 'T'"))?;
    let timestamp = if time.contains(['+', '-', 'Z', 'z']) {
        s.parse::<jiff::Timestamp>().map_err(bad)?
    } else {
        s.parse::<jiff::civil::DateTime>()
            .and_then(|d| jiff::tz::Offset::UTC.to_timestamp(d))
            .map_err(bad)?
    };
    Ok(timestamp.as_millisecond())
}

/// ISO-8601 durations as Kafka's tool takes them (Java's `Duration.parse`):
/// `PnDTnHnMn.nS`, a day being 24 hours.
fn parse_duration(s: &str) -> Result<i64> {
    let bad =
        |e: jiff::Error| anyhow!("--by-duration expects an ISO-8601 duration such as PT1H30M or P2D, got '{s}': {e}");
    let span: jiff::Span = s.parse().map_err(bad)?;
    if span.get_years() != 0 || span.get_months() != 0 || span.get_weeks() != 0 {
        bail!("--by-duration takes days, hours, minutes and seconds (PnDTnHnMn.nS), got '{s}'");
    }
    let ms = span
        .total((jiff::Unit::Millisecond, jiff::SpanRelativeTo::days_are_24_hours()))
        .map_err(bad)?;
    Ok(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_durations() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5").unwrap(), 1500);
        assert_eq!(parse_datetime("2024-02-29T12:00:00").unwrap(), 1_709_208_000_000);
        // Zone offsets, as Kafka's `Utils.getDateTime` takes them.
        assert_eq!(parse_datetime("2024-02-29T12:00:00.000Z").unwrap(), 1_709_208_000_000);
        assert_eq!(
            parse_datetime("2024-02-29T13:00:00.000+01:00").unwrap(),
            1_709_208_000_000
        );
        assert_eq!(parse_datetime("2024-02-29T07:00:00-05").unwrap(), 1_709_208_000_000);
        assert_eq!(parse_datetime("2024-02-29T13:30:00+0130").unwrap(), 1_709_208_000_000);
        for bad in [
            "2024-13-01T00:00:00",
            "2023-02-29T00:00:00",
            "2024-02-29",
            "2024-02-29T25:00:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("PT1H30M").unwrap(), 5_400_000);
        assert_eq!(parse_duration("P1DT1S").unwrap(), 86_401_000);
        assert_eq!(parse_duration("PT0.5S").unwrap(), 500);
        assert!(parse_duration("1H").is_err());
        assert!(parse_duration("P1M").is_err(), "months are not a duration");
    }
}
