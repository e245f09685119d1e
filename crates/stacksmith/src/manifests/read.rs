//! Reading manifests from files and directories, for the offline commands (`render`,
//! `validate`) and `diff`.
//!
//! - A path is a file or a directory. Directories are walked recursively (in name order,
//!   hidden entries skipped) for `*.yaml`, `*.yml` and `*.json` files.
//! - `kustomization.yaml` / `kustomization.yml` / `Kustomization` files are not objects: they are
//!   skipped. Their `resources:` are not followed and no patch is applied; the objects are found
//!   by walking the directories you name.
//! - A file may hold several YAML documents (separated by `---` lines); empty documents are
//!   skipped; a `kind: List` is expanded into its `items`.
//! - Each object keeps where it came from: the file as given on the command line, the document
//!   number (1-based) and the line where the document's content starts.
//!
//! Syntax errors are problems found in a file (reported like every other problem), not errors:
//! only a path that cannot be read is an error.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

/// Where an object (or a problem) comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The file, as reached from the path given on the command line.
    pub file: String,
    /// The line where the document's content starts (1-based).
    pub line: usize,
    /// The document's number in its file (1-based).
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Where it was read.
    pub origin: Origin,
    /// The object.
    pub value: Value,
}

impl Manifest {
    /// `apiVersion`, empty when absent.
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `kind`, empty when absent.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name`, empty when absent.
    pub fn name(&self) -> &str {
        self.metadata_str("name")
    }

    /// `metadata.namespace`, empty when absent.
    pub fn namespace(&self) -> &str {
        self.metadata_str("namespace")
    }

    fn metadata_str(&self, key: &str) -> &str {
        self.value
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The API group of `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version()
            .split_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// A document that could not be read as an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxProblem {
    /// Where (the line of the error when known, else of the document).
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
}

/// Everything read from some paths.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// The objects, in path order, then file order, then document order.
    pub manifests: Vec<Manifest>,
    /// Documents that are not valid YAML, or not objects.
    pub problems: Vec<SyntaxProblem>,
    /// Files read.
    pub files: Vec<String>,
    /// Files skipped (kustomizations), with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// A path that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct LoadError {
    /// The path.
    pub path: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Reads every path (files or directories).
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| LoadError {
            path: path.display().to_string(),
            source,
        })?;
        if metadata.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            for file in files {
                load_file(&file, &mut loaded)?;
            }
        } else {
            load_file(path, &mut loaded)?;
        }
    }
    Ok(loaded)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let error = |source| LoadError {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(error)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            walk(&entry, files)?;
        } else if is_manifest_file(&entry) {
            files.push(entry);
        }
    }
    Ok(())
}

fn is_manifest_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn is_kustomization(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

fn load_file(path: &Path, loaded: &mut Loaded) -> Result<(), LoadError> {
    let file = path.display().to_string();
    if is_kustomization(path) {
        loaded
            .skipped
            .push((file, "a kustomization: directories are walked instead"));
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError {
        path: file.clone(),
        source,
    })?;
    let (manifests, problems) = parse(&file, &text);
    loaded.manifests.extend(manifests);
    loaded.problems.extend(problems);
    loaded.files.push(file);
    Ok(())
}

/// One document of a stream: its text and the line its content starts on.
struct Document<'a> {
    text: &'a str,
    first_line: usize,
    content_line: usize,
}

/// Splits a YAML stream at `---` lines, keeping line numbers.
fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start, offset, start_line));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start, text.len(), start_line));
    docs.into_iter()
        .filter_map(|(from, to, first_line)| {
            let text = text.get(from..to)?;
            let content = text.lines().position(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            })?;
            Some(Document {
                text,
                first_line,
                content_line: first_line + content,
            })
        })
        .collect()
}

/// Every object of one file's text (pure: for tests and stdin alike).
pub fn parse(file: &str, text: &str) -> (Vec<Manifest>, Vec<SyntaxProblem>) {
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for (index, doc) in documents(text).into_iter().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            line: doc.content_line,
            document: index + 1,
        };
        let value = match serde_yaml::Deserializer::from_str(doc.text)
            .next()
            .map(Value::deserialize)
        {
            None => continue,
            Some(Ok(value)) => value,
            Some(Err(err)) => {
                let line = err
                    .location()
                    .map_or(doc.content_line, |l| doc.first_line + l.line() - 1);
                let message = err.to_string();
                // serde_yaml appends " at line X column Y" (relative to the document).
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                problems.push(SyntaxProblem {
                    origin: Origin { line, ..origin },
                    message: format!("YAML syntax error: {message}"),
                });
                continue;
            }
        };
        match value {
            Value::Null => {}
            Value::Object(ref map)
                if map.get("kind").and_then(Value::as_str) == Some("List")
                    && map.get("items").is_some_and(Value::is_array) =>
            {
                for item in map
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    manifests.push(Manifest {
                        origin: origin.clone(),
                        value: item.clone(),
                    });
                }
            }
            Value::Object(_) => manifests.push(Manifest { origin, value }),
            other => problems.push(SyntaxProblem {
                origin,
                message: format!(
                    "the document is {}, not an object",
                    crate::manifests::schema::type_name(&other)
                ),
            }),
        }
    }
    (manifests, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_number_and_line() {
        let text = "# leading comment\na: 1\n---\n\n# c\nb: 2\n---\n---\nc: 3\n";
        let (manifests, problems) = parse("f.yaml", text);
        assert!(problems.is_empty());
        let origins: Vec<(usize, usize)> = manifests
            .iter()
            .map(|m| (m.origin.document, m.origin.line))
            .collect();
        assert_eq!(origins, [(1, 2), (2, 6), (3, 9)]);
    }

    #[test]
    fn syntax_errors_name_the_line_in_the_file() {
        let text = "a: 1\n---\nkind: X\nspec:\n  a: [1, 2\n";
        let (manifests, problems) = parse("f.yaml", text);
        assert_eq!(manifests.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].origin.line >= 5, "{problems:?}");
        assert!(problems[0].message.starts_with("YAML syntax error"));
    }

    #[test]
    fn lists_are_expanded_and_scalars_are_problems() {
        let text = "{\"kind\": \"List\", \"items\": [{\"kind\": \"A\"}, {\"kind\": \"B\"}]}\n---\njust text\n";
        let (manifests, problems) = parse("f.json", text);
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[1].kind(), "B");
        assert_eq!(
            problems[0].message,
            "the document is a string, not an object"
        );
    }
}
