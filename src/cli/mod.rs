//! The binary's subcommands (not part of the library).

pub mod bench;
pub mod generate;
pub mod pull;
