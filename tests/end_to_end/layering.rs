//! The module layering of the member crates, checked from their source.
//!
//! Two rules, read from every `.rs` file under a crate's `src/` with `syn`:
//!
//! 1. **No module cycles, at any level.** For every module, its child
//!    modules (each standing for its whole subtree) must not reference each
//!    other in a circle. A module's own file is the hub that declares and
//!    re-exports its children, so references between a parent and its own
//!    children do not count; references between siblings (and their
//!    descendants) do. This is the rule that keeps "read one module without
//!    reading its neighbours" true.
//! 2. **Layers only call downward** (`runnel-core`): each top-level module
//!    belongs to a layer, and may reference only the layers listed for it in
//!    [`CORE_LAYERS`] (the table in the crate docs of `runnel-core`).
//!
//! Code under `#[cfg(test)]` (unit-test modules) is left out. A reference
//! is any `use` item or path in code (types, expressions,
//! patterns, attributes excepted) that starts with `crate`, `super`, `self`,
//! or the name of a child module. A path through a re-export (`crate::KTable`)
//! counts as naming the module that defines the item. Paths inside macro
//! invocations are not seen; the `use` items that bring their names in are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// `runnel-core`'s layers: each top-level module, and the top-level modules
/// it may reference. The order is the order of the layers, bottom first.
const CORE_LAYERS: &[(&str, &[&str])] = &[
    // The vocabulary every layer shares: plain data, clocks.
    ("vocabulary", &[]),
    ("time", &[]),
    // Kafka's record batch format and partitioner.
    ("record", &["vocabulary"]),
    // The crate's error type (it wraps the record codec's errors).
    ("error", &["vocabulary", "record"]),
    // Topic names and the request to create one.
    ("topic", &["vocabulary", "error"]),
    // One partition's storage.
    ("log", &["vocabulary", "time", "record", "error", "topic"]),
    // Topics, partitions, coordinators, committed offsets.
    ("broker", &["vocabulary", "time", "record", "error", "topic", "log"]),
    // The Kafka wire protocol's shared parts: framing, error codes.
    ("protocol", &["vocabulary", "error"]),
    // The wire-protocol server over the broker.
    ("server", &["vocabulary", "time", "record", "error", "topic", "log", "broker", "protocol"]),
    // Producer, Consumer, Admin; embedded (broker) and kafka backends.
    ("client", &["vocabulary", "time", "record", "error", "topic", "log", "broker", "protocol"]),
];

/// One file's module, and the module paths it references.
struct ModuleFile {
    module: Vec<String>,
    /// Referenced paths, already absolute (from the crate root), each with
    /// the path as written.
    references: Vec<(Vec<String>, String)>,
    path: PathBuf,
}

/// The module path of `file` under `src`: `lib.rs` is the root,
/// `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Collects the `crate`/`super`/`self`/child-module paths of one file.
struct References<'a> {
    /// The module the code being visited is in (inline `mod` blocks push).
    module: Vec<String>,
    /// Every module of the crate, to tell a child module from an extern
    /// crate or a type.
    modules: &'a BTreeSet<Vec<String>>,
    found: Vec<(Vec<String>, String)>,
    /// Whether the `use` item being visited is a re-export (`pub use`).
    exporting: bool,
    /// Re-exports seen: the path they add (`module::Name`) and the path
    /// they stand for.
    exports: Vec<(Vec<String>, Vec<String>)>,
}

