//! The novelty detectors: `new-identity`, `new-reach`, `peer-rare`,
//! `new-target`, `trust-domain-crossing` and `environment-crossing`, on
//! generalized reach keys.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use overreach_model::duration::format_duration;
use overreach_model::event::{is_sensitive_resource, is_write_action};
use overreach_model::results::BaselineEntry;
use serde_json::json;

use super::{
    build, environment_of, mix, score, trust_domain_of, Common, DetectSettings, Draft, FindingKind,
    Inputs, ScoreInputs,
};
use crate::as_i64;
use crate::explain;
use crate::generalize::{collapse, split_name, Collapsed, Generalizer};
use crate::store::{EvidenceQuery, KeyStats, Slot, SubjectStats};
use crate::windows::Windows;

/// A reach key of one subject: action, generalized resource, target.
pub(crate) type Key = (String, String, Option<String>);

/// Use of one generalized key in one window.
#[derive(Debug, Clone)]
pub(crate) struct KeyUse {
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub sources: i64,
    pub hours: i64,
    /// The store's resources that generalized into this key.
    pub raw: BTreeSet<String>,
}

/// Every subject's generalized keys, per window.
pub(crate) struct Keys {
    slots: BTreeMap<(String, Slot), BTreeMap<Key, KeyUse>>,
    pub stored_keys: i64,
}

impl Keys {
    fn of(&self, subject: &str, slot: Slot) -> impl Iterator<Item = (&Key, &KeyUse)> {
        self.slots
            .get(&(subject.to_owned(), slot))
            .into_iter()
            .flat_map(|m| m.iter())
    }

    pub fn detect_of(&self, subject: &str) -> impl Iterator<Item = (&Key, &KeyUse)> {
        self.of(subject, Slot::Detect)
    }

    pub fn baseline_events(&self, subject: &str) -> i64 {
        self.of(subject, Slot::Baseline).map(|(_, u)| u.count).sum()
    }

    fn baseline_keys(&self, subject: &str) -> i64 {
        as_i64(self.of(subject, Slot::Baseline).count())
    }

    /// Keys of the baseline and detection windows after generalization.
    pub fn generalized_keys(&self) -> i64 {
        let mut keys: HashSet<(&str, &Key)> = HashSet::new();
        for ((subject, slot), map) in &self.slots {
            if *slot != Slot::History {
                keys.extend(map.keys().map(|k| (subject.as_str(), k)));
            }
        }
        as_i64(keys.len())
    }

    pub fn baselines(&self) -> Vec<BaselineEntry> {
        let mut out = Vec::new();
        for ((subject, slot), map) in &self.slots {
            if *slot != Slot::Baseline {
                continue;
            }
            for ((action, resource, target), u) in map {
                out.push(BaselineEntry {
                    subject: subject.clone(),
                    action: action.clone(),
                    resource_pattern: resource.clone(),
                    target: target.clone(),
                    count: u.count,
                    allow_count: u.allow_count,
                    deny_count: u.deny_count,
                    first_seen: u.first_seen,
                    last_seen: u.last_seen,
                });
            }
        }
        out
    }
}

