//! The `weiquan` command line: one module per subcommand.
//!
//! The library half exists so that tests can drive a subcommand in-process
//! with their own input and output; `main.rs` only parses arguments and maps
//! errors to exit codes.

pub mod cli;
pub mod commands;
