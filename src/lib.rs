//! Faxbox: a virtual fax machine for small offices.
//!
//! The parts and the one direction data flows between them are described in
//! docs/architecture.md ("Parts, and the one direction data flows", "Who
//! owns what"); each module's doc says what it owns. In short:
//!
//! ```text
//! intake (api, smtp, ipp, cli) -> documents -> store -> scheduler -> lines -> the wire
//! the wire -> lines -> inbound -> store -> notify (mail, through the postman)
//! store + scheduler events -> api (/v2/status, /v2/events, /metrics) -> tui
//! ```
//!
//! - `app` starts and stops everything; `main.rs` only hands over to it.
//! - `config` reads the TOML file and imports nothing above it; `model`
//!   holds the domain types every part shares.
//! - `store` owns every SQL statement, the job state machine, sealing,
//!   retention (`retention` runs its daily purge) and the mail queue.
//! - `api`, `smtp`, `ipp` are protocol edges: parse, check, and hand the
//!   fax request to `intake`, the one path by which it becomes committed
//!   faxes (or a typed refusal each edge maps to its reply).
//! - `documents` turns any input into a fax TIFF; `fax` holds the only
//!   `unsafe` code (SpanDSP).
//! - `scheduler` picks the next job for a free line; `lines` places and
//!   takes calls; `inbound` is the receive path they share.
//! - `status` is the contract `/v2/status` and `/v2/events` speak, read by
//!   `tui` through `client`, the HTTP API's client.
//!
//! Data moves left to right only: a part calls the parts to its right.
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
