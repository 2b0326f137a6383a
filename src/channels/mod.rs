//! Messaging channels (WhatsApp so far; Twilio and the open channel API to come):
//! the providers' wire formats and signatures as sans-IO functions. The HTTP
//! handlers in `api::channels` check and read what arrives, and the conversation core
//! carries each thread like a web chat.

pub mod signature;
pub mod whatsapp;
