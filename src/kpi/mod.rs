//! Contact-centre KPIs as pure functions over the interactions' event logs (sans-IO).
//!
//! [`event`] reads what the store keeps into typed events in one canonical order;
//! [`facts::facts`] makes one pass over an interaction's log (queued, answered,
//! abandoned where, talk, hold, after-contact work, first response...);
//! [`report::report`] groups those per queue, agent, channel, hour or day and per
//! customer journey (a case: first contact resolution, repeat contacts, channel
//! switches, the journey's survey answer); [`occupancy`] adds the agents' occupancy
//! from their activity log. The README defines each KPI. [`codec`]
//! keeps facts as bytes: the store holds each interaction's facts, made again when
//! its log changes, so a report folds them without reading the timeline.

pub mod codec;
pub mod csv;
pub mod event;
pub mod facts;
pub mod hours;
pub mod occupancy;
pub mod report;

pub use event::{from_timeline, Contact, Entry, Event, Metric, Party};
pub use facts::{facts, Facts, OfferEnd, Stage};
pub use occupancy::{add_occupancy, Change, Fold, Packer, Sums};
pub use report::{report, Abandons, Key, Kpis, Params, Report};

#[cfg(test)]
mod tests;
