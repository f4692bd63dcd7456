//! Server-side partition assignors of the consumer group protocol (KIP-848):
//! `uniform` (Kafka's default: balanced and sticky) and `range` (per topic, contiguous
//! ranges in member-id order, so equally partitioned topics are co-partitioned).
//!
//! Contract: pure functions of the members' subscriptions, the topics' partition counts
//! and the previous target assignment. Every partition of a subscribed topic goes to
//! exactly one subscribed member; checked by `assert_valid`.

use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A member's partitions, by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct AssignorMember {
    pub member_id: String,
    /// Topic ids the member subscribes to (only topics that exist).
    pub subscribed: BTreeSet<Uuid>,
    /// The member's previous target assignment, for stickiness.
    pub current: Assignment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

/// Kafka's `group.consumer.assignors` default order: the first is the default.
pub const ASSIGNORS: &[Assignor] = &[Assignor::Uniform, Assignor::Range];

impl Assignor {
    pub fn from_name(name: &str) -> Option<Assignor> {
        ASSIGNORS.iter().copied().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member; `topics` maps topic id to partition count.
    pub fn assign(self, members: &[AssignorMember], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
        let mut members: Vec<&AssignorMember> = members.iter().collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let out = match self {
            Assignor::Range => range(&members, topics),
            Assignor::Uniform => {
                let homogeneous = members.windows(2).all(|w| w[0].subscribed == w[1].subscribed);
                if homogeneous {
                    uniform_homogeneous(&members, topics)
                } else {
                    uniform_heterogeneous(&members, topics)
                }
            }
        };
        assert_valid(&members, topics, &out);
        out
    }
}

fn empty_result(members: &[&AssignorMember]) -> BTreeMap<String, Assignment> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect()
}

/// Per topic, the subscribed members in id order get contiguous ranges; the first
/// `partitions % members` get one more.
fn range(members: &[&AssignorMember], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(members);
    for (&topic, &count) in topics {
        let subscribed: Vec<&&AssignorMember> = members.iter().filter(|m| m.subscribed.contains(&topic)).collect();
        if subscribed.is_empty() {
            continue;
        }
        let n = subscribed.len() as i32;
        let (quota, extra) = (count / n, count % n);
        for (i, m) in subscribed.iter().enumerate() {
            let i = i as i32;
            let start = i * quota + i.min(extra);
            let len = quota + i32::from(i < extra);
            if len > 0 {
                let parts = out.entry(m.member_id.clone()).or_default().entry(topic).or_default();
                parts.extend(start..start + len);
            }
        }
    }
    out
}

fn all_partitions(members: &[&AssignorMember], topics: &BTreeMap<Uuid, i32>) -> Vec<(Uuid, i32)> {
    let subscribed: BTreeSet<Uuid> = members.iter().flat_map(|m| m.subscribed.iter().copied()).collect();
    topics
        .iter()
        .filter(|(t, _)| subscribed.contains(t))
        .flat_map(|(&t, &n)| (0..n.max(0)).map(move |p| (t, p)))
        .collect()
}

fn count(a: &Assignment) -> usize {
    a.values().map(|s| s.len()).sum()
}

