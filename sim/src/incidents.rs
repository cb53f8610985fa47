//! Labelled changes: benign deploys over the whole run and injected
//! incidents inside the last `--incident-days` days. Incident events are
//! generated up front (they are few) and merged into the hour they fall in.

use std::collections::{BTreeMap, BTreeSet};

use crate::estate::{
    CredKind, Estate, Key, Kind, Route, TargetRef, Workload, DAY_US, ENVS, HOUR_US, MIN_US, PROD,
};
use crate::generate::{expected, normal_cred, source_of, Cred, Ev};
use crate::rng::Rng;
use crate::SimFormat;

/// Every incident kind, in the order they are placed (scarce candidates
/// first).
pub const KINDS: [&str; 10] = [
    "off-hours",
    "environment-crossing",
    "trust-domain-crossing",
    "new-reach",
    "new-target",
    "volume-spike",
    "peer-rare",
    "deny-spike",
    "weak-credential",
    "new-identity",
];

/// The kinds a format can carry: OPA decision logs hold no credential
/// expiry; Kubernetes audit holds only API-server traffic of one trust
/// domain, and no credential or target.
pub fn kinds_for(format: SimFormat) -> &'static [&'static str] {
    match format {
        SimFormat::Native => &KINDS,
        SimFormat::Opa => &KINDS[..8],
        SimFormat::K8sAudit => &[
            "new-reach",
            "volume-spike",
            "peer-rare",
            "deny-spike",
            "new-identity",
        ],
    }
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: &'static str,
    pub subject: usize,
    pub description: String,
    pub benign: bool,
}

pub struct Plan {
    pub labels: Vec<Planned>,
    /// Incident events by hour index since the start.
    pub events: BTreeMap<i64, Vec<Ev>>,
    /// Kinds that got fewer incidents than asked, and why.
    pub shortfall: Vec<String>,
}

pub struct Ctx {
    pub seed: u64,
    pub start_us: i64,
    pub days: u32,
    pub incident_days: u32,
    pub per_kind: u32,
    pub format: SimFormat,
    pub rate_scale: f64,
}

const STREAM_DEPLOY: u64 = 4;
const STREAM_INCIDENT: u64 = 5;

/// Plans deploys (always, whatever the format) then incidents.
pub fn plan(estate: &mut Estate, ctx: &Ctx) -> Plan {
    let mut plan = Plan {
        labels: Vec::new(),
        events: BTreeMap::new(),
        shortfall: Vec::new(),
    };
    plan_deploys(estate, ctx, &mut plan);
    plan_incidents(estate, ctx, &mut plan);
    plan
}

