//! The one integration-test binary (docs/style.md): each module tests one part
//! the way it is used, through real files, sockets and processes.

mod api;
mod batches;
mod budget;
mod callbacks;
mod chaos;
mod cli;
mod cover;
mod cups;
mod documents;
mod edges;
mod file_proxy;
mod freeswitch;
mod fuzz;
mod harness;
mod inbound;
mod ipp;
mod loopback;
mod memory;
mod modem;
mod notify;
mod packaging;
mod postfix;
mod print_raster;
mod records;
mod references;
mod scheduler;
mod serve;
mod shapes;
mod smtp;
mod tui;
