//! Problems with the configuration, typed, with their position in the
//! file, and their rendering as `PATH:LINE:COL: message`.

use std::{fmt, io, path::Path};

use super::validate::BadSetting;

/// A position in the file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

impl Location {
    /// The position of byte `offset` in `text`.
    pub(super) fn of(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line,
            col: before[line_start..].chars().count() + 1,
        }
    }
}

/// A key as written in the file: `` `key` `` at the top level, or
/// `` `key` in [section] ``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Empty at the top level.
    pub section: String,
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.section.is_empty() {
            write!(f, "`{}`", self.name)
        } else {
            write!(f, "`{}` in [{}]", self.name, self.section)
        }
    }
}

/// Where a resolved setting came from, as the user would look for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingName {
    /// A flag set it (`--sip-ports`).
    Flag(&'static str),
    /// The file set it.
    Key(Key),
    /// Neither did (the default, or a required setting missing): both
    /// places it could be set.
    FlagOrKey { flag: &'static str, key: Key },
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingName::Flag(flag) => f.write_str(flag),
            SettingName::Key(key) => key.fmt(f),
            SettingName::FlagOrKey { flag, key } => write!(f, "{flag} or {key}"),
        }
    }
}

/// What is wrong, one kind per variant. The texts are what users see
/// (`pinhole check-config`, `pinhole run`).
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file as a whole: it cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("file of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("not valid UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// TOML syntax.
    #[error("{}", .0.message().trim())]
    Syntax(#[source] toml::de::Error),
    /// A known section whose value is not a table (`filter = 3`).
    #[error("[{section}] must be a table")]
    NotATable { section: String },
    #[error("unknown section [{section}]; expected one of {}", .expected.join(", "))]
    UnknownSection {
        section: String,
        expected: Vec<&'static str>,
    },
    #[error("unknown key {key}; expected one of {}", .expected.join(", "))]
    UnknownKey {
        key: Key,
        expected: Vec<&'static str>,
    },
    /// A known key whose value has the wrong type or form.
    #[error("{key}: {}", .source.message().trim())]
    BadValue {
        key: Key,
        #[source]
        source: toml::de::Error,
    },
    /// A resolved setting that is out of range or conflicts with another.
    #[error("{setting}: {reason}")]
    Setting {
        setting: SettingName,
        #[source]
        reason: BadSetting,
    },
}

/// One problem with the configuration, with its position in the file when
/// it is there (not for a flag, a default, or the file as a whole).
#[derive(Debug)]
pub struct ConfigError {
    pub at: Option<Location>,
    pub problem: Problem,
}

impl ConfigError {
    pub(super) fn at(at: Option<Location>, problem: Problem) -> Self {
        ConfigError { at, problem }
    }

    /// Sort key: by position, problems without one first.
    pub(super) fn position(&self) -> (usize, usize) {
        self.at.map_or((0, 0), |l| (l.line, l.col))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            None => self.problem.fmt(f),
            Some(l) => write!(f, "line {}, column {}: {}", l.line, l.col, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

/// One problem as `PATH:LINE:COL: message`, or `PATH: message` without a
/// position.
pub fn render_one(path: &Path, e: &ConfigError) -> String {
    match e.at {
        None => format!("{}: {}", path.display(), e.problem),
        Some(l) => format!("{}:{}:{}: {}", path.display(), l.line, l.col, e.problem),
    }
}

/// Renders errors one per line with [`render_one`], for `check-config` and
/// `run --config`.
pub fn render(path: &Path, errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| render_one(path, e))
        .collect::<Vec<_>>()
        .join("\n")
}
