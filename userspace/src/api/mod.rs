//! The local control socket (JSON lines): the daemon's server and the
//! client the CLI commands use.
pub mod server;
