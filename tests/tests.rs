//! Vigil's integration tests: one binary (see STYLE: "one integration test
//! binary"), one module per area. The server tests start the real `vigil`
//! binary on 127.0.0.1 with an ephemeral port and a temporary data directory.

mod cli;
mod crash;
mod forward;
mod golden;
mod rules;
mod server;
mod sources;
mod support;
