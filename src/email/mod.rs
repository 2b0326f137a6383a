//! E-mail into cases. Sans-IO: [`parse`] reads a raw message (ids, references,
//! automatic mail, bounces), [`thread`] decides which case it joins, [`compose`]
//! builds an agent's reply, [`html`] makes HTML mail safe to show, [`sync`] decides
//! what a mailbox's fetcher does next. Drivers: [`imap`] fetches (async-imap over
//! rustls, IDLE or polling), [`smtp`] sends (lettre over rustls); `Centre::mail_inbound`
//! puts each message on its case's thread.

pub mod compose;
pub mod html;
pub mod imap;
pub mod parse;
pub mod smtp;
pub mod sync;
pub mod thread;

#[cfg(test)]
mod tests;
