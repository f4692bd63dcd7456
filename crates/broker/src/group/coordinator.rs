//! `GroupCoordinator`: every classic group this broker coordinates, their committed
//! offsets, and the clock-driven work (session expiry, rebalance completion).
//!
//! Lock: one `Mutex` over the groups map and one over the offsets map; never held
//! across an await. Callers wait on the oneshot receivers `join` and `sync` return.
//! Persistence is the caller's: records for `__consumer_offsets` are written before
//! `store_offsets` makes them visible.

use super::assignor::{Assignor, ASSIGNORS};
use super::classic_group::{codes, ClassicGroup, GroupState, JoinResult, Member, SyncResult};
use super::consumer_group::ConsumerGroup;
use super::consumer_records::RawRecords;
use super::offsets::{self, GroupOffsets, OffsetAndMetadata, OffsetsRecord};
use super::RecordWriter;
use crate::time::Time;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Limits, Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i64,
    pub max_session_timeout_ms: i64,
    pub max_size: usize,
    pub offset_metadata_max_bytes: usize,
    pub offsets_topic_num_partitions: i32,
    /// Limit: groups one broker coordinates.
    pub groups_max: usize,
    /// Limit: one member's protocol metadata (the record that stores its group must fit
    /// `message.max.bytes`).
    pub member_metadata_max_bytes: usize,
    /// The consumer group protocol (KIP-848): `group.consumer.*`.
    pub consumer_session_timeout_ms: i64,
    pub consumer_heartbeat_interval_ms: i64,
    pub consumer_max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub consumer_assignors: Vec<Assignor>,
    /// `offsets.retention.minutes`, in ms: committed offsets of an empty group expire.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: 10_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_num_partitions: 50,
            groups_max: 100_000,
            member_metadata_max_bytes: 1_048_588 / 2,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: 10_000,
            consumer_assignors: ASSIGNORS.to_vec(),
            offsets_retention_ms: 7 * 24 * 3_600_000,
        }
    }
}

/// A SyncGroup's fields the checks read (the assignments go apart).
pub struct SyncParams<'a> {
    pub group_id: &'a str,
    pub generation: i32,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// v5+; `None` otherwise.
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
}

/// An OffsetCommit's fields the group's checks read.
pub struct CommitParams<'a> {
    pub group_id: &'a str,
    pub generation: i32,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// The request's version: v9+ answers a missing group GROUP_ID_NOT_FOUND.
    pub version: i16,
}

/// A JoinGroup request in domain terms.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first get its id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a restarted static leader can be told to skip the assignment
    /// (KIP-814).
    pub skip_assignment_supported: bool,
}

/// What a JoinGroup gets: an answer now, or one when the rebalance completes.
#[derive(Debug)]
pub enum JoinOutcome {
    Now(JoinResult),
    Wait(oneshot::Receiver<JoinResult>),
}

/// An immediate JoinGroup error: code and the member id to report.
type JoinRefusal = (i16, String);

/// A partition and the error code for it (NONE: go ahead).
pub type PartitionVerdict = ((String, i32), i16);

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// KIP-848's group type: `classic` or `consumer`.
    pub group_type: &'static str,
}

#[derive(Debug)]
pub struct GroupCoordinator {
    pub config: GroupConfig,
    pub(super) time: Time,
    pub(super) groups: Mutex<HashMap<String, ClassicGroup>>,
    /// Groups of the consumer protocol (KIP-848). Lock order: `groups`, then
    /// `consumer_groups`, then `offsets`.
    pub(super) consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    pub(super) offsets: Mutex<HashMap<String, GroupOffsets>>,
    /// The last time each group was seen with members, for `offsets.retention.minutes`.
    /// Locked last.
    pub(super) active_ms: Mutex<HashMap<String, i64>>,
    /// Held (by group, striped) from writing a group's offset records until they are
    /// applied in memory: commits, expiry and deletes of one group then reach the log in
    /// the order they take effect. Taken before any other lock here.
    commit_locks: Vec<Mutex<()>>,
}

/// Stripes of `commit_locks`.
const COMMIT_LOCK_STRIPES: usize = 64;

use crate::sync::lock;

