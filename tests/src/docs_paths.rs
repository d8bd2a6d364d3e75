//! The documentation cannot rot: every repository path that `README.md` and
//! `docs/*.md` name (`userspace/src/…`, `ebpf/src/…`, `common/src/…`,
//! `tests/…`, `bench/results/…`, `xtask/src/…`, `fuzz/…`, `examples/…`) must
//! exist. `docs/architecture.md` tells a newcomer which file owns each
//! concept; a file moved or renamed without the docs fails this test.
//!
//! A name may end in a `*` component (`tests/tests/netns_*.rs`): at least one
//! file must match it.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// The trees whose paths the docs name. A match must start at a word
/// boundary, so `sip_tests/` or `cargo-fuzz/` are not taken for `tests/` or
/// `fuzz/`; `../` before it (a link from `docs/`) is allowed.
const ROOTS: [&str; 8] = [
    "userspace/src/",
    "ebpf/src/",
    "common/src/",
    "tests/",
    "bench/results/",
    "xtask/src/",
    "fuzz/",
    "examples/",
];

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '*')
}

/// The repository paths named in `text`, relative to the workspace root.
fn named_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for root in ROOTS {
        for (at, _) in text.match_indices(root) {
            let before = &text[..at];
            let boundary = before.ends_with("../")
                || before.chars().next_back().is_none_or(|c| !is_path_char(c));
            if !boundary {
                continue;
            }
            let rest = &text[at..];
            let end = rest.find(|c| !is_path_char(c)).unwrap_or(rest.len());
            // A path that ends a sentence keeps its full stop outside.
            found.insert(rest[..end].trim_end_matches('.').to_owned());
        }
    }
    found
}

/// Whether `path` (relative to `root`) exists; a `*` in its last component
/// matches any run of characters, and then one file must match.
fn exists(root: &Path, path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let Some((prefix, suffix)) = name.split_once('*') else {
        return root.join(path).exists();
    };
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        file.len() >= prefix.len() + suffix.len()
            && file.starts_with(prefix)
            && file.ends_with(suffix)
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// `README.md` and every `docs/*.md`, sorted.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

#[test]
fn extracts_the_paths_a_text_names() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("no path here, only tests and fuzzing", &[]),
        (
            "owned by `userspace/src/feed.rs`.",
            &["userspace/src/feed.rs"],
        ),
        ("see userspace/src/feed.rs.", &["userspace/src/feed.rs"]),
        (
            "[soak](../bench/results/soak.md) and [x](../ebpf/src/main.rs#L10)",
            &["bench/results/soak.md", "ebpf/src/main.rs"],
        ),
        ("`ebpf/src/parse.rs:120`", &["ebpf/src/parse.rs"]),
        ("`tests/tests/netns_*.rs`", &["tests/tests/netns_*.rs"]),
        // Not at a word boundary: part of another name.
        ("calls/sip_tests/x.rs cargo-fuzz/run /x/tests/y", &[]),
        // Text around the path that is not ASCII.
        ("→ common/src/lib.rs ←", &["common/src/lib.rs"]),
        (
            "ends at the end: xtask/src/layers.rs",
            &["xtask/src/layers.rs"],
        ),
    ];
    for (text, want) in cases {
        let got = named_paths(text);
        let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, want, "in {text:?}");
    }
}

#[test]
fn wildcards_need_a_matching_file() {
    let root = workspace_root();
    assert!(exists(&root, "tests/tests/netns_*.rs"));
    assert!(exists(&root, "userspace/src/ng/*.rs"));
    assert!(!exists(&root, "tests/tests/no_such_*.rs"));
    assert!(!exists(&root, "no/such/dir/*.rs"));
    assert!(!exists(&root, "userspace/src/no_such_file.rs"));
}

#[test]
fn named_paths_exist() {
    let root = workspace_root();
    let mut named = 0;
    let mut missing = Vec::new();
    for doc in documents(&root) {
        let text = fs::read_to_string(&doc).expect("read a doc");
        let name = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        for path in named_paths(&text) {
            named += 1;
            if !exists(&root, &path) {
                missing.push(format!("{name}: {path}"));
            }
        }
    }
    // The concept → file table alone names far more; a scanner that finds
    // nothing must not pass.
    assert!(named >= 60, "only {named} paths found in the docs");
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}