/// Generalizes the store's keys (see [`crate::generalize`]) and merges
/// those that become one. Object names collapse per subject: kinds with
/// many names in the first-ever and baseline windows collapse everywhere,
/// kinds with many names in the detection window collapse there.
pub(crate) fn generalize(generalizer: &Generalizer, keys: &[KeyStats]) -> Keys {
    let general: Vec<String> = keys
        .iter()
        .map(|k| generalizer.resource(&k.resource_pattern))
        .collect();
    let mut known_names: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut detect_names: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut stored: HashSet<(&str, &str, &str, Option<&str>)> = HashSet::new();
    for (k, g) in keys.iter().zip(&general) {
        let names = if k.slot == Slot::Detect {
            &mut detect_names
        } else {
            &mut known_names
        };
        names.entry(&k.subject).or_default().push(g);
        if k.slot != Slot::History {
            stored.insert((
                &k.subject,
                &k.action,
                &k.resource_pattern,
                k.target.as_deref(),
            ));
        }
    }
    let known_collapsed: HashMap<&str, Collapsed> = known_names
        .into_iter()
        .map(|(s, names)| (s, generalizer.collapsed(names)))
        .collect();
    let detect_collapsed: HashMap<&str, Collapsed> = detect_names
        .into_iter()
        .map(|(s, names)| {
            let mut kinds = generalizer.collapsed(names);
            if let Some(known) = known_collapsed.get(s) {
                kinds.extend(known);
            }
            (s, kinds)
        })
        .collect();
    let empty = Collapsed::default();
    let mut slots: BTreeMap<(String, Slot), BTreeMap<Key, KeyUse>> = BTreeMap::new();
    for (k, g) in keys.iter().zip(general) {
        let collapsed = if k.slot == Slot::Detect {
            detect_collapsed.get(k.subject.as_str())
        } else {
            known_collapsed.get(k.subject.as_str())
        };
        let resource = collapse(&g, collapsed.unwrap_or(&empty));
        let key = (k.action.clone(), resource, k.target.clone());
        let entry = slots
            .entry((k.subject.clone(), k.slot))
            .or_default()
            .entry(key)
            .or_insert_with(|| KeyUse {
                count: 0,
                allow_count: 0,
                deny_count: 0,
                first_seen: k.first_seen,
                last_seen: k.last_seen,
                sources: 0,
                hours: 0,
                raw: BTreeSet::new(),
            });
        entry.count += k.count;
        entry.allow_count += k.allow_count;
        entry.deny_count += k.deny_count;
        entry.first_seen = entry.first_seen.min(k.first_seen);
        entry.last_seen = entry.last_seen.max(k.last_seen);
        entry.sources = entry.sources.max(k.sources);
        entry.hours = entry.hours.max(k.hours);
        entry.raw.insert(k.resource_pattern.clone());
    }
    Keys {
        slots,
        stored_keys: as_i64(stored.len()),
    }
}

/// The network a source address belongs to for "a new place": IPv4 /16,
/// IPv6 /48; anything else (a host name) is its own network.
pub(crate) fn network(address: &str) -> String {
    let host = address
        .strip_prefix('[')
        .and_then(|a| a.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| match address.matches(':').count() {
            1 => address.split(':').next().unwrap_or(address),
            _ => address,
        });
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, ..] = v4.octets();
            format!("{a}.{b}.0.0/16")
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => host.to_owned(),
    }
}

/// The peer group of a SPIFFE ID: its trust domain and parent path
/// (`spiffe://td/ns/payments/sa/` for `.../ns/payments/sa/api`).
pub(crate) fn peer_group(subject: &str) -> Option<&str> {
    subject.strip_prefix("spiffe://")?;
    let (parent, last) = subject.rsplit_once('/')?;
    (!last.is_empty() && parent["spiffe://".len()..].contains('/'))
        .then(|| &subject[..parent.len() + 1])
}

/// Several keys' use in the detection window, added up.
struct Totals {
    count: i64,
    allow_count: i64,
    deny_count: i64,
    /// Of the first and last call; the window's ends when there is none.
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    /// The most distinct hours any one key was used in.
    hours: i64,
    write: bool,
    sensitive: bool,
}

impl Totals {
    fn of(windows: &Windows, used: &[(&Key, &KeyUse)]) -> Self {
        let sum = |f: fn(&KeyUse) -> i64| used.iter().map(|(_, u)| f(u)).sum::<i64>();
        Self {
            count: sum(|u| u.count),
            allow_count: sum(|u| u.allow_count),
            deny_count: sum(|u| u.deny_count),
            first_seen: used
                .iter()
                .map(|(_, u)| u.first_seen)
                .min()
                .unwrap_or(windows.detect_start),
            last_seen: used
                .iter()
                .map(|(_, u)| u.last_seen)
                .max()
                .unwrap_or(windows.now),
            hours: used.iter().map(|(_, u)| u.hours).max().unwrap_or(0),
            write: used.iter().any(|((a, _, _), _)| is_write_action(a)),
            sensitive: used.iter().any(|((_, r, _), _)| is_sensitive_resource(r)),
        }
    }
}

