//! Deciding requests as Kubernetes' RBAC authorizer does, and comparing
//! two sets of grants as its escalation check does.
//!
//! A rule allows a resource request when its verbs contain the verb or
//! `*`, its apiGroups the group (`""` is core) or `*`, its resources one of
//! `*`, the exact `resource` or `resource/subresource`, or `*/subresource`
//! for a subresource request, and its resourceNames are empty or contain
//! the request's name (so a request without a name, such as list, watch,
//! create or deletecollection, never matches a rule with resourceNames; a
//! `create` never has one for the authorizer, even when the log names the
//! object it created, while a list or watch of one object by field
//! selector does).
//! Like Kubernetes, `pods/*` is not a pattern: it matches only a
//! subresource literally named `*`, never `pods/log`. A rule allows a
//! non-resource request when its verbs match and one of its
//! nonResourceURLs is `*`, the exact path, or ends in `*` and is a prefix
//! of the path.
//!
//! A namespaced grant (from a RoleBinding) only applies to requests in its
//! namespace, so it never allows cluster-scoped or non-resource requests;
//! a cluster-wide grant applies to every request.

use std::fmt;

use super::{Grant, PolicyRule};

/// A request to the Kubernetes API, in the authorizer's attributes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Request {
    Resource(ResourceRequest),
    NonResource(NonResourceRequest),
}

/// A request for an API object or collection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRequest {
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// `None` for cluster-scoped resources (and all-namespace lists).
    pub namespace: Option<String>,
}

/// A request for a path outside the resource API (`/healthz`, `/version`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonResourceRequest {
    /// The lower-case HTTP method: `get`, `post`, `put`, ...
    pub verb: String,
    pub path: String,
}

impl ResourceRequest {
    /// `resource` or `resource/subresource`, as rules spell it.
    pub fn combined_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl Request {
    pub fn verb(&self) -> &str {
        match self {
            Request::Resource(r) => &r.verb,
            Request::NonResource(r) => &r.verb,
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            Request::Resource(r) => r.namespace.as_deref(),
            Request::NonResource(_) => None,
        }
    }

    /// The resource string in Overreach's form (the inverse of
    /// [`parse_request`], except that the namespace of a core `namespaces`
    /// object named after itself is not written twice).
    pub fn resource_string(&self) -> String {
        match self {
            Request::NonResource(r) => r.path.clone(),
            Request::Resource(r) => {
                let mut s = String::new();
                let implied = is_namespace_object(r) && r.namespace == r.name;
                if let (Some(ns), false) = (&r.namespace, implied) {
                    s.push_str("namespaces/");
                    s.push_str(ns);
                    s.push('/');
                }
                s.push_str(if r.api_group.is_empty() {
                    "core"
                } else {
                    &r.api_group
                });
                s.push('/');
                s.push_str(&r.combined_resource());
                if let Some(name) = &r.name {
                    s.push(':');
                    s.push_str(name);
                }
                s
            }
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb(), self.resource_string())
    }
}

fn is_namespace_object(r: &ResourceRequest) -> bool {
    r.api_group.is_empty() && r.resource == "namespaces" && r.subresource.is_none()
}

/// Why an Overreach resource string is not a Kubernetes request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource:?} is not a Kubernetes resource string ([namespaces/NS/]GROUP/RESOURCE[/SUB][:NAME] or /path): {reason}")]
pub struct ParseRequestError {
    pub resource: String,
    pub reason: &'static str,
}

/// Reads an Overreach action and resource: `[namespaces/NS/]GROUP/
/// RESOURCE[/SUB][:NAME]` with `core` for the core group, or a path
/// starting with `/` for a non-resource request. The action is the verb;
/// it is lower-cased (non-resource verbs are lower-case HTTP methods).
///
/// As in the API server, a request for the core `namespaces` object
/// `NAME` (or one of its subresources) is in namespace `NAME`, so a
/// RoleBinding there can allow it.
pub fn parse_request(action: &str, resource: &str) -> Result<Request, ParseRequestError> {
    let verb = action.to_ascii_lowercase();
    let err = |reason| ParseRequestError {
        resource: resource.to_owned(),
        reason,
    };
    if resource.starts_with('/') {
        return Ok(Request::NonResource(NonResourceRequest {
            verb,
            path: resource.to_owned(),
        }));
    }
    let (namespace, rest) = match resource.strip_prefix("namespaces/") {
        Some(rest) => {
            let (ns, rest) = rest
                .split_once('/')
                .ok_or_else(|| err("namespaces/NS/ must be followed by GROUP/RESOURCE"))?;
            (Some(ns.to_owned()), rest)
        }
        None => (None, resource),
    };
    // Groups and resources never contain ':', names may (system:...).
    let (path, name) = match rest.split_once(':') {
        Some((path, name)) => (path, Some(name.to_owned())),
        None => (rest, None),
    };
    let mut parts = path.split('/');
    let (Some(group), Some(res)) = (parts.next(), parts.next()) else {
        return Err(err("GROUP/RESOURCE is missing"));
    };
    let subresource = parts.next().map(str::to_owned);
    if parts.next().is_some() {
        return Err(err("too many '/' after GROUP/RESOURCE/SUBRESOURCE"));
    }
    if group.is_empty() || res.is_empty() || subresource.as_deref() == Some("") {
        return Err(err("empty group, resource or subresource"));
    }
    if namespace.as_deref() == Some("") || name.as_deref() == Some("") {
        return Err(err("empty namespace or name"));
    }
    let mut request = ResourceRequest {
        verb,
        api_group: if group == "core" {
            String::new()
        } else {
            group.to_owned()
        },
        resource: res.to_owned(),
        subresource,
        name,
        namespace,
    };
    if request.api_group.is_empty()
        && request.resource == "namespaces"
        && request.namespace.is_none()
    {
        request.namespace = request.name.clone();
    }
    Ok(Request::Resource(request))
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == value)
}

