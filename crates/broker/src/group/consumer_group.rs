//! `ConsumerGroup`: one group of the consumer group protocol (KIP-848). The broker owns
//! the assignment: a membership or subscription change bumps the group epoch, the
//! assignor computes a target assignment for that epoch, and each member reconciles
//! towards its target one heartbeat at a time (Kafka's `CurrentAssignmentBuilder`):
//! it first revokes what others are to get, then receives what others have released.
//!
//! Contract: pure. Heartbeats and the clock go in, a reply comes out; the caller holds
//! the coordinator's lock. Invariant (asserted): a partition is held, assigned or
//! pending revocation, by at most one member, and `owners` says which.

use super::assignor::{Assignment, Assignor, AssignorMember};
use super::classic_group::codes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Member epochs with a meaning of their own (KIP-848).
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// Where a member is in reconciling towards its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// It must first give up partitions (`pending_revocation`).
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    /// A regular expression (RE2 syntax, whole-name match) subscribing to every topic
    /// it matches, now and later.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i64,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    pub last_heartbeat_ms: i64,
    /// Set while in `UnrevokedPartitions`: fenced if still there at this time.
    pub revocation_deadline_ms: Option<i64>,
}

/// A ConsumerGroupHeartbeat in domain terms.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i64,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged; `Some("")`: no regex any more.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None`: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatReply {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i64,
    /// `None`: unchanged since the last reply.
    pub assignment: Option<Assignment>,
}