/// One `new-identity` finding for a subject with no or too little history.
pub(crate) fn new_identity(
    windows: &Windows,
    s: &SubjectStats,
    keys: &Keys,
    baseline_events: i64,
    min_history: Duration,
) -> Draft {
    let kind = FindingKind::NewIdentity;
    let used: Vec<(&Key, &KeyUse)> = keys.detect_of(&s.subject).collect();
    let Totals {
        count,
        allow_count,
        deny_count,
        first_seen,
        last_seen,
        write,
        sensitive,
        ..
    } = Totals::of(windows, &used);
    let actions: BTreeSet<&str> = used.iter().map(|((a, _, _), _)| a.as_str()).collect();
    let score = score(
        kind,
        ScoreInputs {
            allow_count,
            deny_count,
            write,
            sensitive,
            ..ScoreInputs::default()
        },
    );
    let n_keys = as_i64(used.len());
    let history = if baseline_events == 0 {
        format!(
            "has no history in the {} baseline window before ({})",
            format_duration(windows.baseline),
            explain::range(windows.baseline_start, windows.detect_start)
        )
    } else {
        format!(
            "was first seen {} ({} before the detection window, with {} in the baseline), \
             less than the {} of history per-key detectors wait for",
            explain::time(s.first_seen),
            explain::approx(windows.detect_start - s.first_seen),
            explain::count(baseline_events, "call", "calls"),
            explain::approx(min_history),
        )
    };
    let explanation = format!(
        "{subject} made {calls} on {keys} with {actions} ({mix}) {when} and {history}.",
        subject = s.subject,
        calls = explain::count(count, "call", "calls"),
        keys = explain::count(n_keys, "reach key", "reach keys"),
        actions = explain::count(as_i64(actions.len()), "distinct action", "distinct actions"),
        mix = mix(allow_count, deny_count),
        when = explain::span(first_seen, last_seen),
    );
    let evidence = json!({
        "baseline_start": explain::time(windows.baseline_start),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_events": baseline_events,
        "first_seen": explain::time(s.first_seen),
        "min_history": format_duration(min_history),
        "detect_start": explain::time(windows.detect_start),
        "detect_end": explain::time(windows.now),
        "count": count,
        "allow_count": allow_count,
        "deny_count": deny_count,
        "reach_keys": n_keys,
        "actions": actions,
        "write_action": write,
        "sensitive_resource": sensitive,
    });
    build(
        Common {
            kind,
            subject: &s.subject,
            id_parts: vec![],
            action: None,
            resource_pattern: None,
            target: None,
            first_seen,
            last_seen,
            count,
            allow_count,
            deny_count,
        },
        score,
        explanation,
        evidence,
        EvidenceQuery {
            subject: s.subject.clone(),
            ..EvidenceQuery::default()
        },
    )
}

/// What one subject is known to do, from the first-ever and baseline windows.
struct Known<'a> {
    keys: HashSet<&'a Key>,
    targets: BTreeSet<&'a str>,
    target_domains: BTreeSet<&'a str>,
    target_environments: BTreeSet<&'static str>,
    networks: BTreeSet<String>,
    /// Addresses that made calls on known keys in the detection window.
    routine_sources: BTreeSet<&'a str>,
    events: i64,
    key_count: i64,
}

/// What a peer does: action, kind of resource (no object name), target.
type PeerUse<'a> = (&'a str, &'a str, Option<&'a str>);

/// Source addresses per (subject, action, store resource, target) in the
/// detection window.
type DetectSources<'a> = HashMap<(&'a str, &'a str, &'a str, Option<&'a str>), Vec<&'a str>>;