fn plan_deploys(estate: &mut Estate, ctx: &Ctx, plan: &mut Plan) {
    let mut rng = Rng::derive(ctx.seed, &[STREAM_DEPLOY]);
    let candidates: Vec<usize> = (0..estate.workloads.len())
        .filter(|&i| {
            let w = &estate.workloads[i];
            w.kind == Kind::Service
                && w.keys
                    .iter()
                    .any(|k| matches!(k.target, TargetRef::Workload(_)))
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    let per_day = estate.workloads.len() as f64 / 150.0;
    for day in 0..ctx.days as i64 {
        let n = rng.poisson(per_day);
        for _ in 0..n {
            let wi = *rng.pick(&candidates);
            let t = ctx.start_us
                + day * DAY_US
                + rng.range(10, 15) as i64 * HOUR_US
                + rng.below(HOUR_US as u64) as i64;
            let w = &estate.workloads[wi];
            // A new route on a target it already calls.
            let mut options = Vec::new();
            for k in &w.keys {
                if let TargetRef::Workload(j) = k.target {
                    for &r in &estate.workloads[j].serves {
                        if !w.has_key(k.target, r) && !options.contains(&(k.target, r)) {
                            options.push((k.target, r));
                        }
                    }
                }
            }
            if options.is_empty() {
                continue;
            }
            let (target, route) = *rng.pick(&options);
            let label = plan.labels.len() as u32;
            let weight = w.keys.iter().map(|k| k.weight).sum::<f64>() / w.keys.len() as f64;
            let description = format!(
                "deploy of {} adds {} on {} and replaces its replicas' IPs",
                w.subject,
                estate.routes[route].display(),
                estate.target_id(target)
            );
            let w = &mut estate.workloads[wi];
            w.keys.push(Key {
                target,
                route,
                weight,
                deny_rate: 0.0,
                since_us: t,
                label: Some(label),
            });
            let at = w.deploys.partition_point(|&d| d <= t);
            w.deploys.insert(at, t);
            plan.labels.push(Planned {
                kind: "deploy",
                subject: wi,
                description,
                benign: true,
            });
        }
    }
}

/// Shared state while placing incidents.
struct Placer<'a> {
    estate: &'a mut Estate,
    ctx: &'a Ctx,
    rng: Rng,
    used: BTreeSet<usize>,
    plan: &'a mut Plan,
}

impl Placer<'_> {
    /// A time `hour_lo..=hour_hi` o'clock on a random day of the incident
    /// window.
    fn when(&mut self, hour_lo: u64, hour_hi: u64) -> i64 {
        let first = (self.ctx.days - self.ctx.incident_days) as u64;
        let day = self.rng.range(first, self.ctx.days as u64 - 1) as i64;
        self.ctx.start_us
            + day * DAY_US
            + self.rng.range(hour_lo, hour_hi) as i64 * HOUR_US
            + self.rng.below(HOUR_US as u64) as i64
    }

    fn within(&mut self, t0: i64, span_us: i64) -> i64 {
        crate::generate::ms(t0 + self.rng.below(span_us.max(1) as u64) as i64)
    }

    fn pick_subject(&mut self, ok: impl Fn(&Estate, usize) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.estate.workloads.len())
            .filter(|i| !self.used.contains(i) && !self.estate.workloads[*i].ghost)
            .filter(|&i| ok(self.estate, i))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let wi = *self.rng.pick(&candidates);
        self.used.insert(wi);
        Some(wi)
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        wi: usize,
        t_us: i64,
        target: TargetRef,
        route: usize,
        allow: bool,
        source: Option<[u8; 4]>,
        cred: Option<Cred>,
        label: u32,
    ) -> Ev {
        let w = &self.estate.workloads[wi];
        let resource = self.estate.routes[route].render(&mut self.rng);
        let source = source.unwrap_or_else(|| source_of(self.ctx.seed, w, wi, t_us, &mut self.rng));
        Ev {
            t_us,
            subject: wi,
            target,
            route,
            resource,
            source,
            allow,
            cred: cred.unwrap_or_else(|| normal_cred(w, t_us)),
            label: Some(label),
        }
    }

    fn push(&mut self, kind: &'static str, wi: usize, description: String, events: Vec<Ev>) {
        self.plan.labels.push(Planned {
            kind,
            subject: wi,
            description,
            benign: false,
        });
        for e in events {
            let hour = (e.t_us - self.ctx.start_us).div_euclid(HOUR_US);
            self.plan.events.entry(hour).or_default().push(e);
        }
    }

    fn next_label(&self) -> u32 {
        self.plan.labels.len() as u32
    }

    fn k8s(&self) -> bool {
        self.ctx.format == SimFormat::K8sAudit
    }

    fn w(&self, wi: usize) -> &Workload {
        &self.estate.workloads[wi]
    }

    /// Places one incident of `kind`; false when no identity suits it.
    fn place(&mut self, kind: &'static str) -> bool {
        let k8s = self.k8s();
        let is_prod_controller = |e: &Estate, i: usize| {
            e.workloads[i].env == PROD && e.workloads[i].kind == Kind::Controller
        };
        let calls_workloads = |e: &Estate, i: usize| {
            let w = &e.workloads[i];
            w.kind != Kind::Controller
                && w.keys
                    .iter()
                    .any(|k| matches!(k.target, TargetRef::Workload(_)))
        };
        let label = self.next_label();
        match kind {
            "off-hours" => {
                let Some(wi) = self.pick_subject(|e, i| {
                    matches!(e.workloads[i].kind, Kind::OfficeHours | Kind::Batch)
                        && !e.workloads[i].keys.is_empty()
                }) else {
                    return false;
                };
                let t0 = self.when(1, 2);
                let n = self.rng.range(10, 60);
                let span = self.rng.range(20, 60) as i64 * MIN_US;
                let mut events = Vec::new();
                for _ in 0..n {
                    let t = self.within(t0, span);
                    let ki = self.rng.index(self.w(wi).keys.len());
                    let (target, route) = (self.w(wi).keys[ki].target, self.w(wi).keys[ki].route);
                    events.push(self.event(wi, t, target, route, true, None, None, label));
                }
                let kind_name = if self.w(wi).kind == Kind::Batch {
                    "batch job"
                } else {
                    "office-hours tool"
                };
                let d = format!(
                    "{kind_name} {} makes {n} of its normal calls between 01:00 and 04:00 UTC, hours it is never active in",
                    self.w(wi).subject
                );
                self.push(kind, wi, d, events);
            }
            "environment-crossing" => {
                let Some(wi) =
                    self.pick_subject(|e, i| e.workloads[i].env != PROD && calls_workloads(e, i))
                else {
                    return false;
                };
                let prod: Vec<usize> = (0..self.estate.workloads.len())
                    .filter(|&j| {
                        let u = &self.estate.workloads[j];
                        u.env == PROD && u.kind == Kind::Service && !u.ghost
                    })
                    .collect();
                if prod.is_empty() {
                    return false;
                }
                let ns = self.w(wi).namespace.clone();
                let same: Vec<usize> = prod
                    .iter()
                    .copied()
                    .filter(|&j| self.estate.workloads[j].namespace == ns)
                    .collect();
                let tj = if same.is_empty() {
                    *self.rng.pick(&prod)
                } else {
                    *self.rng.pick(&same)
                };
                let route = *self.rng.pick(&self.estate.workloads[tj].serves);
                let t0 = self.when(9, 16);
                let n = self.rng.range(3, 20);
                let span = self.rng.range(5, 60) as i64 * MIN_US;
                let events = (0..n)
                    .map(|_| {
                        let t = self.within(t0, span);
                        self.event(
                            wi,
                            t,
                            TargetRef::Workload(tj),
                            route,
                            true,
                            None,
                            None,
                            label,
                        )
                    })
                    .collect();
                let d = format!(
                    "{} workload {} calls the prod service {} ({}) {n} times",
                    ENVS[self.w(wi).env].name,
                    self.w(wi).subject,
                    self.estate.workloads[tj].subject,
                    self.estate.routes[route].display()
                );
                self.push(kind, wi, d, events);
            }
            "trust-domain-crossing" => {
                let Some(wi) = self.pick_subject(|e, i| {
                    e.workloads[i].env == PROD
                        && calls_workloads(e, i)
                        && !e.workloads[i]
                            .keys
                            .iter()
                            .any(|k| matches!(k.target, TargetRef::Partner(_)))
                }) else {
                    return false;
                };
                let p = self.rng.index(self.estate.partners.len());
                let route = *self.rng.pick(&self.estate.partners[p].serves);
                let t0 = self.when(9, 16);
                let n = self.rng.range(3, 20);
                let span = self.rng.range(5, 60) as i64 * MIN_US;
                let events = (0..n)
                    .map(|_| {
                        let t = self.within(t0, span);
                        self.event(wi, t, TargetRef::Partner(p), route, true, None, None, label)
                    })
                    .collect();
                let d = format!(
                    "{} never calls the partner trust domain, then calls {} ({}) {n} times",
                    self.w(wi).subject,
                    self.estate.partners[p].subject,
                    self.estate.routes[route].display()
                );
                self.push(kind, wi, d, events);
            }
            "new-reach" => {
                let (wi, keys) = if k8s {
                    let Some(wi) = self.pick_subject(is_prod_controller) else {
                        return false;
                    };
                    let ns = self.w(wi).namespace.clone();
                    let mut keys = Vec::new();
                    for (verb, group, resource, name) in [
                        ("get", "", "secrets", Some("db-credentials")),
                        ("list", "", "secrets", None),
                        ("get", "", "serviceaccounts", Some("default")),
                        ("list", "rbac.authorization.k8s.io", "roles", None),
                        ("list", "rbac.authorization.k8s.io", "rolebindings", None),
                        ("list", "batch", "cronjobs", None),
                        ("get", "batch", "jobs", Some("migrate")),
                        ("list", "networking.k8s.io", "ingresses", None),
                        ("list", "", "persistentvolumeclaims", None),
                        ("get", "", "secrets", Some("tls-cert")),
                    ] {
                        let r = self.estate.add_route(Route::k8s(
                            verb,
                            group,
                            "v1",
                            resource,
                            Some(&ns),
                            name,
                            None,
                        ));
                        keys.push((TargetRef::ApiServer(PROD), r));
                    }
                    (wi, keys)
                } else {
                    let peer_keys = |e: &Estate, i: usize| -> Vec<(TargetRef, usize)> {
                        let w = &e.workloads[i];
                        let mut out = Vec::new();
                        for (j, p) in e.workloads.iter().enumerate() {
                            if j == i || p.env != w.env || p.namespace != w.namespace || p.ghost {
                                continue;
                            }
                            for k in &p.keys {
                                if k.since_us == i64::MIN
                                    && matches!(
                                        k.target,
                                        TargetRef::Workload(_) | TargetRef::Partner(_)
                                    )
                                    && w.calls_target(k.target)
                                    && !w.has_key(k.target, k.route)
                                    && !out.contains(&(k.target, k.route))
                                {
                                    out.push((k.target, k.route));
                                }
                            }
                        }
                        out
                    };
                    let Some(wi) = self.pick_subject(|e, i| {
                        e.workloads[i].kind != Kind::Controller && peer_keys(e, i).len() >= 3
                    }) else {
                        return false;
                    };
                    (wi, peer_keys(self.estate, wi))
                };
                let mut keys = keys;
                self.rng.shuffle(&mut keys);
                keys.truncate(self.rng.range(3, 10) as usize);
                let source = [203, 0, 113, self.rng.range(1, 254) as u8];
                let t0 = self.when(9, 16);
                let span = self.rng.range(30, 90) as i64 * MIN_US;
                let mut events = Vec::new();
                for &(target, route) in &keys {
                    for _ in 0..self.rng.range(1, 3) {
                        let t = self.within(t0, span);
                        events.push(self.event(
                            wi,
                            t,
                            target,
                            route,
                            true,
                            Some(source),
                            None,
                            label,
                        ));
                    }
                }
                let d = format!(
                    "credential of {} used from 203.0.113.{} to call {} keys it never used (its namespace peers do), {} calls",
                    self.w(wi).subject,
                    source[3],
                    keys.len(),
                    events.len()
                );
                self.push(kind, wi, d, events);
            }
            "new-target" => {
                let called: BTreeSet<usize> = self
                    .estate
                    .workloads
                    .iter()
                    .flat_map(|w| w.keys.iter())
                    .filter_map(|k| match k.target {
                        TargetRef::Workload(j) => Some(j),
                        _ => None,
                    })
                    .collect();
                let fresh = |e: &Estate, i: usize| -> Vec<usize> {
                    let w = &e.workloads[i];
                    called
                        .iter()
                        .copied()
                        .filter(|&j| {
                            j != i
                                && e.workloads[j].env == w.env
                                && !w.calls_target(TargetRef::Workload(j))
                        })
                        .collect()
                };
                let Some(wi) =
                    self.pick_subject(|e, i| calls_workloads(e, i) && !fresh(e, i).is_empty())
                else {
                    return false;
                };
                let options = fresh(self.estate, wi);
                let tj = *self.rng.pick(&options);
                // A route the target serves to others.
                let used_routes: Vec<usize> = self
                    .estate
                    .workloads
                    .iter()
                    .flat_map(|w| w.keys.iter())
                    .filter(|k| k.target == TargetRef::Workload(tj))
                    .map(|k| k.route)
                    .collect();
                let route = *self.rng.pick(&used_routes);
                let t0 = self.when(9, 16);
                let n = self.rng.range(5, 40);
                let span = self.rng.range(10, 90) as i64 * MIN_US;
                let events = (0..n)
                    .map(|_| {
                        let t = self.within(t0, span);
                        self.event(
                            wi,
                            t,
                            TargetRef::Workload(tj),
                            route,
                            true,
                            None,
                            None,
                            label,
                        )
                    })
                    .collect();
                let d = format!(
                    "{} calls {} for the first time ({}), {n} calls",
                    self.w(wi).subject,
                    self.estate.workloads[tj].subject,
                    self.estate.routes[route].display()
                );
                self.push(kind, wi, d, events);
            }
            "volume-spike" => {
                let Some(wi) = self.pick_subject(|e, i| {
                    if k8s {
                        is_prod_controller(e, i)
                    } else {
                        e.workloads[i].kind == Kind::Service && !e.workloads[i].keys.is_empty()
                    }
                }) else {
                    return false;
                };
                let t0 = self.when(9, 16);
                let hours = self.rng.range(1, 2) as i64;
                let mult = self.rng.range(10, 30) as f64;
                let ki = self.rng.index(self.w(wi).keys.len());
                let w = self.w(wi);
                let total: f64 = w
                    .keys
                    .iter()
                    .filter(|k| k.since_us == i64::MIN)
                    .map(|k| k.weight)
                    .sum();
                let share = w.keys[ki].weight / total.max(1e-9);
                let hour_start = t0 - t0.rem_euclid(HOUR_US);
                let usual = expected(w, hour_start).0 * self.ctx.rate_scale * share;
                let (target, route) = (w.keys[ki].target, w.keys[ki].route);
                let n = self.rng.poisson(usual * mult * hours as f64).max(20);
                let events = (0..n)
                    .map(|_| {
                        let t = self.within(t0, hours * HOUR_US);
                        self.event(wi, t, target, route, true, None, None, label)
                    })
                    .collect();
                let d = format!(
                    "{} calls {} on {} {n} times in {hours} h, about {mult}x its usual {:.1} per hour",
                    self.w(wi).subject,
                    self.estate.routes[route].display(),
                    self.estate.target_id(target),
                    usual
                );
                self.push(kind, wi, d, events);
            }
            "peer-rare" => {
                let Some(wi) = self.pick_subject(|e, i| {
                    if k8s {
                        is_prod_controller(e, i)
                    } else {
                        calls_workloads(e, i)
                    }
                }) else {
                    return false;
                };
                let (target, route) = if k8s {
                    let ns = self.w(wi).namespace.clone();
                    let pod = format!("{}-{{pod}}", self.w(wi).name);
                    let r = self.estate.add_route(Route::k8s(
                        "create",
                        "",
                        "v1",
                        "pods",
                        Some(&ns),
                        Some(&pod),
                        Some("exec"),
                    ));
                    (TargetRef::ApiServer(PROD), r)
                } else {
                    let targets: Vec<TargetRef> = self
                        .w(wi)
                        .keys
                        .iter()
                        .map(|k| k.target)
                        .filter(|t| matches!(t, TargetRef::Workload(_)))
                        .collect();
                    let target = *self.rng.pick(&targets);
                    let (m, p) = *self.rng.pick(&[
                        ("POST", "/admin/v1/users/{n}/roles"),
                        ("DELETE", "/admin/v1/audit-log/{date}"),
                        ("GET", "/admin/v1/secrets/{hex}"),
                        ("POST", "/admin/v1/debug/exec"),
                        ("PUT", "/admin/v1/feature-flags/{n}"),
                    ]);
                    (target, self.estate.add_route(Route::http(m, p)))
                };
                let t0 = self.when(9, 16);
                let n = self.rng.range(2, 12);
                let span = self.rng.range(5, 45) as i64 * MIN_US;
                let events = (0..n)
                    .map(|_| {
                        let t = self.within(t0, span);
                        self.event(wi, t, target, route, true, None, None, label)
                    })
                    .collect();
                let d = format!(
                    "{} calls {} on {} ({n} times), a route no workload of its namespace uses",
                    self.w(wi).subject,
                    self.estate.routes[route].display(),
                    self.estate.target_id(target)
                );
                self.push(kind, wi, d, events);
            }
            "deny-spike" => {
                let Some(wi) = self.pick_subject(|e, i| {
                    if k8s {
                        is_prod_controller(e, i)
                    } else {
                        calls_workloads(e, i)
                    }
                }) else {
                    return false;
                };
                let env = self.w(wi).env;
                let mut probes: Vec<(TargetRef, usize)> = Vec::new();
                if k8s {
                    let namespaces: Vec<String> =
                        self.estate.namespaces(PROD).into_iter().collect();
                    for ns in namespaces.iter().take(12) {
                        for (verb, resource, name) in [
                            ("list", "secrets", None),
                            ("get", "secrets", Some("db-credentials")),
                            ("list", "configmaps", None),
                        ] {
                            let r = self.estate.add_route(Route::k8s(
                                verb,
                                "",
                                "v1",
                                resource,
                                Some(ns),
                                name,
                                None,
                            ));
                            probes.push((TargetRef::ApiServer(PROD), r));
                        }
                    }
                } else {
                    let mut targets: Vec<TargetRef> =
                        self.w(wi).keys.iter().map(|k| k.target).collect();
                    let services: Vec<usize> = (0..self.estate.workloads.len())
                        .filter(|&j| {
                            let u = &self.estate.workloads[j];
                            u.env == env && u.kind == Kind::Service && !u.ghost && j != wi
                        })
                        .collect();
                    for _ in 0..self.rng.range(2, 5) {
                        if !services.is_empty() {
                            targets.push(TargetRef::Workload(*self.rng.pick(&services)));
                        }
                    }
                    targets.sort();
                    targets.dedup();
                    for target in targets {
                        for (m, p) in [
                            ("GET", "/admin/v1/users/{n}"),
                            ("GET", "/internal/debug/vars"),
                            ("GET", "/.git/config"),
                            ("GET", "/actuator/env"),
                            ("GET", "/api/v1/secrets/{hex}"),
                            ("POST", "/admin/v1/tokens"),
                            ("GET", "/v1/config/{uuid}"),
                            ("DELETE", "/v1/accounts/{n}"),
                        ] {
                            let r = self.estate.add_route(Route::http(m, p));
                            probes.push((target, r));
                        }
                        if let TargetRef::Workload(j) = target {
                            for &r in &self.estate.workloads[j].serves {
                                probes.push((target, r));
                            }
                        }
                    }
                }
                let n = self.rng.range(50, 300);
                let allowed = (n as f64 * self.rng.uniform(0.0, 0.08)).floor() as u64;
                let mut decisions: Vec<bool> = (0..n).map(|i| i < allowed).collect();
                self.rng.shuffle(&mut decisions);
                let t0 = self.when(9, 16);
                let span = self.rng.range(10, 60) as i64 * MIN_US;
                let events = decisions
                    .into_iter()
                    .map(|allow| {
                        let (target, route) = *self.rng.pick(&probes);
                        let t = self.within(t0, span);
                        self.event(wi, t, target, route, allow, None, None, label)
                    })
                    .collect();
                let d = format!(
                    "{} probes {n} varied paths in {} minutes, {} denied",
                    self.w(wi).subject,
                    span / MIN_US,
                    n - allowed
                );
                self.push(kind, wi, d, events);
            }
            "weak-credential" => {
                let Some(wi) = self.pick_subject(calls_workloads) else {
                    return false;
                };
                let t0 = self.when(9, 16);
                let n = self.rng.range(5, 30);
                let span = self.rng.range(10, 60) as i64 * MIN_US;
                let static_key = self.rng.chance(0.5);
                let never = self.rng.chance(0.5);
                let mut events = Vec::new();
                for _ in 0..n {
                    let t = self.within(t0, span);
                    let cred = if static_key {
                        Cred::StaticKey {
                            expires_us: (!never).then_some(t0 + 365 * DAY_US),
                        }
                    } else {
                        Cred::ExpiredJwt {
                            expires_us: t0 - self.rng.range(1, 120) as i64 * MIN_US,
                        }
                    };
                    let ki = self.rng.index(self.w(wi).keys.len());
                    let (target, route) = (self.w(wi).keys[ki].target, self.w(wi).keys[ki].route);
                    events.push(self.event(wi, t, target, route, true, None, Some(cred), label));
                }
                let what = match (static_key, never) {
                    (true, true) => "a static key that never expires",
                    (true, false) => "a static key valid for a year",
                    _ => "an expired JWT-SVID",
                };
                let d = format!("{} makes {n} calls with {what}", self.w(wi).subject);
                self.push(kind, wi, d, events);
            }
            "new-identity" => {
                let env = if k8s {
                    PROD
                } else {
                    self.rng.index(ENVS.len())
                };
                let namespaces: Vec<String> = self.estate.namespaces(env).into_iter().collect();
                if namespaces.is_empty() {
                    return false;
                }
                let ns = self.rng.pick(&namespaces).clone();
                let peers: Vec<usize> = (0..self.estate.workloads.len())
                    .filter(|&j| {
                        let u = &self.estate.workloads[j];
                        u.env == env && u.namespace == ns && !u.ghost
                    })
                    .collect();
                let mut keys: Vec<(TargetRef, usize)> = Vec::new();
                if k8s {
                    for (verb, resource, name, sub) in [
                        ("list", "pods", None, None),
                        ("get", "pods", Some("api-{pod}"), Some("log")),
                        ("create", "pods", Some("api-{pod}"), Some("exec")),
                        ("list", "secrets", None, None),
                    ] {
                        let r = self.estate.add_route(Route::k8s(
                            verb,
                            "",
                            "v1",
                            resource,
                            Some(&ns),
                            name,
                            sub,
                        ));
                        keys.push((TargetRef::ApiServer(PROD), r));
                    }
                } else {
                    for &j in &peers {
                        for k in &self.estate.workloads[j].keys {
                            if !matches!(k.target, TargetRef::ApiServer(_)) {
                                keys.push((k.target, k.route));
                            }
                        }
                    }
                    if keys.is_empty() {
                        return false;
                    }
                }
                let taken: BTreeSet<String> = peers
                    .iter()
                    .map(|&j| self.estate.workloads[j].name.clone())
                    .collect();
                let mut name = "debug-shell".to_owned();
                let mut k = 2;
                while taken.contains(&name)
                    || self
                        .estate
                        .workloads
                        .iter()
                        .any(|w| w.ghost && w.env == env && w.namespace == ns && w.name == name)
                {
                    name = format!("debug-shell-{k}");
                    k += 1;
                }
                let ghost = Workload {
                    subject: format!("spiffe://{}/ns/{ns}/sa/{name}", ENVS[env].trust_domain),
                    env,
                    namespace: ns.clone(),
                    name,
                    kind: Kind::Service,
                    replicas: 1,
                    base_rate: 0.0,
                    dispersion: None,
                    rhythm: crate::estate::Rhythm::Steady,
                    cred: CredKind::X509Svid,
                    cred_phase_s: self.rng.below(3600) as i64,
                    serves: Vec::new(),
                    keys: Vec::new(),
                    deploys: Vec::new(),
                    ghost: true,
                };
                self.estate.workloads.push(ghost);
                let wi = self.estate.workloads.len() - 1;
                self.used.insert(wi);
                let t0 = self.when(8, 20);
                let n = self.rng.range(20, 100);
                let span = self.rng.range(30, 120) as i64 * MIN_US;
                let events = (0..n)
                    .map(|_| {
                        let (target, route) = *self.rng.pick(&keys);
                        let t = self.within(t0, span);
                        self.event(wi, t, target, route, true, None, None, label)
                    })
                    .collect();
                let d = format!(
                    "{} never seen before makes {n} calls in namespace {ns}",
                    self.w(wi).subject
                );
                self.push(kind, wi, d, events);
            }
            other => unreachable!("unknown incident kind {other}"),
        }
        true
    }
}

