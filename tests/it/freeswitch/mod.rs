//! The FreeSWITCH line: the ESL parser against every real transcript, and
//! the line against the stand-in FreeSWITCH.

mod line;
mod originate_parse;
mod replay;
mod standin;
mod transcript;