/// `new-reach`, `peer-rare`, `new-target` and the crossings, for subjects
/// with enough history.
pub(crate) fn detect(
    settings: &DetectSettings,
    windows: &Windows,
    seasoned: &[&SubjectStats],
    keys: &Keys,
    inputs: &Inputs<'_>,
) -> Vec<Draft> {
    let mut baseline_networks: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut detect_sources: DetectSources<'_> = HashMap::new();
    for s in inputs.sources {
        match s.slot {
            Slot::Detect => detect_sources
                .entry((
                    &s.subject,
                    s.action.as_deref().unwrap_or(""),
                    s.resource_pattern.as_deref().unwrap_or(""),
                    s.target.as_deref(),
                ))
                .or_default()
                .push(&s.source_address),
            _ => {
                baseline_networks
                    .entry(&s.subject)
                    .or_default()
                    .insert(network(&s.source_address));
            }
        }
    }
    // Peer groups and what each group's members use (kind of resource,
    // without object names), over every window.
    let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in inputs.subjects {
        if let Some(group) = peer_group(&s.subject) {
            groups.entry(group).or_default().push(&s.subject);
        }
    }
    let mut peer_uses: HashMap<&str, HashSet<PeerUse<'_>>> = HashMap::new();
    for ((subject, _), map) in &keys.slots {
        let uses = peer_uses.entry(subject).or_default();
        for (action, resource, target) in map.keys() {
            uses.insert((action, split_name(resource).0, target.as_deref()));
        }
    }

    let mut drafts = Vec::new();
    for s in seasoned {
        let subject = s.subject.as_str();
        let mut known = Known {
            keys: HashSet::new(),
            targets: BTreeSet::new(),
            target_domains: BTreeSet::new(),
            target_environments: BTreeSet::new(),
            networks: baseline_networks.remove(subject).unwrap_or_default(),
            routine_sources: BTreeSet::new(),
            events: keys.baseline_events(subject),
            key_count: keys.baseline_keys(subject),
        };
        for (key, _) in keys
            .of(subject, Slot::History)
            .chain(keys.of(subject, Slot::Baseline))
        {
            known.keys.insert(key);
            if let Some(t) = key.2.as_deref() {
                known.targets.insert(t);
                if let Some(td) = trust_domain_of(t) {
                    known.target_domains.insert(td);
                    known.target_environments.extend(environment_of(td));
                }
            }
        }
        for (key, used) in keys.detect_of(subject) {
            if known.keys.contains(key) {
                let routine = addresses(&detect_sources, subject, key, used);
                known.routine_sources.extend(routine);
            }
        }
        let peers: Vec<&str> = peer_group(subject)
            .and_then(|g| groups.get(g))
            .map(|members| members.iter().copied().filter(|m| *m != subject).collect())
            .unwrap_or_default();
        let mut new_targets: BTreeMap<&str, Vec<(&Key, &KeyUse)>> = BTreeMap::new();
        for (key, used) in keys.detect_of(subject) {
            if known.keys.contains(key) {
                continue;
            }
            match key.2.as_deref() {
                Some(t) if !known.targets.contains(t) => {
                    new_targets.entry(t).or_default().push((key, used));
                }
                _ => {
                    let sources = addresses(&detect_sources, subject, key, used);
                    let using: Vec<&str> = peers
                        .iter()
                        .copied()
                        .filter(|p| {
                            peer_uses.get(p).is_some_and(|u| {
                                u.contains(&(
                                    key.0.as_str(),
                                    split_name(&key.1).0,
                                    key.2.as_deref(),
                                ))
                            })
                        })
                        .collect();
                    drafts.push(new_key(
                        settings, windows, s, &known, key, used, &sources, &peers, &using,
                    ));
                }
            }
        }
        for (target, used) in new_targets {
            let sources: BTreeSet<&str> = used
                .iter()
                .flat_map(|(key, u)| addresses(&detect_sources, subject, key, u))
                .collect();
            drafts.push(new_target(
                settings, windows, s, &known, target, &used, &sources,
            ));
        }
    }
    drafts
}

fn addresses<'a>(
    sources: &DetectSources<'a>,
    subject: &str,
    key: &Key,
    used: &KeyUse,
) -> BTreeSet<&'a str> {
    used.raw
        .iter()
        .filter_map(|raw| sources.get(&(subject, key.0.as_str(), raw.as_str(), key.2.as_deref())))
        .flatten()
        .copied()
        .collect()
}

/// New networks among `sources`, and whether use looks like a rollout:
/// all addresses in known networks, and either spread over at least 3
/// hours from two or more replicas, over at least 6 hours from one, or
/// made only from addresses that also made the identity's routine calls
/// in the window and spread over at least 90 minutes (the workload's own
/// new pods, not a caller somewhere else).
fn place(
    known: &Known<'_>,
    sources: &BTreeSet<&str>,
    used: (i64, DateTime<Utc>, DateTime<Utc>),
) -> (Vec<String>, bool) {
    let (hours, first, last) = used;
    let new: BTreeSet<String> = sources
        .iter()
        .map(|a| network(a))
        .filter(|n| !known.networks.contains(n))
        .collect();
    let routine = !sources.is_empty()
        && sources.iter().all(|a| known.routine_sources.contains(a))
        && last - first >= Duration::minutes(90);
    let rollout = !sources.is_empty()
        && new.is_empty()
        && ((sources.len() >= 2 && hours >= 3) || hours >= 6 || routine);
    (new.into_iter().collect(), rollout)
}

