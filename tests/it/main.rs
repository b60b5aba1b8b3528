//! The one integration-test binary (STYLE.md): each module tests one part
//! the way it is used, through real files, sockets and processes.

mod cli;
mod documents;
mod harness;
mod loopback;
mod notify;
mod serve;