impl References<'_> {
    /// The absolute path `segments` names from the current module, if it
    /// names something inside this crate.
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        let (mut base, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (self.module.clone(), &segments[1..]),
            "super" => {
                let mut base = self.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => {
                let mut child = self.module.clone();
                child.push(first.clone());
                if !self.modules.contains(&child) {
                    return None;
                }
                (self.module.clone(), segments)
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn note(&mut self, segments: Vec<String>) {
        if let Some(path) = self.resolve(&segments) {
            self.found.push((path, segments.join("::")));
        }
    }

    /// Records `pub use path as name` (when in a re-export).
    fn export(&mut self, path: &[String], name: String) {
        if let (true, Some(target)) = (self.exporting, self.resolve(path)) {
            let mut added = self.module.clone();
            added.push(name);
            self.exports.push((added, target));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                let name = path.last().cloned().unwrap_or_default();
                self.export(&path, name);
                self.note(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                self.export(&path, r.rename.to_string());
                self.note(path);
            }
            syn::UseTree::Glob(g) => {
                let _ = g;
                self.note(prefix.clone());
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for References<'_> {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_test_only(&item.attrs) {
            return;
        }
        self.exporting = !matches!(item.vis, syn::Visibility::Inherited);
        self.use_tree(&mut Vec::new(), &item.tree);
        self.exporting = false;
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.note(segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

/// Whether `attrs` include `#[cfg(test)]`: unit tests may set a low layer
/// up through a high one (a task's tests build topologies with the DSL),
/// so test-only code is not part of the layering.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
}

/// Every file of the crate at `src`, with what it references.
fn read_crate(src: &Path) -> (Vec<ModuleFile>, BTreeSet<Vec<String>>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let parsed: Vec<(PathBuf, Vec<String>, syn::File)> = files
        .into_iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "main.rs") || f.parent() != Some(src))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {}: {e}", f.display()));
            let module = module_of(src, &f);
            (f, module, ast)
        })
        .collect();
    let mut modules: BTreeSet<Vec<String>> = parsed.iter().map(|(_, m, _)| m.clone()).collect();
    // Inline modules (`mod tests { .. }`) are modules too.
    for (_, module, ast) in &parsed {
        inline_modules(module, &ast.items, &mut modules);
    }
    let mut exports = BTreeMap::new();
    let files = parsed
        .into_iter()
        .map(|(path, module, ast)| {
            let mut visitor = References {
                module: module.clone(),
                modules: &modules,
                found: Vec::new(),
                exporting: false,
                exports: Vec::new(),
            };
            visitor.visit_file(&ast);
            exports.extend(visitor.exports);
            ModuleFile { module, references: visitor.found, path }
        })
        .collect::<Vec<_>>();
    // A path through a re-export (`crate::KTable`) counts as a reference to
    // the module that defines the item, not to the one re-exporting it.
    let mut files = files;
    for file in &mut files {
        for (path, _) in &mut file.references {
            *path = canonical(path, &exports);
        }
    }
    (files, modules)
}

/// `path` with re-exports replaced by what they stand for.
fn canonical(path: &[String], exports: &BTreeMap<Vec<String>, Vec<String>>) -> Vec<String> {
    let mut path = path.to_vec();
    // Re-exports chain (`crate::X` -> `crate::a::X` -> `crate::a::b::X`);
    // a bound stops a cycle of them.
    for _ in 0..16 {
        let Some(n) = (1..=path.len()).rev().find(|&n| exports.contains_key(&path[..n])) else { break };
        let mut replaced = exports[&path[..n]].clone();
        if replaced == path[..n] {
            break;
        }
        replaced.extend_from_slice(&path[n..]);
        path = replaced;
    }
    path
}

fn inline_modules(module: &[String], items: &[syn::Item], out: &mut BTreeSet<Vec<String>>) {
    for item in items {
        if let syn::Item::Mod(m) = item {
            let mut child = module.to_vec();
            child.push(m.ident.to_string());
            if let Some((_, items)) = &m.content {
                inline_modules(&child, items, out);
            }
            out.insert(child);
        }
    }
}

/// The longest prefix of `path` that is a module.
fn owning_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| p.is_empty() || modules.contains(p))
        .unwrap_or_default()
}

/// One reference between two sibling subtrees: `(parent, from child, to
/// child)` → an example: the file and the path as written.
type SiblingEdges = BTreeMap<(Vec<String>, String, String), String>;

fn sibling_edges(files: &[ModuleFile], modules: &BTreeSet<Vec<String>>, src: &Path) -> SiblingEdges {
    let mut edges = SiblingEdges::new();
    for file in files {
        for (path, written) in &file.references {
            let target = owning_module(path, modules);
            // The deepest common ancestor; both sides must lie strictly below it.
            let common = file.module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common >= file.module.len() || common >= target.len() {
                continue;
            }
            let parent = target[..common].to_vec();
            let from = file.module[common].clone();
            let to = target[common].clone();
            let at =
                format!("{}: `{written}`", file.path.strip_prefix(src.parent().unwrap()).unwrap().display());
            edges.entry((parent, from, to)).or_insert(at);
        }
    }
    edges
}

