//! Every document the code cites is in the repository, and every section
//! it cites is there (issue 24; docs/architecture.md, "Where references
//! point"): Rust sources, the Makefile, the scripts and the README.

use std::path::{Path, PathBuf};

use regex::Regex;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files that cite documents, with their text; a comment that runs
/// over several lines is read as one line, so a citation split by the
/// line break is still one citation.
fn citing_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        walk(&root().join(dir), &mut files);
    }
    files.push(root().join("build.rs"));
    files.push(root().join("Makefile"));
    files.push(root().join("README.md"));
    for entry in std::fs::read_dir(root().join("scripts")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let joined = Regex::new(r"\n\s*(//[/!]?|#)\s*").unwrap();
    files
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with("tests/it/references.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let text = joined.replace_all(&text, " ").into_owned();
            (p, text)
        })
        .collect()
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(root().join("docs").join(name)).unwrap()
}

/// The numbers of a numbered list under `heading` ("1. ...", ...).
fn numbered_items(text: &str, heading: &str) -> Vec<u32> {
    let item = Regex::new(r"^(\d+)\. ").unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| item.captures(l).map(|c| c[1].parse().unwrap()))
        .collect()
}

/// The section numbers of a page whose headings are numbered ("## 6.",
/// "### 6.8 ...").
fn sections(text: &str) -> Vec<String> {
    let heading = Regex::new(r"^#{2,3} (\d+(?:\.\d+)?)\.? ").unwrap();
    text.lines()
        .filter_map(|l| heading.captures(l).map(|c| c[1].to_owned()))
        .collect()
}

#[test]
fn the_code_cites_only_documents_in_the_repository() {
    let gone = [
        "DESIGN.md",
        "STYLE.md",
        "kazoo-faxbox.md",
        "NOTES.md",
        "design card",
        "reference/freeswitch/t30",
    ];
    let mut found = Vec::new();
    for (path, text) in citing_files() {
        for name in gone {
            if text.contains(name) {
                found.push(format!("{}: {name}", path.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "documents outside the repository: {found:#?}"
    );
}

/// A section cited by number alone ("Reference 6.4", "invariant 3") leaves
/// the reader guessing which document holds it: every such citation names
/// its page in docs/.
#[test]
fn every_numbered_citation_names_its_document() {
    let citation = Regex::new(
        r"(docs/[a-z]+\.md,? (?:section )?)?\b(?i:reference|invariant|principle)s? \d+(?:\.\d+)?",
    )
    .unwrap();
    let mut bare = Vec::new();
    for (path, text) in citing_files() {
        for c in citation.captures_iter(&text) {
            if c.get(1).is_none() {
                bare.push(format!("{}: {}", path.display(), &c[0]));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "citations that do not name their document in docs/: {bare:#?}"
    );
}

/// Whether the section a citation names (its number) is in the page.
type Exists<'a> = dyn Fn(&str) -> bool + 'a;

#[test]
fn every_cited_section_of_docs_exists() {
    let architecture = doc("architecture.md");
    let invariants = numbered_items(&architecture, "## Invariants");
    let principles = numbered_items(&doc("style.md"), "## Principles");
    let kazoo = sections(&doc("kazoo.md"));
    let freeswitch = doc("freeswitch.md");
    let freeswitch_sections = sections(&freeswitch);
    assert!(invariants.len() >= 8 && principles.len() >= 13 && kazoo.len() > 50);

    let cite = |pattern: &str| Regex::new(pattern).unwrap();
    let rules: [(Regex, &Exists); 5] = [
        (cite(r"docs/architecture\.md, invariant (\d+)"), &|n| {
            invariants.contains(&n.parse().unwrap())
        }),
        (cite(r"docs/style\.md, principle (\d+)"), &|n| {
            principles.contains(&n.parse().unwrap())
        }),
        (
            cite(r"docs/kazoo\.md,? (?:section )?(\d+(?:\.\d+)?)"),
            &|n| kazoo.iter().any(|s| s == n),
        ),
        (cite(r"docs/freeswitch\.md,? section (\d+)"), &|n| {
            freeswitch_sections.iter().any(|s| s == n)
        }),
        (cite(r"docs/freeswitch\.md, transcript (\d\d)"), &|n| {
            freeswitch.contains(&format!("| {n} | `{n}_"))
        }),
    ];
    let mut missing = Vec::new();
    let mut cited = 0;
    for (path, text) in citing_files() {
        for (pattern, exists) in &rules {
            for c in pattern.captures_iter(&text) {
                cited += 1;
                if !exists(&c[1]) {
                    missing.push(format!("{}: {}", path.display(), &c[0]));
                }
            }
        }
    }
    assert!(
        cited > 100,
        "only {cited} citations found: the patterns are off"
    );
    assert!(
        missing.is_empty(),
        "cited sections that do not exist: {missing:#?}"
    );
}
