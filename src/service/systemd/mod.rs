//! systemd: units (the renderer [`unit`] and its reader [`unit_file`]), socket activation,
//! sd_notify, and the user-manager driver.
pub mod activation;
pub mod errors;
pub mod fdstore;
pub mod journal;
pub mod manager;
pub mod notify;
pub mod plan;
pub mod unit;
pub mod unit_file;
pub mod watchdog;

pub use errors::SystemdError;
pub use manager::{SystemdEnv, SystemdManager};
pub use plan::{Op, Step};
