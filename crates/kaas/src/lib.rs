//! The kaas binary's library: the server assembly ([`server`]) and the command-line
//! client ([`cli`]). `main.rs` only parses arguments and dispatches.

pub mod artifacts;
pub mod cli;
pub mod clouds;
pub mod gateway;
pub mod registry;
pub mod server;
pub mod sim_proxy;
pub mod sim_serve;
pub mod sim_workloads;
pub mod standin;
pub mod workloads;
