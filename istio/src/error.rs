//! stickyctl's errors. An input error names the file, the line and the field
//! (as a path such as `spec.rules[0].backendRefs[1].weight`).

use std::fmt;

/// Where in an input document something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file as the user named it (`-` for stdin).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// Field path inside the document, when known.
    pub field: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in stickyctl.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file holds something wrong, at a known place.
    #[error("{place}: {message}")]
    Input {
        /// Where.
        place: Place,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Command-line values that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The rendered plugin config was refused by the filter's own parser (a bug
    /// in stickyctl or a value the policy passed through unchecked).
    #[error("the plugin config would be refused by the filter: {0}")]
    PluginConfig(String),
    /// Envoy's admin interface did not answer as expected.
    #[error("envoy admin {addr}: {message}")]
    Admin {
        /// The admin address.
        addr: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// An input error at `file` (line and field unknown).
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Error::Input {
            place: Place {
                file: file.to_owned(),
                line: None,
                field: None,
            },
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// stickyctl's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
