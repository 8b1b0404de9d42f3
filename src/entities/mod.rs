//! sea-orm entities of the app's own tables. The race tables (`event_stock`,
//! `applications`) belong to the `strategies` crate and are read through it.

pub mod book;
pub mod event;
pub mod user;
