//! The simulated estate: environments, namespaces, workloads, who calls
//! whom on which routes, and at what rhythm. Built once from the seed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::rng::Rng;

pub const HOUR_US: i64 = 3_600_000_000;
pub const DAY_US: i64 = 24 * HOUR_US;
pub const MIN_US: i64 = 60_000_000;

/// An environment of the estate, or the partner's.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub name: &'static str,
    pub trust_domain: &'static str,
    pub octet: u8,
    pub share: f64,
}

pub const ENVS: [Env; 3] = [
    Env {
        name: "prod",
        trust_domain: "prod.acme.example",
        octet: 1,
        share: 0.5,
    },
    Env {
        name: "staging",
        trust_domain: "staging.acme.example",
        octet: 2,
        share: 0.3,
    },
    Env {
        name: "dev",
        trust_domain: "dev.acme.example",
        octet: 3,
        share: 0.2,
    },
];
pub const PROD: usize = 0;
pub const PARTNER_TRUST_DOMAIN: &str = "prod.partner.example";

const NAMESPACES: [&str; 30] = [
    "payments",
    "orders",
    "ledger",
    "catalog",
    "search",
    "identity",
    "shipping",
    "notifications",
    "fraud",
    "reporting",
    "inventory",
    "pricing",
    "checkout",
    "accounts",
    "billing",
    "analytics",
    "recommendations",
    "reviews",
    "media",
    "messaging",
    "auth",
    "audit",
    "loyalty",
    "returns",
    "warehouse",
    "tax",
    "support",
    "marketing",
    "geo",
    "compliance",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Service,
    OfficeHours,
    Batch,
    Controller,
}

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(String),
    Num,
    Uuid,
    Hex32,
    Date,
    PodSuffix,
}

/// A Kubernetes API route: what the audit log's `objectRef` holds.
#[derive(Debug, Clone)]
pub struct K8sRef {
    /// Empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub namespace: Option<String>,
    /// Length of the literal prefix of the rendered path before the name;
    /// `None` for collection requests (list, watch, create).
    pub name_at: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: Vec<Seg>,
    pub k8s: Option<K8sRef>,
}

impl Route {
    pub fn http(method: &str, template: &str) -> Self {
        let mut path = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                path.push(Seg::Lit(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            path.push(match &rest[open + 1..close] {
                "uuid" => Seg::Uuid,
                "hex" => Seg::Hex32,
                "date" => Seg::Date,
                "pod" => Seg::PodSuffix,
                _ => Seg::Num,
            });
            rest = rest.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            path.push(Seg::Lit(rest.to_owned()));
        }
        Self {
            method: method.to_owned(),
            path,
            k8s: None,
        }
    }

    /// A Kubernetes API request; `name` is the object name template.
    pub fn k8s(
        verb: &str,
        group: &'static str,
        version: &'static str,
        resource: &'static str,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&'static str>,
    ) -> Self {
        let mut prefix = if group.is_empty() {
            format!("/api/{version}/")
        } else {
            format!("/apis/{group}/{version}/")
        };
        if let Some(ns) = namespace {
            prefix.push_str(&format!("namespaces/{ns}/"));
        }
        prefix.push_str(resource);
        let mut template = prefix.clone();
        let name_at = name.map(|n| {
            template.push('/');
            let at = template.len();
            template.push_str(n);
            at
        });
        if let Some(sub) = subresource {
            template.push('/');
            template.push_str(sub);
        }
        let mut route = Route::http(verb, &template);
        route.k8s = Some(K8sRef {
            group,
            version,
            resource,
            subresource,
            namespace: namespace.map(String::from),
            name_at,
        });
        route
    }

    /// `GET /v1/orders/{n}`.
    pub fn display(&self) -> String {
        let mut s = format!("{} ", self.method);
        for seg in &self.path {
            s.push_str(match seg {
                Seg::Lit(l) => l,
                Seg::Num => "{n}",
                Seg::Uuid => "{uuid}",
                Seg::Hex32 => "{hex}",
                Seg::Date => "{date}",
                Seg::PodSuffix => "{pod}",
            });
        }
        s
    }

    /// A concrete path with fresh ids.
    pub fn render(&self, rng: &mut Rng) -> String {
        let mut s = String::with_capacity(48);
        for seg in &self.path {
            match seg {
                Seg::Lit(l) => s.push_str(l),
                Seg::Num => s.push_str(&rng.range(1, 999_999).to_string()),
                Seg::Uuid => {
                    let (a, b) = (rng.next_u64(), rng.next_u64());
                    s.push_str(&format!(
                        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                        a >> 32,
                        (a >> 16) & 0xffff,
                        a & 0xfff,
                        0x8000 | (b >> 48) & 0x3fff,
                        b & 0xffff_ffff_ffff
                    ));
                }
                Seg::Hex32 => {
                    s.push_str(&format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()))
                }
                Seg::Date => s.push_str(&format!(
                    "{}-{:02}-{:02}",
                    rng.range(2024, 2026),
                    rng.range(1, 12),
                    rng.range(1, 28)
                )),
                Seg::PodSuffix => {
                    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                    for i in 0..11 {
                        if i == 6 {
                            s.push('-');
                        } else {
                            s.push(ALPHABET[rng.index(ALPHABET.len())] as char);
                        }
                    }
                }
            }
        }
        s
    }
}