/// Everyone subscribes to the same topics: each member gets `total / members` or one
/// more, keeping as much of its previous assignment as that allows.
fn uniform_homogeneous(members: &[&AssignorMember], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(members);
    if members.is_empty() {
        return out;
    }
    let all = all_partitions(members, topics);
    let valid: BTreeSet<(Uuid, i32)> = all.iter().copied().collect();
    let quota = all.len() / members.len();
    let mut extra = all.len() % members.len();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for m in members {
        let keep: Vec<(Uuid, i32)> = m
            .current
            .iter()
            .flat_map(|(&t, ps)| ps.iter().map(move |&p| (t, p)))
            .filter(|tp| valid.contains(tp) && !taken.contains(tp))
            .collect();
        let mut limit = quota;
        if keep.len() > quota && extra > 0 {
            extra -= 1;
            limit += 1;
        }
        let a = out.entry(m.member_id.clone()).or_default();
        for (t, p) in keep.into_iter().take(limit) {
            a.entry(t).or_default().insert(p);
            taken.insert((t, p));
        }
    }
    let mut free = all.into_iter().filter(|tp| !taken.contains(tp));
    for m in members {
        let a = out.entry(m.member_id.clone()).or_default();
        while count(a) < quota {
            let Some((t, p)) = free.next() else { break };
            a.entry(t).or_default().insert(p);
        }
    }
    // What is left is exactly the remaining extras: one each to members at the quota.
    for m in members {
        let a = out.entry(m.member_id.clone()).or_default();
        if count(a) == quota {
            let Some((t, p)) = free.next() else { break };
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

/// Members subscribe to different topics: each partition goes to the least loaded
/// subscribed member, its previous owner on a tie.
fn uniform_heterogeneous(members: &[&AssignorMember], topics: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut out = empty_result(members);
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.member_id.as_str(), 0)).collect();
    // The most constrained partitions (fewest subscribers) first, so the flexible
    // ones can even out the load.
    let mut partitions = all_partitions(members, topics);
    partitions.sort_by_key(|(t, _)| members.iter().filter(|m| m.subscribed.contains(t)).count());
    for (t, p) in partitions {
        let best = members.iter().filter(|m| m.subscribed.contains(&t)).min_by_key(|m| {
            let previous = m.current.get(&t).is_some_and(|s| s.contains(&p));
            (load[m.member_id.as_str()], !previous)
        });
        if let Some(m) = best {
            *load.entry(m.member_id.as_str()).or_default() += 1;
            out.entry(m.member_id.clone())
                .or_default()
                .entry(t)
                .or_default()
                .insert(p);
        }
    }
    out
}

/// Every partition of a subscribed topic goes to exactly one member subscribed to it.
fn assert_valid(members: &[&AssignorMember], topics: &BTreeMap<Uuid, i32>, out: &BTreeMap<String, Assignment>) {
    let mut seen = BTreeSet::new();
    for m in members {
        for (t, ps) in out.get(&m.member_id).into_iter().flatten() {
            assert!(
                m.subscribed.contains(t),
                "assigned a topic the member does not subscribe to"
            );
            for &p in ps {
                assert!(
                    p >= 0 && p < topics.get(t).copied().unwrap_or(0),
                    "assigned a partition that does not exist"
                );
                assert!(seen.insert((*t, p)), "partition assigned twice");
            }
        }
    }
    assert_eq!(
        seen.len(),
        all_partitions(members, topics).len(),
        "partition left unassigned"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[Uuid], current: Assignment) -> AssignorMember {
        AssignorMember {
            member_id: id.into(),
            subscribed: topics.iter().copied().collect(),
            current,
        }
    }

    fn counts(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values().map(count).collect()
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = Uuid::new_v4();
        let topics = BTreeMap::from([(t, 6)]);
        let ms: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, &[t], Assignment::new()))
            .collect();
        let first = Assignor::Uniform.assign(&ms, &topics);
        assert_eq!(counts(&first), vec![2, 2, 2]);
        // "c" leaves: a and b keep what they had and take one of c's each.
        let ms: Vec<_> = ["a", "b"]
            .iter()
            .map(|id| member(id, &[t], first[*id].clone()))
            .collect();
        let second = Assignor::Uniform.assign(&ms, &topics);
        assert_eq!(counts(&second), vec![3, 3]);
        for id in ["a", "b"] {
            assert!(
                first[id][&t].is_subset(&second[id][&t]),
                "{id} lost a partition it could keep"
            );
        }
        // 7 partitions over 3: 3, 2, 2 in some order.
        let topics = BTreeMap::from([(t, 7)]);
        let ms: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, &[t], Assignment::new()))
            .collect();
        let mut c = counts(&Assignor::Uniform.assign(&ms, &topics));
        c.sort();
        assert_eq!(c, vec![2, 2, 3]);
    }

    #[test]
    fn uniform_heterogeneous_assigns_only_subscribed() {
        let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
        let topics = BTreeMap::from([(t1, 4), (t2, 2)]);
        let ms = vec![
            member("a", &[t1], Assignment::new()),
            member("b", &[t1, t2], Assignment::new()),
        ];
        let out = Assignor::Uniform.assign(&ms, &topics);
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(counts(&out), vec![3, 3]);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let t = Uuid::new_v4();
        let topics = BTreeMap::from([(t, 5)]);
        let ms: Vec<_> = ["b", "a"]
            .iter()
            .map(|id| member(id, &[t], Assignment::new()))
            .collect();
        let out = Assignor::Range.assign(&ms, &topics);
        assert_eq!(out["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t], BTreeSet::from([3, 4]));
        assert_eq!(Assignor::from_name("range"), Some(Assignor::Range));
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
