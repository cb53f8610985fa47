//! Unified diffs (`diff -u` format) between a granted policy and its
//! suggested replacement, so a reviewer sees exactly which lines go.
//!
//! Policies are small (hundreds of lines), so the longest common
//! subsequence is found with the plain quadratic table; inputs beyond
//! [`MAX_CELLS`] fall back to "delete everything, add everything", which is
//! still a correct diff.

/// Lines of context around each change, as `diff -u` uses.
const CONTEXT: usize = 3;
/// The largest `old × new` table worth building (16 million cells).
const MAX_CELLS: usize = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Delete,
    Insert,
}

/// The edit script turning `old` into `new`: one op per line, with the
/// index of that line in `old` (keep, delete) or `new` (insert). Lines the
/// two share at the start and at the end are kept without entering the
/// table, so removing one rule from a long policy costs a small table.
fn script(old: &[&str], new: &[&str]) -> Vec<(Op, usize)> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old_end, new_end) = (old.len() - suffix, new.len() - suffix);
    let mut ops: Vec<(Op, usize)> = (0..prefix).map(|i| (Op::Keep, i)).collect();
    ops.extend(
        middle(&old[prefix..old_end], &new[prefix..new_end])
            .into_iter()
            .map(|(op, k)| (op, k + prefix)),
    );
    ops.extend((old_end..old.len()).map(|i| (Op::Keep, i)));
    ops
}

/// [`script`] of what lies between the shared start and end.
fn middle(old: &[&str], new: &[&str]) -> Vec<(Op, usize)> {
    let (n, m) = (old.len(), new.len());
    if n.saturating_mul(m) > MAX_CELLS {
        let mut ops: Vec<(Op, usize)> = (0..n).map(|i| (Op::Delete, i)).collect();
        ops.extend((0..m).map(|j| (Op::Insert, j)));
        return ops;
    }
    // lcs[i][j]: length of the longest common subsequence of old[i..] and
    // new[j..], in one flat row-major table.
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if old[i] == new[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push((Op::Keep, i));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j]) {
            ops.push((Op::Insert, j));
            j += 1;
        } else {
            ops.push((Op::Delete, i));
            i += 1;
        }
    }
    ops
}

