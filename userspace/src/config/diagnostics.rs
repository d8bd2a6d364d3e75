//! Errors in the configuration file with their position, and their
//! rendering as `PATH:LINE:COL: message`.

use std::{fmt, path::Path};

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

/// One problem with the configuration. `line` and `col` are 1-based
/// positions in the file, or 0 when the problem is not in the file (a flag,
/// a default, or the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    pub(super) fn at(loc: Option<Location>, message: impl Into<String>) -> Self {
        let loc = loc.unwrap_or(Location { line: 0, col: 0 });
        ConfigError {
            line: loc.line,
            col: loc.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Renders errors one per line as `PATH:LINE:COL: message` (or `PATH:
/// message` without a position), for `check-config` and `run --config`.
pub fn render(path: &Path, errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.line == 0 {
                format!("{}: {}", path.display(), e.message)
            } else {
                format!("{}:{}:{}: {}", path.display(), e.line, e.col, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
