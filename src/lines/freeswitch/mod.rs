//! The FreeSWITCH line (issue 9): calls placed and taken by a co-located
//! FreeSWITCH with mod_spandsp, driven over its Event Socket.
//!
//! [`esl`] reads and writes the Event Socket wire format; [`call`] folds a
//! call's events into progress and a result; [`file_proxy`] serves the fax a
//! call sends to FreeSWITCH over HTTP; [`node`] keeps one Event Socket
//! connection per FreeSWITCH; the line places calls on the nodes and takes
//! incoming ones over the outbound socket.

pub mod call;
pub mod esl;
pub mod file_proxy;
mod inbound;
mod line;
pub mod node;
pub mod variables;

pub use file_proxy::{FileProxy, Publication};
pub use line::FreeSwitchLine;
pub use node::Backoff;