impl GroupCoordinator {
    pub fn new(config: GroupConfig, time: Time) -> GroupCoordinator {
        GroupCoordinator {
            config,
            time,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            active_ms: Mutex::new(HashMap::new()),
            commit_locks: (0..COMMIT_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            offsets: Mutex::new(HashMap::new()),
        }
    }

    /// JoinGroup. An empty consumer-protocol group of the same id becomes a classic
    /// group: its records are tombstoned first (`write`), as Kafka's
    /// `createGroupTombstoneRecords`; if that write fails the join is answered
    /// COORDINATOR_NOT_AVAILABLE and the client retries.
    pub fn join(&self, p: JoinParams, write: RecordWriter) -> JoinOutcome {
        if let Err(code) = self.retire_empty_consumer_group(&p.group_id, write) {
            tracing::warn!(group = %p.group_id, code, "writing the consumer group's tombstones failed");
            return JoinOutcome::Now(JoinResult::error(codes::COORDINATOR_NOT_AVAILABLE, &p.member_id));
        }
        match self.try_join(p) {
            Ok(outcome) => outcome,
            Err((code, member_id)) => JoinOutcome::Now(JoinResult::error(code, &member_id)),
        }
    }

    /// Writes tombstones for the records of `group_id`'s consumer-protocol group if it
    /// is empty, then drops it. Under the group's commit lock, which every consumer
    /// heartbeat of the group holds too: no member can join between the write and the
    /// removal, and the tombstones reach the log before any record of the classic group.
    fn retire_empty_consumer_group(&self, group_id: &str, write: RecordWriter) -> Result<(), i16> {
        let empty = |c: &HashMap<String, ConsumerGroup>| c.get(group_id).is_some_and(|g| g.members.is_empty());
        // Most joins find no consumer group: they take no commit lock (a slow write of
        // another group on the same stripe would hold them up).
        if !empty(&lock(&self.consumer_groups)) {
            return Ok(());
        }
        let _ordered = self.commit_lock(group_id);
        let tombstones = {
            let consumer = lock(&self.consumer_groups);
            match consumer.get(group_id) {
                Some(g) if g.members.is_empty() => g.tombstones(),
                _ => return Ok(()),
            }
        };
        write(group_id, &tombstones)?;
        let mut consumer = lock(&self.consumer_groups);
        assert!(
            consumer.get(group_id).is_none_or(|g| g.members.is_empty()),
            "a member joined a consumer group while its commit lock was held"
        );
        consumer.remove(group_id);
        Ok(())
    }

    fn try_join(&self, p: JoinParams) -> Result<JoinOutcome, JoinRefusal> {
        let now = self.time.now_ms();
        if p.group_id.is_empty() {
            return Err((codes::INVALID_GROUP_ID, p.member_id.clone()));
        }
        if p.session_timeout_ms < self.config.min_session_timeout_ms
            || p.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err((codes::INVALID_SESSION_TIMEOUT, p.member_id.clone()));
        }
        let metadata_bytes: usize = p.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if metadata_bytes > self.config.member_metadata_max_bytes {
            // A member this large could never be stored in `__consumer_offsets`: Kafka
            // fails later, at SyncGroup, with UNKNOWN_SERVER_ERROR; Fjord refuses the
            // join itself, before the group is disturbed.
            tracing::warn!(group = %p.group_id, bytes = metadata_bytes, "member metadata too large");
            return Err((codes::INVALID_REQUEST, p.member_id.clone()));
        }
        let mut groups = lock(&self.groups);
        {
            let consumer = lock(&self.consumer_groups);
            match consumer.get(&p.group_id) {
                Some(g) if !g.members.is_empty() => {
                    return Err((codes::INCONSISTENT_GROUP_PROTOCOL, p.member_id.clone()))
                }
                // Emptied since `retire_empty_consumer_group` looked: its records are not
                // tombstoned yet, so the client is asked to retry (and the retry
                // retires it).
                Some(_) => return Err((codes::COORDINATOR_NOT_AVAILABLE, p.member_id.clone())),
                None => {}
            }
        }
        if !groups.contains_key(&p.group_id) && groups.len() >= self.config.groups_max {
            return Err((codes::COORDINATOR_NOT_AVAILABLE, p.member_id.clone()));
        }
        let group = groups
            .entry(p.group_id.clone())
            .or_insert_with(|| ClassicGroup::new(&p.group_id));
        if !group.accepts_joining_member(&p.member_id, self.config.max_size) {
            // As Kafka: the member, if it was one, is out; the answer names no member.
            if group.members.contains_key(&p.member_id) {
                group.remove_member(&p.member_id, now);
            }
            return Err((codes::GROUP_MAX_SIZE_REACHED, String::new()));
        }
        if !group.supports(&p.protocol_type, &p.protocols) {
            return Err((codes::INCONSISTENT_GROUP_PROTOCOL, p.member_id.clone()));
        }
        if let (true, Some(instance)) = (p.member_id.is_empty(), &p.group_instance_id) {
            let new_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
            if let Some(r) =
                group.replace_static_member(instance, &new_id, &p.protocols, p.skip_assignment_supported, now)
            {
                tracing::info!(group = %p.group_id, instance = %instance, "static member rejoined without a rebalance");
                return Ok(JoinOutcome::Now(r));
            }
        }
        let member_id = self.resolve_member(group, &p, now)?;
        if let Some(r) = group.rejoin_unchanged(&member_id, &p.protocols) {
            return Ok(JoinOutcome::Now(r));
        }
        let (tx, rx) = oneshot::channel();
        if group.members.contains_key(&member_id) {
            group.set_protocols(&member_id, p.protocols.clone());
        } else {
            group.insert_member(Member {
                member_id: member_id.clone(),
                group_instance_id: p.group_instance_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                session_timeout_ms: p.session_timeout_ms,
                rebalance_timeout_ms: p.rebalance_timeout_ms,
                protocol_type: p.protocol_type.clone(),
                protocols: p.protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now,
                join_waiter: None,
                sync_waiter: None,
            });
            // Into an initial rebalance: its delay goes on (Kafka's `newMemberAdded`).
            if let (GroupState::PreparingRebalance, Some(initial)) = (group.state, group.initial_rebalance.as_mut()) {
                initial.new_member_added = true;
            }
        }
        let Some(member) = group.members.get_mut(&member_id) else {
            // Inserted just above, under the same lock.
            return Err((codes::UNKNOWN_MEMBER_ID, member_id));
        };
        member.session_timeout_ms = p.session_timeout_ms;
        // As given (v0's is its session timeout), as Kafka: the rebalance waits for the
        // members' longest.
        member.rebalance_timeout_ms = p.rebalance_timeout_ms.max(0);
        member.last_heartbeat_ms = now;
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(codes::UNKNOWN_MEMBER_ID, &member_id));
        }
        group.prepare_rebalance(now, self.config.initial_rebalance_delay_ms);
        group.maybe_complete_join(now);
        Ok(JoinOutcome::Wait(rx))
    }

    /// The member id this join speaks for, or the immediate answer.
    fn resolve_member(&self, group: &mut ClassicGroup, p: &JoinParams, now: i64) -> Result<String, JoinRefusal> {
        if !p.member_id.is_empty() {
            // As Kafka's `classicGroupJoinExistingMember`: a pending member is admitted,
            // any other must be a member (and its instance's, for a static one).
            if group.pending_members.remove(&p.member_id).is_some() {
                return Ok(p.member_id.clone());
            }
            group
                .validate_member(&p.member_id, p.group_instance_id.as_deref())
                .map_err(|code| (code, p.member_id.clone()))?;
            return Ok(p.member_id.clone());
        }
        let new_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = &p.group_instance_id {
            // Static membership (KIP-345): the instance's old member id is replaced.
            let old = group.static_member_id(instance).map(str::to_string);
            if let Some(old) = old {
                if let Some(mut m) = group.take_member(&old) {
                    if let Some(w) = m.join_waiter.take() {
                        let _ = w.send(JoinResult::error(codes::FENCED_INSTANCE_ID, &old));
                    }
                    if group.leader.as_deref() == Some(old.as_str()) {
                        group.leader = Some(new_id.clone());
                    }
                }
            }
            return Ok(new_id);
        }
        if p.require_known_member_id {
            group.pending_members.insert(new_id.clone(), now + p.session_timeout_ms);
            return Err((codes::MEMBER_ID_REQUIRED, new_id));
        }
        Ok(new_id)
    }

    /// SyncGroup, checked as Kafka's `validateSyncGroup`: the member (and its
    /// instance), the generation, then the protocol type and name when the request
    /// names them (v5+).
    pub fn sync(
        &self,
        req: SyncParams<'_>,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<oneshot::Receiver<SyncResult>, SyncResult> {
        let SyncParams {
            group_id,
            generation,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
        } = req;
        let err = |code| SyncResult {
            error_code: code,
            ..Default::default()
        };
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return Err(err(codes::UNKNOWN_MEMBER_ID));
        };
        group.validate_member(member_id, group_instance_id).map_err(err)?;
        if generation != group.generation_id {
            return Err(err(codes::ILLEGAL_GENERATION));
        }
        // Kafka's `isProtocolInconsistent`: only when both sides name one.
        let inconsistent =
            |asked: Option<&str>, group: &Option<String>| asked.zip(group.as_deref()).is_some_and(|(a, g)| a != g);
        if inconsistent(protocol_type, &group.protocol_type) || inconsistent(protocol_name, &group.protocol_name) {
            return Err(err(codes::INCONSISTENT_GROUP_PROTOCOL));
        }
        group.pending_sync.remove(member_id);
        match group.state {
            GroupState::PreparingRebalance => Err(err(codes::REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                let m = &group.members[member_id];
                Err(SyncResult {
                    error_code: codes::NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() != Some(member_id) {
                    return Ok(rx);
                }
                // The record limit (`member_metadata_max_bytes` is half of it): a group
                // record past it could never be written, and was retried at every tick.
                // Kafka answers the failed append UNKNOWN_SERVER_ERROR and rebalances.
                let record_max_bytes = self.config.member_metadata_max_bytes.saturating_mul(2);
                if group.record_bytes_with(&assignments) > record_max_bytes {
                    tracing::warn!(group = group_id, "assignments too large to store; the group rebalances");
                    group.fail_sync(codes::UNKNOWN_SERVER_ERROR, self.time.now_ms());
                } else {
                    group.complete_sync(assignments);
                }
                Ok(rx)
            }
            GroupState::Empty | GroupState::Dead => Err(err(codes::UNKNOWN_MEMBER_ID)),
        }
    }

    /// Heartbeat, as Kafka's `classicGroupHeartbeatToClassicGroup`: the member (and
    /// its instance) and the generation are checked before the session is renewed.
    pub fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, instance: Option<&str>) -> i16 {
        let now = self.time.now_ms();
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if let Err(code) = group.validate_member(member_id, instance) {
            return code;
        }
        if generation != group.generation_id {
            return codes::ILLEGAL_GENERATION;
        }
        let state = group.state;
        if state == GroupState::Empty {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_heartbeat_ms = now;
        }
        match state {
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            _ => codes::NONE,
        }
    }

    /// LeaveGroup for several members (by member id, or instance id for static ones).
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let now = self.time.now_ms();
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return vec![codes::UNKNOWN_MEMBER_ID; members.len()];
        };
        // As Kafka's `classicGroupLeaveToClassicGroup`: by instance id when no member
        // id is given; a pending member (one that got MEMBER_ID_REQUIRED) leaves at once
        // (a join waiting for it then completes); any other as its instance allows.
        members
            .iter()
            .map(|(member_id, instance)| {
                let id = if member_id.is_empty() {
                    match instance.as_deref().and_then(|i| group.static_member_id(i)) {
                        Some(id) => id.to_string(),
                        None => return codes::UNKNOWN_MEMBER_ID,
                    }
                } else if group.pending_members.remove(member_id).is_some() {
                    group.maybe_complete_join(now);
                    return codes::NONE;
                } else if let Err(code) = group.validate_member(member_id, instance.as_deref()) {
                    return code;
                } else {
                    member_id.clone()
                };
                if group.remove_member(&id, now) {
                    codes::NONE
                } else {
                    codes::UNKNOWN_MEMBER_ID
                }
            })
            .collect()
    }

    /// Expires sessions and completes rebalances whose time has come, and writes the
    /// records of the groups that changed.
    ///
    /// Lock: a group's record is written holding its commit lock, not the groups map:
    /// a write may take long (the first one creates `__consumer_offsets`, its logs one
    /// by one), and every JoinGroup, SyncGroup and Heartbeat of every group waited on
    /// the map meanwhile. The record is taken under the commit lock, which DeleteGroups
    /// holds too, so a group's records reach the log in the order its changes happen.
    pub fn tick(&self, write: RecordWriter) {
        let now = self.time.now_ms();
        let dirty: Vec<String> = {
            let mut groups = lock(&self.groups);
            for group in groups.values_mut() {
                group.pending_members.retain(|_, deadline| *deadline > now);
                for id in group.expired_members(now) {
                    tracing::info!(group = %group.group_id, member = %id, "member session expired");
                    group.remove_member(&id, now);
                }
                for id in group.expire_pending_sync(now) {
                    tracing::info!(group = %group.group_id, member = %id, "member sent no SyncGroup in time");
                }
                group.maybe_complete_join(now);
            }
            let mut active = lock(&self.active_ms);
            for g in groups.values().filter(|g| !g.members.is_empty()) {
                active.insert(g.group_id.clone(), now);
            }
            groups
                .values()
                .filter(|g| g.dirty)
                .map(|g| g.group_id.clone())
                .collect()
        };
        for group_id in dirty {
            let _ordered = self.commit_lock(&group_id);
            let records = {
                let mut groups = lock(&self.groups);
                // Deleted, or written by a tick, since: nothing to write.
                let Some(g) = groups.get_mut(&group_id).filter(|g| g.dirty) else {
                    continue;
                };
                g.dirty = false;
                let value = offsets::group_metadata_value(&g.to_record(now));
                vec![(offsets::group_metadata_key(&group_id), Some(value))]
            };
            if let Err(code) = write(&group_id, &records) {
                // Still to write: the next tick tries again, with the group as it is then.
                tracing::warn!(group = %group_id, code, "writing the group's record failed");
                if let Some(g) = lock(&self.groups).get_mut(&group_id) {
                    g.dirty = true;
                }
            }
        }
        self.consumer_tick(now, write);
    }

    /// The commit lock of `group_id` (see `commit_locks`).
    pub fn commit_lock(&self, group_id: &str) -> std::sync::MutexGuard<'_, ()> {
        let stripe = super::partition_for(group_id, COMMIT_LOCK_STRIPES as i32) as usize;
        lock(&self.commit_locks[stripe % COMMIT_LOCK_STRIPES])
    }

    /// Committed offsets past `offsets.retention.minutes`, as Kafka expires them: a
    /// group with members keeps its offsets; an empty one loses each offset once the
    /// retention has passed since its commit and since the group was last active.
    pub fn expired_offsets(&self) -> Vec<(String, Vec<(String, i32)>)> {
        {
            // Forget when groups that are gone were last active.
            let classic = lock(&self.groups);
            let consumer = lock(&self.consumer_groups);
            let offsets = lock(&self.offsets);
            lock(&self.active_ms)
                .retain(|g, _| classic.contains_key(g) || consumer.contains_key(g) || offsets.contains_key(g));
        }
        let groups: Vec<String> = lock(&self.offsets).keys().cloned().collect();
        groups
            .into_iter()
            .map(|g| {
                let expired = self.expired_offsets_of(&g);
                (g, expired)
            })
            .filter(|(_, expired)| !expired.is_empty())
            .collect()
    }

    /// `expired_offsets` for one group. The caller writes the tombstones and removes the
    /// offsets under the group's commit lock, after asking again under it.
    pub fn expired_offsets_of(&self, group_id: &str) -> Vec<(String, i32)> {
        let now = self.time.now_ms();
        let retention = self.config.offsets_retention_ms;
        let has_members = lock(&self.groups).get(group_id).is_some_and(|g| !g.members.is_empty())
            || lock(&self.consumer_groups)
                .get(group_id)
                .is_some_and(|g| !g.members.is_empty());
        if has_members {
            return Vec::new();
        }
        let offsets = lock(&self.offsets);
        let mut active = lock(&self.active_ms);
        let Some(committed) = offsets.get(group_id) else {
            // Nothing left to expire: forget when the group was last active.
            active.remove(group_id);
            return Vec::new();
        };
        let last_active = active.get(group_id).copied().unwrap_or(i64::MIN);
        committed
            .iter()
            .filter(|(_, o)| now - o.commit_timestamp_ms.max(last_active) > retention)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Checks an OffsetCommit (of request `version`) against the group's membership, as
    /// Kafka's `OffsetMetadataManager.validateOffsetCommit` and
    /// `ClassicGroup.validateOffsetCommit`; `NONE` when it may go on. An empty group id
    /// is a group like any other (Kafka refuses only a null one). A commit that may go on
    /// renews its member's session while the group is Stable or PreparingRebalance, as
    /// Kafka's `commitOffset`: in the classic protocol a commit counts as a heartbeat.
    pub fn validate_commit(&self, commit: CommitParams<'_>) -> i16 {
        let CommitParams {
            group_id,
            generation,
            member_id,
            group_instance_id,
            version,
        } = commit;
        if let Some(g) = lock(&self.consumer_groups).get(group_id) {
            return g.validate_commit(member_id, generation);
        }
        let now = self.time.now_ms();
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return match (generation < 0, version >= 9) {
                // A simple group: offsets committed by an admin or an `assign` consumer.
                (true, _) => codes::NONE,
                (false, true) => codes::GROUP_ID_NOT_FOUND,
                (false, false) => codes::ILLEGAL_GENERATION,
            };
        };
        if generation < 0 && group.state == GroupState::Empty {
            return codes::NONE;
        }
        if generation >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Err(code) = group.validate_member(member_id, group_instance_id) {
                return code;
            }
            if generation != group.generation_id {
                return codes::ILLEGAL_GENERATION;
            }
        } else if group.state != GroupState::Empty {
            // No member id and no generation: only into a group with no members.
            return codes::UNKNOWN_MEMBER_ID;
        }
        // As Kafka: members of the current generation may commit while the group
        // prepares a rebalance (they are still processing), not while it completes.
        if group.state == GroupState::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        if matches!(group.state, GroupState::Stable | GroupState::PreparingRebalance) {
            if let Some(m) = group.members.get_mut(member_id) {
                m.last_heartbeat_ms = now;
            }
        }
        codes::NONE
    }

    pub fn store_offsets(&self, group_id: &str, offsets: Vec<((String, i32), OffsetAndMetadata)>) {
        let mut all = lock(&self.offsets);
        let g = all.entry(group_id.to_string()).or_default();
        for (k, v) in offsets {
            g.insert(k, v);
        }
    }

    pub fn committed(&self, group_id: &str) -> GroupOffsets {
        lock(&self.offsets).get(group_id).cloned().unwrap_or_default()
    }

    /// Applies one `__consumer_offsets` record read back at start-up: a commit, a
    /// classic group, or a record of a consumer-protocol group. False for anything else.
    pub fn load_raw(&self, key: Option<Bytes>, value: Option<Bytes>) -> bool {
        let Some(key) = key else { return false };
        if let Some(rec) = offsets::parse_record(Some(&key), value.as_ref()) {
            self.load_record(rec);
            return true;
        }
        let Some((group, k)) = super::consumer_records::parse_key(key) else {
            return false;
        };
        let value = match value {
            None => None,
            Some(v) => match super::consumer_records::parse_value(k.0, v) {
                Some(v) => Some(v),
                None => return false,
            },
        };
        self.load_consumer_record(group, k, value);
        true
    }

    /// Applies a record read back from `__consumer_offsets` at start-up.
    pub fn load_record(&self, record: OffsetsRecord) {
        if let OffsetsRecord::GroupMetadata { group, value } = record {
            let mut groups = lock(&self.groups);
            match value {
                Some(v) => {
                    // When the group last changed: offsets expiry counts from it.
                    if v.current_state_timestamp_ms >= 0 {
                        lock(&self.active_ms).insert(group.clone(), v.current_state_timestamp_ms);
                    }
                    let g = ClassicGroup::from_record(&group, v, self.time.now_ms());
                    groups.insert(group, g);
                }
                None => {
                    groups.remove(&group);
                }
            }
            return;
        }
        if let OffsetsRecord::Commit {
            group,
            topic,
            partition,
            value,
        } = record
        {
            let mut all = lock(&self.offsets);
            match value {
                Some(v) => {
                    all.entry(group).or_default().insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = all.get_mut(&group) {
                        g.remove(&(topic, partition));
                        if g.is_empty() {
                            all.remove(&group);
                        }
                    }
                }
            }
        }
    }

    /// Every group: id, protocol type, state name, group type (classic or consumer).
    pub fn list(&self) -> Vec<ListedGroup> {
        let groups = lock(&self.groups);
        let consumer = lock(&self.consumer_groups);
        let offsets = lock(&self.offsets);
        let mut out: Vec<ListedGroup> = groups
            .values()
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
                group_type: "classic",
            })
            .collect();
        out.extend(consumer.values().map(|g| ListedGroup {
            group_id: g.group_id.clone(),
            protocol_type: "consumer".into(),
            state: g.state_name(),
            group_type: "consumer",
        }));
        for id in offsets.keys() {
            if !groups.contains_key(id) && !consumer.contains_key(id) {
                // A simple group (only commits: an admin, or `assign`): no protocol
                // type, as Kafka's `asListedGroup`, which admin clients read as
                // `isSimpleConsumerGroup`.
                out.push(ListedGroup {
                    group_id: id.clone(),
                    protocol_type: String::new(),
                    state: GroupState::Empty.name(),
                    group_type: "classic",
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        if let Some(d) = self.consumer_classic_view(group_id) {
            return Some(d);
        }
        let groups = lock(&self.groups);
        let Some(g) = groups.get(group_id) else {
            return lock(&self.offsets).contains_key(group_id).then(|| GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Empty.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            });
        };
        // As Kafka's `describeGroups`: the protocol and the members' metadata only
        // of a Stable group (in a rebalance they are about to change).
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().filter(|_| stable).unwrap_or_default();
        Some(GroupDescription {
            group_id: g.group_id.clone(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// OffsetDelete: which of `partitions` may lose their committed offset. Refused
    /// (GROUP_SUBSCRIBED_TO_TOPIC) for a topic an active member subscribes to.
    pub fn deletable_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<PartitionVerdict>, i16> {
        let consumer = self.consumer_subscriptions(group_id);
        let groups = lock(&self.groups);
        let offsets = lock(&self.offsets);
        if !groups.contains_key(group_id) && !offsets.contains_key(group_id) && consumer.is_none() {
            return Err(codes::GROUP_ID_NOT_FOUND);
        }
        let subscribed: Vec<String> = groups
            .get(group_id)
            .map(|g| {
                g.members
                    .values()
                    .flat_map(|m| subscription_topics(&m.metadata_for(g.protocol_name.as_deref().unwrap_or_default())))
                    .collect::<Vec<String>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain(consumer.into_iter().flatten())
            .collect();
        Ok(partitions
            .iter()
            .map(|(t, p)| {
                (
                    (t.clone(), *p),
                    if subscribed.contains(t) {
                        codes::GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        codes::NONE
                    },
                )
            })
            .collect())
    }

    /// Forgets committed offsets (after their tombstones are written).
    pub fn remove_offsets(&self, group_id: &str, partitions: &[(String, i32)]) {
        let mut all = lock(&self.offsets);
        if let Some(g) = all.get_mut(group_id) {
            for k in partitions {
                g.remove(k);
            }
            if g.is_empty() {
                all.remove(group_id);
            }
        }
    }

    /// Empty groups with no committed offsets: Kafka's periodic cleanup deletes them
    /// once their offsets are gone (`GroupCoordinatorShard.cleanupGroupMetadata`), so a
    /// group that never commits does not stay for ever.
    pub fn deletable_groups(&self) -> Vec<String> {
        let groups = lock(&self.groups);
        let consumer = lock(&self.consumer_groups);
        let offsets = lock(&self.offsets);
        let classic = groups
            .values()
            .filter(|g| g.members.is_empty() && g.pending_members.is_empty())
            .map(|g| &g.group_id);
        let consumer = consumer.values().filter(|g| g.members.is_empty()).map(|g| &g.group_id);
        classic
            .chain(consumer)
            .filter(|id| !offsets.contains_key(*id))
            .cloned()
            .collect()
    }

    /// Removes `group_id` if it is still deletable (`deletable_groups`), returning the
    /// tombstones of its records to write. The caller holds the group's commit lock
    /// through the write, so they reach the log before any later record of the id.
    pub fn take_deletable(&self, group_id: &str) -> Option<RawRecords> {
        let mut groups = lock(&self.groups);
        let mut consumer = lock(&self.consumer_groups);
        if lock(&self.offsets).contains_key(group_id) {
            return None;
        }
        if let Some(g) = groups.get(group_id) {
            if !(g.members.is_empty() && g.pending_members.is_empty()) {
                return None;
            }
            groups.remove(group_id);
            return Some(vec![(offsets::group_metadata_key(group_id), None)]);
        }
        let g = consumer.get(group_id).filter(|g| g.members.is_empty())?;
        let tombstones = g.tombstones();
        consumer.remove(group_id);
        Some(tombstones)
    }

    /// DeleteGroups: only an empty group. Returns the offsets to tombstone, and the
    /// tombstones of the group's own records.
    pub fn delete(&self, group_id: &str) -> Result<(Vec<(String, i32)>, RawRecords), i16> {
        let mut groups = lock(&self.groups);
        let mut consumer = lock(&self.consumer_groups);
        let mut offsets = lock(&self.offsets);
        let known = groups.contains_key(group_id) || consumer.contains_key(group_id) || offsets.contains_key(group_id);
        if !known {
            return Err(codes::GROUP_ID_NOT_FOUND);
        }
        if groups.get(group_id).is_some_and(|g| !g.members.is_empty())
            || consumer.get(group_id).is_some_and(|g| !g.members.is_empty())
        {
            return Err(codes::NON_EMPTY_GROUP);
        }
        groups.remove(group_id);
        let mut tombstones = vec![(offsets::group_metadata_key(group_id), None)];
        if let Some(g) = consumer.remove(group_id) {
            tombstones.extend(g.tombstones());
        }
        let keys = offsets
            .remove(group_id)
            .map(|o| o.into_keys().collect())
            .unwrap_or_default();
        Ok((keys, tombstones))
    }
}

/// The topics of a ConsumerProtocolSubscription: version i16, [topic string], ...
fn subscription_topics(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(count) = b.get(2..6).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])) else {
        return out;
    };
    let mut pos = 6usize;
    for _ in 0..count.clamp(0, 100_000) {
        let Some(len) = b
            .get(pos..pos + 2)
            .map(|x| i16::from_be_bytes([x[0], x[1]]).max(0) as usize)
        else {
            break;
        };
        let Some(name) = b.get(pos + 2..pos + 2 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).to_string());
        pos += 2 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(c: &GroupCoordinator, group: &str, at_ms: i64) {
        let o = OffsetAndMetadata {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: at_ms,
        };
        c.store_offsets(group, vec![(("t".to_string(), 0), o)]);
    }

    /// offsets.retention.minutes: an empty group's offsets expire once the retention
    /// has passed since the commit and since the group last had members.
    #[test]
    fn offsets_of_empty_groups_expire_after_the_retention() {
        let time = Time::manual(0);
        let config = GroupConfig {
            offsets_retention_ms: 60_000,
            ..GroupConfig::default()
        };
        let c = GroupCoordinator::new(config, time.clone());
        commit(&c, "standalone", 0);
        time.advance_ms(30_000);
        commit(&c, "recent", time.now_ms());
        assert!(
            c.expired_offsets().is_empty(),
            "nothing is older than the retention yet"
        );
        time.advance_ms(31_000);
        let expired = c.expired_offsets();
        assert_eq!(expired, vec![("standalone".to_string(), vec![("t".to_string(), 0)])]);
        c.remove_offsets("standalone", &expired[0].1);
        assert!(
            c.list().iter().all(|g| g.group_id != "standalone"),
            "a group with nothing left is gone"
        );
        time.advance_ms(60_000);
        assert_eq!(c.expired_offsets().len(), 1, "the recent commit expires in its turn");
    }
}
