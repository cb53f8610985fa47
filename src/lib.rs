//! The `overreach` command line: one binary, a subcommand per stage, and
//! `demo`, which runs them all on the shipped sample with no setup.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod evaluate;