/// When a workload is active.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Rhythm {
    /// Peak around 14:00 UTC (shifted by `phase_h`), `trough` of the peak
    /// at night, weekends at 60 %.
    Diurnal {
        trough: f64,
        phase_h: f64,
    },
    /// Weekdays 07:00-19:00 UTC, nothing otherwise.
    Office,
    /// Once a day (or once a week on `weekday`, 0 = Monday) at a fixed time.
    Cron {
        weekday: Option<u32>,
        hour: u32,
        minute: u32,
        minutes: u32,
        calls_per_run: f64,
    },
    Steady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredKind {
    X509Svid,
    JwtSvid,
}

impl CredKind {
    pub fn name(self) -> &'static str {
        match self {
            CredKind::X509Svid => "x509-svid",
            CredKind::JwtSvid => "jwt-svid",
        }
    }
    pub fn lifetime_us(self) -> i64 {
        match self {
            CredKind::X509Svid => HOUR_US,
            CredKind::JwtSvid => 5 * MIN_US,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetRef {
    Workload(usize),
    Partner(usize),
    /// The Kubernetes API server of an environment.
    ApiServer(usize),
}

/// What a workload calls: one target, one route.
#[derive(Debug, Clone)]
pub struct Key {
    pub target: TargetRef,
    pub route: usize,
    pub weight: f64,
    pub deny_rate: f64,
    /// Active from this time on (a deploy added it); `i64::MIN` for the
    /// original keys.
    pub since_us: i64,
    /// The benign label of the deploy that added it.
    pub label: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub subject: String,
    pub env: usize,
    pub namespace: String,
    pub name: String,
    pub kind: Kind,
    pub replicas: u32,
    /// Calls per hour at the rhythm's peak, before `--rate-scale`.
    pub base_rate: f64,
    /// Gamma-Poisson dispersion; `None` for plain Poisson.
    pub dispersion: Option<f64>,
    pub rhythm: Rhythm,
    pub cred: CredKind,
    /// Seconds into the hour at which the workload's SVIDs rotate.
    pub cred_phase_s: i64,
    /// Routes it serves to others (services only).
    pub serves: Vec<usize>,
    pub keys: Vec<Key>,
    /// Deploy times (each replaces the replicas' IPs), sorted.
    pub deploys: Vec<i64>,
    /// An identity that exists only in an incident (never in the estate).
    pub ghost: bool,
}

impl Workload {
    pub fn calls_target(&self, t: TargetRef) -> bool {
        self.keys.iter().any(|k| k.target == t)
    }
    pub fn has_key(&self, t: TargetRef, route: usize) -> bool {
        self.keys.iter().any(|k| k.target == t && k.route == route)
    }
}

#[derive(Debug, Clone)]
pub struct Partner {
    pub subject: String,
    pub serves: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Estate {
    pub workloads: Vec<Workload>,
    pub partners: Vec<Partner>,
    pub routes: Vec<Route>,
}

const SERVICE_NAMES: [&str; 12] = [
    "api", "gateway", "store", "worker", "cache", "sync", "indexer", "events", "core", "query",
    "writer", "reader",
];
const OFFICE_NAMES: [&str; 4] = ["admin-ui", "console", "backoffice", "ops-portal"];
const BATCH_NAMES: [&str; 5] = [
    "nightly-export",
    "reconcile-cron",
    "report-job",
    "cleanup-job",
    "backfill",
];
const CONTROLLER_NAMES: [&str; 4] = ["operator", "controller", "autoscaler", "leader-elector"];

const SERVED: [(&str, &str); 14] = [
    ("GET", "/v1/{res}/{n}"),
    ("GET", "/v1/{res}/{uuid}"),
    ("POST", "/v1/{res}"),
    ("PUT", "/v1/{res}/{uuid}"),
    ("GET", "/v1/{res}/{n}/history"),
    ("GET", "/v1/{res}/by-date/{date}"),
    ("GET", "/v1/blobs/{hex}"),
    ("DELETE", "/v1/{res}/{uuid}"),
    ("GET", "/v2/{res}/{uuid}/status"),
    ("POST", "/v1/{res}/{uuid}/events"),
    ("PATCH", "/v1/{res}/{n}"),
    ("GET", "/v1/{res}"),
    ("POST", "/v1/{res}/{n}/refunds"),
    ("GET", "/internal/{res}/stats/{date}"),
];

/// (namespace, service account, served routes) of the partner's services.
type PartnerSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);
const PARTNERS: [PartnerSpec; 4] = [
    (
        "kyc",
        "verify",
        &[
            ("POST", "/v2/checks"),
            ("GET", "/v2/checks/{uuid}"),
            ("GET", "/v2/documents/{hex}"),
        ],
    ),
    (
        "payments-gateway",
        "api",
        &[
            ("POST", "/v1/charges"),
            ("GET", "/v1/charges/{uuid}"),
            ("POST", "/v1/charges/{uuid}/capture"),
        ],
    ),
    (
        "maps",
        "geocoder",
        &[("GET", "/v1/geocode/{n}"), ("GET", "/v1/routes/{uuid}")],
    ),
    (
        "fx",
        "rates",
        &[("GET", "/v1/rates/{date}"), ("GET", "/v1/rates/latest")],
    ),
];

/// (verb, group, version, resource, name template) a controller may use.
type K8sUse = (&'static str, &'static str, &'static str, &'static str);
const K8S_USES: [K8sUse; 14] = [
    ("get", "", "v1", "pods"),
    ("list", "", "v1", "pods"),
    ("watch", "", "v1", "pods"),
    ("patch", "", "v1", "pods"),
    ("get", "", "v1", "configmaps"),
    ("watch", "", "v1", "configmaps"),
    ("update", "", "v1", "configmaps"),
    ("get", "coordination.k8s.io", "v1", "leases"),
    ("update", "coordination.k8s.io", "v1", "leases"),
    ("get", "apps", "v1", "deployments"),
    ("list", "apps", "v1", "deployments"),
    ("patch", "apps", "v1", "deployments"),
    ("list", "", "v1", "services"),
    ("get", "", "v1", "endpoints"),
];

impl Estate {
    pub fn target_id(&self, t: TargetRef) -> String {
        match t {
            TargetRef::Workload(i) => self.workloads[i].subject.clone(),
            TargetRef::Partner(i) => self.partners[i].subject.clone(),
            TargetRef::ApiServer(env) => format!(
                "spiffe://{}/ns/kube-system/sa/kube-apiserver",
                ENVS[env].trust_domain
            ),
        }
    }

    pub fn add_route(&mut self, route: Route) -> usize {
        self.routes.push(route);
        self.routes.len() - 1
    }

    pub fn namespaces(&self, env: usize) -> BTreeSet<String> {
        self.workloads
            .iter()
            .filter(|w| w.env == env && !w.ghost)
            .map(|w| w.namespace.clone())
            .collect()
    }

    /// Builds the estate for `identities` workloads.
    pub fn build(seed: u64, identities: usize) -> Self {
        let mut rng = Rng::derive(seed, &[1]);
        let mut estate = Estate {
            workloads: Vec::new(),
            partners: Vec::new(),
            routes: Vec::new(),
        };
        for (ns, sa, routes) in PARTNERS {
            let serves = routes
                .iter()
                .map(|(m, p)| estate.add_route(Route::http(m, p)))
                .collect();
            estate.partners.push(Partner {
                subject: format!("spiffe://{PARTNER_TRUST_DOMAIN}/ns/{ns}/sa/{sa}"),
                serves,
            });
        }
        let prod = (identities as f64 * ENVS[0].share).round() as usize;
        let staging = (identities as f64 * ENVS[1].share).round() as usize;
        let counts = [prod, staging, identities.saturating_sub(prod + staging)];
        for (env, &count) in counts.iter().enumerate() {
            estate.build_env(&mut rng, env, count);
        }
        estate.wire(&mut rng);
        estate
    }

    fn build_env(&mut self, rng: &mut Rng, env: usize, count: usize) {
        let mut names: Vec<&str> = NAMESPACES.to_vec();
        rng.shuffle(&mut names);
        let mut remaining = count;
        let mut slot = 0usize;
        let mut ns_index = 0;
        while remaining > 0 {
            let mut size = (rng.range(3, 8) as usize).min(remaining);
            if remaining - size < 3 {
                size = remaining;
            }
            let base = names[ns_index % names.len()];
            let namespace = match ns_index / names.len() {
                0 => base.to_owned(),
                k => format!("{base}-{}", k + 1),
            };
            ns_index += 1;
            let mut taken = BTreeSet::new();
            for _ in 0..size {
                // Guarantee each environment has every kind early on.
                let kind = match slot {
                    1 => Kind::Controller,
                    3 => Kind::OfficeHours,
                    5 => Kind::Batch,
                    _ => {
                        let x = rng.f64();
                        if x < 0.72 {
                            Kind::Service
                        } else if x < 0.82 {
                            Kind::OfficeHours
                        } else if x < 0.9 {
                            Kind::Batch
                        } else {
                            Kind::Controller
                        }
                    }
                };
                slot += 1;
                let pool: &[&str] = match kind {
                    Kind::Service => &SERVICE_NAMES,
                    Kind::OfficeHours => &OFFICE_NAMES,
                    Kind::Batch => &BATCH_NAMES,
                    Kind::Controller => &CONTROLLER_NAMES,
                };
                let mut name = rng.pick(pool).to_string();
                let mut n = 2;
                while taken.contains(&name) {
                    name = format!("{}-{n}", rng.pick(pool));
                    n += 1;
                }
                taken.insert(name.clone());
                let w = self.new_workload(rng, env, &namespace, &name, kind);
                self.workloads.push(w);
            }
            remaining -= size;
        }
    }

    fn new_workload(
        &mut self,
        rng: &mut Rng,
        env: usize,
        namespace: &str,
        name: &str,
        kind: Kind,
    ) -> Workload {
        let rhythm = match kind {
            Kind::Service => Rhythm::Diurnal {
                trough: rng.uniform(0.15, 0.25),
                phase_h: rng.uniform(-1.0, 1.0),
            },
            Kind::OfficeHours => Rhythm::Office,
            Kind::Batch => Rhythm::Cron {
                weekday: rng.chance(0.3).then(|| rng.below(7) as u32),
                hour: rng.range(5, 22) as u32,
                minute: rng.below(60) as u32,
                minutes: rng.range(10, 40) as u32,
                calls_per_run: 0.0,
            },
            Kind::Controller => Rhythm::Steady,
        };
        let base_rate = rng.uniform(2.0, 30.0);
        let rhythm = match rhythm {
            Rhythm::Cron {
                weekday,
                hour,
                minute,
                minutes,
                ..
            } => Rhythm::Cron {
                weekday,
                hour,
                minute,
                minutes,
                calls_per_run: base_rate * 8.0,
            },
            r => r,
        };
        let serves = if kind == Kind::Service {
            let res = if name == "api" || name == "gateway" {
                namespace.to_owned()
            } else {
                format!("{namespace}-{name}")
            };
            let mut patterns: Vec<usize> = (0..SERVED.len()).collect();
            rng.shuffle(&mut patterns);
            let n = rng.range(5, 10) as usize;
            patterns[..n]
                .iter()
                .map(|&p| {
                    let (m, t) = SERVED[p];
                    self.add_route(Route::http(m, &t.replace("{res}", &res)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let cred = if kind != Kind::Controller && rng.chance(0.2) {
            CredKind::JwtSvid
        } else {
            CredKind::X509Svid
        };
        Workload {
            subject: format!(
                "spiffe://{}/ns/{namespace}/sa/{name}",
                ENVS[env].trust_domain
            ),
            env,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            kind,
            replicas: rng.range(1, 5) as u32,
            base_rate,
            dispersion: (kind != Kind::Batch && rng.chance(0.25)).then(|| rng.uniform(1.5, 5.0)),
            rhythm,
            cred,
            cred_phase_s: rng.below(3600) as i64,
            serves,
            keys: Vec::new(),
            deploys: Vec::new(),
            ghost: false,
        }
    }

    /// Chooses everyone's targets and routes.
    fn wire(&mut self, rng: &mut Rng) {
        let mut by_ns: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
        for (i, w) in self.workloads.iter().enumerate() {
            if w.kind == Kind::Service {
                by_ns
                    .entry((w.env, w.namespace.clone()))
                    .or_default()
                    .push(i);
            }
        }
        let mut deps: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
        for env in 0..ENVS.len() {
            let all: Vec<String> = self.namespaces(env).into_iter().collect();
            for ns in &all {
                let mut others: Vec<String> = all.iter().filter(|o| *o != ns).cloned().collect();
                rng.shuffle(&mut others);
                others.truncate(rng.range(2, 5) as usize);
                deps.insert((env, ns.clone()), others);
            }
        }
        for i in 0..self.workloads.len() {
            let (env, ns, kind) = {
                let w = &self.workloads[i];
                (w.env, w.namespace.clone(), w.kind)
            };
            let mut keys = Vec::new();
            if kind == Kind::Controller {
                let mut uses: Vec<usize> = (0..K8S_USES.len()).collect();
                rng.shuffle(&mut uses);
                let name = self.workloads[i].name.clone();
                for &u in &uses[..rng.range(3, 8) as usize] {
                    let (verb, group, version, resource) = K8S_USES[u];
                    let object = match resource {
                        "pods" => format!("{name}-{{pod}}"),
                        "configmaps" => format!("{name}-config"),
                        "leases" => format!("{name}-leader"),
                        "deployments" => "api".to_owned(),
                        _ => "api".to_owned(),
                    };
                    let named = matches!(verb, "get" | "update" | "patch");
                    let route = self.add_route(Route::k8s(
                        verb,
                        group,
                        version,
                        resource,
                        Some(&ns),
                        named.then_some(object.as_str()),
                        None,
                    ));
                    keys.push(Key {
                        target: TargetRef::ApiServer(env),
                        route,
                        weight: rng.uniform(0.2, 1.0),
                        deny_rate: 0.0,
                        since_us: i64::MIN,
                        label: None,
                    });
                }
            } else {
                let mut targets: Vec<TargetRef> = Vec::new();
                let n_targets = rng.range(1, 4);
                let empty = Vec::new();
                for _ in 0..n_targets * 3 {
                    if targets.len() as u64 >= n_targets {
                        break;
                    }
                    let pool_ns = if rng.chance(0.35) {
                        ns.clone()
                    } else {
                        let d = deps.get(&(env, ns.clone())).unwrap_or(&empty);
                        if d.is_empty() {
                            ns.clone()
                        } else {
                            rng.pick(d).clone()
                        }
                    };
                    let pool: Vec<usize> = by_ns
                        .get(&(env, pool_ns))
                        .map(|v| v.iter().copied().filter(|&j| j != i).collect())
                        .unwrap_or_default();
                    if pool.is_empty() {
                        continue;
                    }
                    let t = TargetRef::Workload(*rng.pick(&pool));
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                if env == PROD && rng.chance(0.15) {
                    targets.push(TargetRef::Partner(rng.index(self.partners.len())));
                }
                for t in targets {
                    let served = match t {
                        TargetRef::Workload(j) => self.workloads[j].serves.clone(),
                        TargetRef::Partner(j) => self.partners[j].serves.clone(),
                        TargetRef::ApiServer(_) => Vec::new(),
                    };
                    let mut served = served;
                    rng.shuffle(&mut served);
                    let n = (rng.range(1, 4) as usize).min(served.len());
                    let deny_rate = if rng.chance(0.2) {
                        rng.uniform(0.001, 0.005)
                    } else {
                        0.0
                    };
                    for &route in &served[..n] {
                        keys.push(Key {
                            target: t,
                            route,
                            weight: rng.uniform(0.2, 1.0),
                            deny_rate,
                            since_us: i64::MIN,
                            label: None,
                        });
                    }
                }
            }
            self.workloads[i].keys = keys;
        }
    }

    /// The estate as written to `estate.json`.
    pub fn to_json(&self, rate_scale: f64) -> serde_json::Value {
        use serde_json::json;
        let workloads: Vec<_> = self
            .workloads
            .iter()
            .filter(|w| !w.ghost)
            .map(|w| {
                let mut targets: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
                for k in &w.keys {
                    let mut route = json!({
                        "route": self.routes[k.route].display(),
                        "weight": round3(k.weight),
                    });
                    if k.deny_rate > 0.0 {
                        route["deny_rate"] = json!(round3(k.deny_rate * 100.0) / 100.0);
                    }
                    if k.since_us != i64::MIN {
                        route["added_at"] = json!(crate::render::rfc3339(k.since_us));
                    }
                    targets
                        .entry(self.target_id(k.target))
                        .or_default()
                        .push(route);
                }
                json!({
                    "subject": w.subject,
                    "environment": ENVS[w.env].name,
                    "namespace": w.namespace,
                    "kind": w.kind,
                    "replicas": w.replicas,
                    "calls_per_hour_at_peak": round3(w.base_rate * rate_scale),
                    "overdispersion": w.dispersion.map(round3),
                    "rhythm": w.rhythm,
                    "credential": w.cred,
                    "serves": w.serves.iter().map(|&r| self.routes[r].display()).collect::<Vec<_>>(),
                    "targets": targets.into_iter().map(|(t, routes)| json!({"target": t, "routes": routes})).collect::<Vec<_>>(),
                    "deploys": w.deploys.iter().map(|&t| crate::render::rfc3339(t)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let partners: Vec<_> = self
            .partners
            .iter()
            .map(|p| {
                json!({
                    "subject": p.subject,
                    "serves": p.serves.iter().map(|&r| self.routes[r].display()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "workloads": workloads, "partner_services": partners })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Day index since the Unix epoch and weekday (0 = Monday) of a time.
pub fn weekday(t_us: i64) -> u32 {
    let days = t_us.div_euclid(DAY_US);
    ((days + 3).rem_euclid(7)) as u32
}

pub fn hour_of_day(t_us: i64) -> u32 {
    (t_us.rem_euclid(DAY_US) / HOUR_US) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estate_is_deterministic_and_complete() {
        let a = Estate::build(7, 120);
        let b = Estate::build(7, 120);
        assert_eq!(a.to_json(1.0), b.to_json(1.0));
        assert_eq!(a.workloads.len(), 120);
        for env in 0..3 {
            for kind in [
                Kind::Service,
                Kind::OfficeHours,
                Kind::Batch,
                Kind::Controller,
            ] {
                assert!(
                    a.workloads.iter().any(|w| w.env == env && w.kind == kind),
                    "{env} {kind:?}"
                );
            }
        }
        let subjects: BTreeSet<_> = a.workloads.iter().map(|w| &w.subject).collect();
        assert_eq!(subjects.len(), 120, "subjects are unique");
        assert!(a
            .workloads
            .iter()
            .filter(|w| w.kind != Kind::Controller)
            .all(|w| w.keys.iter().all(|k| match k.target {
                TargetRef::Workload(j) => a.workloads[j].env == w.env,
                TargetRef::Partner(_) => w.env == PROD,
                TargetRef::ApiServer(_) => false,
            })));
    }

    #[test]
    fn routes_render_their_templates() {
        let r = Route::http("GET", "/v1/orders/{n}/items/{uuid}/{hex}/{date}");
        assert_eq!(r.display(), "GET /v1/orders/{n}/items/{uuid}/{hex}/{date}");
        let s = r.render(&mut Rng::new(1));
        assert!(s.starts_with("/v1/orders/"), "{s}");
        let k = Route::k8s(
            "get",
            "apps",
            "v1",
            "deployments",
            Some("ns"),
            Some("api"),
            None,
        );
        assert_eq!(
            k.display(),
            "get /apis/apps/v1/namespaces/ns/deployments/api"
        );
        let at = k.k8s.as_ref().and_then(|k| k.name_at).unwrap();
        assert_eq!(&k.render(&mut Rng::new(1))[at..], "api");
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
    }
}