fn plan_incidents(estate: &mut Estate, ctx: &Ctx, plan: &mut Plan) {
    if ctx.incident_days == 0 || ctx.per_kind == 0 {
        return;
    }
    let kinds = kinds_for(ctx.format);
    let mut placer = Placer {
        estate,
        ctx,
        rng: Rng::derive(ctx.seed, &[STREAM_INCIDENT]),
        used: BTreeSet::new(),
        plan,
    };
    // Round-robin over the kinds, so scarce identities are shared out
    // instead of going to whichever kind comes first.
    let mut placed: BTreeMap<&str, u32> = BTreeMap::new();
    for _ in 0..ctx.per_kind {
        for kind in kinds {
            if placer.place(kind) {
                *placed.entry(kind).or_default() += 1;
            }
        }
    }
    for kind in KINDS {
        if !kinds.contains(&kind) {
            placer.plan.shortfall.push(format!(
                "{kind}: none ({} cannot carry it)",
                ctx.format.as_str()
            ));
            continue;
        }
        let n = placed.get(kind).copied().unwrap_or(0);
        if n < ctx.per_kind {
            placer.plan.shortfall.push(format!(
                "{kind}: {n} of {} (not enough suitable identities)",
                ctx.per_kind
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(format: SimFormat) -> Ctx {
        Ctx {
            seed: 5,
            start_us: 1_790_812_800_000_000, // 2026-10-01
            days: 10,
            incident_days: 3,
            per_kind: 2,
            format,
            rate_scale: 1.0,
        }
    }

    #[test]
    fn incidents_stay_in_their_window_and_identities() {
        for format in [SimFormat::Native, SimFormat::Opa, SimFormat::K8sAudit] {
            let ctx = ctx(format);
            let mut estate = Estate::build(ctx.seed, 120);
            let plan = plan(&mut estate, &ctx);
            let first_hour = (ctx.days - ctx.incident_days) as i64 * 24;
            let last_hour = ctx.days as i64 * 24;
            assert!(plan
                .events
                .keys()
                .all(|&h| h >= first_hour && h < last_hour));
            let incidents: Vec<&Planned> = plan.labels.iter().filter(|l| !l.benign).collect();
            let subjects: BTreeSet<usize> = incidents.iter().map(|l| l.subject).collect();
            assert_eq!(subjects.len(), incidents.len(), "one identity per incident");
            for kind in kinds_for(format) {
                assert!(
                    incidents.iter().any(|l| l.kind == *kind),
                    "{format:?} {kind}"
                );
            }
            for (hour, events) in &plan.events {
                for e in events {
                    let label = &plan.labels[e.label.unwrap() as usize];
                    assert!(!label.benign && label.subject == e.subject);
                    assert_eq!((e.t_us - ctx.start_us).div_euclid(HOUR_US), *hour);
                }
            }
            let mut again = Estate::build(ctx.seed, 120);
            let replay = super::plan(&mut again, &ctx);
            assert_eq!(replay.labels.len(), plan.labels.len());
            assert_eq!(
                replay
                    .events
                    .values()
                    .flatten()
                    .map(|e| e.t_us)
                    .collect::<Vec<_>>(),
                plan.events
                    .values()
                    .flatten()
                    .map(|e| e.t_us)
                    .collect::<Vec<_>>()
            );
        }
    }
}
