//! Faxbox: a virtual fax machine for small offices.
//!
//! The parts and the one direction data flows between them are described in
//! docs/architecture.md; each module's doc says what it owns.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod backup;
pub mod cli;
pub mod client;
pub mod config;
pub mod cover;
pub mod documents;
pub mod doorbell;
pub mod fax;
#[doc(hidden)]
pub mod fuzz;
pub mod gate;
pub mod http_pool;
pub mod inbound;
pub mod intake;
pub mod ipp;
pub mod lines;
pub mod model;
pub mod notify;
pub mod retention;
pub mod scheduler;
pub mod sending_window;
pub mod smtp;
pub mod status;
pub mod store;
pub mod streak;
pub mod systemd;
pub mod timezone;
pub mod tui;