/// The unified diff from `old` to `new`, with `---`/`+++` headers naming
/// them; empty when the texts have the same lines.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let ops = script(&old_lines, &new_lines);
    if ops.iter().all(|(op, _)| *op == Op::Keep) {
        return String::new();
    }
    // Group changes into hunks: a run of ops between the first and last
    // change, merged when two changes are within 2 × CONTEXT keeps.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != Op::Keep)
        .map(|(k, _)| k)
        .collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let start = k.saturating_sub(CONTEXT);
        let end = (k + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    // Line numbers (0-based) in old and new at each op.
    let mut positions = Vec::with_capacity(ops.len());
    let (mut a, mut b) = (0usize, 0usize);
    for (op, _) in &ops {
        positions.push((a, b));
        match op {
            Op::Keep => {
                a += 1;
                b += 1;
            }
            Op::Delete => a += 1,
            Op::Insert => b += 1,
        }
    }
    for (start, end) in hunks {
        let slice = &ops[start..end];
        let old_count = slice.iter().filter(|(op, _)| *op != Op::Insert).count();
        let new_count = slice.iter().filter(|(op, _)| *op != Op::Delete).count();
        let (a, b) = positions[start];
        // `diff -u` numbers an empty range by the line before it.
        let range = |first: usize, count: usize| {
            if count == 0 {
                format!("{first},0")
            } else if count == 1 {
                format!("{}", first + 1)
            } else {
                format!("{},{count}", first + 1)
            }
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(a, old_count),
            range(b, new_count)
        ));
        for (op, index) in slice {
            let (mark, line) = match op {
                Op::Keep => (' ', old_lines[*index]),
                Op::Delete => ('-', old_lines[*index]),
                Op::Insert => ('+', new_lines[*index]),
            };
            out.push(mark);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Applies a unified diff to `old`, checking every context and
    /// deleted line: the test's independent reading of the format.
    fn apply(old: &str, diff: &str) -> String {
        let old: Vec<&str> = old.lines().collect();
        let mut out: Vec<String> = Vec::new();
        let mut at = 0usize;
        let mut lines = diff.lines().skip(2).peekable();
        while let Some(header) = lines.next() {
            let spec = header
                .strip_prefix("@@ -")
                .and_then(|h| h.strip_suffix(" @@"))
                .unwrap_or_else(|| panic!("bad hunk header {header}"));
            let old_spec = spec.split(' ').next().unwrap();
            let (first, count) = match old_spec.split_once(',') {
                Some((f, c)) => (f.parse::<usize>().unwrap(), c.parse::<usize>().unwrap()),
                None => (old_spec.parse::<usize>().unwrap(), 1),
            };
            let start = if count == 0 { first } else { first - 1 };
            out.extend(old[at..start].iter().map(|s| s.to_string()));
            at = start;
            while let Some(line) = lines.peek() {
                if line.starts_with("@@") {
                    break;
                }
                let line = lines.next().unwrap();
                let (mark, text) = line.split_at(1);
                match mark {
                    " " => {
                        assert_eq!(old[at], text);
                        out.push(text.to_owned());
                        at += 1;
                    }
                    "-" => {
                        assert_eq!(old[at], text);
                        at += 1;
                    }
                    "+" => out.push(text.to_owned()),
                    _ => panic!("bad line {line}"),
                }
            }
        }
        out.extend(old[at..].iter().map(|s| s.to_string()));
        out.join("\n")
    }

    #[test]
    fn a_removed_rule_is_one_hunk_with_context() {
        let old = "kind: Role\nrules:\n- a\n- b\n- c\n- d\n- e\n- f\n";
        let new = "kind: Role\nrules:\n- a\n- b\n- d\n- e\n- f\n";
        let diff = unified(old, new, "a/granted", "b/suggested");
        assert_eq!(
            diff,
            "--- a/granted\n+++ b/suggested\n@@ -2,7 +2,6 @@\n rules:\n - a\n - b\n-- c\n - d\n - e\n - f\n"
        );
        assert_eq!(unified(old, old, "a", "b"), "");
        assert_eq!(
            unified("", "x\n", "a", "b"),
            "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"
        );
    }

    #[test]
    fn one_rule_out_of_a_policy_too_long_for_the_table_is_still_one_hunk() {
        let lines: Vec<String> = (0..5_000).map(|i| format!("- rule {i}")).collect();
        assert!(lines.len() * lines.len() > MAX_CELLS);
        let old = lines.join("\n");
        let mut kept = lines.clone();
        kept.remove(2_500);
        let diff = unified(&old, &kept.join("\n"), "a", "b");
        assert_eq!(diff.matches("@@ -").count(), 1, "{diff}");
        assert_eq!(diff.lines().filter(|l| l.starts_with('-')).count(), 2);
        assert!(diff.contains("\n-- rule 2500\n"), "{diff}");
        assert_eq!(apply(&old, &diff), kept.join("\n"));
    }

    #[test]
    fn random_diffs_apply_back_to_the_new_text() {
        let mut rng = Rng(7);
        for round in 0..300 {
            let n = rng.below(30);
            let old: Vec<String> = (0..n).map(|_| format!("l{}", rng.below(8))).collect();
            let mut new = old.clone();
            for _ in 0..rng.below(6) {
                let len = new.len();
                match rng.below(3) {
                    0 if len > 0 => {
                        new.remove(rng.below(len));
                    }
                    1 => new.insert(rng.below(len + 1), format!("n{}", rng.below(8))),
                    _ if len > 0 => {
                        let i = rng.below(len);
                        new[i] = format!("c{}", rng.below(8));
                    }
                    _ => {}
                }
            }
            let (old, new) = (old.join("\n"), new.join("\n"));
            let diff = unified(&old, &new, "a", "b");
            if old.lines().eq(new.lines()) {
                assert!(diff.is_empty(), "round {round}");
            } else {
                assert_eq!(apply(&old, &diff), new, "round {round}:\n{diff}");
            }
        }
    }
}
