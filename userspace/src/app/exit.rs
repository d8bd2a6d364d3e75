//! Exit codes and the one-line rendering of errors.
//!
//! Errors fall in two classes, which decide the exit code (see [`exit_code`]):
//! *bad input* (the request itself is invalid: a malformed endpoint, an
//! impossible option) exits 2, everything else (kernel, daemon, I/O) exits 1.

use crate::{
    addr::AddrError,
    api::{wire::RemoteKind, ControlError},
    config::SettingsError,
    datapath::error::SetupError,
};

/// Exit code for bad input or usage.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for runtime failures.
pub const EXIT_RUNTIME: i32 = 1;

/// The exit code for an error: 2 when it (or one of its causes) is bad input,
/// 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<AddrError>() || cause.is::<SetupError>() || cause.is::<SettingsError>() {
            return EXIT_BAD_INPUT;
        }
        if let Some(ControlError::Remote { kind, .. }) = cause.downcast_ref::<ControlError>() {
            return match kind {
                RemoteKind::BadRequest => EXIT_BAD_INPUT,
                RemoteKind::Runtime => EXIT_RUNTIME,
            };
        }
    }
    EXIT_RUNTIME
}

/// Renders an error and its causes on one line (`outer: cause: cause`),
/// skipping causes whose text the outer message already contains.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::datapath::error::LoadError;

    #[test]
    fn exit_codes_follow_the_error_class() {
        let bad: anyhow::Error = AddrError::Empty.into();
        assert_eq!(exit_code(&bad), EXIT_BAD_INPUT);
        let wrapped = anyhow::Error::from(SetupError::NoInterface).context("parsing options");
        assert_eq!(exit_code(&wrapped), EXIT_BAD_INPUT);
        let remote_bad: anyhow::Error = ControlError::Remote {
            kind: RemoteKind::BadRequest,
            message: "x".into(),
        }
        .into();
        assert_eq!(exit_code(&remote_bad), EXIT_BAD_INPUT);
        let remote_rt: anyhow::Error = ControlError::Remote {
            kind: RemoteKind::Runtime,
            message: "x".into(),
        }
        .into();
        assert_eq!(exit_code(&remote_rt), EXIT_RUNTIME);
        let rt: anyhow::Error = LoadError::PermissionDenied.into();
        assert_eq!(exit_code(&rt), EXIT_RUNTIME);
    }

    #[test]
    fn one_line_joins_causes_and_flattens_newlines() {
        let inner = io::Error::other("line one\nline two");
        let err = anyhow::Error::from(inner).context("outer");
        assert_eq!(one_line(&err), "outer: line one line two");
        // A cause already quoted by its parent is not repeated.
        let err = anyhow::Error::from(ControlError::Connect {
            path: "/x".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            hint: "h",
        });
        let line = one_line(&err);
        assert_eq!(line.matches("not found").count(), 1, "{line}");
    }
}
