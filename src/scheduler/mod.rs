//! The scheduler: which job runs next on which line, under the per-account
//! `max_outbound` limit, per-number serialization and line capacity, and
//! what happens after each attempt (`policy`).

pub mod policy;