/// Every cycle among siblings, as readable lines.
fn cycles(edges: &SiblingEdges) -> Vec<String> {
    let mut by_parent: BTreeMap<&Vec<String>, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (parent, from, to) in edges.keys() {
        by_parent.entry(parent).or_default().entry(from.as_str()).or_default().push(to.as_str());
    }
    let mut found = Vec::new();
    for (parent, graph) in by_parent {
        for component in strongly_connected(&graph) {
            if component.len() < 2 {
                continue;
            }
            let members: BTreeSet<&str> = component.iter().copied().collect();
            let mut lines = Vec::new();
            for (p, from, to) in edges.keys() {
                if p == parent && members.contains(from.as_str()) && members.contains(to.as_str()) {
                    lines.push(format!(
                        "    {from} -> {to} (e.g. {})",
                        edges[&(p.clone(), from.clone(), to.clone())]
                    ));
                }
            }
            let name = if parent.is_empty() { "crate".to_string() } else { parent.join("::") };
            found.push(format!("cycle among the children of `{name}`: {:?}\n{}", members, lines.join("\n")));
        }
    }
    found
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, graph: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in graph.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !s.index.contains_key(w) {
                visit(w, graph, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().expect("on the stack");
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, graph, &mut s);
        }
    }
    s.out
}

/// Upward references between `runnel-core`'s layers.
fn layer_violations(edges: &SiblingEdges, modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = CORE_LAYERS.iter().copied().collect();
    let mut found = Vec::new();
    for top in modules.iter().filter(|m| m.len() == 1) {
        if !allowed.contains_key(top[0].as_str()) {
            found.push(format!("module `{}` is in no layer: add it to CORE_LAYERS", top[0]));
        }
    }
    for ((parent, from, to), at) in edges {
        if !parent.is_empty() {
            continue;
        }
        let may = allowed.get(from.as_str()).copied().unwrap_or(&[]);
        if !may.contains(&to.as_str()) {
            found.push(format!("`{from}` may not use `{to}` (the layer table allows {may:?}): {at}"));
        }
    }
    found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name).join("src")
}

#[test]
fn core_layers_only_call_downward() {
    let src = crate_src("core");
    let (files, modules) = read_crate(&src);
    let violations = layer_violations(&sibling_edges(&files, &modules, &src), &modules);
    assert!(violations.is_empty(), "runnel-core's layering is broken:\n{}", violations.join("\n"));
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut problems = Vec::new();
    // `runnel-streams` is not listed yet: its DSL, graph, task and runtime
    // modules still form cycles (issue 17 keeps it open until they are gone).
    for krate in ["core", "streams", "connect", "connectors", "tests/kit", "src"] {
        let src =
            if krate == "src" { Path::new(env!("CARGO_MANIFEST_DIR")).join("src") } else { crate_src(krate) };
        let (files, modules) = read_crate(&src);
        for cycle in cycles(&sibling_edges(&files, &modules, &src)) {
            problems.push(format!("{krate}: {cycle}"));
        }
    }
    assert!(problems.is_empty(), "module cycles:\n{}", problems.join("\n"));
}

/// The checker itself finds what it is for: a crate written here with an
/// upward import and a cycle is reported, and the fixed crate is not.
#[test]
fn the_checker_sees_cycles_and_upward_imports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("broker")).expect("mkdir");
    // The root re-exports `Client`: a path through it still names `client`.
    let lib = "pub mod broker; pub mod client; pub mod record; pub use client::Client;";
    std::fs::write(src.join("lib.rs"), lib).expect("write");
    std::fs::write(src.join("record.rs"), "pub struct Record;").expect("write");
    std::fs::write(src.join("client.rs"), "use crate::broker::Broker;\npub struct Client(Broker);")
        .expect("write");
    std::fs::write(src.join("broker/mod.rs"), "mod offsets;\npub struct Broker;").expect("write");
    let upward = "pub fn f() -> crate::Client { todo!() }\nuse super::Broker;";
    std::fs::write(src.join("broker/offsets.rs"), upward).expect("write");

    let (files, modules) = read_crate(&src);
    let edges = sibling_edges(&files, &modules, &src);
    let found = cycles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("broker -> client") && found[0].contains("src/broker/offsets.rs: `crate::Client`"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("client -> broker"), "{}", found[0]);
    let violations = layer_violations(&edges, &modules);
    assert!(violations.iter().any(|v| v.contains("`broker` may not use `client`")), "{violations:?}");

    std::fs::write(src.join("broker/offsets.rs"), "use crate::record::Record;\nuse super::Broker;")
        .expect("write");
    let (files, modules) = read_crate(&src);
    assert!(cycles(&sibling_edges(&files, &modules, &src)).is_empty());
}
