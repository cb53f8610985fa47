//! The tiny glob language of grants files: `*` matches any run of
//! characters (including none, and including `/`), `\*` and `\\` stand for a
//! literal `*` and `\`. Nothing else is special.
//!
//! Pure string matching for the right-sizing stage; no IO.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    Star,
}

/// Whether letters must match exactly or ASCII case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    /// Actions: `GET` and `get` are one verb.
    AsciiInsensitive,
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    case: Case,
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern: a trailing lone
    /// `\` and a `\` before any other character stand for themselves.
    pub fn new(pattern: &str, case: Case) -> Self {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // `**` means the same as `*`; keep one so matching stays linear.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '\\' => match chars.peek() {
                    Some(&next @ ('*' | '\\')) => {
                        chars.next();
                        tokens.push(Token::Char(next));
                    }
                    _ => tokens.push(Token::Char('\\')),
                },
                other => tokens.push(Token::Char(other)),
            }
        }
        Self {
            source: pattern.to_owned(),
            tokens,
            case,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern contains an (unescaped) `*`.
    pub fn is_wildcard(&self) -> bool {
        self.tokens.contains(&Token::Star)
    }

    /// True when the whole of `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let eq = |a: char, b: char| match self.case {
            Case::Sensitive => a == b,
            Case::AsciiInsensitive => a.eq_ignore_ascii_case(&b),
        };
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was and how much text it has swallowed so far:
        // on a mismatch it swallows one more character and matching resumes.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Char(c)) if eq(*c, text[t]) => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Star) => {
                    backtrack = Some((p, t));
                    p += 1;
                }
                _ => match backtrack {
                    Some((star, swallowed)) => {
                        p = star + 1;
                        t = swallowed + 1;
                        backtrack = Some((star, swallowed + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|token| *token == Token::Star)
    }

    /// The pattern that matches exactly `literal` and nothing else.
    pub fn escape(literal: &str) -> String {
        let mut out = String::with_capacity(literal.len());
        for c in literal.chars() {
            if matches!(c, '*' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern, Case::Sensitive).matches(text)
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("namespaces/a/core/secrets", "namespaces/a/core/secrets"));
        assert!(!m(
            "namespaces/a/core/secrets",
            "namespaces/a/core/secrets:x"
        ));
        assert!(!m("namespaces/a/core/secrets", "namespaces/a/core/secret"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn star_matches_any_run_including_slashes_and_nothing() {
        assert!(m("*", ""));
        assert!(m("*", "anything/at/all"));
        assert!(m("namespaces/a/*", "namespaces/a/core/secrets:x"));
        assert!(m("namespaces/a/*", "namespaces/a/"));
        assert!(!m("namespaces/a/*", "namespaces/b/core/secrets"));
        assert!(m("*/secrets", "namespaces/a/core/secrets"));
        assert!(!m("*/secrets", "namespaces/a/core/secrets:x"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("a**c", "abbbc"));
        // Needs backtracking: the first `b` is not the right one.
        assert!(m("*ab", "aab"));
        assert!(m("a*ab*", "aaab-x"));
        assert!(!m("a*ab", "aaaba"));
    }

    #[test]
    fn escapes_make_stars_literal() {
        assert!(m(r"/v1/\*", "/v1/*"));
        assert!(!m(r"/v1/\*", "/v1/x"));
        assert!(m(r"a\\b", r"a\b"));
        assert!(m(r"a\b", r"a\b"), "a lone backslash stands for itself");
        assert!(!Glob::new(r"/v1/\*", Case::Sensitive).is_wildcard());
        assert!(Glob::new("/v1/*", Case::Sensitive).is_wildcard());
        for literal in ["/v1/*", r"a\b", r"a\*b", "*", "plain", r"\"] {
            let escaped = Glob::escape(literal);
            let glob = Glob::new(&escaped, Case::Sensitive);
            assert!(glob.matches(literal), "{literal:?} via {escaped:?}");
            assert!(!glob.is_wildcard(), "{literal:?}");
            assert!(!glob.matches(&format!("{literal}x")), "{literal:?}");
        }
    }

    #[test]
    fn case_folding_is_opt_in() {
        assert!(Glob::new("get", Case::AsciiInsensitive).matches("GET"));
        assert!(Glob::new("G*", Case::AsciiInsensitive).matches("get"));
        assert!(!Glob::new("get", Case::Sensitive).matches("GET"));
    }
}
