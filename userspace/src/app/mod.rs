//! The `pinhole` binary: command line, subcommands, output and the daemon.
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod exit;
pub mod output;
