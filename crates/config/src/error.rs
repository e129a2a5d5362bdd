use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a config (or word list) file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl Location {
    pub(crate) fn at(file: &Path, src: &str, offset: usize) -> Self {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            file: file.to_path_buf(),
            line,
            column,
        }
    }
}

/// Why a config could not be loaded. The message always names the file, and where it can, the
/// line, the column and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is malformed (bad TOML, a bad word-list line): no key can be named.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A key is unknown, has the wrong type or a value out of range.
    #[error("{at}: key `{key}`: {message}")]
    Key {
        at: Location,
        key: String,
        message: String,
    },
    /// A whole-file problem with no single key to point at.
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
}

impl ConfigError {
    /// The key the error concerns, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The location of the error, if known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { at, .. } | ConfigError::Key { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Turns a toml error (with the serde path to it, if any) into a [`ConfigError`].
pub(crate) fn from_toml(
    err: toml::de::Error,
    path: Option<&serde_path_to_error::Path>,
    src: &str,
    file: &Path,
) -> ConfigError {
    let message = tidy(err.message());
    let mut parts: Vec<Part> = path.map(to_parts).unwrap_or_default();
    let unknown = unknown_field_name(&message);
    if let Some(name) = &unknown {
        // At the top level the path is empty; below, it already ends with the unknown key.
        if !matches!(parts.last(), Some(Part::Key(k)) if k == name) {
            parts.push(Part::Key(name.clone()));
        }
    }
    if parts.is_empty() {
        let at = Location::at(file, src, err.span().map_or(0, |s| s.start));
        return ConfigError::Syntax {
            at,
            message: format!("invalid TOML: {message}"),
        };
    }
    let borrowed: Vec<PathPart<'_>> = parts.iter().map(Part::borrow).collect();
    let offset = match (unknown.is_some(), err.span()) {
        (false, Some(span)) => span.start,
        _ => locate(src, &borrowed, Target::Key),
    };
    ConfigError::Key {
        at: Location::at(file, src, offset),
        key: key_string(&borrowed),
        message,
    }
}

/// An owned [`PathPart`].
enum Part {
    Key(String),
    Index(usize),
}

impl Part {
    fn borrow(&self) -> PathPart<'_> {
        match self {
            Part::Key(k) => PathPart::Key(k),
            Part::Index(i) => PathPart::Index(*i),
        }
    }
}

fn to_parts(path: &serde_path_to_error::Path) -> Vec<Part> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(Part::Index(*index)),
            Segment::Map { key } => Some(Part::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// serde's messages are terse ("unknown field `timeot_secs`, expected one of ..."). They name
/// what was expected and what was found; only trailing whitespace is removed here.
fn tidy(message: &str) -> String {
    message.trim().to_string()
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// What of a key-value pair an error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Key,
    Value,
}

/// Finds the offset of the key or value at `path` (keys and array indices) in `src`. Falls back
/// to the nearest existing parent, then to the start of the file.
pub(crate) fn locate(src: &str, path: &[PathPart<'_>], target: Target) -> usize {
    let Ok(root) = toml::de::DeTable::parse(src) else {
        return 0;
    };
    let mut best = 0;
    let mut table = root.get_ref();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    for (n, part) in path.iter().enumerate() {
        let last = n + 1 == path.len();
        let holder = match value {
            None => Some(table),
            Some(v) => v.as_table(),
        };
        let next = match (part, holder) {
            (PathPart::Key(k), Some(t)) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == *k)
                .map(|(key, v)| {
                    if last && target == Target::Key {
                        best = key.span().start;
                    }
                    v
                }),
            (PathPart::Index(i), _) => value.and_then(|v| v.as_array()).and_then(|a| a.get(*i)),
            (PathPart::Key(_), None) => None,
        };
        let Some(next) = next else { break };
        if !(last && target == Target::Key && matches!(part, PathPart::Key(_))) {
            best = next.span().start;
        }
        value = Some(next.get_ref());
        if let Some(t) = next.get_ref().as_table() {
            table = t;
        }
    }
    best
}

/// One step of a key path, for [`locate`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathPart<'a> {
    Key(&'a str),
    Index(usize),
}

/// Builds a key error at `path`.
pub(crate) fn key_error(
    src: &str,
    file: &Path,
    path: &[PathPart<'_>],
    message: String,
) -> ConfigError {
    let at = Location::at(file, src, locate(src, path, Target::Value));
    ConfigError::Key {
        at,
        key: key_string(path),
        message,
    }
}

/// `group[1].name` style.
fn key_string(path: &[PathPart<'_>]) -> String {
    let mut key = String::new();
    for part in path {
        match part {
            PathPart::Key(k) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            PathPart::Index(i) => key.push_str(&format!("[{i}]")),
        }
    }
    key
}
