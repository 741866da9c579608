//! The integration test binary: one module per area (shared helpers live next to them).
mod launchd;
