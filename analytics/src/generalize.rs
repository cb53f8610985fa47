//! Resource generalization for the analytics stage: the resource of a
//! reach key is made general enough that baselines stay small and stable,
//! and specific enough that a new kind of access still looks new.
//!
//! Applied to the resource the store groups by (see `store::KEY_RESOURCE`:
//! the ingest-time pattern, or for Kubernetes the object with its name):
//!
//! 1. Built-in rules, on top of those ingest applies to paths (numbers,
//!    UUIDs and long hex strings are `{id}` already): dates and timestamps,
//!    and mixed letter-digit tokens such as `ord_8f3kd9s0q`, become `{id}`;
//!    object-store keys become their prefix (`s3://bucket/logs/2026/x.gz`
//!    is `s3://bucket/logs/2026/*`, likewise `gs://`, S3 object ARNs and
//!    GCS `.../objects/...` names).
//! 2. Configured rules (`--generalize 'REGEX=>REPLACEMENT'`), in the order
//!    given, each replacing every match; `$1` and `${name}` refer to groups.
//! 3. Kubernetes object names (`namespaces/NS/GROUP/RESOURCE:NAME`) are kept
//!    while an identity touches few objects of one kind, so reading a
//!    different secret still looks new; generated parts of names (a
//!    ReplicaSet's pod-template hash, a pod's random suffix, an event's
//!    hex suffix) are `{id}` always, and events' names are `*`. Once an identity touches more than
//!    `collapse_names` objects of one kind (`GROUP/RESOURCE`, in any
//!    namespace) in one window, their names collapse to `*`; once it
//!    touches that kind in more than `collapse_namespaces` namespaces, the
//!    namespace collapses to `*` too: a cluster-wide controller's reach
//!    is "events in any namespace", not a list of namespaces.

use std::collections::{BTreeSet, HashMap};

use regex::Regex;

use crate::error::{AnalyticsError, Result};

/// One configured rule: every match of `pattern` becomes `replacement`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: Regex,
    pub replacement: String,
}

impl Rule {
    /// Parses `REGEX=>REPLACEMENT`, the form the `--generalize` flag takes.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: String| AnalyticsError::GeneralizeRule {
            rule: text.to_owned(),
            reason,
        };
        let (pattern, replacement) = text
            .split_once("=>")
            .ok_or_else(|| invalid("expected REGEX=>REPLACEMENT".to_owned()))?;
        if pattern.is_empty() {
            return Err(invalid("the regular expression is empty".to_owned()));
        }
        let pattern = Regex::new(pattern).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            pattern,
            replacement: replacement.to_owned(),
        })
    }
}

/// Turns stored resources into the resources of reach keys.
#[derive(Debug, Clone)]
pub struct Generalizer {
    rules: Vec<Rule>,
    collapse_names: usize,
    collapse_namespaces: usize,
}

/// The Kubernetes kinds whose names, or namespaces, collapse for one
/// identity in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collapsed {
    /// Kinds (`GROUP/RESOURCE[/SUB]`) whose object names become `*`.
    pub names: BTreeSet<String>,
    /// Kinds whose namespace becomes `*`.
    pub namespaces: BTreeSet<String>,
}

impl Collapsed {
    pub fn extend(&mut self, other: &Collapsed) {
        self.names.extend(other.names.iter().cloned());
        self.namespaces.extend(other.namespaces.iter().cloned());
    }
}

/// The wildcard a collapsed Kubernetes object name becomes.
pub const ANY_NAME: &str = "*";

impl Default for Generalizer {
    fn default() -> Self {
        Self::new(Vec::new(), 5, 2)
    }
}

impl Generalizer {
    pub fn new(rules: Vec<Rule>, collapse_names: usize, collapse_namespaces: usize) -> Self {
        Self {
            rules,
            collapse_names,
            collapse_namespaces,
        }
    }

    /// Objects of one kind an identity touches before their names collapse.
    pub fn collapse_names(&self) -> usize {
        self.collapse_names
    }

    /// Steps 1 and 2: the rules that do not depend on the identity.
    pub fn resource(&self, resource: &str) -> String {
        let canonical = kubernetes_path(resource);
        let resource = canonical.as_deref().unwrap_or(resource);
        let (kind, name) = split_name(resource);
        let mut out = match name {
            // Event objects are named after what they report on plus a
            // generated suffix: their names never tell one reach apart.
            Some(_) if kind.ends_with("/events") => format!("{}:{ANY_NAME}", builtin(kind)),
            Some(name) => format!("{}:{}", builtin(kind), object_name(name)),
            None => builtin(resource),
        };
        for rule in &self.rules {
            if rule.pattern.is_match(&out) {
                out = rule
                    .pattern
                    .replace_all(&out, rule.replacement.as_str())
                    .into_owned();
            }
        }
        out
    }