fn from_where(sources: &BTreeSet<&str>, new_networks: &[String], rollout: bool) -> String {
    if sources.is_empty() {
        return String::new();
    }
    let list: Vec<&str> = sources.iter().take(3).copied().collect();
    let more = sources.len().saturating_sub(3);
    let mut out = format!(
        " From {}{}",
        list.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    if !new_networks.is_empty() {
        out.push_str(&format!(
            ", in {} it never used in the baseline",
            if new_networks.len() == 1 {
                format!("network {}", new_networks[0])
            } else {
                format!("networks {}", new_networks.join(", "))
            }
        ));
    } else if rollout {
        out.push_str(", known replicas over several hours, as a rollout looks");
    }
    out.push('.');
    out
}

#[allow(clippy::too_many_arguments)]
fn new_key(
    settings: &DetectSettings,
    windows: &Windows,
    s: &SubjectStats,
    known: &Known<'_>,
    key: &Key,
    used: &KeyUse,
    sources: &BTreeSet<&str>,
    peers: &[&str],
    using: &[&str],
) -> Draft {
    let (action, resource, target) = key;
    let peer_rare = peers.len() >= settings.min_peers && using.is_empty();
    let kind = if peer_rare {
        FindingKind::PeerRare
    } else {
        FindingKind::NewReach
    };
    let write = is_write_action(action);
    let sensitive = is_sensitive_resource(resource);
    let (new_networks, rollout) = place(
        known,
        sources,
        (used.hours, used.first_seen, used.last_seen),
    );
    let score = score(
        kind,
        ScoreInputs {
            allow_count: used.allow_count,
            deny_count: used.deny_count,
            write,
            sensitive,
            new_network: !new_networks.is_empty(),
            rollout,
            ..ScoreInputs::default()
        },
    );
    let at = target
        .as_deref()
        .map(|t| format!(" at `{t}`"))
        .unwrap_or_default();
    let group = peer_group(&s.subject).unwrap_or("");
    let peers_text = if peers.len() < settings.min_peers {
        String::new()
    } else if peer_rare {
        format!(
            " None of its {} under `{group}` did either.",
            explain::count(peers.len() as i64, "peer", "peers")
        )
    } else {
        format!(
            " {} of its {} peers under `{group}` do.",
            using.len(),
            peers.len()
        )
    };
    let explanation = format!(
        "{subject} called `{action}` on `{resource}`{at} {times} ({mix}) {when}; it never did \
         this in the {history} before ({range}), where it made {events} on {keys}.{peers_text}{place}",
        subject = s.subject,
        times = explain::count(used.count, "time", "times"),
        mix = mix(used.allow_count, used.deny_count),
        when = explain::span(used.first_seen, used.last_seen),
        history = explain::approx(windows.detect_start - windows.history_start),
        range = explain::range(windows.history_start, windows.detect_start),
        events = explain::count(known.events, "baseline call", "baseline calls"),
        keys = explain::count(known.key_count, "reach key", "reach keys"),
        place = from_where(sources, &new_networks, rollout),
    );
    let evidence = json!({
        "history_start": explain::time(windows.history_start),
        "baseline_start": explain::time(windows.baseline_start),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_events": known.events,
        "baseline_keys": known.key_count,
        "detect_start": explain::time(windows.detect_start),
        "detect_end": explain::time(windows.now),
        "count": used.count,
        "allow_count": used.allow_count,
        "deny_count": used.deny_count,
        "peer_group": group,
        "peers": peers.len(),
        "peers_using": using,
        "sources": sources,
        "new_networks": new_networks,
        "active_hours": used.hours,
        "rollout": rollout,
        "resources": used.raw,
        "write_action": write,
        "sensitive_resource": sensitive,
    });
    build(
        Common {
            kind,
            subject: &s.subject,
            id_parts: vec![Some(action), Some(resource), target.as_deref()],
            action: Some(action.clone()),
            resource_pattern: Some(resource.clone()),
            target: target.clone(),
            first_seen: used.first_seen,
            last_seen: used.last_seen,
            count: used.count,
            allow_count: used.allow_count,
            deny_count: used.deny_count,
        },
        score,
        explanation,
        evidence,
        EvidenceQuery {
            subject: s.subject.clone(),
            action: Some(action.clone()),
            resources: used.raw.iter().cloned().collect(),
            target: Some(target.clone()),
            ..EvidenceQuery::default()
        },
    )
}

fn new_target(
    _settings: &DetectSettings,
    windows: &Windows,
    s: &SubjectStats,
    known: &Known<'_>,
    target: &str,
    used: &[(&Key, &KeyUse)],
    sources: &BTreeSet<&str>,
) -> Draft {
    let own_domain = s
        .trust_domain
        .as_deref()
        .or_else(|| trust_domain_of(&s.subject));
    let own_env = s
        .environment
        .as_deref()
        .or_else(|| own_domain.and_then(environment_of));
    let domain = trust_domain_of(target);
    let env = domain.and_then(environment_of);
    let kind = match (env, domain) {
        (Some(e), _)
            if own_env.is_some_and(|o| o != e) && !known.target_environments.contains(e) =>
        {
            FindingKind::EnvironmentCrossing
        }
        (_, Some(d)) if own_domain.is_some_and(|o| o != d) && !known.target_domains.contains(d) => {
            FindingKind::TrustDomainCrossing
        }
        _ => FindingKind::NewTarget,
    };
    let Totals {
        count,
        allow_count,
        deny_count,
        first_seen,
        last_seen,
        hours,
        write,
        sensitive,
    } = Totals::of(windows, used);
    let (new_networks, rollout) = place(known, sources, (hours, first_seen, last_seen));
    let score = score(
        kind,
        ScoreInputs {
            allow_count,
            deny_count,
            write,
            sensitive,
            new_network: !new_networks.is_empty(),
            // Crossing an environment or trust domain is never routine.
            rollout: rollout && kind == FindingKind::NewTarget,
            ..ScoreInputs::default()
        },
    );
    let calls: Vec<String> = used
        .iter()
        .take(5)
        .map(|((a, r, _), u)| format!("`{a} {r}` ×{}", u.count))
        .collect();
    let what = match kind {
        FindingKind::EnvironmentCrossing => format!(
            ", a target in environment `{}` while it runs in `{}`, an environment it never \
             called before",
            env.unwrap_or("?"),
            own_env.unwrap_or("?")
        ),
        FindingKind::TrustDomainCrossing => format!(
            ", a target in trust domain `{}`, which is not its own (`{}`) and which it never \
             called before",
            domain.unwrap_or("?"),
            own_domain.unwrap_or("?")
        ),
        _ => String::new(),
    };
    let explanation = format!(
        "{subject} called `{target}` for the first time in the {history} before ({range}){what}: \
         {calls_n} on {keys} ({mix}) {when}: {list}{etc}. In that window it called {targets}.{place}",
        subject = s.subject,
        history = explain::approx(windows.detect_start - windows.history_start),
        range = explain::range(windows.history_start, windows.detect_start),
        calls_n = explain::count(count, "call", "calls"),
        keys = explain::count(used.len() as i64, "reach key", "reach keys"),
        mix = mix(allow_count, deny_count),
        when = explain::span(first_seen, last_seen),
        list = calls.join(", "),
        etc = if used.len() > calls.len() { ", …" } else { "" },
        targets = explain::count(known.targets.len() as i64, "other target", "other targets"),
        place = from_where(sources, &new_networks, rollout),
    );
    let (action, resource) = match used {
        [((a, r, _), _)] => (Some(a.clone()), Some(r.clone())),
        _ => (None, None),
    };
    let evidence = json!({
        "history_start": explain::time(windows.history_start),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_events": known.events,
        "known_targets": known.targets.len(),
        "known_target_trust_domains": known.target_domains,
        "known_target_environments": known.target_environments,
        "own_trust_domain": own_domain,
        "own_environment": own_env,
        "target_trust_domain": domain,
        "target_environment": env,
        "count": count,
        "allow_count": allow_count,
        "deny_count": deny_count,
        "keys": used.iter().map(|((a, r, _), u)| json!({"action": a, "resource": r, "count": u.count})).collect::<Vec<_>>(),
        "sources": sources,
        "new_networks": new_networks,
        "rollout": rollout,
        "write_action": write,
        "sensitive_resource": sensitive,
    });
    build(
        Common {
            kind,
            subject: &s.subject,
            id_parts: vec![Some(target)],
            action,
            resource_pattern: resource,
            target: Some(target.to_owned()),
            first_seen,
            last_seen,
            count,
            allow_count,
            deny_count,
        },
        score,
        explanation,
        evidence,
        EvidenceQuery {
            subject: s.subject.clone(),
            target: Some(Some(target.to_owned())),
            ..EvidenceQuery::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_peer_groups() {
        assert_eq!(network("10.1.2.3"), "10.1.0.0/16");
        assert_eq!(network("10.1.2.3:443"), "10.1.0.0/16");
        assert_eq!(network("[2001:db8:1:2::5]:443"), "2001:db8:1::/48");
        assert_eq!(network("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(network("gateway.local"), "gateway.local");
        assert_eq!(
            peer_group("spiffe://prod.example.org/ns/payments/sa/api"),
            Some("spiffe://prod.example.org/ns/payments/sa/")
        );
        assert_eq!(peer_group("spiffe://prod.example.org/api"), None);
        assert_eq!(peer_group("system:kube-scheduler"), None);
    }
}
