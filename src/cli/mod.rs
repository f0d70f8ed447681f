//! The binary's subcommands (not part of the library).

pub mod bench;
pub mod chat;
pub mod generate;
pub mod pull;
pub mod render;
pub mod serve;
