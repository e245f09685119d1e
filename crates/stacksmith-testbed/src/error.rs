//! Errors of the test bed.

use std::path::PathBuf;

/// Everything that can go wrong while installing, starting, using or stopping a test bed.
#[derive(Debug, thiserror::Error)]
pub enum TestBedError {
    /// A file or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The binaries could not be found or installed.
    #[error("test-bed binaries: {0}")]
    Binaries(String),
    /// Generating the certificates failed.
    #[error("certificates: {0}")]
    Pki(#[from] rcgen::Error),
    /// A server did not become ready.
    #[error("{server} did not become ready within {waited_secs} s; its log is {log}:\n{log_tail}")]
    NotReady {
        /// Which server.
        server: String,
        /// How long we waited.
        waited_secs: u64,
        /// Where its log is.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },
    /// Building a client from a kubeconfig failed.
    #[error("kubeconfig of cluster {cluster}: {source}")]
    Kubeconfig {
        /// The cluster.
        cluster: String,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Serialising or parsing YAML/JSON failed.
    #[error("{what}: {message}")]
    Format {
        /// What was being (de)serialised.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// No test bed with this name is running.
    #[error("no running test bed named {0:?} (start one with `stacksmith testbed up`)")]
    NotRunning(String),
    /// A cluster name that the test bed does not have.
    #[error("the test bed has no cluster named {0:?}")]
    UnknownCluster(String),
    /// An object the caller relies on does not exist.
    #[error("found no {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        secs: u64,
    },
}

impl TestBedError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let action = action.into();
        move |source| TestBedError::Io { action, source }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| TestBedError::Kube { action, source }
    }

    pub(crate) fn format(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        TestBedError::Format {
            what: what.into(),
            message: err.to_string(),
        }
    }
}

/// The test bed's result type.
pub type Result<T, E = TestBedError> = std::result::Result<T, E>;