    /// Step 3 for one identity's resources in one window: which kinds
    /// collapse names or namespaces.
    pub fn collapsed<'a>(&self, resources: impl IntoIterator<Item = &'a str>) -> Collapsed {
        let mut names: HashMap<&str, BTreeSet<(&str, &str)>> = HashMap::new();
        let mut namespaces: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for resource in resources {
            let (namespaced, name) = split_name(resource);
            let Some((namespace, kind)) = split_namespace(namespaced) else {
                if let Some(name) = name.filter(|n| *n != ANY_NAME) {
                    names.entry(namespaced).or_default().insert(("", name));
                }
                continue;
            };
            if namespace != ANY_NAME {
                namespaces.entry(kind).or_default().insert(namespace);
            }
            if let Some(name) = name.filter(|n| *n != ANY_NAME) {
                names.entry(kind).or_default().insert((namespace, name));
            }
        }
        let over =
            |limit: usize| move |(kind, n): (&str, usize)| (n > limit).then(|| kind.to_owned());
        Collapsed {
            names: names
                .into_iter()
                .map(|(k, n)| (k, n.len()))
                .filter_map(over(self.collapse_names))
                .collect(),
            namespaces: namespaces
                .into_iter()
                .map(|(k, n)| (k, n.len()))
                .filter_map(over(self.collapse_namespaces))
                .collect(),
        }
    }
}

/// A Kubernetes API path as a proxy or OPA logs it (`/api/v1/namespaces/
/// shop/pods/web-0/log`, `/apis/apps/v1/deployments`) in the form the
/// audit decoder gives the same request (`namespaces/shop/core/pods/log:
/// web-0`, `apps/deployments`), so both kinds of log make the same keys.
fn kubernetes_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("core", rest),
        ["apis", group, version, rest @ ..] if is_api_version(version) => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["watch", rest @ ..] => rest,
        rest => rest,
    };
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        rest => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub @ ..] => (*resource, Some(*name), Some(sub.join("/"))),
        [] => return None,
    };
    let mut out = String::new();
    if let Some(ns) = namespace {
        out.push_str(&format!("namespaces/{ns}/"));
    }
    out.push_str(&format!("{group}/{resource}"));
    if let Some(sub) = sub {
        out.push_str(&format!("/{sub}"));
    }
    if let Some(name) = name {
        out.push_str(&format!(":{name}"));
    }
    Some(out)
}

/// `v1`, `v2beta1`, `v1alpha3`: a Kubernetes API version.
fn is_api_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = &rest[digits..];
    digits > 0
        && (tail.is_empty()
            || ["alpha", "beta"].iter().any(|stage| {
                tail.strip_prefix(stage)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }))
}

/// `namespaces/NS/REST` is (`NS`, `REST`).
fn split_namespace(resource: &str) -> Option<(&str, &str)> {
    let rest = resource.strip_prefix("namespaces/")?;
    let (namespace, kind) = rest.split_once('/')?;
    (!namespace.is_empty() && !kind.is_empty()).then_some((namespace, kind))
}

/// Replaces the name, and the namespace, of collapsed kinds with
/// [`ANY_NAME`].
pub fn collapse(resource: &str, collapsed: &Collapsed) -> String {
    let (namespaced, name) = split_name(resource);
    let (prefix, kind) = match split_namespace(namespaced) {
        Some((_, kind)) if collapsed.namespaces.contains(kind) => {
            (format!("namespaces/{ANY_NAME}/"), kind)
        }
        Some((namespace, kind)) => (format!("namespaces/{namespace}/"), kind),
        None => (String::new(), namespaced),
    };
    match name {
        Some(_) if collapsed.names.contains(kind) => format!("{prefix}{kind}:{ANY_NAME}"),
        Some(name) => format!("{prefix}{kind}:{name}"),
        None => format!("{prefix}{kind}"),
    }
}

/// Generated parts of Kubernetes object names become `{id}`: an event's
/// `.<16 hex>` suffix, a pod-template hash (`-<8-10 hex>`) and the random
/// five characters `generateName` appends (from the alphabet Kubernetes
/// uses, which has no vowels, so words do not match).
fn object_name(name: &str) -> String {
    const GENERATED: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = |s: &str| s.len() == 5 && s.bytes().all(|b| GENERATED.contains(&b));
    let hash = |s: &str| {
        (8..=10).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b.is_ascii_digit())
    };
    if let Some((base, suffix)) = name.rsplit_once('.') {
        if !base.is_empty() && suffix.len() >= 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return format!("{base}.{{id}}");
        }
    }
    let Some((base, last)) = name.rsplit_once('-') else {
        return name.to_owned();
    };
    if base.is_empty() || !(random(last) || hash(last)) {
        return name.to_owned();
    }
    match base.rsplit_once('-') {
        Some((inner, middle)) if !inner.is_empty() && random(last) && hash(middle) => {
            format!("{inner}-{{id}}-{{id}}")
        }
        _ => format!("{base}-{{id}}"),
    }
}

