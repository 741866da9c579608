//! The verbs: one module per verb family. `cli` parses argv and calls one of these with
//! plain option structs; each verb runs the wings below it and prints its own output.
pub(crate) mod client;
pub(crate) mod dashboard;
pub(crate) mod devices;
pub(crate) mod doctor;
pub(crate) mod gateway;
pub(crate) mod secrets;
pub(crate) mod service;
pub(crate) mod setup;
