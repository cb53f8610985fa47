//! Credentials never reach storage, and resources are generalized so
//! that baselines stay small.
//!
//! Masking applies to query parameters whose name says they carry a
//! secret and to path segments that look like JWTs. Generalization turns
//! ids in paths (numbers, UUIDs, long hex strings) into `{id}` and drops
//! the query.

const SECRET_PARAMS: [&str; 14] = [
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "jwt",
    "api_key",
    "apikey",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-security-token",
];

const MASK: &str = "***";

fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// Masks credentials in a request path with its query.
pub fn mask_path(path: &str) -> String {
    let (path_part, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out = path_part
        .split('/')
        .map(|seg| if looks_like_jwt(seg) { MASK } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    if let Some(query) = query {
        out.push('?');
        let params = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v))
                    if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s))
                        || looks_like_jwt(v) =>
                {
                    format!("{k}={MASK}")
                }
                _ => kv.to_owned(),
            })
            .collect::<Vec<_>>();
        out.push_str(&params.join("&"));
    }
    out
}

fn is_id_segment(seg: &str) -> bool {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = seg.len() == 36
        && seg.split('-').map(str::len).eq([8usize, 4, 4, 4, 12])
        && is_hex(&seg.replace('-', ""));
    (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()))
        || uuid
        || (seg.len() >= 16 && is_hex(seg))
        || seg == MASK
}

/// The generalized form of a request path: no query, ids as `{id}`.
pub fn generalize_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .map(|seg| if is_id_segment(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_tokens_in_queries_and_paths() {
        assert_eq!(
            mask_path("/v1/x?access_token=abc&page=2&Token=zzz"),
            "/v1/x?access_token=***&page=2&Token=***"
        );
        assert_eq!(
            mask_path("/auth/eyJhbGciOi.eyJzdWIi.sig/profile"),
            "/auth/***/profile"
        );
        assert_eq!(mask_path("/healthz"), "/healthz");
    }

    #[test]
    fn generalizes_ids() {
        assert_eq!(
            generalize_path("/v1/accounts/4711?x=1"),
            "/v1/accounts/{id}"
        );
        assert_eq!(
            generalize_path("/o/123e4567-e89b-12d3-a456-426614174000/items"),
            "/o/{id}/items"
        );
        assert_eq!(
            generalize_path("/blobs/9f86d081884c7d659a2feaa0c55ad015"),
            "/blobs/{id}"
        );
        assert_eq!(generalize_path("/api/v1/namespaces"), "/api/v1/namespaces");
    }
}