/// `namespaces/ns/core/secrets:db` is (`namespaces/ns/core/secrets`,
/// `db`); a path or ARN has no name (a `:` inside them is not one).
pub fn split_name(resource: &str) -> (&str, Option<&str>) {
    if resource.starts_with('/') || resource.contains("://") || resource.starts_with("arn:") {
        return (resource, None);
    }
    match resource.rsplit_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() && !name.contains('/') => {
            (kind, Some(name))
        }
        _ => (resource, None),
    }
}

fn builtin(resource: &str) -> String {
    if let Some(prefix) = object_prefix(resource) {
        return prefix;
    }
    // Paths and path-like names: generalize segment by segment, keeping the
    // separators (a trailing query, if any, was dropped at ingest).
    resource
        .split('/')
        .map(|seg| if is_variable(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// The prefix of an object-store key: the object's "directory" and `*`.
fn object_prefix(resource: &str) -> Option<String> {
    let (head, key) = if let Some(rest) = resource
        .strip_prefix("s3://")
        .or_else(|| resource.strip_prefix("gs://"))
    {
        let scheme_len = resource.len() - rest.len();
        let (bucket, key) = rest.split_once('/')?;
        (&resource[..scheme_len + bucket.len() + 1], key)
    } else if let Some(rest) = resource.strip_prefix("arn:aws:s3:::") {
        let (bucket, key) = rest.split_once('/')?;
        (&resource[..13 + bucket.len() + 1], key)
    } else if let Some(at) = resource.find("/objects/") {
        (
            &resource[..at + "/objects/".len()],
            &resource[at + "/objects/".len()..],
        )
    } else {
        return None;
    };
    if key.is_empty() {
        return None;
    }
    let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let dir: Vec<&str> = dir
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|seg| if is_variable(seg) { "{id}" } else { seg })
        .collect();
    Some(if dir.is_empty() {
        format!("{head}*")
    } else {
        format!("{head}{}/*", dir.join("/"))
    })
}

/// A path segment that names one instance rather than a kind of thing.
fn is_variable(seg: &str) -> bool {
    if seg.is_empty() || seg == "{id}" {
        return false;
    }
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    let letters = seg.bytes().filter(u8::is_ascii_alphabetic).count();
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = seg.len() == 36
        && seg.split('-').map(str::len).eq([8usize, 4, 4, 4, 12])
        && is_hex(&seg.replace('-', ""));
    // 2026-11-30, 2026-11-30T12:00:00Z, 20261130T120000Z
    let date = seg.len() >= 8
        && seg.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && digits * 10 >= seg.len() * 6
        && seg
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'_'));
    let numeric = digits == seg.len();
    let hash = seg.len() >= 16 && is_hex(seg);
    // ord_8f3kd9s0q, a1b2c3d4e5: long, mostly alphanumeric, several digits
    // mixed with letters; `v1`, `v2beta1`, `ipv6` are short or digit-poor.
    let token = seg.len() >= 8
        && digits >= 3
        && letters >= 1
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    numeric || uuid || hash || date || token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_cover_ids_dates_tokens_and_object_keys() {
        let g = Generalizer::default();
        for (input, want) in [
            ("/v1/orders/{id}", "/v1/orders/{id}"),
            ("/v1/reports/2026-11-30/summary", "/v1/reports/{id}/summary"),
            ("/v1/at/2026-11-30T12:00:00Z", "/v1/at/{id}"),
            ("/v1/orders/ord_8f3kd9s0q/items", "/v1/orders/{id}/items"),
            ("/v2beta1/ipv6/status", "/v2beta1/ipv6/status"),
            ("/api/v2beta1/ipv6/status", "/api/v2beta1/ipv6/status"),
            ("/apis/x/latest/things", "/apis/x/latest/things"),
            (
                "/v1/blobs/9f86d081884c7d659a2feaa0c55ad015",
                "/v1/blobs/{id}",
            ),
            (
                "s3://logs/app/2026/11/30/part-0001.gz",
                "s3://logs/app/{id}/{id}/{id}/*",
            ),
            ("gs://media/avatars/u.png", "gs://media/avatars/*"),
            ("gs://media/top.png", "gs://media/*"),
            (
                "arn:aws:s3:::bucket/raw/events.json",
                "arn:aws:s3:::bucket/raw/*",
            ),
            ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket"),
            (
                "projects/_/buckets/b/objects/exports/x.csv",
                "projects/_/buckets/b/objects/exports/*",
            ),
            (
                "namespaces/ns/core/secrets:db-password",
                "namespaces/ns/core/secrets:db-password",
            ),
            ("apps/deployments", "apps/deployments"),
            (
                "/api/v1/namespaces/shop/pods/web-6c4fdd7866-b52lw/log",
                "namespaces/shop/core/pods/log:web-{id}-{id}",
            ),
            (
                "/apis/apps/v1/namespaces/shop/deployments",
                "namespaces/shop/apps/deployments",
            ),
            ("/apis/apps/v1/deployments", "apps/deployments"),
            ("/api/v1/namespaces/shop", "core/namespaces:shop"),
            (
                "/api/v1/watch/namespaces/shop/secrets/db",
                "namespaces/shop/core/secrets:db",
            ),
            ("/api", "/api"),
            (
                "namespaces/l/core/events:loki-0.173e3bd1729e54a4",
                "namespaces/l/core/events:*",
            ),
            (
                "namespaces/l/core/configmaps:loki-0.173e3bd1729e54a4",
                "namespaces/l/core/configmaps:loki-0.{id}",
            ),
            (
                "namespaces/d/apps/replicasets:dash-6c4fdd7866",
                "namespaces/d/apps/replicasets:dash-{id}",
            ),
            (
                "namespaces/d/core/pods:dash-6c4fdd7866-b52lw",
                "namespaces/d/core/pods:dash-{id}-{id}",
            ),
            (
                "namespaces/p/discovery.k8s.io/endpointslices:pg-hl-b52lw",
                "namespaces/p/discovery.k8s.io/endpointslices:pg-hl-{id}",
            ),
            (
                "namespaces/p/core/secrets:db-certs",
                "namespaces/p/core/secrets:db-certs",
            ),
            (
                "namespaces/p/core/services:kube-proxy",
                "namespaces/p/core/services:kube-proxy",
            ),
            (
                "namespaces/p/core/persistentvolumeclaims:data-pg-0",
                "namespaces/p/core/persistentvolumeclaims:data-pg-0",
            ),
        ] {
            assert_eq!(g.resource(input), want, "{input}");
        }
    }

    #[test]
    fn configured_rules_apply_after_the_builtin_ones_in_order() {
        let rules = vec![
            Rule::parse(r"^/tenants/[^/]+=>/tenants/{tenant}").unwrap(),
            Rule::parse(r"/(?P<v>v[0-9]+)/=>/{version}/").unwrap(),
        ];
        let g = Generalizer::new(rules, 5, 2);
        assert_eq!(
            g.resource("/tenants/acme/v3/orders/{id}"),
            "/tenants/{tenant}/{version}/orders/{id}"
        );
        assert!(Rule::parse("no arrow").is_err());
        assert!(Rule::parse("=>x").is_err());
        let err = Rule::parse("(unclosed=>x").unwrap_err().to_string();
        assert!(err.contains("(unclosed"), "{err}");
    }

    #[test]
    fn kubernetes_names_and_namespaces_collapse_only_when_many() {
        let g = Generalizer::new(Vec::new(), 2, 1);
        let few = [
            "namespaces/a/core/secrets:x",
            "namespaces/a/core/secrets:y",
            "namespaces/a/core/pods:x",
        ];
        assert_eq!(g.collapsed(few), Collapsed::default());
        let many = [
            "namespaces/a/core/pods:p",
            "namespaces/a/core/pods:q",
            "namespaces/b/core/pods:p",
            "namespaces/a/core/secrets:x",
            "core/nodes:n1",
        ];
        let collapsed = g.collapsed(many);
        assert_eq!(collapsed.names.iter().collect::<Vec<_>>(), ["core/pods"]);
        assert_eq!(
            collapsed.namespaces.iter().collect::<Vec<_>>(),
            ["core/pods"]
        );
        assert_eq!(
            collapse("namespaces/c/core/pods:z", &collapsed),
            "namespaces/*/core/pods:*"
        );
        assert_eq!(
            collapse("namespaces/a/core/secrets:x", &collapsed),
            "namespaces/a/core/secrets:x"
        );
        assert_eq!(collapse("core/nodes:n1", &collapsed), "core/nodes:n1");
        assert_eq!(split_name("/path:with:colons"), ("/path:with:colons", None));
        assert_eq!(
            split_name("arn:aws:iam::1:role/x"),
            ("arn:aws:iam::1:role/x", None)
        );
    }
}