/// Whether `rule` allows `request`, scope aside.
pub fn rule_allows(rule: &PolicyRule, request: &Request) -> bool {
    if !(has(&rule.verbs, "*") || has(&rule.verbs, request.verb())) {
        return false;
    }
    match request {
        Request::Resource(r) => {
            (has(&rule.api_groups, "*") || has(&rule.api_groups, &r.api_group))
                && resource_matches(rule, r)
                && (rule.resource_names.is_empty()
                    || authorized_name(r).is_some_and(|n| has(&rule.resource_names, n)))
        }
        Request::NonResource(r) => rule
            .non_resource_urls
            .iter()
            .any(|url| url_matches(url, &r.path)),
    }
}

/// The name the authorizer sees: none for `create`, whose name (if the
/// log has one) comes from the new object, not from the request path.
fn authorized_name(r: &ResourceRequest) -> Option<&str> {
    r.name.as_deref().filter(|_| r.verb != "create")
}

fn resource_matches(rule: &PolicyRule, r: &ResourceRequest) -> bool {
    let combined = r.combined_resource();
    rule.resources.iter().any(|res| {
        res == "*"
            || *res == combined
            || r.subresource
                .as_deref()
                .is_some_and(|sub| res.strip_prefix("*/") == Some(sub))
    })
}

fn url_matches(url: &str, path: &str) -> bool {
    url == "*"
        || url == path
        || url
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// Whether `grant` applies to a request in `namespace` (`None`: a
/// cluster-scoped or non-resource request).
fn in_scope(grant: &Grant, namespace: Option<&str>) -> bool {
    match &grant.namespace {
        None => true,
        Some(ns) => namespace == Some(ns.as_str()),
    }
}

/// The first grant that allows `request`, if any: RBAC only allows, so
/// no grant means the request is denied.
pub fn allows<'g>(grants: &'g [Grant], request: &Request) -> Option<&'g Grant> {
    grants
        .iter()
        .find(|g| in_scope(g, request.namespace()) && rule_allows(&g.rule, request))
}

/// Whether every rule of `reduced` is covered by `granted`: each of its
/// atoms (one verb x one group x one resource x one name or none, or one
/// verb x one URL) is covered by some single granted rule whose scope is
/// the same namespace or cluster-wide. Coverage is literal, as in the API
/// server's escalation check: a reduced `*` is covered only by a granted
/// `*`; `pods/log` is covered by `pods/log`, `*/log` or `*`; a rule
/// without resourceNames only by one without; a URL by the same URL or a
/// `prefix*` of it.
pub fn is_within(reduced: &[Grant], granted: &[Grant]) -> bool {
    reduced.iter().all(|r| {
        let candidates: Vec<&PolicyRule> = granted
            .iter()
            .filter(|g| match (&g.namespace, &r.namespace) {
                (None, _) => true,
                (Some(g), Some(r)) => g == r,
                (Some(_), None) => false,
            })
            .map(|g| &g.rule)
            .collect();
        atoms(&r.rule).all(|atom| candidates.iter().any(|g| covers(g, &atom)))
    })
}

/// One verb of one resource (of one name) or of one URL.
struct Atom<'a> {
    verb: &'a str,
    group: Option<&'a str>,
    resource: Option<&'a str>,
    name: Option<&'a str>,
    url: Option<&'a str>,
}

fn atoms(rule: &PolicyRule) -> impl Iterator<Item = Atom<'_>> + '_ {
    let names: Vec<Option<&str>> = if rule.resource_names.is_empty() {
        vec![None]
    } else {
        rule.resource_names
            .iter()
            .map(|n| Some(n.as_str()))
            .collect()
    };
    rule.verbs.iter().flat_map(move |verb| {
        let resources = rule.api_groups.iter().flat_map({
            let names = names.clone();
            move |group| {
                let names = names.clone();
                rule.resources.iter().flat_map(move |resource| {
                    names.clone().into_iter().map(move |name| Atom {
                        verb,
                        group: Some(group),
                        resource: Some(resource),
                        name,
                        url: None,
                    })
                })
            }
        });
        let urls = rule.non_resource_urls.iter().map(move |url| Atom {
            verb,
            group: None,
            resource: None,
            name: None,
            url: Some(url),
        });
        resources.chain(urls)
    })
}

fn covers(owner: &PolicyRule, atom: &Atom<'_>) -> bool {
    if !(has(&owner.verbs, "*") || has(&owner.verbs, atom.verb)) {
        return false;
    }
    if let Some(url) = atom.url {
        return owner.non_resource_urls.iter().any(|o| {
            o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        });
    }
    let (Some(group), Some(resource)) = (atom.group, atom.resource) else {
        return false;
    };
    let group_ok = has(&owner.api_groups, "*") || has(&owner.api_groups, group);
    let resource_ok = has(&owner.resources, "*")
        || has(&owner.resources, resource)
        || resource
            .split_once('/')
            .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")));
    let name_ok =
        owner.resource_names.is_empty() || atom.name.is_some_and(|n| has(&owner.resource_names, n));
    group_ok && resource_ok && name_ok
}
