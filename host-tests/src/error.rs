//! Why a run of the filter failed, in one message a test can print.

use std::fmt;

/// A failure of the filter under test, or of loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The module is missing, does not compile, or does not link (an import
    /// outside the ABI, a missing export).
    Load(String),
    /// The filter broke the proxy-wasm ABI contract: a bad pointer, a call in
    /// the wrong phase, a call this host refuses.
    Abi {
        /// The filter callback that was running.
        export: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The filter trapped (a panic, `unreachable`, out of fuel) or returned
    /// something the host cannot accept.
    Trap {
        /// The filter callback that was running.
        export: &'static str,
        /// The trap, with the filter's last critical log line if any.
        message: String,
    },
    /// An earlier failure poisoned the VM (Envoy, too, stops using it).
    Poisoned(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Load(m) => write!(f, "cannot load the filter: {m}"),
            HostError::Abi { export, message } => {
                write!(f, "ABI violation by the filter in {export}: {message}")
            }
            HostError::Trap { export, message } => {
                write!(f, "the filter failed in {export}: {message}")
            }
            HostError::Poisoned(m) => write!(f, "the VM is unusable after an earlier failure: {m}"),
        }
    }
}

impl std::error::Error for HostError {}
