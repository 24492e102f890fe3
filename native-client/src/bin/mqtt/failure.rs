//! [`Failure`]: why `mqtt` stops unsuccessfully, with the exit code for each kind.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | usage error, or the connection could not be made (refused port, unreachable or unknown host, TLS, the broker refused CONNECT: not authorized 0x87, bad user name or password 0x86, ...) |
//! | 2 | timeout: `-W` expired before `-C` messages arrived, or the broker did not answer in time |
//! | 3 | the broker refused an operation (a publication or subscription, with its reason code), or the connection was lost for good |

use std::process::ExitCode;

use native_client::{ConnectError, Error};

/// Why `mqtt` failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad arguments or unreadable input files.
    Usage(String),
    /// The connection could not be made.
    Connect(ConnectError),
    /// Time ran out.
    Timeout(String),
    /// An operation failed after connecting.
    Operation(String),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) | Self::Connect(_) => 1,
            Self::Timeout(_) => 2,
            Self::Operation(_) => 3,
        })
    }

    /// An operation's error, in words.
    pub(crate) fn operation(what: &str, err: Error) -> Self {
        match err {
            Error::Timeout(_) => Self::Timeout(format!("{what}: {err}")),
            err => Self::Operation(format!("{what}: {err}")),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(text) => write!(f, "{text}"),
            Self::Connect(err) => write!(f, "cannot connect: {err}"),
            Self::Timeout(text) | Self::Operation(text) => write!(f, "{text}"),
        }
    }
}

impl From<ConnectError> for Failure {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Url(err) => Self::Usage(err.to_string()),
            ConnectError::TlsConfig(err) => Self::Usage(err.to_string()),
            err => Self::Connect(err),
        }
    }
}