impl HeartbeatReply {
    pub fn error(code: i16, message: impl Into<String>) -> HeartbeatReply {
        HeartbeatReply {
            error_code: code,
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// Topic metadata as the group sees it.
pub trait TopicsView {
    /// A topic's id and partition count.
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic's name, for regex subscriptions.
    fn names(&self) -> Vec<String>;
}

/// A lookup function is a view without a listing (enough without regexes).
impl<F: Fn(&str) -> Option<(Uuid, i32)>> TopicsView for F {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        self(name)
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

pub type TopicLookup<'a> = &'a dyn TopicsView;

/// Whether `name` matches `regex` as Kafka matches subscriptions: the whole name,
/// internal topics never.
pub fn regex_matches(regex: &regex::Regex, name: &str) -> bool {
    !crate::metadata::is_internal_topic(name)
        && regex
            .find(name)
            .is_some_and(|m| m.start() == 0 && m.end() == name.len())
}

/// Limits and defaults the group works within.
#[derive(Debug, Clone)]
pub struct ConsumerGroupLimits {
    pub max_size: usize,
    pub default_assignor: Assignor,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The target assignment of `assignment_epoch`, per member.
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics' metadata the target was computed from.
    pub subscription_metadata: BTreeMap<String, (Uuid, i32)>,
    pub assignor: Assignor,
    /// The members' regexes, compiled once.
    regexes: BTreeMap<String, regex::Regex>,
    /// Partition to the member holding it (assigned or pending revocation).
    pub(super) owners: HashMap<(Uuid, i32), String>,
    /// The group's records as last written to `__consumer_offsets`
    /// (`consumer_records`); what changed since is written next.
    pub(super) persisted: BTreeMap<super::consumer_records::RecordKey, bytes::Bytes>,
    /// Set when a write failed: the next write covers the whole group.
    pub(super) rewrite_all: bool,
    /// The metadata hash read back with the group epoch (0 for a new group).
    pub(super) loaded_metadata_hash: i64,
    /// When the subscribed topics' metadata is next looked up.
    metadata_refresh_due_ms: i64,
}

/// How often a group looks up its subscribed topics again (new partitions, new topics
/// matching a regex, deleted topics).
const METADATA_REFRESH_INTERVAL_MS: i64 = 1_000;

fn flatten(a: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    a.iter().flat_map(|(&t, ps)| ps.iter().map(move |&p| (t, p)))
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    flatten(a).all(|(t, p)| b.get(&t).is_some_and(|s| s.contains(&p)))
}

fn normalized(a: &Assignment) -> Assignment {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

impl ConsumerGroup {
    pub fn new(group_id: &str, assignor: Assignor) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: BTreeMap::new(),
            assignor,
            regexes: BTreeMap::new(),
            owners: HashMap::new(),
            persisted: BTreeMap::new(),
            rewrite_all: false,
            loaded_metadata_hash: 0,
            metadata_refresh_due_ms: i64::MIN,
        }
    }

    /// Kafka's `ConsumerGroupState` names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// One heartbeat: join, stay, reconcile or leave.
    pub fn heartbeat(
        &mut self,
        hb: &ConsumerHeartbeat,
        now: i64,
        limits: &ConsumerGroupLimits,
        topics: TopicLookup,
    ) -> HeartbeatReply {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == LEAVE_STATIC_EPOCH {
            return self.leave(hb);
        }
        let member_id = match self.admit(hb, limits) {
            Ok(id) => id,
            Err(reply) => return reply,
        };
        let mut bump = self.update_member(&member_id, hb, now);
        // The topics are looked up again when a subscription changed, and otherwise at
        // most once per interval: every member's heartbeat need not pay for it.
        if bump || self.group_epoch > self.assignment_epoch || now >= self.metadata_refresh_due_ms {
            bump |= self.refresh_subscription_metadata(topics);
            self.metadata_refresh_due_ms = now + METADATA_REFRESH_INTERVAL_MS;
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(limits.default_assignor);
        }
        let before = self.members[&member_id].assigned.clone();
        self.reconcile(&member_id, hb.owned.as_ref(), now);
        let m = &self.members[&member_id];
        let full = hb.member_epoch == JOIN_EPOCH
            || m.assigned != before
            || hb
                .owned
                .as_ref()
                .is_some_and(|o| normalized(o) != normalized(&m.assigned));
        HeartbeatReply {
            error_code: codes::NONE,
            error_message: None,
            member_id: member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: full.then(|| m.assigned.clone()),
        }
    }

    /// The member this heartbeat speaks for, created on a join; or the refusal.
    fn admit(&mut self, hb: &ConsumerHeartbeat, limits: &ConsumerGroupLimits) -> Result<String, HeartbeatReply> {
        if hb.member_epoch != JOIN_EPOCH {
            let Some(m) = self.members.get(&hb.member_id) else {
                return Err(HeartbeatReply::error(
                    codes::UNKNOWN_MEMBER_ID,
                    format!("member {} is not in group {}", hb.member_id, self.group_id),
                ));
            };
            if hb.instance_id.is_some() && m.instance_id != hb.instance_id {
                return Err(HeartbeatReply::error(
                    codes::FENCED_INSTANCE_ID,
                    format!("member {} is not instance {:?}", hb.member_id, hb.instance_id),
                ));
            }
            let owned_ok = hb.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
            // A member one epoch behind whose owned partitions are still its own only
            // lost our last reply; anything else is fenced.
            let behind_ok = hb.member_epoch == m.previous_member_epoch && owned_ok;
            if hb.member_epoch > m.member_epoch || (hb.member_epoch < m.member_epoch && !behind_ok) {
                return Err(HeartbeatReply::error(
                    codes::FENCED_MEMBER_EPOCH,
                    format!("member epoch {} is not the current {}", hb.member_epoch, m.member_epoch),
                ));
            }
            return Ok(hb.member_id.clone());
        }
        let member_id = if hb.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        if let Some(instance) = &hb.instance_id {
            self.replace_static_member(instance, &member_id)?;
        }
        if let Some(m) = self.members.get_mut(&member_id) {
            // A known member joining again owns nothing now: it lost its partitions.
            if hb.instance_id.is_none() || m.member_epoch == JOIN_EPOCH {
                let id = member_id.clone();
                self.set_assignment(&id, Assignment::new(), Assignment::new());
                if let Some(m) = self.members.get_mut(&id) {
                    m.member_epoch = JOIN_EPOCH;
                    m.state = MemberState::Stable;
                }
            }
            return Ok(member_id);
        }
        if self.members.len() >= limits.max_size {
            return Err(HeartbeatReply::error(
                codes::GROUP_MAX_SIZE_REACHED,
                format!(
                    "group {} has reached its maximum size {}",
                    self.group_id, limits.max_size
                ),
            ));
        }
        self.members.insert(member_id.clone(), new_member(&member_id, hb));
        Ok(member_id)
    }

    /// KIP-345 for the new protocol: a static member that left with epoch -2 is taken
    /// over by the instance's new member id, with its assignment and epoch, so no
    /// rebalance happens. An instance still active elsewhere is refused.
    fn replace_static_member(&mut self, instance: &str, new_id: &str) -> Result<(), HeartbeatReply> {
        let Some(old_id) = self
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| m.member_id.clone())
        else {
            return Ok(());
        };
        let Some(old) = self.members.get_mut(&old_id) else {
            return Ok(());
        };
        if old.member_epoch != LEAVE_STATIC_EPOCH {
            if old_id == new_id {
                return Ok(());
            }
            return Err(HeartbeatReply::error(
                codes::UNRELEASED_INSTANCE_ID,
                format!("static member {instance} is still in use by member {old_id}"),
            ));
        }
        if old_id == new_id {
            old.member_epoch = old.previous_member_epoch;
            return Ok(());
        }
        if self.members.contains_key(new_id) {
            return Err(HeartbeatReply::error(
                codes::INVALID_REQUEST,
                format!("member id {new_id} is already another member's"),
            ));
        }
        let Some(mut m) = self.members.remove(&old_id) else {
            return Ok(());
        };
        let (assigned, pending) = (m.assigned.clone(), m.pending_revocation.clone());
        self.set_assignment_of(&old_id, None, &Assignment::new(), &Assignment::new());
        m.member_id = new_id.to_string();
        m.member_epoch = m.previous_member_epoch;
        self.members.insert(new_id.to_string(), m);
        self.set_assignment(new_id, assigned, pending);
        if let Some(t) = self.target.remove(&old_id) {
            self.target.insert(new_id.to_string(), t);
        }
        Ok(())
    }

    /// Applies the heartbeat's fields; true when the group epoch must be bumped.
    fn update_member(&mut self, member_id: &str, hb: &ConsumerHeartbeat, now: i64) -> bool {
        let Some(m) = self.members.get_mut(member_id) else {
            return false;
        };
        let mut bump = m.member_epoch == JOIN_EPOCH && !self.target.contains_key(member_id);
        if let Some(names) = &hb.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                bump = true;
            }
        }
        match hb.subscribed_topic_regex.as_deref() {
            Some("") if m.subscribed_topic_regex.is_some() => {
                m.subscribed_topic_regex = None;
                bump = true;
            }
            Some(r) if !r.is_empty() && m.subscribed_topic_regex.as_deref() != Some(r) => {
                m.subscribed_topic_regex = Some(r.to_string());
                bump = true;
            }
            _ => {}
        }
        if hb.server_assignor.is_some() && hb.server_assignor != m.server_assignor {
            m.server_assignor = hb.server_assignor.clone();
            bump = true;
        }
        if hb.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id.clone();
        }
        m.client_id = hb.client_id.clone();
        m.client_host = hb.client_host.clone();
        m.last_heartbeat_ms = now;
        bump
    }

    /// Re-reads the subscribed topics' metadata (names, and what the regexes match
    /// now); true when it changed.
    pub(super) fn refresh_subscription_metadata(&mut self, topics: TopicLookup) -> bool {
        let wanted: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_ref())
            .collect();
        self.regexes.retain(|r, _| wanted.contains(r));
        for r in wanted {
            if !self.regexes.contains_key(r) {
                // Validated when the heartbeat brought it; a failure here matches nothing.
                if let Ok(re) = regex::Regex::new(r) {
                    self.regexes.insert(r.clone(), re);
                }
            }
        }
        let mut names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect();
        if !self.regexes.is_empty() {
            names.extend(
                topics
                    .names()
                    .into_iter()
                    .filter(|n| self.regexes.values().any(|re| regex_matches(re, n))),
            );
        }
        let fresh: BTreeMap<String, (Uuid, i32)> = names
            .into_iter()
            .filter_map(|n| topics.lookup(&n).map(|md| (n, md)))
            .collect();
        if fresh == self.subscription_metadata {
            return false;
        }
        self.subscription_metadata = fresh;
        true
    }

    /// The target assignment of the current group epoch. The assignor is the one most
    /// members prefer, the default on a tie.
    fn compute_target(&mut self, default: Assignor) {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self.members.values().filter_map(|m| m.server_assignor.as_deref()) {
            *votes.entry(name).or_default() += 1;
        }
        let top = votes.values().copied().max().unwrap_or(0);
        self.assignor = votes
            .iter()
            .filter(|(_, &v)| v == top)
            .filter_map(|(n, _)| Assignor::from_name(n))
            .find(|a| *a == default)
            .or_else(|| {
                votes
                    .iter()
                    .filter(|(_, &v)| v == top)
                    .find_map(|(n, _)| Assignor::from_name(n))
            })
            .unwrap_or(default);
        let members: Vec<AssignorMember> = self
            .members
            .values()
            .map(|m| AssignorMember {
                member_id: m.member_id.clone(),
                subscribed: self
                    .subscription_metadata
                    .iter()
                    .filter(|(n, _)| {
                        m.subscribed_topic_names.contains(*n)
                            || m.subscribed_topic_regex
                                .as_ref()
                                .and_then(|r| self.regexes.get(r))
                                .is_some_and(|re| regex_matches(re, n))
                    })
                    .map(|(_, (id, _))| *id)
                    .collect(),
                current: self.target.get(&m.member_id).cloned().unwrap_or_default(),
            })
            .collect();
        let topics = self.subscription_metadata.values().copied().collect();
        self.target = self.assignor.assign(&members, &topics);
        self.assignment_epoch = self.group_epoch;
    }

    /// One step of reconciliation (Kafka's `CurrentAssignmentBuilder`).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let Some(m) = self.members.get(member_id) else { return };
        let (epoch, state) = (m.member_epoch, m.state);
        let still_revoking = state == MemberState::UnrevokedPartitions
            && owned
                .is_none_or(|o| flatten(&m.pending_revocation).any(|(t, p)| o.get(&t).is_some_and(|s| s.contains(&p))));
        if still_revoking {
            return;
        }
        if state == MemberState::Stable && epoch == self.assignment_epoch {
            return;
        }
        self.next_assignment(member_id, owned, now);
    }

    /// Moves the member towards its target: keep what stays, revoke what goes, take
    /// what nobody else holds.
    fn next_assignment(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let Some(m) = self.members.get(member_id) else { return };
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (t, p) in flatten(&m.assigned) {
            let dest = if target.get(&t).is_some_and(|s| s.contains(&p)) {
                &mut keep
            } else {
                &mut revoke
            };
            dest.entry(t).or_default().insert(p);
        }
        let rebalance_timeout_ms = m.rebalance_timeout_ms;
        let epoch = m.member_epoch;
        // As Kafka: a member that reports it no longer owns them has nothing to revoke.
        let owns_revoked =
            owned.is_none_or(|o| flatten(&revoke).any(|(t, p)| o.get(&t).is_some_and(|s| s.contains(&p))));
        if !revoke.is_empty() && !owns_revoked {
            revoke.clear();
            self.set_assignment(member_id, keep.clone(), Assignment::new());
        }
        if !revoke.is_empty() {
            self.set_assignment(member_id, keep, revoke);
            if let Some(m) = self.members.get_mut(member_id) {
                m.state = MemberState::UnrevokedPartitions;
                m.revocation_deadline_ms = Some(now + rebalance_timeout_ms);
            }
            return;
        }
        let mut unreleased = false;
        for (t, p) in flatten(&target) {
            match self.owners.get(&(t, p)) {
                Some(owner) if owner != member_id => unreleased = true,
                _ => {
                    keep.entry(t).or_default().insert(p);
                }
            }
        }
        self.set_assignment(member_id, keep, Assignment::new());
        let assignment_epoch = self.assignment_epoch;
        if let Some(m) = self.members.get_mut(member_id) {
            if epoch != assignment_epoch {
                m.previous_member_epoch = epoch;
                m.member_epoch = assignment_epoch;
            }
            m.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
            m.revocation_deadline_ms = None;
        }
    }

    /// Rebuilds `owners` from the members (after loading).
    /// Records read back can disagree (a crash between two members' writes): a partition
    /// claimed twice stays with the member of the higher epoch and is taken from the
    /// other, which then reconciles as if it had lost it. Loading never fails on it.
    pub(super) fn rebuild_owners(&mut self) {
        self.owners.clear();
        let mut by_epoch: Vec<(i32, String)> = self
            .members
            .values()
            .map(|m| (m.member_epoch, m.member_id.clone()))
            .collect();
        by_epoch.sort_by(|a, b| b.cmp(a));
        for (_, id) in by_epoch {
            let Some(m) = self.members.get_mut(&id) else { continue };
            for part in [&mut m.assigned, &mut m.pending_revocation] {
                for (topic, ps) in part.iter_mut() {
                    ps.retain(|p| match self.owners.get(&(*topic, *p)) {
                        Some(owner) => {
                            tracing::warn!(group = %self.group_id, member = %id, owner = %owner, partition = p, "partition claimed twice on load; kept by the newer epoch");
                            false
                        }
                        None => {
                            self.owners.insert((*topic, *p), id.clone());
                            true
                        }
                    });
                }
                part.retain(|_, ps| !ps.is_empty());
            }
        }
    }

    /// Sets a member's partitions and keeps `owners` in step.
    fn set_assignment(&mut self, member_id: &str, assigned: Assignment, pending: Assignment) {
        let Some(m) = self.members.get(member_id) else { return };
        let old: Vec<(Uuid, i32)> = flatten(&m.assigned).chain(flatten(&m.pending_revocation)).collect();
        self.set_assignment_of(member_id, Some(old), &assigned, &pending);
        if let Some(m) = self.members.get_mut(member_id) {
            m.assigned = normalized(&assigned);
            m.pending_revocation = normalized(&pending);
        }
    }

    fn set_assignment_of(
        &mut self,
        member_id: &str,
        old: Option<Vec<(Uuid, i32)>>,
        assigned: &Assignment,
        pending: &Assignment,
    ) {
        let old = old.unwrap_or_else(|| {
            self.owners
                .iter()
                .filter(|(_, o)| o.as_str() == member_id)
                .map(|(k, _)| *k)
                .collect()
        });
        for k in old {
            if self.owners.get(&k).is_some_and(|o| o == member_id) {
                self.owners.remove(&k);
            }
        }
        for k in flatten(assigned).chain(flatten(pending)) {
            let previous = self.owners.insert(k, member_id.to_string());
            assert!(
                previous.is_none() || previous.as_deref() == Some(member_id),
                "partition {k:?} held by two members"
            );
        }
    }

    /// Epoch -1 leaves; epoch -2 (a static member) keeps its place until its session
    /// expires, so the instance can come back without a rebalance.
    fn leave(&mut self, hb: &ConsumerHeartbeat) -> HeartbeatReply {
        let id = if hb.member_id.is_empty() {
            hb.instance_id.as_ref().and_then(|i| {
                self.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i))
                    .map(|m| m.member_id.clone())
            })
        } else {
            Some(hb.member_id.clone())
        };
        let Some(id) = id.filter(|id| self.members.contains_key(id)) else {
            return HeartbeatReply::error(codes::UNKNOWN_MEMBER_ID, "member is not in the group");
        };
        if hb.instance_id.is_some() && self.members.get(&id).is_some_and(|m| m.instance_id != hb.instance_id) {
            return HeartbeatReply::error(codes::FENCED_INSTANCE_ID, "member id and instance id do not match");
        }
        let is_static = self.members.get(&id).is_some_and(|m| m.instance_id.is_some());
        if hb.member_epoch == LEAVE_STATIC_EPOCH && is_static {
            // As Kafka: it keeps what it owns for its return, but what it was giving up
            // is released now, and only its session can expire it.
            let assigned = self.members.get(&id).map(|m| m.assigned.clone()).unwrap_or_default();
            self.set_assignment(&id, assigned, Assignment::new());
            if let Some(m) = self.members.get_mut(&id) {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = LEAVE_STATIC_EPOCH;
                m.state = MemberState::Stable;
                m.revocation_deadline_ms = None;
            }
        } else {
            self.remove_member(&id);
        }
        HeartbeatReply {
            member_id: id,
            member_epoch: hb.member_epoch,
            ..Default::default()
        }
    }

    /// Removes a member and bumps the group epoch so the others get its partitions.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        if !self.members.contains_key(member_id) {
            return false;
        }
        self.set_assignment(member_id, Assignment::new(), Assignment::new());
        self.members.remove(member_id);
        self.target.remove(member_id);
        self.group_epoch += 1;
        true
    }

    /// Members whose session expired or who did not revoke in time.
    pub fn expired_members(&self, now: i64, session_timeout_ms: i64) -> Vec<String> {
        self.members
            .values()
            .filter(|m| {
                now - m.last_heartbeat_ms > session_timeout_ms || m.revocation_deadline_ms.is_some_and(|d| now > d)
            })
            .map(|m| m.member_id.clone())
            .collect()
    }

    /// The OffsetCommit rule of the new protocol: a member commits with its current epoch.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> i16 {
        if member_epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                codes::NONE
            } else {
                codes::UNKNOWN_MEMBER_ID
            };
        }
        match self.members.get(member_id) {
            None => codes::UNKNOWN_MEMBER_ID,
            Some(m) if m.member_epoch != member_epoch => codes::STALE_MEMBER_EPOCH,
            Some(_) => codes::NONE,
        }
    }
}

pub(super) fn new_member(member_id: &str, hb: &ConsumerHeartbeat) -> ConsumerMember {
    ConsumerMember {
        member_id: member_id.to_string(),
        instance_id: hb.instance_id.clone(),
        rack_id: hb.rack_id.clone(),
        client_id: hb.client_id.clone(),
        client_host: hb.client_host.clone(),
        subscribed_topic_names: BTreeSet::new(),
        subscribed_topic_regex: None,
        server_assignor: None,
        rebalance_timeout_ms: hb.rebalance_timeout_ms,
        member_epoch: JOIN_EPOCH,
        previous_member_epoch: JOIN_EPOCH,
        state: MemberState::Stable,
        assigned: Assignment::new(),
        pending_revocation: Assignment::new(),
        last_heartbeat_ms: 0,
        revocation_deadline_ms: None,
    }
}
