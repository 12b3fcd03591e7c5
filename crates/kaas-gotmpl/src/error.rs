//! Errors, worded as Go's `text/template` words them.

/// A template that failed to parse or to execute.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The text is not a valid template, or calls a function that does not exist.
    #[error("template: {template}:{line}: {message}")]
    Parse {
        /// The file (template set entry) the error is in.
        template: String,
        line: usize,
        message: String,
    },
    /// Executing the template failed.
    #[error("{0}")]
    Exec(Box<ExecError>),
    /// A template name that is not in the set.
    #[error("template: no template {name:?} associated with template \"gotpl\"")]
    NoTemplate { name: String },
}

/// Where and why executing a template failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "template: {template}:{line}:{column}: executing \"{executing}\" at <{context}>: {message}"
)]
pub struct ExecError {
    /// The file the failing action is in.
    pub template: String,
    pub line: usize,
    /// Byte offset in the line, from 0, as Go counts it.
    pub column: usize,
    /// The template (file or `define`) being executed.
    pub executing: String,
    /// The failing action, as Go prints it.
    pub context: String,
    pub message: String,
    /// The message of `fail` or `required` when one of them caused the error, also
    /// from inside `include` and `tpl`; Helm shows only this to the user.
    pub failure: Option<String>,
}

impl Error {
    /// The message of a `fail` or `required` that stopped rendering, if that is what
    /// happened.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Error::Exec(e) => e.failure.as_deref(),
            _ => None,
        }
    }
}

/// An error from a template function: its message, and the user's message when it
/// comes from `fail` or `required`.
#[derive(Debug, Clone)]
pub(crate) struct FnError {
    pub message: String,
    pub failure: Option<String>,
    /// Already a complete message (arity errors), not to be prefixed with
    /// "error calling NAME: ".
    pub bare: bool,
}

impl FnError {
    pub fn new(message: impl Into<String>) -> Self {
        FnError {
            message: message.into(),
            failure: None,
            bare: false,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        let message = message.into();
        FnError {
            failure: Some(message.clone()),
            message,
            bare: false,
        }
    }

    pub fn bare(message: impl Into<String>) -> Self {
        FnError {
            message: message.into(),
            failure: None,
            bare: true,
        }
    }
}

impl From<String> for FnError {
    fn from(message: String) -> Self {
        FnError::new(message)
    }
}

impl From<&str> for FnError {
    fn from(message: &str) -> Self {
        FnError::new(message)
    }
}

impl From<Error> for FnError {
    fn from(e: Error) -> Self {
        FnError {
            failure: e.failure().map(str::to_owned),
            message: e.to_string(),
            bare: false,
        }
    }
}
