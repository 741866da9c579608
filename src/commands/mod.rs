//! The verbs: one module per verb family. `cli` parses argv and calls one of these with
//! plain option structs; each verb runs the wings below it and prints its own output.
pub mod client;
pub(crate) mod devices;
pub mod doctor;
pub mod gateway;
pub mod secrets;
pub mod service;
pub mod setup;
