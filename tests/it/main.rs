//! The integration test binary: one binary, one module per area (`support` holds shared helpers).
mod support;

mod secrets;
