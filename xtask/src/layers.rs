//! The layer check of `cargo xtask test`: the userspace library's top-level
//! modules (its tiers, see the map in userspace/src/lib.rs) must not import
//! each other in a circle.
//!
//! cargo-modules prints the crate's `use` edges between modules. Its own
//! `--acyclic` flag checks the graph of *items* (a type and its methods
//! already form a cycle there), so it cannot express "no circle between
//! layers"; this module collapses every module path to its tier
//! (`pinhole::datapath::maps` → `datapath`) and looks for a cycle in that
//! graph instead. Edges inside one tier (a parent and its children) are
//! allowed.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::proc::{self, find_in_path, probe};

/// 0.28 needs rustc 1.98; 0.27 is the newest that builds with stable here.
const CARGO_MODULES_VERSION: &str = "0.27.0";
/// The crate whose layers are checked.
const CRATE: &str = "pinhole";

/// Installs cargo-modules when it is missing or another version.
pub fn ensure_cargo_modules() -> Result<()> {
    let version = find_in_path("cargo-modules")
        .and_then(|path| probe(Command::new(path).arg("--version")))
        .and_then(|out| out.split_whitespace().nth(1).map(str::to_owned));
    if version.as_deref() == Some(CARGO_MODULES_VERSION) {
        eprintln!("ok: cargo-modules {CARGO_MODULES_VERSION}");
        return Ok(());
    }
    eprintln!("installing cargo-modules {CARGO_MODULES_VERSION} …");
    proc::run(
        Command::new(crate::cargo())
            .args(["install", "--locked"])
            .arg(format!("cargo-modules@{CARGO_MODULES_VERSION}")),
    )
}

/// Runs cargo-modules over the library and fails on a circle between tiers.
pub fn check() -> Result<()> {
    ensure_cargo_modules()?;
    let out = crate::cargo_cmd([
        "modules",
        "dependencies",
        "--lib",
        "-p",
        CRATE,
        "--no-externs",
        "--no-sysroot",
        "--no-fns",
        "--no-traits",
        "--no-types",
        "--no-owns",
    ])
    .output()
    .context("running cargo modules")?;
    if !out.status.success() {
        bail!(
            "cargo modules dependencies failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dot = String::from_utf8(out.stdout).context("cargo modules printed non-UTF-8")?;
    let graph = tier_graph(&dot);
    if graph.is_empty() {
        bail!("cargo modules printed no `uses` edges between modules; the check would be vacuous");
    }
    match find_cycle(&graph) {
        Some(cycle) => bail!(
            "the layers of `{CRATE}` import each other in a circle: {}",
            cycle.join(" -> ")
        ),
        None => {
            eprintln!(
                "ok: no circle between the {} tiers of `{CRATE}`",
                graph.len()
            );
            Ok(())
        }
    }
}

/// The tier of a module path: `pinhole::datapath::maps` → `datapath`;
/// `None` for the crate root and for other crates.
fn tier(path: &str) -> Option<&str> {
    let mut parts = path.split("::");
    (parts.next()? == CRATE).then_some(())?;
    parts.next()
}

/// The `uses` edges of cargo-modules' DOT output, between distinct tiers.
fn tier_graph(dot: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in dot.lines() {
        let line = line.trim();
        if !line.contains("label=\"uses\"") {
            continue;
        }
        let mut quoted = line.split('"').skip(1).step_by(2);
        let (Some(from), Some(to)) = (quoted.next(), quoted.next()) else {
            continue;
        };
        let (Some(from), Some(to)) = (tier(from), tier(to)) else {
            continue;
        };
        graph.entry(to.to_owned()).or_default();
        if from != to {
            graph
                .entry(from.to_owned())
                .or_default()
                .insert(to.to_owned());
        }
    }
    graph
}

/// One cycle of `graph` as the list of its nodes (first repeated last), or
/// `None` when the graph is acyclic.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack.iter().skip(start).map(|n| (*n).to_owned()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    let mut stack = Vec::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut marks, &mut stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, to: &str, label: &str) -> String {
        format!("    \"{from}\" -> \"{to}\" [label=\"{label}\", color=\"#7f7f7f\"]; // \"{label}\" edge")
    }

    #[test]
    fn uses_edges_collapse_to_tiers() {
        let dot = [
            edge(
                "pinhole::controller::persist",
                "pinhole::controller",
                "uses",
            ),
            edge("pinhole::controller", "pinhole::datapath::maps", "uses"),
            edge("pinhole", "pinhole::addr", "owns"),
            edge("pinhole::datapath::maps", "aya::maps", "uses"),
        ]
        .join("\n");
        let graph = tier_graph(&dot);
        let want: BTreeMap<String, BTreeSet<String>> = [
            ("controller".to_owned(), ["datapath".to_owned()].into()),
            ("datapath".to_owned(), BTreeSet::new()),
        ]
        .into();
        assert_eq!(graph, want);
    }

    #[test]
    fn cycles_are_found_and_named() {
        let dot = [
            edge("pinhole::a", "pinhole::b::x", "uses"),
            edge("pinhole::b::y", "pinhole::c", "uses"),
            edge("pinhole::c", "pinhole::a", "uses"),
            edge("pinhole::d", "pinhole::a", "uses"),
        ]
        .join("\n");
        let cycle = find_cycle(&tier_graph(&dot)).expect("a -> b -> c -> a");
        assert_eq!(cycle, ["a", "b", "c", "a"]);
    }

    #[test]
    fn a_layered_graph_has_no_cycle() {
        let dot = [
            edge("pinhole::app", "pinhole::controller", "uses"),
            edge("pinhole::app", "pinhole::datapath", "uses"),
            edge("pinhole::controller", "pinhole::datapath", "uses"),
            edge("pinhole::controller::a", "pinhole::controller::b", "uses"),
            edge("pinhole::controller::b", "pinhole::controller::a", "uses"),
        ]
        .join("\n");
        assert_eq!(find_cycle(&tier_graph(&dot)), None);
    }
}
