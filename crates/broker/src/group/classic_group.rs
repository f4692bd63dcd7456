//! One classic consumer group: Kafka's `ClassicGroup` state machine.
//!
//! States: Empty -> PreparingRebalance (a join) -> CompletingRebalance (every member
//! rejoined, or the rebalance timeout passed: a new generation, the leader gets the
//! members) -> Stable (the leader's SyncGroup brought the assignments) -> back to
//! PreparingRebalance on a join, leave or expired session. Members waiting for a
//! JoinGroup or SyncGroup response hold a oneshot sender here; the coordinator's lock
//! guards the whole struct.

use super::offsets::{GroupMetadataValue, MemberMetadataValue};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::oneshot;

/// Kafka's error codes used by the group state machine.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups print them.
    pub fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup response carries.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member and its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// JoinGroup v9+ (KIP-814): a restarted static leader gets the roster to rebuild
    /// its state, and must not compute an assignment (the group has one).
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(code: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error_code: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat_ms: i64,
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// Kafka's initial rebalance of a group that was empty (`prepareRebalance`): the join
/// completes `delay_ms` (`group.initial.rebalance.delay.ms`) after the first member,
/// and each window in which a new member arrived is followed by another, of the delay
/// at most, until `remaining_ms` (the rebalance timeout less the delay) runs out. So a
/// group whose consumers start together forms in one generation, not one per member.
#[derive(Debug, Clone, Copy)]
pub struct InitialRebalance {
    pub delay_ms: i64,
    /// The window that ends at `rebalance_earliest_ms`.
    pub window_ms: i64,
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

#[derive(Debug)]
pub struct ClassicGroup {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), with their deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// The rebalance completes at this time at the latest.
    pub rebalance_deadline_ms: i64,
    /// ...and, for a group that was empty, not before this (initial rebalance delay).
    pub rebalance_earliest_ms: i64,
    /// The rebalance of a group that was empty: Kafka's initial rebalance. Some only
    /// while that rebalance prepares.
    pub initial_rebalance: Option<InitialRebalance>,
    /// Kafka's pending sync members: the generation's members that have not sent
    /// SyncGroup since its join completed; those left at `sync_deadline_ms` (the
    /// rebalance timeout later) leave the group, which rebalances (`expire_pending_sync`).
    pub pending_sync: HashSet<String>,
    pub sync_deadline_ms: i64,
    /// Set when a generation completed (or the group emptied) and the group's record in
    /// `__consumer_offsets` is not written yet; the coordinator's tick collects it.
    pub dirty: bool,
    /// How many members list each protocol name (Kafka's `supportedProtocols`): a
    /// JoinGroup checks its protocols against these counts, not against every member's
    /// list (which made one join cost members × protocols²). Kept by `insert_member`,
    /// `take_member` and `set_protocols`, the only ways members and their protocols
    /// change; checked against a recount at each completed join.
    supported_protocols: HashMap<String, usize>,
}

/// Adds (or takes away) one member's protocols to the counts; a name listed twice by
/// one member counts once.
fn count_protocols(counts: &mut HashMap<String, usize>, protocols: &[(String, Bytes)], add: bool) {
    let mut seen = HashSet::with_capacity(protocols.len());
    for (name, _) in protocols {
        if !seen.insert(name.as_str()) {
            continue;
        }
        if add {
            *counts.entry(name.clone()).or_default() += 1;
            continue;
        }
        let count = counts.get_mut(name);
        assert!(
            count.as_ref().is_some_and(|c| **c > 0),
            "protocol {name} was not counted"
        );
        if let Some(c) = count {
            *c -= 1;
            if *c == 0 {
                counts.remove(name);
            }
        }
    }
}

impl ClassicGroup {
    pub fn new(group_id: &str) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            rebalance_earliest_ms: 0,
            initial_rebalance: None,
            pending_sync: HashSet::new(),
            sync_deadline_ms: 0,
            dirty: false,
            supported_protocols: HashMap::new(),
        }
    }

    /// Adds `m` (replacing a member of the same id). The first member sets the group's
    /// protocol type, as Kafka's `ClassicGroup.add`: the next ones must share it.
    pub fn insert_member(&mut self, m: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(m.protocol_type.clone());
        }
        count_protocols(&mut self.supported_protocols, &m.protocols, true);
        if let Some(old) = self.members.insert(m.member_id.clone(), m) {
            count_protocols(&mut self.supported_protocols, &old.protocols, false);
        }
    }

    /// Removes a member and returns it; its waiters are the caller's to answer.
    pub fn take_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        count_protocols(&mut self.supported_protocols, &m.protocols, false);
        self.pending_sync.remove(member_id);
        Some(m)
    }

    /// Replaces a member's protocols; returns the old ones.
    pub fn set_protocols(&mut self, member_id: &str, protocols: Vec<(String, Bytes)>) -> Vec<(String, Bytes)> {
        let Some(m) = self.members.get_mut(member_id) else {
            return Vec::new();
        };
        let old = std::mem::replace(&mut m.protocols, protocols);
        count_protocols(&mut self.supported_protocols, &old, false);
        count_protocols(&mut self.supported_protocols, &m.protocols, true);
        old
    }

    /// Whether every member lists `name`.
    fn supported_by_all(&self, name: &str) -> bool {
        self.supported_protocols.get(name) == Some(&self.members.len())
    }

    /// The group as Kafka stores it in `__consumer_offsets`.
    pub fn to_record(&self, now_ms: i64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms.clamp(0, i32::MAX as i64) as i32,
                    session_timeout_ms: m.session_timeout_ms.clamp(0, i32::MAX as i64) as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// A group loaded from its record: Stable with its members (whose sessions start
    /// now, as in Kafka), or Empty.
    pub fn from_record(group_id: &str, r: GroupMetadataValue, now_ms: i64) -> ClassicGroup {
        let mut g = ClassicGroup::new(group_id);
        g.generation_id = r.generation;
        let protocol = r.protocol.clone().unwrap_or_default();
        for m in r.members {
            g.insert_member(Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms as i64,
                rebalance_timeout_ms: m.rebalance_timeout_ms as i64,
                protocol_type: r.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                last_heartbeat_ms: now_ms,
                join_waiter: None,
                sync_waiter: None,
            });
        }
        // Empty, as Kafka loads it, when the record has none.
        g.protocol_type = Some(r.protocol_type).filter(|t| !t.is_empty());
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
            g.protocol_name = r.protocol;
            g.leader = r.leader;
        }
        g
    }

    /// Whether every member supports one of `protocols` (and the type matches), as
    /// Kafka's `supportsProtocols`: into an empty group, any type but none.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref().is_some_and(|t| t != protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| self.supported_by_all(name))
    }

    /// Starts a rebalance: pending syncs are told REBALANCE_IN_PROGRESS.
    pub fn prepare_rebalance(&mut self, now_ms: i64, initial_delay_ms: i64) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        self.pending_sync.clear();
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: codes::REBALANCE_IN_PROGRESS,
                    ..Default::default()
                });
            }
        }
        let timeout = self.rebalance_timeout_ms();
        self.initial_rebalance = was_empty.then_some(InitialRebalance {
            delay_ms: initial_delay_ms,
            window_ms: initial_delay_ms,
            remaining_ms: (timeout - initial_delay_ms).max(0),
            new_member_added: false,
        });
        self.rebalance_earliest_ms = if was_empty { now_ms + initial_delay_ms } else { now_ms };
        self.rebalance_deadline_ms = now_ms + timeout.max(if was_empty { initial_delay_ms } else { 0 });
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the rebalance when every member has rejoined (after the initial
    /// delay) or the deadline passed. Returns whether it completed.
    pub fn maybe_complete_join(&mut self, now_ms: i64) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        if let Some(initial) = self.initial_rebalance.as_mut() {
            // Kafka's `tryCompleteInitialRebalanceElseSchedule`: at the end of each
            // window, another (of the delay at most) if a member was added in this one
            // and time remains; else the join completes, whoever has joined.
            if now_ms < self.rebalance_earliest_ms {
                return false;
            }
            if initial.new_member_added && initial.remaining_ms != 0 {
                let window_ms = initial.delay_ms.min(initial.remaining_ms);
                initial.remaining_ms = (initial.remaining_ms - initial.window_ms).max(0);
                initial.window_ms = window_ms;
                initial.new_member_added = false;
                self.rebalance_earliest_ms = now_ms + window_ms;
                return false;
            }
            self.initial_rebalance = None;
        } else {
            let all_joined = self.members.values().all(|m| m.join_waiter.is_some()) && self.pending_members.is_empty();
            if !(all_joined && now_ms >= self.rebalance_earliest_ms) && now_ms < self.rebalance_deadline_ms {
                return false;
            }
        }
        // As Kafka's `completeClassicGroupJoin`: dynamic members that did not rejoin in
        // time leave the group; static ones stay until their sessions expire (one that
        // is restarting finds its place, and the assignment keeps its partitions).
        let late: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in late {
            self.take_member(&id);
        }
        // The leader gets the roster, so it must be a member that rejoined; with none,
        // the rebalance waits another timeout (Kafka's `maybeElectNewJoinedLeader`).
        let rejoined = |id: &String| self.members.get(id).is_some_and(|m| m.join_waiter.is_some());
        if !self.leader.as_ref().is_some_and(rejoined) {
            self.leader = self
                .members
                .values()
                .find(|m| m.join_waiter.is_some())
                .map(|m| m.member_id.clone());
            if self.leader.is_none() && !self.members.is_empty() {
                let timeout = self.rebalance_timeout_ms();
                self.rebalance_deadline_ms = now_ms + timeout;
                return false;
            }
        }
        let mut recount = HashMap::new();
        for m in self.members.values() {
            count_protocols(&mut recount, &m.protocols, true);
        }
        assert_eq!(
            recount, self.supported_protocols,
            "group {} miscounts its protocols",
            self.group_id
        );
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name = None;
            // Kept, as Kafka's `initNextGeneration` keeps it: an emptied consumer
            // group is still listed as one (a group that only ever had commits, a
            // "simple" group, has none).
            self.dirty = true;
            return true;
        }
        self.protocol_name = Some(self.select_protocol());
        self.protocol_type = self.members.values().next().map(|m| m.protocol_type.clone());
        self.state = GroupState::CompletingRebalance;
        self.pending_sync = self.members.keys().cloned().collect();
        let timeout = self.rebalance_timeout_ms();
        self.sync_deadline_ms = now_ms + timeout;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster = self.roster();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat_ms = now_ms;
            let result = JoinResult {
                error_code: codes::NONE,
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: Some(protocol.clone()),
                leader: leader.clone(),
                member_id: m.member_id.clone(),
                members: if m.member_id == leader {
                    roster.clone()
                } else {
                    Vec::new()
                },
                skip_assignment: false,
            };
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(result);
            }
        }
        true
    }

    /// The longest rebalance timeout among the members: how long a rebalance (and the
    /// members' SyncGroups after it) may take.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    /// Every member and its metadata for the group's protocol: what the leader gets.
    fn roster(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect()
    }

    /// Kafka's `acceptJoiningMember`, checked before anything else in a JoinGroup: room
    /// for one more under `max_size`, counting in a rebalance only the members that
    /// rejoined (whoever has not may yet be dropped).
    pub fn accepts_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        let member = self.members.get(member_id);
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                member.is_some_and(|m| m.join_waiter.is_some())
                    || self.members.values().filter(|m| m.join_waiter.is_some()).count() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => member.is_some() || self.members.len() < max_size,
        }
    }

    /// The member id a static member's instance id stands for now.
    pub fn static_member_id(&self, instance: &str) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance))
            .map(|m| m.member_id.as_str())
    }

    /// Kafka's `ClassicGroup.validateMember`: with an instance id, the instance must
    /// stand for this member id (FENCED_INSTANCE_ID: another member took its place,
    /// this one is a zombie); and the member must be in the group.
    pub fn validate_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance {
            match self.static_member_id(instance) {
                None => return Err(codes::UNKNOWN_MEMBER_ID),
                Some(existing) if existing != member_id => return Err(codes::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(codes::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// Kafka's `classicGroupJoinExistingMember` answers a known member without a
    /// rebalance when nothing changed: in CompletingRebalance, one rejoining with the
    /// protocols it has (its JoinGroup response was lost: the leader gets the roster
    /// again); in Stable, a follower with unchanged protocols. The current generation;
    /// `None` when the join must rebalance.
    pub fn rejoin_unchanged(&self, member_id: &str, protocols: &[(String, Bytes)]) -> Option<JoinResult> {
        let m = self.members.get(member_id)?;
        let leader = self.leader.clone().unwrap_or_default();
        let unchanged = m.protocols.as_slice() == protocols;
        let answer = match self.state {
            GroupState::CompletingRebalance => unchanged,
            GroupState::Stable => unchanged && leader != member_id,
            _ => false,
        };
        answer.then(|| JoinResult {
            error_code: codes::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.clone(),
            member_id: member_id.to_string(),
            members: if leader == member_id { self.roster() } else { Vec::new() },
            skip_assignment: false,
        })
    }

    /// Kafka's vote: each member names its most preferred protocol that all support.
    fn select_protocol(&self) -> String {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()
            .map(|m| {
                m.protocols
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| self.supported_by_all(n))
                    .collect()
            })
            .unwrap_or_default();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| self.supported_by_all(n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        candidates
            .into_iter()
            .find(|c| votes.get(c).copied().unwrap_or(0) == best)
            .cloned()
            .unwrap_or_default()
    }

    /// An upper bound on the bytes of the group's record with `assignments` stored
    /// (its strings and byte fields, and a generous allowance for the rest): what one
    /// `__consumer_offsets` record must hold.
    pub fn record_bytes_with(&self, assignments: &[(String, Bytes)]) -> usize {
        const MEMBER_OVERHEAD_BYTES: usize = 64;
        const GROUP_OVERHEAD_BYTES: usize = 512;
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let assigned: usize = assignments.iter().map(|(id, a)| id.len() + a.len()).sum();
        let members: usize = self
            .members
            .values()
            .map(|m| {
                let instance = m.group_instance_id.as_ref().map_or(0, String::len);
                let strings = m.member_id.len() + instance + m.client_id.len() + m.client_host.len();
                strings + m.metadata_for(protocol).len() + MEMBER_OVERHEAD_BYTES
            })
            .sum();
        let strings = [&self.protocol_type, &self.protocol_name, &self.leader]
            .iter()
            .map(|s| s.as_ref().map_or(0, String::len))
            .sum::<usize>();
        GROUP_OVERHEAD_BYTES + self.group_id.len() + strings + assigned + members
    }

    /// A leader's SyncGroup whose assignments cannot be stored: every waiting member
    /// gets `error_code`, as Kafka's `resetAndPropagateAssignmentError` after a failed
    /// append, and the group rebalances.
    pub fn fail_sync(&mut self, error_code: i16, now_ms: i64) {
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code,
                    ..Default::default()
                });
            }
        }
        self.prepare_rebalance(now_ms, 0);
    }

    /// The leader's SyncGroup: store the assignments, answer everyone, become Stable.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) {
        let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = by_member.remove(&m.member_id).unwrap_or_default();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: codes::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
        self.state = GroupState::Stable;
        self.dirty = true;
    }

    /// KIP-345: a static member restarting (no member id, a known instance id) in a
    /// Stable group takes its old place under a new member id, assignment and all,
    /// without a rebalance. `None` when a rebalance is needed after all: the group is
    /// not Stable, the instance is new, or the group's protocol would change.
    ///
    /// The leader too, as Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`: the
    /// group's leader becomes the new member id. With `skip_assignment_supported`
    /// (JoinGroup v9+) it is told it leads, gets the roster and `skip_assignment`;
    /// before v9 it is named the old id as leader, so it takes itself for a follower
    /// and fetches its assignment with SyncGroup.
    pub fn replace_static_member(
        &mut self,
        instance: &str,
        new_id: &str,
        protocols: &[(String, Bytes)],
        skip_assignment_supported: bool,
        now_ms: i64,
    ) -> Option<JoinResult> {
        if self.state != GroupState::Stable {
            return None;
        }
        let old_id = self.static_member_id(instance)?.to_string();
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        // As Kafka: no rebalance as long as the group's protocol would not change. The
        // metadata itself may (cooperative-sticky's owned partitions do).
        let old_protocols = self.set_protocols(&old_id, protocols.to_vec());
        if self.protocol_name.as_deref() != Some(self.select_protocol().as_str()) {
            self.set_protocols(&old_id, old_protocols);
            return None;
        }
        let mut m = self.take_member(&old_id)?;
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult {
                error_code: codes::FENCED_INSTANCE_ID,
                ..Default::default()
            });
        }
        m.member_id = new_id.to_string();
        m.last_heartbeat_ms = now_ms;
        self.insert_member(m);
        if was_leader {
            self.leader = Some(new_id.to_string());
        }
        self.dirty = true;
        let skip_assignment = was_leader && skip_assignment_supported;
        Some(JoinResult {
            error_code: codes::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: if was_leader && !skip_assignment {
                old_id
            } else {
                self.leader.clone().unwrap_or_default()
            },
            member_id: new_id.to_string(),
            members: if skip_assignment { self.roster() } else { Vec::new() },
            skip_assignment,
        })
    }

    /// Kafka's `expirePendingSync`: once the sync deadline passed, the members of the
    /// generation that never sent SyncGroup (a leader that never assigns would hold
    /// the group in CompletingRebalance for good) leave, and the rest rebalance.
    /// Returns the members removed.
    pub fn expire_pending_sync(&mut self, now_ms: i64) -> Vec<String> {
        let syncing = matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable);
        if !syncing || self.pending_sync.is_empty() || now_ms < self.sync_deadline_ms {
            return Vec::new();
        }
        let late: Vec<String> = self.pending_sync.drain().collect();
        for id in &late {
            self.remove_member(id, now_ms);
        }
        if !self.members.is_empty() {
            self.prepare_rebalance(now_ms, 0);
        }
        late
    }

    /// Removes a member (leave or expiry) and rebalances the rest.
    pub fn remove_member(&mut self, member_id: &str, now_ms: i64) -> bool {
        let Some(mut m) = self.take_member(member_id) else {
            return false;
        };
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult::error(codes::UNKNOWN_MEMBER_ID, member_id));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation_id += 1;
                    self.dirty = true;
                } else {
                    self.prepare_rebalance(now_ms, 0);
                }
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join(now_ms);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
        true
    }

    /// Members whose session expired (not counting those waiting in a rebalance).
    pub fn expired_members(&self, now_ms: i64) -> Vec<String> {
        self.members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now_ms - m.last_heartbeat_ms > m.session_timeout_ms
            })
            .map(|m| m.member_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each code is Kafka's number (`Errors.java`, as the codec crate spells them).
    #[test]
    fn codes_are_kafkas() {
        use kafka_protocol::error::ResponseError as E;
        let pairs = [
            (codes::ILLEGAL_GENERATION, E::IllegalGeneration),
            (codes::INCONSISTENT_GROUP_PROTOCOL, E::InconsistentGroupProtocol),
            (codes::INVALID_GROUP_ID, E::InvalidGroupId),
            (codes::UNKNOWN_MEMBER_ID, E::UnknownMemberId),
            (codes::INVALID_SESSION_TIMEOUT, E::InvalidSessionTimeout),
            (codes::REBALANCE_IN_PROGRESS, E::RebalanceInProgress),
            (codes::COORDINATOR_NOT_AVAILABLE, E::CoordinatorNotAvailable),
            (codes::NOT_COORDINATOR, E::NotCoordinator),
            (codes::UNKNOWN_TOPIC_OR_PARTITION, E::UnknownTopicOrPartition),
            (codes::OFFSET_METADATA_TOO_LARGE, E::OffsetMetadataTooLarge),
            (codes::GROUP_ID_NOT_FOUND, E::GroupIdNotFound),
            (codes::NON_EMPTY_GROUP, E::NonEmptyGroup),
            (codes::MEMBER_ID_REQUIRED, E::MemberIdRequired),
            (codes::GROUP_MAX_SIZE_REACHED, E::GroupMaxSizeReached),
            (codes::FENCED_INSTANCE_ID, E::FencedInstanceId),
            (codes::GROUP_SUBSCRIBED_TO_TOPIC, E::GroupSubscribedToTopic),
            (codes::INVALID_REQUEST, E::InvalidRequest),
            (codes::UNKNOWN_SERVER_ERROR, E::UnknownServerError),
            (codes::FENCED_MEMBER_EPOCH, E::FencedMemberEpoch),
            (codes::UNRELEASED_INSTANCE_ID, E::UnreleasedInstanceId),
            (codes::UNSUPPORTED_ASSIGNOR, E::UnsupportedAssignor),
            (codes::STALE_MEMBER_EPOCH, E::StaleMemberEpoch),
            (codes::INVALID_REGULAR_EXPRESSION, E::InvalidRegularExpression),
        ];
        for (code, error) in pairs {
            assert_eq!(code, error.code(), "{error:?}");
        }
    }

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::new())).collect(),
            assignment: Bytes::new(),
            last_heartbeat_ms: 0,
            join_waiter: None,
            sync_waiter: None,
        }
    }

    /// Kafka's rule, by brute force: some protocol of `protocols` that every member lists.
    fn supported_by_brute_force(g: &ClassicGroup, protocols: &[(String, Bytes)]) -> bool {
        if g.members.is_empty() {
            return !protocols.is_empty();
        }
        protocols
            .iter()
            .any(|(name, _)| g.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    /// The protocol counts answer as the scan over every member did, through members
    /// joining, changing their protocols (listing one twice, too), and leaving.
    #[test]
    fn protocol_counts_answer_as_a_scan_of_every_member() {
        let names = ["range", "roundrobin", "cooperative-sticky", "sticky"];
        let mut g = ClassicGroup::new("g");
        g.protocol_type = Some("consumer".into());
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for step in 0..5_000 {
            let id = format!("m{}", next(12));
            let listed: Vec<&str> = (0..1 + next(3)).map(|_| names[next(4) as usize]).collect();
            match next(3) {
                0 => g.insert_member(member(&id, &listed)),
                1 => drop(g.take_member(&id)),
                _ => drop(g.set_protocols(&id, member(&id, &listed).protocols)),
            }
            for asked in [
                vec!["range"],
                vec!["sticky", "roundrobin"],
                vec!["cooperative-sticky"],
                vec![],
            ] {
                let asked = member("asker", &asked).protocols;
                assert_eq!(
                    g.supports("consumer", &asked),
                    supported_by_brute_force(&g, &asked),
                    "step {step}"
                );
            }
        }
        while let Some(id) = g.members.keys().next().cloned() {
            g.take_member(&id);
        }
        assert!(g.supported_protocols.is_empty(), "{:?}", g.supported_protocols);
    }

    /// The vote: each member names its first protocol that all support; the most named
    /// wins, ties going to the first member's preference.
    #[test]
    fn the_protocol_most_members_prefer_is_selected() {
        let mut g = ClassicGroup::new("g");
        g.insert_member(member("a", &["range", "roundrobin"]));
        g.insert_member(member("b", &["roundrobin", "range"]));
        g.insert_member(member("c", &["roundrobin", "range", "sticky"]));
        assert_eq!(g.select_protocol(), "roundrobin");
        g.take_member("c");
        assert_eq!(g.select_protocol(), "range", "a tie goes to the first member's choice");
        g.insert_member(member("d", &["sticky"]));
        assert_eq!(g.select_protocol(), "", "no protocol all support");
    }
}
